"""The spool's promises in a client's and an operator's words: what a refused batch leaves
(nothing), the exact refusals a client reads, and the events an operator greps."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.auth.spool import Spool, SpoolError, SpoolFull
from tests.unit.auth.spool_testing import FsyncLog, Opener, flip, ids, put, record_spans, segments


def _put_refused(spool: Spool, batch_id: str, refusals: dict[str, str]) -> None:
    try:
        put(spool, batch_id)
    except SpoolError as exc:
        refusals[batch_id] = str(exc)


# -- a group fsync that fails ---------------------------------------------------------------


def test_batches_sharing_a_failed_group_fsync_are_all_refused_and_none_is_kept(
    spools: Opener, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = spools(durability="batch")
    first, second = put(spool, "a"), put(spool, "a2")
    (seg,) = segments(folder)
    size = seg.stat().st_size
    depth = spool.depth()
    real_fsync = os.fsync
    armed = threading.Event()
    armed.set()

    def failing_fsync(fd: int) -> None:
        if armed.is_set() and os.readlink(f"/proc/self/fd/{fd}") == str(seg):
            armed.clear()
            # The round waits until the three puts are written, so that the ones that
            # came after it started share its fate.
            deadline = time.monotonic() + 60
            while spool.depth()[0] < 5 and time.monotonic() < deadline:
                time.sleep(0.001)
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    refusals: dict[str, str] = {}
    writers = [threading.Thread(target=_put_refused, args=(spool, bid, refusals)) for bid in "bcd"]
    for t in writers:
        t.start()
    for t in writers:
        t.join()

    # Every client that waited on the failed fsync is refused; the one whose put ran the
    # round hears why, the others that their batch could not be made durable.
    assert sorted(refusals) == ["b", "c", "d"]
    assert sorted(refusals.values()) == [
        "cannot fsync the spool: Input/output error",
        "cannot make the batch durable: fsync failed",
        "cannot make the batch durable: fsync failed",
    ]
    # Nothing of them is kept: not offered, not counted, cut off the file, not after a restart.
    assert ids(spool.peek(10)) == ["a", "a2"]
    assert spool.depth() == depth
    assert seg.stat().st_size == size
    # The next batch starts a segment of its own, after the batches acknowledged before.
    after = put(spool, "e")
    assert after.seq == 6, "a seq is never handed out twice"
    seg6 = "seg-00000000000000000006.log"
    assert [p.name for p in segments(folder)] == [seg.name, seg6]
    # The first segment stays while it holds a batch not yet delivered, and goes after.
    spool.ack(first.seq)
    assert [p.name for p in segments(folder)] == [seg.name, seg6]
    assert ids(spool.peek(10)) == ["a2", "e"]
    spool.ack(second.seq)
    assert [p.name for p in segments(folder)] == [seg6]
    reopened = spools.reopen(spool)
    assert [(b.seq, b.batch_id) for b in reopened.peek(10)] == [(6, "e")]


def test_a_refused_batch_whose_cut_fails_is_delivered_after_a_restart(
    spools: Opener, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = spools(durability="batch")
    put(spool, "a")
    (seg,) = segments(folder)
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == str(seg):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    def failing_truncate(fd: int, size: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    monkeypatch.setattr(os, "ftruncate", failing_truncate)
    with pytest.raises(SpoolError) as refused:
        put(spool, "b")
    # The client is refused as for any failed fsync, and this process never offers it.
    assert refused.value.message == "cannot fsync the spool: Input/output error"
    assert ids(spool.peek(10)) == ["a"]
    monkeypatch.undo()
    # Its record stayed on disk: after a restart it goes to Ingest, where the client's
    # retry of it is answered as a duplicate.
    assert ids(spools.reopen(spool).peek(10)) == ["a", "b"]


def test_a_failed_background_fsync_is_logged_for_the_operator(
    spools: Opener, folder: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # An hour between rounds: within this test only close() fsyncs.
    spool = spools(durability="interval", fsync_interval=3600)
    put(spool, "a")
    (seg,) = segments(folder)
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == str(seg):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with caplog.at_level(logging.WARNING, logger="services.auth.spool.store"):
        spool.close()  # nobody waits on this round: the failure can only be logged
    events = [r for r in caplog.records if getattr(r, "event", None) == "spool_error"]
    assert [(r.levelno, r.getMessage(), r.__dict__["spool_dir"]) for r in events] == [
        (logging.WARNING, "cannot fsync the spool: Input/output error", str(folder))
    ]
    monkeypatch.setattr(os, "fsync", real_fsync)
    # Acknowledged in interval mode is acknowledged: the batch is still there to deliver.
    assert ids(spools().peek(10)) == ["a"]


# -- the exact refusals ---------------------------------------------------------------------


def test_a_full_spool_refuses_in_words_a_client_can_act_on(spools: Opener) -> None:
    spool = spools(max_batches=1)
    put(spool, "a")
    with pytest.raises(SpoolFull) as refused:
        put(spool, "b")
    assert refused.value.message == "the spool is full"
    assert (refused.value.http_status, refused.value.reason) == (503, "downstream_unavailable")
    assert refused.value.retry_after_seconds == 5


def test_a_batch_that_fills_the_spool_to_the_byte_is_taken(spools: Opener) -> None:
    # A fixed clock: a record's size depends on nothing else here.
    probe = spools(clock=lambda: 1_700_000_000.25)
    put(probe, "a")
    _, one = probe.depth()
    probe.ack(probe.peek()[0].seq)
    # Room for exactly two such records: the second fills the bound, a third is refused.
    spool = spools.reopen(probe, max_bytes=2 * one, clock=lambda: 1_700_000_000.25)
    put(spool, "b")
    put(spool, "c")
    assert spool.depth() == (2, 2 * one)
    with pytest.raises(SpoolFull):
        put(spool, "d")
    assert ids(spool.peek(10)) == ["b", "c"]


def test_a_failed_ack_is_refused_by_name_and_the_batch_comes_back_after_a_restart(
    spools: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = spools(durability="batch")
    for bid in "ab":
        put(spool, bid)
    real_replace = os.replace

    def failing_replace(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(SpoolError) as refused:
        spool.ack(1)
    assert refused.value.message == "cannot record a delivery: Input/output error"
    assert spool.is_usable() is None, "the probe write still works: only the cursor failed"
    monkeypatch.setattr(os, "replace", real_replace)
    # Not offered again by this process; after a restart it is, and Ingest answers the
    # second copy as a duplicate.
    assert ids(spool.peek(10)) == ["b"]
    assert ids(spools.reopen(spool).peek(10)) == ["a", "b"]


def test_the_refusals_of_a_spool_not_open_say_so(spools: Opener, folder: Path) -> None:
    spool = Spool(folder, 1 << 20, 10)
    for attempt in (lambda: put(spool, "a"), spool.peek, lambda: spool.ack(1)):
        with pytest.raises(SpoolError) as refused:
            attempt()
        assert refused.value.message == "the spool is not open"


# -- what start-up recovery tells the operator ----------------------------------------------

REPORTED = ("batches", "bytes", "cut_bytes", "quarantined", "removed_files", "cursor_damaged")


def _events(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, object]]:
    return [r.__dict__ for r in caplog.records if r.__dict__.get("event") == event]


def test_the_start_up_report_counts_files_removed_and_bytes_cut(
    spools: Opener, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = spools(segment_bytes=600)
    for bid in "abcdef":
        put(spool, bid)
    first, second, third = segments(folder)
    assert [len(record_spans(s)) for s in (first, second, third)] == [2, 2, 2]
    delivered = first.read_bytes()
    spool.ack(2)
    spool.close()
    # A crash after the cursor was written but before the unlink reached the disk.
    first.write_bytes(delivered)
    # The older segment's last record is damaged: cut off and kept aside.
    start, end = record_spans(second)[-1]
    flip(second, end - 1)
    # The newest ends in a torn write.
    with third.open("ab") as fh:
        fh.write(b"LSPR\x01\x02\x03")
    # Two files a crash left half written.
    (folder / "cursor.tmp").write_bytes(b"half")
    (folder / "seg-00000000000000000009.log.tmp").write_bytes(b"LSPS")

    with caplog.at_level(logging.INFO, logger="services.auth.spool"):
        spool = spools(segment_bytes=600)
    assert ids(spool.peek(10)) == ["c", "e", "f"]
    [opened] = _events(caplog, "spool_open")
    assert {k: opened[k] for k in REPORTED} == {
        "batches": 3,
        "bytes": spool.depth()[1],
        "cut_bytes": (end - start) + 7,
        "quarantined": 1,
        "removed_files": 3,
        "cursor_damaged": False,
    }
    assert [(e["segment"], e["cut_bytes"]) for e in _events(caplog, "spool_cut")] == [
        (second.name, end - start),
        (third.name, 7),
    ]
    assert sorted(p.name for p in folder.glob("*.tmp")) == []
    assert not first.exists()


def test_a_damaged_cursor_is_reported_and_logged_with_the_folder(
    spools: Opener, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = spools()
    for bid in "ab":
        put(spool, bid)
    spool.ack(1)
    spool.close()
    (folder / "cursor").write_bytes(b"garbage")
    with caplog.at_level(logging.INFO, logger="services.auth.spool"):
        spool = spools()
    assert ids(spool.peek(10)) == ["a", "b"]
    [damaged] = _events(caplog, "spool_cursor_damaged")
    assert (damaged["levelno"], damaged["spool_dir"]) == (logging.WARNING, str(folder))
    [opened] = _events(caplog, "spool_open")
    assert (opened["cursor_damaged"], opened["batches"], opened["removed_files"]) == (True, 2, 0)


def test_an_intact_spool_reports_nothing_repaired(
    spools: Opener, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = spools()
    for bid in "abc":
        put(spool, bid)
    _, nbytes = spool.depth()
    spool.close()
    with caplog.at_level(logging.INFO, logger="services.auth.spool"):
        began = time.perf_counter()
        spools()
        took = time.perf_counter() - began
    [opened] = _events(caplog, "spool_open")
    seconds = opened["seconds"]
    assert isinstance(seconds, float) and 0 <= seconds <= took  # recovery's time, no clock
    assert {k: opened[k] for k in REPORTED} == {
        "batches": 3,
        "bytes": nbytes,
        "cut_bytes": 0,
        "quarantined": 0,
        "removed_files": 0,
        "cursor_damaged": False,
    }
    assert (opened["spool_dir"], opened["durability"]) == (str(folder), "batch")
    assert _events(caplog, "spool_cut") == []


def test_damage_followed_by_a_magic_that_is_no_record_loses_nothing_after_it(
    spools: Opener, folder: Path
) -> None:
    spool = spools()
    put(spool, "a")
    # A client's body may hold the record magic; it is no record of the spool's.
    put(spool, "b", b"LSPR, as a client may well write\n")
    for bid in "cde":
        put(spool, bid)
    spool.close()
    (seg,) = segments(folder)
    spans = record_spans(seg)
    flip(seg, spans[1][0])  # the damaged record's own magic: the search starts past it
    assert ids(spools().peek(10)) == ["a", "c", "d", "e"]
    [kept] = (folder / "quarantine").iterdir()
    assert kept.read_bytes() == seg.read_bytes()[spans[1][0] : spans[1][1]]  # b alone


def test_a_record_the_disk_wrote_twice_is_set_aside_not_delivered_twice(
    spools: Opener, folder: Path
) -> None:
    spool = spools()
    for bid in "abc":
        put(spool, bid)
    spool.close()
    (seg,) = segments(folder)
    data = seg.read_bytes()
    (_, _), (b_start, b_end), (c_start, _) = record_spans(seg)
    # b's block again after it: whole, checksum and all, but out of order.
    seg.write_bytes(data[:c_start] + data[b_start:b_end] + data[c_start:])
    assert ids(spools().peek(10)) == ["a", "b", "c"]
    [kept] = (folder / "quarantine").iterdir()
    assert kept.name == f"{seg.name}.{c_start:012d}.bad"
    assert kept.read_bytes() == data[b_start:b_end]


# -- a put that lands while an ack frees the segment being written --------------------------


def test_a_batch_put_while_an_ack_is_recorded_is_kept(
    spools: Opener, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = spools(durability="batch")
    first = put(spool, "a")
    real_fsync = os.fsync
    landed: list[int] = []

    def fsync(fd: int) -> None:
        real_fsync(fd)
        # The ack's folder fsync, after its cursor is in place: a client's put lands here.
        if not landed and os.readlink(f"/proc/self/fd/{fd}") == str(folder):
            landed.append(put(spool, "b").seq)

    monkeypatch.setattr(os, "fsync", fsync)
    spool.ack(first.seq)
    assert landed, "the put did land while the ack was being recorded"
    assert ids(spool.peek(10)) == ["b"]
    monkeypatch.undo()
    assert ids(spools.reopen(spool).peek(10)) == ["b"]


class _LandsBeforeTheDrop:
    """The spool's fsync lock, with ``action`` run the first time it is taken: in an ack,
    between finding the segment being written wholly delivered and taking the lock to
    drop it. What puts may do at that moment, made to happen every time."""

    def __init__(self, real: Any, action: Callable[[], object]) -> None:
        self._real = real
        self._action: Callable[[], object] | None = action

    def __enter__(self) -> object:
        action, self._action = self._action, None
        if action is not None:
            action()
        return self._real.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._real.__exit__(*exc)


def test_a_batch_put_as_an_ack_frees_the_segment_keeps_it(
    spools: Opener, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = spools(durability="batch")
    first = put(spool, "a")
    monkeypatch.setattr(
        spool, "_sync_lock", _LandsBeforeTheDrop(spool._sync_lock, lambda: put(spool, "b"))
    )
    spool.ack(first.seq)
    # The segment now holds b: it is not removed under it.
    assert [p.name for p in segments(folder)] == ["seg-00000000000000000001.log"]
    assert ids(spool.peek(10)) == ["b"]
    assert ids(spools.reopen(spool).peek(10)) == ["b"]


def test_an_ack_as_a_failed_fsync_retires_the_segment_still_returns(
    spools: Opener, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = spools(durability="batch")
    first = put(spool, "a")
    (seg,) = segments(folder)
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}") == str(seg):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    def refused_put() -> None:
        with pytest.raises(SpoolError):
            put(spool, "b")
        monkeypatch.setattr(os, "fsync", real_fsync)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    monkeypatch.setattr(spool, "_sync_lock", _LandsBeforeTheDrop(spool._sync_lock, refused_put))
    spool.ack(first.seq)
    assert spool.depth() == (0, 0)
    put(spool, "c")
    assert ids(spool.peek(10)) == ["c"]
    assert ids(spools.reopen(spool).peek(10)) == ["c"]


def test_a_segment_removed_by_hand_does_not_stop_delivery(spools: Opener, folder: Path) -> None:
    spool = spools()
    first = put(spool, "a")
    (seg,) = segments(folder)
    seg.unlink()
    spool.ack(first.seq)
    assert spool.depth() == (0, 0)
    put(spool, "b")
    assert ids(spools.reopen(spool).peek(10)) == ["b"]


def test_an_ack_past_what_was_spooled_says_which(spools: Opener) -> None:
    spool = spools()
    put(spool, "a")
    with pytest.raises(ValueError) as refused:
        spool.ack(2)
    assert str(refused.value) == "seq 2 was never spooled"


def test_a_spool_that_cannot_be_read_says_so(spools: Opener, folder: Path) -> None:
    spool = spools()
    put(spool, "a")
    (seg,) = segments(folder)
    aside = seg.with_name("aside")
    seg.rename(aside)
    seg.mkdir()  # where the segment was, something that reads as no file does
    with pytest.raises(SpoolError) as refused:
        spool.peek()
    assert refused.value.message == "cannot read the spool: Is a directory"
    seg.rmdir()
    aside.rename(seg)
    assert ids(spool.peek()) == ["a"]


def test_a_failed_write_is_refused_in_words_that_say_so(
    spools: Opener, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = spools()
    put(spool, "a")

    def failing(*args: object) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "write", failing)
    with pytest.raises(SpoolError) as refused:
        put(spool, "b")
    assert refused.value.message == "cannot write to the spool: Input/output error"
    monkeypatch.undo()
    assert ids(spool.peek(10)) == ["a"]


def test_a_link_named_like_a_segment_is_never_followed(spools: Opener, tmp_path: Path) -> None:
    elsewhere = Opener(tmp_path / "elsewhere")
    other = elsewhere()
    for bid in "xyz":
        put(other, bid)
    other.close()
    (target,) = segments(elsewhere.folder)
    before = target.read_bytes()
    spool = spools()
    put(spool, "a")
    spool.close()
    link = spools.folder / "seg-00000000000000000002.log"
    link.symlink_to(target)
    leftover = spools.folder / "cursor.tmp"
    leftover.symlink_to(target)
    # Only regular files are segments or leftovers: a link is not read, moved or cut.
    assert ids(spools().peek(10)) == ["a"]
    assert link.is_symlink() and leftover.is_symlink() and target.read_bytes() == before
    assert not (spools.folder / "quarantine").exists()


def test_readiness_writes_no_probe_while_writes_succeed(spools: Opener, folder: Path) -> None:
    spool = spools()
    # A probe could not be written here; until a write fails none is tried.
    (folder / ".ready-probe").mkdir()
    assert spool.is_usable() is None
    put(spool, "a")
    assert spool.is_usable() is None


def test_a_spool_that_cannot_open_says_why(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(SpoolError) as refused:
        Spool(blocker / "spool", 1000, 10).open()
    assert refused.value.message == "cannot open the spool: Not a directory"


def test_a_copy_of_a_segment_delivers_nothing_twice(spools: Opener, folder: Path) -> None:
    spool = spools()
    for bid in "abc":
        put(spool, bid)
    spool.close()
    (seg,) = segments(folder)
    # Say a backup put back under another name: every record in it was seen already.
    (folder / "seg-00000000000000000004.log").write_bytes(seg.read_bytes())
    spool = spools()
    assert ids(spool.peek(10)) == ["a", "b", "c"]
    assert put(spool, "d").seq == 4


def test_a_leftover_that_vanishes_while_it_is_removed_does_not_stop_start_up(
    spools: Opener, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = spools()
    put(spool, "a")
    spool.close()
    (folder / "cursor.tmp").write_bytes(b"half")
    real_unlink = os.unlink

    def raced(path: Any, *args: Any, **kwargs: Any) -> None:
        real_unlink(path, *args, **kwargs)
        if str(path).endswith(".tmp"):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")  # gone first

    monkeypatch.setattr(os, "unlink", raced)
    assert ids(spools().peek(10)) == ["a"]


@pytest.mark.parametrize("left", ["a leftover temporary file", "a delivered segment"])
def test_a_start_up_repair_is_made_durable_with_the_folder(
    spools: Opener, folder: Path, monkeypatch: pytest.MonkeyPatch, left: str
) -> None:
    spool = spools(durability="none", segment_bytes=600)
    for bid in "abc":
        put(spool, bid)
    first, _ = segments(folder)
    delivered = first.read_bytes()
    spool.ack(2)
    spool.close()
    if left == "a delivered segment":
        first.write_bytes(delivered)  # its unlink never reached the disk
    else:
        (folder / "cursor.tmp").write_bytes(b"half")
    fsyncs = FsyncLog(folder.parent)
    monkeypatch.setattr(os, "fsync", fsyncs.fsync)
    # Whatever the durability: a repair is made once, at start-up, and made to last.
    assert ids(spools(durability="none").peek(10)) == ["c"]
    assert fsyncs.take() == ["spool"]


def test_a_delivered_segment_that_vanishes_while_it_is_removed_does_not_stop_start_up(
    spools: Opener, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = spools(segment_bytes=600)
    for bid in "abc":
        put(spool, bid)
    first, _ = segments(folder)
    delivered = first.read_bytes()
    spool.ack(2)
    spool.close()
    first.write_bytes(delivered)  # its unlink never reached the disk
    real_unlink = os.unlink

    def raced(path: Any, *args: Any, **kwargs: Any) -> None:
        real_unlink(path, *args, **kwargs)
        if str(path).endswith(".log"):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")  # gone first

    monkeypatch.setattr(os, "unlink", raced)
    assert ids(spools().peek(10)) == ["c"]


def test_a_spool_folder_is_made_with_the_folders_above_it(tmp_path: Path) -> None:
    deep = Opener(tmp_path / "var" / "lib" / "logops" / "spool")
    try:
        put(deep(), "a")
        assert ids(deep().peek(10)) == ["a"]
    finally:
        deep.close_all()


def test_a_spool_set_up_wrong_is_refused_naming_what_is_wrong(folder: Path) -> None:
    with pytest.raises(ValueError) as wrong:
        Spool(folder, 1000, 10, durability="sometimes")
    assert str(wrong.value) == "spool durability must be one of batch, interval, none"
    for max_bytes, max_batches in ((0, 10), (1000, 0)):
        with pytest.raises(ValueError) as wrong:
            Spool(folder, max_bytes, max_batches)
        assert str(wrong.value) == "spool bounds must be positive"
    smallest = Spool(folder, 1, 1)  # positive, if of little use: every batch is too big
    smallest.open()
    try:
        with pytest.raises(SpoolFull):
            put(smallest, "a")
    finally:
        smallest.close()


def test_a_process_that_exits_without_closing_its_spool_is_not_held_up_by_it(
    tmp_path: Path,
) -> None:
    # The interval fsync thread must not keep a gateway that is going away alive.
    code = (
        "import sys\n"
        "from services.auth.spool import Spool\n"
        "Spool(sys.argv[1], 1 << 20, 10, 'interval', fsync_interval=3600).open()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "spool")],
        capture_output=True,
        timeout=120,  # not a speed claim: only so that a hang fails instead of stalling
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_a_spool_never_opened_closes_quietly(folder: Path) -> None:
    # A gateway whose start-up failed before the spool opened still shuts down cleanly.
    Spool(folder, 1 << 20, 10, durability="interval").close()
    assert not folder.exists()


def test_segments_roll_over_at_an_eighth_of_the_spool_by_default(spools: Opener) -> None:
    spool = spools(max_bytes=8 << 20)  # segments of 1 MiB
    for i in range(11):
        put(spool, f"b{i}", b"x" * (100 << 10))
    first, second = segments(spools.folder)
    assert first.stat().st_size <= 1 << 20 < first.stat().st_size + (100 << 10)
    assert (len(record_spans(first)), len(record_spans(second))) == (10, 1)
