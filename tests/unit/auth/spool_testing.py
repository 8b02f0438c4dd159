"""What the spool tests share: opening spools, batches, reading the files, an fsync log.

The record layout is read here with ``struct`` from the format's description, not with
the spool's own decoder, so a test notices when the two disagree.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

from services.auth.spool import Spool, SpooledBatch

MEDIA = "application/x-ndjson"
SEGMENT_HEAD = 16
RECORD_HEAD = struct.Struct("<4sIQI")


def body_of(batch_id: str, lines: int = 3) -> bytes:
    return b"".join(b'{"batch": "%s", "i": %d}\n' % (batch_id.encode(), i) for i in range(lines))


def put(spool: Spool, batch_id: str, body: bytes | None = None) -> SpooledBatch:
    body = body_of(batch_id) if body is None else body
    meta = {"emitter": "me", "scenario_id": "s1", "run_id": "r1", "format": "json"}
    return spool.put(batch_id, MEDIA, "identity", meta, body, body.count(b"\n"))


def ids(batches: list[SpooledBatch]) -> list[str]:
    return [b.batch_id for b in batches]


class Opener:
    """Opens spools on one folder; every one is closed at the end of the test."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.opened: list[Spool] = []

    def __call__(self, **kwargs: Any) -> Spool:
        settings: dict[str, Any] = {"max_bytes": 1 << 20, "max_batches": 1000}
        settings.update(kwargs)
        spool = Spool(self.folder, **settings)
        spool.open()
        self.opened.append(spool)
        return spool

    def reopen(self, spool: Spool, **kwargs: Any) -> Spool:
        spool.close()
        return self(**kwargs)

    def close_all(self) -> None:
        for spool in self.opened:
            spool.close()


def segments(folder: Path) -> list[Path]:
    return sorted(folder.glob("seg-*.log"))


def record_spans(path: Path) -> list[tuple[int, int]]:
    """(start, end) of each record of a segment, by the lengths in their heads."""
    data = path.read_bytes()
    spans = []
    pos = SEGMENT_HEAD
    while pos + RECORD_HEAD.size <= len(data):
        magic, length, _, _ = RECORD_HEAD.unpack_from(data, pos)
        assert magic == b"LSPR", f"no record at {pos} of {path.name}"
        spans.append((pos, pos + RECORD_HEAD.size + length))
        pos += RECORD_HEAD.size + length
    assert pos == len(data), f"{path.name} ends inside a record"
    return spans


def flip(path: Path, offset: int) -> None:
    """Invert one byte on disk, as bit rot would."""
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))


class FsyncLog:
    """Wraps ``os.fsync`` and ``os.replace``: what each call was for, in order.

    Entries are paths relative to the spool's parent folder (``spool/seg-…log``,
    ``spool`` for the folder itself), ``replace <path>`` for a rename onto a path, and the
    test's own marks, such as the moment a put returned.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.events: list[str] = []
        self._fsync = os.fsync
        self._replace = os.replace

    def fsync(self, fd: int) -> None:
        self.events.append(self._name(os.readlink(f"/proc/self/fd/{fd}")))
        self._fsync(fd)

    def replace(self, src: Any, dst: Any) -> None:
        self.events.append(f"replace {self._name(os.fspath(dst))}")
        self._replace(src, dst)

    def mark(self, what: str) -> None:
        self.events.append(what)

    def take(self) -> list[str]:
        events, self.events = self.events, []
        return events

    def _name(self, path: str) -> str:
        return Path(path).relative_to(self.base).as_posix()
