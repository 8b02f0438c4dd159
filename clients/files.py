"""Line transports to a file and to standard output: one line per record, ``raw`` as is.

Same ``send(batch) -> PushResult`` as the other transports. A batch is written with one
``write`` of whole lines, so a reader (Promtail, ``tail -F``, a pipe) never sees half a
batch's last line at a batch boundary.

File durability (``fsync``):

- ``none`` (the default): each batch is flushed to the kernel before ``send`` returns,
  so the lines survive the emitter being killed, not a power cut; the file is fsynced
  once when it is closed.
- ``batch``: each batch is also fsynced before ``send`` returns (as the Ingest sink's
  default ``batch`` mode), for tests of crash behaviour; much slower on a real disk.

The file is opened in append mode (``O_APPEND``), so several emitters may share one
file, and a file moved away by log rotation is left to the rotator: the emitter keeps
writing to the file it opened, as ``logger`` and most programs do.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import BinaryIO

from services.common.errors import Unavailable
from services.common.model import Batch, PushResult, Rejection

FSYNC_MODES = ("none", "batch")


def _body(batch: Batch) -> tuple[bytes, int, list[Rejection]]:
    """Whole lines for the records, each ending in LF; a line that holds a line break is
    refused (it would read back as two records)."""
    lines: list[str] = []
    rejections: list[Rejection] = []
    for index, rec in enumerate(batch.records):
        if rec is None:
            continue
        raw = str(rec.get("raw", ""))
        if "\n" in raw:
            rejections.append(Rejection(index, "invalid_record", "the line holds a line break"))
        else:
            lines.append(raw)
    body = ("\n".join(lines) + "\n").encode("utf-8") if lines else b""
    return body, len(lines), rejections


class FileTransport:
    """Appends lines to ``path`` (created with its folders); see the module docstring."""

    def __init__(self, path: str | Path, fsync: str = "none") -> None:
        if fsync not in FSYNC_MODES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_MODES)}")
        self.path = Path(path)
        self._fsync = fsync == "batch"
        self._fh: BinaryIO | None = None

    def send(self, batch: Batch) -> PushResult:
        body, count, rejections = _body(batch)
        try:
            fh = self._file()
            fh.write(body)
            fh.flush()
            if self._fsync:
                os.fsync(fh.fileno())
        except OSError as exc:
            raise Unavailable(
                f"cannot write {self.path}: {exc.strerror or exc}", reason="sink_unavailable"
            ) from exc
        return PushResult(
            batch.batch_id, accepted=count, rejected=len(rejections), rejections=rejections
        )

    def _file(self) -> BinaryIO:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        return self._fh

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fh.close()


class StdoutTransport:
    """Writes lines to standard output (or ``stream``), flushed after every batch.

    A closed pipe (``logops emit ... | head``) raises ``BrokenPipeError``: the reader has
    gone, and the emit loop stops rather than count failures forever."""

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._out = stream if stream is not None else sys.stdout.buffer

    def send(self, batch: Batch) -> PushResult:
        body, count, rejections = _body(batch)
        self._out.write(body)
        self._out.flush()
        return PushResult(
            batch.batch_id, accepted=count, rejected=len(rejections), rejections=rejections
        )

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError, ValueError):
            self._out.flush()
