"""The Auth Gateway's spool: order, bounds, reopening, acks, readiness, many writers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from services.auth.spool import Spool, SpoolError, SpoolFull
from services.common.errors import LogOpsError
from tests.unit.auth.spool_testing import MEDIA, Opener, body_of, ids, put, segments

# -- order ----------------------------------------------------------------------------------


def test_batches_come_back_oldest_first_whole(spools: Opener) -> None:
    spool = spools()
    first = spool.put("b1", MEDIA, "gzip", {"emitter": "me", "run_id": "r"}, b"\x1f\x8b..", 7)
    put(spool, "b2")
    put(spool, "b3")
    peeked = spool.peek(10)
    assert ids(peeked) == ["b1", "b2", "b3"]
    assert peeked[0] == first
    assert (first.media_type, first.content_encoding, first.records) == (MEDIA, "gzip", 7)
    assert dict(first.meta) == {"emitter": "me", "run_id": "r"}
    assert first.body == b"\x1f\x8b.."
    assert [b.body for b in peeked[1:]] == [body_of("b2"), body_of("b3")]
    assert [b.seq for b in peeked] == sorted({b.seq for b in peeked})


def test_peek_does_not_remove_and_ack_does(spools: Opener) -> None:
    spool = spools()
    seqs = [put(spool, f"b{i}").seq for i in range(4)]
    assert ids(spool.peek()) == ["b0"]
    assert ids(spool.peek(2)) == ["b0", "b1"]
    spool.ack(seqs[0])
    assert ids(spool.peek(10)) == ["b1", "b2", "b3"]
    # Acks are cumulative: the drainer may ack the last of what it delivered.
    spool.ack(seqs[2])
    assert ids(spool.peek(10)) == ["b3"]
    spool.ack(seqs[0])  # an old ack again changes nothing
    assert ids(spool.peek(10)) == ["b3"]
    spool.ack(seqs[3])
    assert spool.peek(10) == []
    assert spool.depth() == (0, 0)


def test_depth_counts_batches_and_bytes_until_acked(spools: Opener) -> None:
    spool = spools()
    assert spool.depth() == (0, 0)
    a = put(spool, "a", b"x" * 1000)
    batches, nbytes = spool.depth()
    assert batches == 1 and 1000 < nbytes < 1300
    put(spool, "b", b"y" * 3000)
    assert spool.depth()[0] == 2 and spool.depth()[1] > nbytes + 3000
    spool.ack(a.seq)
    assert spool.depth()[0] == 1 and 3000 < spool.depth()[1] < 3300


def test_an_ack_past_what_was_spooled_is_refused(spools: Opener) -> None:
    spool = spools()
    b = put(spool, "a")
    with pytest.raises(ValueError):
        spool.ack(b.seq + 1)
    assert ids(spool.peek()) == ["a"]


# -- bounds ---------------------------------------------------------------------------------


def test_a_full_spool_by_batches_refuses_and_keeps_nothing(spools: Opener, folder: Path) -> None:
    spool = spools(max_batches=3)
    for i in range(3):
        put(spool, f"b{i}")
    before = [p.stat().st_size for p in segments(folder)]
    with pytest.raises(SpoolFull):
        put(spool, "over")
    assert [p.stat().st_size for p in segments(folder)] == before
    assert spool.depth()[0] == 3
    assert spool.is_usable() == "spool full"
    spool.ack(spool.peek()[0].seq)
    assert spool.is_usable() is None
    put(spool, "fits")
    assert ids(spool.peek(10)) == ["b1", "b2", "fits"]
    assert ids(spools.reopen(spool).peek(10)) == ["b1", "b2", "fits"]


def test_a_full_spool_by_bytes_refuses_the_batch_that_would_not_fit(spools: Opener) -> None:
    spool = spools(max_bytes=4096)
    put(spool, "a", b"x" * 2000)
    depth = spool.depth()
    with pytest.raises(SpoolFull):
        put(spool, "big", b"y" * 2000)
    assert spool.depth() == depth
    put(spool, "small", b"z" * 500)
    with pytest.raises(SpoolFull):
        put(spool, "larger than the whole spool", b"w" * 5000)
    assert ids(spool.peek(10)) == ["a", "small"]


def test_spool_full_is_answered_503_with_retry_after() -> None:
    err = SpoolFull("the spool is full")
    assert isinstance(err, SpoolError) and isinstance(err, LogOpsError)
    assert (err.http_status, err.code, err.reason) == (503, "UNAVAILABLE", "downstream_unavailable")
    assert err.retry_after_seconds == 5


# -- reopening ------------------------------------------------------------------------------


def test_reopening_keeps_what_was_not_acked_in_order(spools: Opener) -> None:
    spool = spools()
    seqs = [put(spool, f"b{i}").seq for i in range(5)]
    spool.ack(seqs[1])
    spool = spools.reopen(spool)
    assert ids(spool.peek(10)) == ["b2", "b3", "b4"]
    assert [b.body for b in spool.peek(10)] == [body_of(f"b{i}") for i in (2, 3, 4)]
    later = put(spool, "b5")
    assert later.seq > seqs[-1]
    spool.ack(seqs[3])
    spool = spools.reopen(spool)
    assert ids(spool.peek(10)) == ["b4", "b5"]


def test_seqs_keep_growing_after_everything_was_delivered(spools: Opener, folder: Path) -> None:
    spool = spools()
    last = put(spool, "a").seq
    spool.ack(last)
    spool = spools.reopen(spool)
    assert segments(folder) == []  # nothing left to deliver: the segment is gone
    assert put(spool, "b").seq > last


def test_delivered_segments_are_removed(spools: Opener, folder: Path) -> None:
    spool = spools(segment_bytes=1500)
    batches = [put(spool, f"b{i}", b"x" * 400) for i in range(10)]
    assert len(segments(folder)) == 5
    spool.ack(batches[5].seq)
    # Segments of b0-b1, b2-b3 and b4-b5 are delivered; b6-b7 and b8-b9 stay.
    assert len(segments(folder)) == 2
    assert ids(spools.reopen(spool, segment_bytes=1500).peek(10)) == [f"b{i}" for i in range(6, 10)]


def test_a_drained_spool_keeps_no_segment(spools: Opener, folder: Path) -> None:
    spool = spools()
    put(spool, "a")
    b = put(spool, "b")
    spool.ack(b.seq)
    # Also the segment being written goes: its space comes back at once.
    assert segments(folder) == []
    put(spool, "c")
    assert ids(spool.peek(10)) == ["c"]
    assert ids(spools.reopen(spool).peek(10)) == ["c"]


def test_file_names_never_hold_batch_ids(spools: Opener, folder: Path) -> None:
    spool = spools()
    for bid in ("../../escape", "seg-00000000000000000001.log", "cursor", "a/b", "x.tmp"):
        put(spool, bid)
    spool.ack(spool.peek()[0].seq)
    names = sorted(os.listdir(folder))
    assert names == ["cursor", "seg-00000000000000000001.log"]
    assert ids(spools.reopen(spool).peek(10))[0] == "seg-00000000000000000001.log"


def test_a_batch_repr_leaves_the_body_out(spools: Opener) -> None:
    batch = put(spools(), "a", b"secret payload")
    assert "secret payload" not in repr(batch)


# -- lifecycle and readiness ----------------------------------------------------------------


def test_a_closed_spool_refuses_everything(spools: Opener) -> None:
    spool = spools()
    b = put(spool, "a")
    spool.close()
    assert spool.is_usable() == "spool not open"
    with pytest.raises(SpoolError):
        put(spool, "b")
    with pytest.raises(SpoolError):
        spool.peek()
    with pytest.raises(SpoolError):
        spool.ack(b.seq)
    spool.close()  # twice is fine


def test_unknown_durability_and_bounds_are_refused(folder: Path) -> None:
    with pytest.raises(ValueError):
        Spool(folder, 1000, 10, durability="sometimes")
    with pytest.raises(ValueError):
        Spool(folder, 0, 10)


def test_readiness_names_a_missing_folder(spools: Opener, folder: Path) -> None:
    spool = spools()
    assert spool.is_usable() is None
    os.rmdir(folder)
    assert spool.is_usable() == "spool directory missing"
    with pytest.raises(SpoolError):
        put(spool, "a")
    assert spool.depth() == (0, 0)
    folder.mkdir()
    # The probe finds the folder writable again without waiting for traffic.
    assert spool.is_usable() is None


def test_a_spool_cannot_open_where_a_file_is(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(SpoolError):
        Spool(blocker / "spool", 1000, 10).open()


# -- threads --------------------------------------------------------------------------------


def test_many_writers_and_a_drainer_deliver_everything_once_in_order(spools: Opener) -> None:
    spool = spools(segment_bytes=4096)
    writers, each = 6, 40
    delivered: list[int] = []
    put_ids: list[str] = []
    done = threading.Event()

    def write(t: int) -> None:
        for i in range(each):
            put_ids.append(put(spool, f"t{t}-{i}").batch_id)

    def drain() -> None:
        while not (done.is_set() and spool.depth()[0] == 0):
            batches = spool.peek(5)
            if batches:
                delivered.extend(b.seq for b in batches)
                spool.ack(batches[-1].seq)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(writers)]
    drainer = threading.Thread(target=drain)
    drainer.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    drainer.join(timeout=30)
    assert not drainer.is_alive()
    assert len(delivered) == writers * each == len(set(put_ids))
    assert delivered == sorted(set(delivered))
    assert spool.depth() == (0, 0)


def test_the_spool_imports_no_framework() -> None:
    code = "import json, sys; import services.auth.spool; print(json.dumps(sorted(sys.modules)))"
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root
    )
    forbidden = ("grpc", "falcon", "waitress", "prometheus_client", "logops")
    loaded = json.loads(out.stdout)
    assert [m for m in loaded if m.split(".")[0] in forbidden] == []


def test_a_spool_holding_exactly_its_byte_bound_is_full(spools: Opener) -> None:
    spool = spools()
    put(spool, "a")
    _, nbytes = spool.depth()
    assert spool.is_usable() is None
    exact = spools.reopen(spool, max_bytes=nbytes)
    assert exact.depth()[1] == nbytes
    assert exact.is_usable() == "spool full"
