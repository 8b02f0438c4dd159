"""The spool's durability promise: which fsyncs happen before a put or an ack returns, and
what a failed write or fsync leaves behind (nothing)."""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

import pytest

from services.auth.spool import Spool, SpoolError, SpoolFull
from tests.unit.auth.spool_testing import FsyncLog, Opener, ids, put, record_spans, segments

SEG1 = "spool/seg-00000000000000000001.log"
# A segment is created whole: head fsynced under a temporary name, renamed, folder fsynced.
NEW_SEG1 = [f"{SEG1}.tmp", f"replace {SEG1}", "spool"]
CURSOR = ["spool/cursor.tmp", "replace spool/cursor", "spool"]


@pytest.fixture
def fsyncs(folder: Path, monkeypatch: pytest.MonkeyPatch) -> FsyncLog:
    """Every fsync (and rename) from here on, by the path it was for."""
    log = FsyncLog(folder.parent)
    monkeypatch.setattr(os, "fsync", log.fsync)
    monkeypatch.setattr(os, "replace", log.replace)
    return log


def spool_and_mark(spool: Spool, fsyncs: FsyncLog, batch_id: str) -> int:
    seq = put(spool, batch_id).seq
    fsyncs.mark(f"put {batch_id}")
    return seq


def ack_and_mark(spool: Spool, fsyncs: FsyncLog, seq: int) -> None:
    spool.ack(seq)
    fsyncs.mark(f"ack {seq}")


# -- which fsyncs, per mode -----------------------------------------------------------------


def test_batch_mode_fsyncs_data_and_folder_before_put_and_ack_return(
    spools: Opener, fsyncs: FsyncLog
) -> None:
    spool = spools(durability="batch")
    assert fsyncs.take() == []  # a new, empty spool has nothing to repair
    spool_and_mark(spool, fsyncs, "a")
    assert fsyncs.take() == [*NEW_SEG1, SEG1, "put a"]
    second = spool_and_mark(spool, fsyncs, "b")
    assert fsyncs.take() == [SEG1, "put b"]
    ack_and_mark(spool, fsyncs, 1)
    assert fsyncs.take() == [*CURSOR, "ack 1"]
    ack_and_mark(spool, fsyncs, second)
    assert fsyncs.take() == [*CURSOR, "ack 2"]
    spool.close()
    assert fsyncs.take() == []  # nothing left unsynced


def test_batch_mode_makes_a_new_segment_durable_before_put_returns(
    spools: Opener, fsyncs: FsyncLog
) -> None:
    spool = spools(durability="batch", segment_bytes=600)
    spool_and_mark(spool, fsyncs, "a")
    fsyncs.take()
    put(spool, "b", b"x" * 600)
    seg2 = "spool/seg-00000000000000000002.log"
    assert fsyncs.take() == [f"{seg2}.tmp", f"replace {seg2}", "spool", seg2]


def test_interval_mode_returns_before_the_fsync_and_close_catches_up(
    spools: Opener, fsyncs: FsyncLog
) -> None:
    # An hour between rounds: within this test only close() fsyncs.
    spool = spools(durability="interval", fsync_interval=3600)
    spool_and_mark(spool, fsyncs, "a")
    spool_and_mark(spool, fsyncs, "b")
    ack_and_mark(spool, fsyncs, 1)
    # New segments are still made durable at once: a lost directory entry loses the file.
    assert fsyncs.take() == [*NEW_SEG1, "put a", "put b", "replace spool/cursor", "ack 1"]
    spool.close()
    assert fsyncs.take() == [SEG1, "spool"]


def test_interval_mode_fsyncs_in_the_background(spools: Opener, fsyncs: FsyncLog) -> None:
    spool = spools(durability="interval", fsync_interval=0.01)
    spool_and_mark(spool, fsyncs, "a")
    deadline = time.monotonic() + 10
    while SEG1 not in fsyncs.events and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fsyncs.take() == [*NEW_SEG1, "put a", SEG1]


def test_none_mode_never_fsyncs(spools: Opener, fsyncs: FsyncLog) -> None:
    spool = spools(durability="none", segment_bytes=600)
    seqs = [spool_and_mark(spool, fsyncs, bid) for bid in "abc"]
    ack_and_mark(spool, fsyncs, seqs[1])
    spool.close()
    assert [e for e in fsyncs.take() if not e.startswith("replace ")] == [
        "put a",
        "put b",
        "put c",
        "ack 2",
    ]


def test_concurrent_puts_share_fsyncs(spools: Opener, fsyncs: FsyncLog) -> None:
    import threading

    spool = spools(durability="batch")
    threads = [
        threading.Thread(target=lambda t=t: [put(spool, f"t{t}-{i}") for i in range(20)])
        for t in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(spool.peek(1000)) == 160
    # Never more than one fsync per put; with eight writers usually far fewer.
    assert fsyncs.take().count(SEG1) <= 160


# -- failures leave nothing behind ----------------------------------------------------------


def test_a_failed_fsync_refuses_the_put_and_keeps_nothing_of_it(
    spools: Opener, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = spools(durability="batch")
    put(spool, "a")
    size = segments(folder)[0].stat().st_size
    real_fsync = os.fsync
    failures = iter([True])

    def failing_fsync(fd: int) -> None:
        if next(failures, False):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(SpoolError):
        put(spool, "b")
    assert ids(spool.peek(10)) == ["a"]
    assert spool.depth()[0] == 1
    # Cut off its file, and the file is not written again: the next batch starts another.
    assert segments(folder)[0].stat().st_size == size
    put(spool, "c")
    assert len(segments(folder)) == 2
    assert ids(spool.peek(10)) == ["a", "c"]
    assert ids(spools.reopen(spool).peek(10)) == ["a", "c"]


def test_a_disk_that_fills_up_refuses_batches_whole_and_recovers_when_drained(
    tiny_fs: Path,
) -> None:
    folder = tiny_fs / "spool"
    spool = Spool(folder, max_bytes=10 << 20, max_batches=1000, durability="batch")
    spool.open()
    try:
        accepted: list[str] = []
        with pytest.raises(SpoolError) as refused:
            for i in range(100):
                accepted.append(put(spool, f"b{i}", os.urandom(20_000)).batch_id)
        assert not isinstance(refused.value, SpoolFull)
        assert 5 < len(accepted) < 20
        assert ids(spool.peek(100)) == accepted
        assert spool.is_usable() == "disk full"
        for seg in segments(folder):
            record_spans(seg)  # whole records only: nothing of a refused batch
        spool.ack(spool.peek(100)[-1].seq)
        assert segments(folder) == []
        put(spool, "after", os.urandom(20_000))
        assert ids(spool.peek(10)) == ["after"]
    finally:
        spool.close()
    reopened = Spool(folder, max_bytes=10 << 20, max_batches=1000)
    reopened.open()
    assert ids(reopened.peek(10)) == ["after"]
    reopened.close()


@pytest.mark.parametrize(
    ("error", "named"),
    [(OSError(errno.EIO, "Input/output error"), "Input/output error"), (OSError(), "OSError")],
    ids=["strerror", "bare"],
)
def test_a_failed_write_is_named_until_the_folder_takes_writes_again(
    spools: Opener, monkeypatch: pytest.MonkeyPatch, error: OSError, named: str
) -> None:
    spool = spools(durability="batch")
    assert spool.is_usable() is None
    real_write = os.write

    def failing(*args: object) -> int:
        raise error

    monkeypatch.setattr(os, "write", failing)  # a disk that takes nothing
    with pytest.raises(SpoolError) as refused:
        put(spool, "b")
    assert str(refused.value).endswith(f": {named}")
    assert spool.is_usable() == f"last write failed: {named}"
    monkeypatch.setattr(os, "write", real_write)
    assert spool.is_usable() is None, "a probe write shows the folder works again"


def test_a_record_set_aside_at_read_is_made_durable_unless_durability_is_none(
    spools: Opener, fsyncs: FsyncLog
) -> None:
    umask = os.umask(0o022)
    try:
        _set_aside_in_every_mode(spools, fsyncs)
    finally:
        os.umask(umask)


def _set_aside_in_every_mode(spools: Opener, fsyncs: FsyncLog) -> None:
    for mode in ("batch", "interval", "none"):
        spool = spools(durability=mode)
        for bid in "abc":
            put(spool, bid)
        (seg,) = segments(spools.folder)
        start, end = record_spans(seg)[1]
        with seg.open("r+b") as fh:
            fh.seek(end - 2)
            fh.write(b"\x00\x01")
        fsyncs.take()
        assert ids(spool.peek(10)) == ["a", "c"]
        kept = f"spool/quarantine/{seg.name}.{start:012d}.bad"
        made_durable = [e for e in fsyncs.take() if e in (kept, "spool/quarantine")]
        assert made_durable == ([] if mode == "none" else [kept, "spool/quarantine"]), mode
        # A copy for a person to read, never a program to run.
        assert stat.S_IMODE((spools.folder.parent / kept).stat().st_mode) == 0o644
        spool.ack(spool.peek(10)[-1].seq)
        spool.close()


def test_start_up_repairs_are_durable_whatever_the_mode(spools: Opener, fsyncs: FsyncLog) -> None:
    spool = spools(durability="none")
    for bid in "abcde":
        put(spool, bid)
    spool.close()
    (seg,) = segments(spools.folder)
    spans = record_spans(seg)
    for _start, end in (spans[1], spans[3]):
        with seg.open("r+b") as fh:
            fh.seek(end - 2)
            fh.write(b"\x00\x01")
    fsyncs.take()
    assert ids(spools(durability="none").peek(10)) == ["a", "c", "e"]
    kept = [f"spool/quarantine/{seg.name}.{start:012d}.bad" for start, _ in (spans[1], spans[3])]
    repairs = [e for e in fsyncs.take() if e.startswith("spool/quarantine")]
    assert repairs == [kept[0], "spool/quarantine", kept[1], "spool/quarantine"]
