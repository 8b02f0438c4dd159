"""The NDJSON sink when the disk fails: nothing half stored, nothing acknowledged that is
not stored, readiness that says why, and recovery once the disk is back."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from services.common.config import SinkConfig
from services.ingest.sink import NdjsonSink, SinkError, StoredBatch
from tests.unit.ingest.sink_testing import (
    DAY,
    Clock,
    Recorder,
    SinkFactory,
    batch,
    index_lines,
    records,
)

ROOT = Path(__file__).resolve().parents[2]

# -- failures -------------------------------------------------------------------------------

FSIZE_SCRIPT = r"""
import json, os, resource, signal, sys
from services.common.config import SinkConfig
from services.ingest import sink_recovery
from services.ingest.sink import NdjsonSink, SinkError, StoredBatch

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
sink_dir = sys.argv[1]
sink = NdjsonSink(SinkConfig(dir=sink_dir))
sink.open()
line = b'{"msg": "' + b"x" * 88 + b'"}\n'
sink.append("first", line * 10, StoredBatch(10, 0))
data = os.path.join(sink_dir, [n for n in os.listdir(sink_dir) if n.endswith(".ndjson")][0])
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (1500, hard))
try:
    sink.append("second", line * 10, StoredBatch(10, 0))
    outcome = "stored"
except SinkError as exc:
    outcome = "error"
state = {"outcome": outcome, "known": sink.lookup("second") is not None,
         "size": os.path.getsize(data), "ready": sink.check_writable()}
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
state["retry"] = repr(sink.append("second", line * 10, StoredBatch(10, 0)))
state["size_after"] = os.path.getsize(data)
sink.close()
print(json.dumps(state))
"""


def test_a_write_the_disk_refuses_leaves_nothing_behind(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    # RLIMIT_FSIZE fails a write half way for root too, unlike file permissions.
    out = subprocess.run(
        [sys.executable, "-c", FSIZE_SCRIPT, str(sink_dir)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    state = json.loads(out.stdout)
    assert state["outcome"] == "error"
    assert state["known"] is False
    assert state["size"] == 1000
    assert state["retry"] == "None"
    assert state["size_after"] == 2000
    sink = make_sink()
    assert [r["msg"][:1] for r in records(sink_dir)] == ["x"] * 20
    assert [e[0] for e in index_lines(sink_dir, _today())] == ["first", "second"]
    assert sink.lookup("second") == StoredBatch(10, 0)


def _today() -> str:
    return time.strftime("%Y%m%d", time.gmtime())


def test_a_replaced_directory_fails_appends_until_it_is_back(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    clock, observer = Clock(), Recorder()
    sink = make_sink(clock, observer)
    sink.append("a", batch("a"), StoredBatch(3, 0))
    moved = sink_dir.with_name("moved")
    sink_dir.rename(moved)
    sink_dir.write_text("not a directory")
    clock.now += 5
    # The core logs this text as the error of its sink_error event.
    with pytest.raises(SinkError, match=r"^cannot append to the sink: Not a directory$"):
        sink.append("b", batch("b"), StoredBatch(3, 0))
    assert observer.errors == 1
    assert sink.lookup("b") is None
    assert sink.check_writable() == "sink path is not a directory"
    sink_dir.unlink()
    moved.rename(sink_dir)
    clock.now += 5
    assert sink.check_writable() is None
    assert sink.append("b", batch("b"), StoredBatch(3, 0)) is None
    assert [r["batch"] for r in records(sink_dir)] == ["a"] * 3 + ["b"] * 3


def test_a_removed_directory_is_recreated_on_the_next_append(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    clock = Clock()
    sink = make_sink(clock)
    sink.append("a", batch("a"), StoredBatch(3, 0))
    sink_dir.rename(sink_dir.with_name("gone"))
    assert sink.check_writable() == "sink directory missing"
    clock.now += 5
    assert sink.append("b", batch("b"), StoredBatch(3, 0)) is None
    assert [r["batch"] for r in records(sink_dir)] == ["b"] * 3


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_fails_appends_until_writable(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    sink = make_sink()
    sink_dir.chmod(0o500)
    try:
        with pytest.raises(SinkError):
            sink.append("a", batch("a"), StoredBatch(3, 0))
        assert sink.lookup("a") is None
        assert sink.check_writable() == "sink directory not writable"
    finally:
        sink_dir.chmod(0o755)
    assert sink.append("a", batch("a"), StoredBatch(3, 0)) is None
    assert [r["batch"] for r in records(sink_dir)] == ["a"] * 3


def test_a_failed_index_write_takes_the_data_back(
    make_sink: SinkFactory, sink_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink()
    sink.append("a", batch("a"), StoredBatch(3, 0))
    real_write = os.write
    index_fd = os.open(sink_dir / ".index" / f"{DAY}.idx", os.O_RDONLY)
    index_ino = os.fstat(index_fd).st_ino
    os.close(index_fd)

    def full_disk_for_the_index(fd: int, data: Any) -> int:
        if os.fstat(fd).st_ino == index_ino:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk_for_the_index)
    with pytest.raises(SinkError, match="No space left"):
        sink.append("b", batch("b"), StoredBatch(3, 0))
    assert sink.check_writable() is None  # the probe write is not to the index file
    monkeypatch.undo()
    assert sink.lookup("b") is None
    assert (sink_dir / f"{DAY}.ndjson").read_bytes() == batch("a")
    assert sink.append("b", batch("b"), StoredBatch(3, 0)) is None
    assert [e[0] for e in index_lines(sink_dir)] == ["a", "b"]


def test_a_failed_fsync_rolls_the_batch_back(
    make_sink: SinkFactory, sink_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    observer = Recorder()
    sink = make_sink(observer=observer)
    sink.append("a", batch("a"), StoredBatch(3, 0))
    real_fsync = os.fsync
    calls = {"n": 0}

    def failing_fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(SinkError, match="Input/output"):
        sink.append("b", batch("b"), StoredBatch(3, 0))
    assert observer.errors == 1
    assert sink.lookup("b") is None
    assert (sink_dir / f"{DAY}.ndjson").read_bytes() == batch("a")
    assert sink.append("b", batch("b"), StoredBatch(3, 0)) is None
    assert sink.append("b", batch("b"), StoredBatch(3, 0)) == StoredBatch(3, 0)
    assert [e[0] for e in index_lines(sink_dir)] == ["a", "b"]


def test_a_duplicate_of_a_batch_not_yet_fsynced_waits_for_the_fsync(
    make_sink: SinkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink()
    sink.append("warm", batch("warm"), StoredBatch(3, 0))
    inside, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        inside.set()
        release.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    answers: dict[str, StoredBatch | None] = {}

    def send(name: str) -> None:
        answers[name] = sink.append("x", batch("x"), StoredBatch(3, 0))

    first = threading.Thread(target=send, args=("first",))
    first.start()
    assert inside.wait(10)
    assert sink.lookup("x") is None
    second = threading.Thread(target=send, args=("second",))
    second.start()
    second.join(0.3)
    assert second.is_alive(), "a duplicate was answered before the first copy was durable"
    release.set()
    first.join(10)
    second.join(10)
    assert answers == {"first": None, "second": StoredBatch(3, 0)}
    assert sink.lookup("x") == StoredBatch(3, 0)


def test_open_fails_with_sink_error_when_the_path_is_a_file(sink_dir: Path) -> None:
    sink_dir.write_text("a file")
    sink = NdjsonSink(SinkConfig(dir=str(sink_dir)))
    with pytest.raises(SinkError, match=r"^cannot open the sink: Not a directory$"):
        sink.open()
    assert sink.check_writable() == "sink not open"
    # Once the path is a folder the sink opens, and is ready: the failed open is over,
    # even where no probe file can be written (a folder stands at its path).
    sink_dir.unlink()
    (sink_dir / ".ready-probe").mkdir(parents=True)
    sink.open()
    try:
        assert sink.check_writable() is None
    finally:
        sink.close()


def test_a_file_replaced_at_its_path_is_followed_by_the_next_append(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    # As logrotate's "create" does: the old file moved away, a new one in its place.
    clock = Clock()
    sink = make_sink(clock)
    sink.append("a", batch("a"), StoredBatch(3, 0))
    path = sink_dir / f"{DAY}.ndjson"
    path.rename(sink_dir.parent / "rotated")
    path.write_bytes(b"")
    clock.now += 5
    assert sink.append("b", batch("b"), StoredBatch(3, 0)) is None
    assert path.read_bytes() == batch("b")
    assert (sink_dir.parent / "rotated").read_bytes() == batch("a")


def test_a_symlink_put_at_a_files_path_is_never_written_through(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    clock = Clock()
    sink = make_sink(clock)
    sink.append("a", batch("a"), StoredBatch(3, 0))
    path, elsewhere = sink_dir / f"{DAY}.ndjson", sink_dir.parent / "elsewhere"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    clock.now += 5
    with pytest.raises(SinkError):
        sink.append("b", batch("b"), StoredBatch(3, 0))
    assert elsewhere.read_bytes() == batch("a")
    assert sink.lookup("b") is None


def test_a_rollback_the_disk_cannot_cut_is_finished_before_the_next_write(
    make_sink: SinkFactory, sink_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink()
    sink.append("a", batch("a"), StoredBatch(3, 0))

    def failing(*args: Any) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    monkeypatch.setattr(os, "ftruncate", failing)
    with pytest.raises(SinkError):
        sink.append("b", batch("b"), StoredBatch(3, 0))
    monkeypatch.undo()
    # The unacknowledged batch b is still in the files until the sink cuts it by path.
    assert sink.append("c", batch("c"), StoredBatch(3, 0)) is None
    assert [r["batch"] for r in records(sink_dir)] == ["a"] * 3 + ["c"] * 3
    assert [e[0] for e in index_lines(sink_dir)] == ["a", "c"]


def test_a_failed_group_fsync_fails_every_batch_that_waited_on_it(
    make_sink: SinkFactory, sink_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink()
    sink.append("warm", batch("warm"), StoredBatch(3, 0))
    data = sink_dir / f"{DAY}.ndjson"
    both_written = len(batch("warm")) + len(batch("a")) + len(batch("b"))
    inside = threading.Event()

    def fsync_failing_once_b_is_written(fd: int) -> None:
        inside.set()
        deadline = time.monotonic() + 10
        while data.stat().st_size < both_written and time.monotonic() < deadline:
            time.sleep(0.001)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fsync_failing_once_b_is_written)
    answers: dict[str, object] = {}

    def push(bid: str) -> None:
        try:
            answers[bid] = sink.append(bid, batch(bid), StoredBatch(3, 0))
        except SinkError as exc:
            answers[bid] = exc

    first = threading.Thread(target=push, args=("a",))
    first.start()
    assert inside.wait(10)
    # b is written while a's fsync runs, and waits for that round's outcome.
    second = threading.Thread(target=push, args=("b",))
    second.start()
    first.join(10)
    monkeypatch.undo()
    second.join(10)
    assert all(isinstance(answers[bid], SinkError) for bid in "ab"), answers
    # a ran the fsync and saw its error; b only learns that its batch was not kept.
    assert str(answers["a"]) == "fsync failed: Input/output error"
    assert str(answers["b"]) == "cannot make the batch durable: fsync failed"
    assert sink.lookup("a") is None and sink.lookup("b") is None
    assert data.read_bytes() == batch("warm")


def test_readiness_stays_off_while_the_disk_refuses_new_files(
    make_sink: SinkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    sink = make_sink(clock)
    real_open = os.open

    def no_inodes_left(path: Any, flags: int, *args: Any) -> int:
        if flags & os.O_CREAT:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", no_inodes_left)
    with pytest.raises(SinkError, match="No space left on device"):
        sink.append("a", batch("a"), StoredBatch(3, 0))
    assert sink.check_writable() == "last write failed: No space left on device"
    monkeypatch.undo()
    assert sink.check_writable() is None
    assert sink.append("a", batch("a"), StoredBatch(3, 0)) is None


def test_the_readiness_probe_never_writes_through_a_symlink(
    make_sink: SinkFactory, sink_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink()
    target = sink_dir.parent / "precious"
    target.write_bytes(b"keep me")
    (sink_dir / ".ready-probe").symlink_to(target)

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(SinkError):
        sink.append("a", batch("a"), StoredBatch(3, 0))
    monkeypatch.undo()
    assert sink.check_writable() == "last write failed: Input/output error"
    assert target.read_bytes() == b"keep me"


def test_readiness_says_when_the_directory_is_not_writable(
    make_sink: SinkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root writes anyway, so the permission check is what is tested here.
    sink = make_sink()
    monkeypatch.setattr(os, "access", lambda path, mode: mode != os.W_OK)
    assert sink.check_writable() == "sink directory not writable"


@pytest.mark.parametrize(("free", "reason"), [(1 << 20, None), ((1 << 20) - 1, "disk full")])
def test_readiness_wants_a_mebibyte_free(
    make_sink: SinkFactory, monkeypatch: pytest.MonkeyPatch, free: int, reason: str | None
) -> None:
    sink = make_sink()

    class Volume:
        f_bavail, f_frsize = free, 1

    monkeypatch.setattr(os, "statvfs", lambda path: Volume)
    assert sink.check_writable() == reason


def test_a_failure_without_a_description_is_named_by_its_kind(
    make_sink: SinkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink()
    sink.append("warm", batch("warm"), StoredBatch(3, 0))

    def bare(fd: int) -> None:
        raise BlockingIOError

    monkeypatch.setattr(os, "fsync", bare)
    with pytest.raises(SinkError, match="fsync failed: BlockingIOError"):
        sink.append("a", batch("a"), StoredBatch(3, 0))


def test_files_stay_open_while_they_are_the_ones_at_their_paths(
    make_sink: SinkFactory, sink_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    sink = make_sink(clock)
    sink.append("a", batch("a"), StoredBatch(3, 0))
    opened: list[str] = []
    real_open = os.open

    def counting(path: Any, flags: int, *args: Any) -> int:
        opened.append(Path(path).name)
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", counting)
    for bid in "bcd":
        clock.now += 5  # past the interval at which the paths are checked again
        sink.append(bid, batch(bid), StoredBatch(3, 0))
    assert opened == []


def test_a_stored_batch_makes_the_sink_ready_again_whatever_the_probe_finds(
    make_sink: SinkFactory, sink_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = make_sink()
    sink.append("warm", batch("warm"), StoredBatch(3, 0))

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(SinkError):
        sink.append("a", batch("a"), StoredBatch(3, 0))
    monkeypatch.undo()
    # A folder where the probe file goes: only real traffic can show the disk is back.
    (sink_dir / ".ready-probe").mkdir()
    assert sink.check_writable() == "last write failed: Input/output error"
    assert sink.append("a", batch("a"), StoredBatch(3, 0)) is None
    assert sink.check_writable() is None


def test_a_background_fsync_that_fails_is_logged_with_its_cause(
    make_sink: SinkFactory,
    sink_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # An hour between rounds: close() runs the only fsync round of this test, and nobody
    # waits on it, so the log is the one place its failure shows.
    sink = make_sink(durability="interval", fsync_interval_ms=3_600_000)
    assert sink.append("a", batch("a"), StoredBatch(3, 0)) is None

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    caplog.clear()  # the open is logged too where logging is set up to show INFO
    with caplog.at_level(logging.WARNING, logger="services.ingest.sink"):
        sink.close()
    (record,) = [r for r in caplog.records if r.name == "services.ingest.sink"]
    assert record.levelno == logging.WARNING
    assert (record.__dict__["event"], record.__dict__["sink_dir"]) == ("sink_error", str(sink_dir))
    assert record.getMessage() == "fsync failed: Input/output error"
