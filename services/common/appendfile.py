"""Append-only file primitives of the NDJSON sink: all-or-nothing appends, truncation, fsync."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class AppendFile:
    """One append-only file and the length of what was written to it successfully."""

    __slots__ = ("broken", "day", "fd", "name", "path", "size")

    def __init__(self, path: Path, day: str) -> None:
        self.path = path
        self.name = path.name
        self.day = day
        self.broken = False
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
        try:
            self.size = os.fstat(self.fd).st_size
        except OSError:
            os.close(self.fd)
            raise

    def write(self, buf: bytes) -> None:
        """Write all of ``buf`` or nothing: a short or failed write is cut back off."""
        view = memoryview(buf)
        done = 0
        try:
            while done < len(view):
                n = os.write(self.fd, view[done:])
                if n <= 0:
                    raise OSError(28, "no space left on device")
                done += n
        except OSError:
            # Even a write that reports nothing may have left bytes behind.
            self.truncate(self.size)
            raise
        self.size += done

    def truncate(self, size: int) -> None:
        self.size = size
        try:
            os.ftruncate(self.fd, size)
        except OSError:
            # Remembered by the sink and retried by path before the file is used again.
            self.broken = True

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def same_file(f: AppendFile) -> bool:
    try:
        at_path = os.stat(f.path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    opened = os.fstat(f.fd)
    return (at_path.st_dev, at_path.st_ino) == (opened.st_dev, opened.st_ino)


def truncate_path(path: Path, size: int) -> None:
    """Cut a file back to ``size`` and fsync it; never extends it, a missing file is fine."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    try:
        if os.fstat(fd).st_size > size:
            os.ftruncate(fd, size)
            os.fsync(fd)
    finally:
        os.close(fd)



def fsync_dir(path: Path) -> None:
    """Make a file creation or rename in ``path`` survive a power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
