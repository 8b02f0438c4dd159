"""The sink's append-only files: whole writes or nothing, permissions, closing, folder fsyncs."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.appendfile import AppendFile, fsync_dir


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_files_are_created_readable_by_a_shipper_and_writable_only_by_the_gateway(
    tmp_path: Path, umask: None
) -> None:
    f = AppendFile(tmp_path / "20250301.ndjson", "20250301")
    f.close()
    assert (tmp_path / "20250301.ndjson").stat().st_mode & 0o777 == 0o644


def test_short_writes_are_continued_until_the_whole_buffer_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, buf: real_write(fd, bytes(buf[:1])))
    f = AppendFile(tmp_path / "data", "20250301")
    f.write(b"abc\n")
    f.write(b"de\n")
    f.close()
    assert (tmp_path / "data").read_bytes() == b"abc\nde\n"
    assert f.size == 7


def test_a_disk_that_takes_nothing_is_a_full_disk_and_leaves_the_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = AppendFile(tmp_path / "data", "20250301")
    f.write(b"kept\n")
    monkeypatch.setattr(os, "write", lambda fd, buf: 0)
    with pytest.raises(OSError) as caught:
        f.write(b"lost\n")
    assert (caught.value.errno, caught.value.strerror) == (errno.ENOSPC, "no space left on device")
    monkeypatch.undo()
    f.close()
    assert (tmp_path / "data").read_bytes() == b"kept\n"
    assert f.size == 5


def open_fds() -> set[int]:
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
        except OSError:  # the listing's own descriptor, closed by now
            continue
        found.add(int(name))
    return found


def test_a_file_that_cannot_be_inspected_is_closed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = open_fds()

    def broken_fstat(fd: int) -> os.stat_result:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fstat", broken_fstat)
    with pytest.raises(OSError, match="Input/output"):
        AppendFile(tmp_path / "data", "20250301")
    monkeypatch.undo()
    assert open_fds() == before


def test_closing_twice_or_failing_to_close_touches_no_other_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = open_fds()
    f = AppendFile(tmp_path / "data", "20250301")
    f.close()
    f.close()
    assert open_fds() == before
    g = AppendFile(tmp_path / "data", "20250301")
    real_close = os.close

    def failing_close(fd: int) -> None:
        real_close(fd)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "close", failing_close)
    g.close()  # an error from close() is no reason to fail the caller
    g.close()
    monkeypatch.undo()
    assert open_fds() == before


def test_a_folder_fsync_refuses_anything_but_a_folder(tmp_path: Path) -> None:
    fsync_dir(tmp_path)
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(NotADirectoryError):
        fsync_dir(tmp_path / "file")
