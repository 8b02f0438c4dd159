"""The files of the Auth Gateway's spool: the segment being written, retired ones, the cursor."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from services.auth.spool.codec import (
    CURSOR_NAME,
    SEGMENT_HEAD_SIZE,
    TMP_SUFFIX,
    encode_cursor,
    encode_segment_head,
    segment_name,
)
from services.common.appendfile import AppendFile, fsync_dir

_MIN_FREE_BYTES = 1024 * 1024


class Segment:
    """One segment file; ``file`` is open while it may still be written or fsynced."""

    __slots__ = ("file", "first_seq", "last_seq", "path", "seed")

    def __init__(
        self, path: Path, first_seq: int, seed: int, file: AppendFile | None, last_seq: int
    ) -> None:
        self.path = path
        self.first_seq = first_seq
        self.seed = seed
        self.file = file
        self.last_seq = last_seq


@dataclass(slots=True)
class Round:
    """What one fsync round makes durable: segments written, the folder if it changed."""

    spool_dir: Path
    segments: list[Segment]
    retired: list[Segment]
    sync_dir: bool

    def fsync(self) -> None:
        for seg in self.segments:
            if seg.file is not None:
                os.fsync(seg.file.fd)
        if self.sync_dir:
            fsync_dir(self.spool_dir)

    def close_retired(self) -> None:
        close_segments(self.retired)


class SpoolFiles:
    """The segment being appended to and the retired ones not yet fsynced and closed.

    Not thread-safe: the spool calls it under its write lock. With ``durable`` (batch and
    interval modes) a replaced segment stays open until the next round has fsynced it;
    otherwise it is closed at once. Segments start at ``first_seq`` of their first record
    and roll over past ``segment_bytes`` (a record larger than that gets one of its own).
    """

    def __init__(self, spool_dir: Path, segment_bytes: int, seed: int, durable: bool) -> None:
        self.spool_dir = spool_dir
        self._segment_bytes = segment_bytes
        self._seed = seed
        self._durable = durable
        self.active: Segment | None = None
        self._retired: list[Segment] = []
        self._dirty: dict[Segment, None] = {}
        self.dir_dirty = False

    def append(self, seq: int, record: bytes) -> tuple[Segment, int]:
        """Write one whole record; its segment and offset. OSError leaves nothing of it."""
        seg, file = self._segment_for(seq, len(record))
        offset = file.size
        try:
            file.write(record)
        except OSError:
            if file.broken:
                self.retire_active()
            raise
        seg.last_seq = seq
        if self._durable:
            self._dirty[seg] = None
        return seg, offset

    def take_round(self) -> Round:
        """The files to fsync now; the caller fsyncs them without the write lock."""
        segments = list(self._dirty)
        self._dirty.clear()
        retired, self._retired = self._retired, []
        sync_dir, self.dir_dirty = self.dir_dirty, False
        return Round(self.spool_dir, segments, retired, sync_dir)

    def after_failed_round(self, failed: Round) -> None:
        """Fsync again next round what stays open; never write to the active file again:
        after a failed fsync what it holds is unknown."""
        self._dirty.update(dict.fromkeys(s for s in failed.segments if s not in failed.retired))
        self.dir_dirty = self.dir_dirty or failed.sync_dir
        self.retire_active()

    def retire_active(self) -> None:
        seg, self.active = self.active, None
        if seg is None or seg.file is None:
            return
        if self._durable:
            self._retired.append(seg)
        else:
            close_segments([seg])

    def drop_active(self) -> Segment | None:
        """Close the active segment now (the caller has made sure no fsync round is using
        it) and stop writing to it; the next record starts a new one."""
        seg, self.active = self.active, None
        if seg is not None:
            self._dirty.pop(seg, None)
            close_segments([seg])
        return seg

    def close(self) -> None:
        self.retire_active()
        close_segments(self._retired)
        self._retired = []

    def _segment_for(self, seq: int, nbytes: int) -> tuple[Segment, AppendFile]:
        seg = self.active
        if seg is not None and seg.file is not None:
            size = seg.file.size
            if size <= SEGMENT_HEAD_SIZE or size + nbytes <= self._segment_bytes:
                return seg, seg.file
            self.retire_active()
        return self._new_segment(seq)

    def _new_segment(self, first_seq: int) -> tuple[Segment, AppendFile]:
        """Create a segment whole: its head is written and fsynced under a temporary name,
        so a crash never leaves a segment without a head."""
        path = self.spool_dir / segment_name(first_seq)
        tmp = path.with_name(path.name + TMP_SUFFIX)
        try:
            write_small(tmp, encode_segment_head(self._seed), self._durable)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        if self._durable:
            fsync_dir(self.spool_dir)
        file = AppendFile(path, "")
        seg = Segment(path, first_seq, self._seed, file, first_seq - 1)
        self.active = seg
        return seg, file


class SegmentReader:
    """Reads records back by position, opening each segment once (a context manager)."""

    def __init__(self) -> None:
        self._fds: dict[Path, int] = {}

    def read(self, path: Path, offset: int, length: int) -> bytes | None:
        """The bytes at ``offset``; None when the segment is gone (delivered meanwhile)."""
        try:
            if path not in self._fds:
                self._fds[path] = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            return os.pread(self._fds[path], length, offset)
        except FileNotFoundError:
            return None

    def __enter__(self) -> SegmentReader:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def record_delivery(spool_dir: Path, acked: int, delivered: Iterable[Path], durable: bool) -> None:
    """Replace the cursor atomically (temporary file, fsync, rename), remove the segments
    now fully delivered, and with ``durable`` fsync the folder."""
    tmp = spool_dir / (CURSOR_NAME + TMP_SUFFIX)
    write_small(tmp, encode_cursor(acked), durable)
    os.replace(tmp, spool_dir / CURSOR_NAME)
    # Unlinked before the folder's fsync: if only the unlinks reached the disk, the
    # cursor found after a crash is older, and what it would offer again is gone.
    for path in delivered:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    if durable:
        fsync_dir(spool_dir)


def write_small(path: Path, data: bytes, durable: bool) -> None:
    """Write a small file whole, replacing any file at ``path``; fsync it if durable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        if os.write(fd, data) != len(data):
            raise OSError(errno.ENOSPC, "no space left on device")
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def can_write(path: Path) -> bool:
    """Whether a small file can be created in ``path`` right now (a readiness probe)."""
    probe = path / ".ready-probe"
    try:
        write_small(probe, b"\n", durable=False)
        probe.unlink()
    except OSError:
        return False
    return True


def folder_problem(path: Path) -> str | None:
    """Why nothing could be written to the spool folder, or None."""
    try:
        st = os.stat(path)
        if not stat.S_ISDIR(st.st_mode):
            return "spool path is not a directory"
        if not os.access(path, os.W_OK):
            return "spool directory not writable"
        vfs = os.statvfs(path)
    except FileNotFoundError:
        return "spool directory missing"
    except OSError as exc:
        return f"spool directory unusable: {exc.strerror}"
    if vfs.f_bavail * vfs.f_frsize < _MIN_FREE_BYTES:
        return "disk full"
    return None


def close_segments(segments: Iterable[Segment]) -> None:
    for seg in segments:
        if seg.file is not None:
            seg.file.close()
            seg.file = None
