"""What the sink tests share: a settable clock, an observer that records, batches of
NDJSON lines and readers of what the sink stored. The fixtures are in ``conftest.py``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.ingest.sink import NdjsonSink, StoredBatch

# 2025-03-01 12:00:00 UTC
NOON = 1_740_830_400.0
DAY = "20250301"

SinkFactory = Callable[..., NdjsonSink]


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A SinkObserver that remembers every call."""

    def __init__(self) -> None:
        self.written: list[int] = []
        self.errors = 0
        self.fsyncs: list[float] = []

    def sink_written(self, nbytes: int) -> None:
        self.written.append(nbytes)

    def sink_error(self) -> None:
        self.errors += 1

    def sink_fsync(self, seconds: float) -> None:
        self.fsyncs.append(seconds)


def batch(batch_id: str, lines: int = 3, width: int = 40) -> bytes:
    pad = "x" * width
    return b"".join(
        json.dumps({"batch": batch_id, "i": i, "pad": pad}).encode() + b"\n" for i in range(lines)
    )


def data_files(sink_dir: Path) -> list[Path]:
    def order(p: Path) -> tuple[str, int]:
        parts = p.name.split(".")
        return parts[0], int(parts[1]) if len(parts) == 3 else 0

    return sorted(sink_dir.glob("*.ndjson"), key=order)


def records(sink_dir: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in data_files(sink_dir):
        raw = path.read_bytes()
        assert raw == b"" or raw.endswith(b"\n"), f"torn last line in {path.name}"
        out.extend(json.loads(line) for line in raw.splitlines())
    return out


def index_lines(sink_dir: Path, day: str = DAY) -> list[list[Any]]:
    path = sink_dir / ".index" / f"{day}.idx"
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def stored_index(
    make_sink: SinkFactory, sink_dir: Path, ids: str = "ab"
) -> tuple[Path, list[bytes]]:
    """Store a batch for each letter of ``ids``, close the sink, and give the day's index
    file and its lines (newlines kept), for a test to damage before the next start-up."""
    sink = make_sink()
    for bid in ids:
        sink.append(bid, batch(bid), StoredBatch(3, 0))
    sink.close()
    index = sink_dir / ".index" / f"{DAY}.idx"
    return index, index.read_bytes().splitlines(keepends=True)


class FsyncLog:
    """Wraps ``os.fsync`` (and ``os.replace``): what each call was for, in order.

    Entries are paths relative to the sink's parent folder (``sink/20250301.ndjson``,
    ``sink/.index`` for the folder itself), ``replace <name>`` for a rename onto a path,
    and the test's own marks, such as the moment a push was acknowledged.
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
        """The entries since the last call."""
        events, self.events = self.events, []
        return events

    def _name(self, path: str) -> str:
        return Path(path).relative_to(self.base).as_posix()
