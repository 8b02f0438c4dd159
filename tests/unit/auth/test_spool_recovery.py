"""Start-up repair of the spool: torn and garbage tails cut, damage set aside, temps removed."""

from __future__ import annotations

import logging
import random
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from services.auth.spool.codec import encode_cursor
from tests.unit.auth.spool_testing import (
    Opener,
    body_of,
    flip,
    ids,
    put,
    record_spans,
    segments,
)


def three(spools: Opener) -> Path:
    """A closed spool holding a, b and c in one segment; that segment."""
    spool = spools()
    for bid in "abc":
        put(spool, bid)
    spool.close()
    (seg,) = segments(spools.folder)
    return seg


def quarantined(folder: Path) -> list[Path]:
    return sorted((folder / "quarantine").glob("*"))


# -- torn and garbage tails -----------------------------------------------------------------


def test_a_torn_last_record_is_cut_at_every_offset(spools: Opener, tmp_path: Path) -> None:
    seg = three(spools)
    whole = seg.read_bytes()
    start, end = record_spans(seg)[-1]
    for cut in range(start, end):
        shutil.rmtree(spools.folder)
        spools.folder.mkdir()
        seg.write_bytes(whole[:cut])
        spool = spools(durability="none")
        assert ids(spool.peek(10)) == ["a", "b"], f"cut at {cut}"
        assert seg.stat().st_size == start, f"cut at {cut}"
        assert not (spools.folder / "quarantine").exists()
        # A torn record's put never returned: its seq may be handed out again.
        assert put(spool, "c2").seq == 3
        spool.close()


def test_a_garbage_tail_is_cut(spools: Opener) -> None:
    seg = three(spools)
    size = seg.stat().st_size
    noise = random.Random(7).randbytes(5000)
    with seg.open("ab") as fh:
        fh.write(noise)
    spool = spools()
    assert ids(spool.peek(10)) == ["a", "b", "c"]
    assert seg.stat().st_size == size
    put(spool, "d")
    assert ids(spools.reopen(spool).peek(10)) == ["a", "b", "c", "d"]


def test_a_cut_record_is_logged(spools: Opener, caplog: pytest.LogCaptureFixture) -> None:
    seg = three(spools)
    with seg.open("ab") as fh:
        fh.write(b"LSPR\x10")
    with caplog.at_level(logging.WARNING):
        spools()
    assert [r.__dict__.get("cut_bytes") for r in caplog.records] == [5]


# -- damage in the middle -------------------------------------------------------------------


@pytest.mark.parametrize("where", ["body", "length", "magic", "seq", "crc"])
def test_a_damaged_record_in_the_middle_is_set_aside(
    spools: Opener, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    seg = three(spools)
    start, end = record_spans(seg)[1]
    original = seg.read_bytes()[start:end]
    offset = {"magic": 1, "length": 5, "seq": 9, "crc": 17, "body": end - start - 3}[where]
    flip(seg, start + offset)
    with caplog.at_level(logging.WARNING):
        spool = spools()
    assert ids(spool.peek(10)) == ["a", "c"]
    (kept,) = quarantined(spools.folder)
    assert kept.name == f"{seg.name}.{start:012d}.bad"
    damaged = kept.read_bytes()
    assert len(damaged) == len(original) and damaged != original
    assert any(r.__dict__.get("event") == "spool_quarantine" for r in caplog.records)
    # Found again at the next start: the same file is rewritten, no second one.
    spool = spools.reopen(spool)
    assert ids(spool.peek(10)) == ["a", "c"] and len(quarantined(spools.folder)) == 1
    # Delivering past it removes the segment; the damaged copy stays for a person.
    spool.ack(spool.peek(10)[-1].seq)
    assert segments(spools.folder) == [] and len(quarantined(spools.folder)) == 1


def test_damage_at_the_end_of_an_older_segment_is_set_aside(spools: Opener) -> None:
    spool = spools(segment_bytes=1200)
    for bid in "abcd":
        put(spool, bid, b"x" * 300)
    spool.close()
    first = segments(spools.folder)[0]
    start, end = record_spans(first)[-1]
    flip(first, end - 1)
    spool = spools(segment_bytes=1200)
    assert ids(spool.peek(10)) == ["a", "c", "d"]
    assert len(quarantined(spools.folder)) == 1
    assert first.stat().st_size == start


def test_a_segment_with_a_damaged_head_is_moved_aside_whole(spools: Opener) -> None:
    spool = spools(segment_bytes=1200)
    for bid in "abcd":
        put(spool, bid, b"x" * 300)
    spool.close()
    first = segments(spools.folder)[0]
    flip(first, 2)
    spool = spools(segment_bytes=1200)
    assert ids(spool.peek(10)) == ["c", "d"]
    assert [p.name for p in quarantined(spools.folder)] == [first.name]


def test_a_record_damaged_after_start_up_is_set_aside_when_read(spools: Opener) -> None:
    spool = spools()
    for bid in "abc":
        put(spool, bid)
    (seg,) = segments(spools.folder)
    start, end = record_spans(seg)[1]
    flip(seg, end - 2)
    assert ids(spool.peek(10)) == ["a", "c"]
    assert spool.depth()[0] == 2
    assert [p.name for p in quarantined(spools.folder)] == [f"{seg.name}.{start:012d}.bad"]
    spool.ack(spool.peek(10)[-1].seq)
    assert spool.depth() == (0, 0)


def test_a_record_inside_a_body_is_never_taken_for_one(spools: Opener) -> None:
    """Bodies are client input: one may carry a well-formed record of its own. Its checksum
    lacks the spool's secret seed, so a search past damage does not pick it up."""
    header = b'{"batch_id":"forged","media_type":"x","content_encoding":"identity",'
    header += b'"meta":{},"records":1,"spooled_at":0}'
    payload = struct.pack("<I", len(header)) + header + b"evil\n"
    crc = zlib.crc32(struct.pack("<IQ", len(payload), 2), zlib.crc32(payload))
    forged = b"LSPR" + struct.pack("<IQI", len(payload), 2, crc) + payload
    spool = spools()
    put(spool, "a")
    put(spool, "b", b"padding\n" + forged)
    put(spool, "c")
    spool.close()
    (seg,) = segments(spools.folder)
    flip(seg, record_spans(seg)[1][0])  # the real record's magic
    assert ids(spools().peek(10)) == ["a", "c"]


# -- leftovers and the cursor ---------------------------------------------------------------


def test_leftover_temporary_files_are_removed(spools: Opener) -> None:
    three(spools)
    folder = spools.folder
    (folder / "seg-00000000000000000009.log.tmp").write_bytes(b"LSPS")
    (folder / "cursor.tmp").write_bytes(b"half")
    assert ids(spools().peek(10)) == ["a", "b", "c"]
    assert sorted(p.name for p in folder.iterdir()) == ["seg-00000000000000000001.log"]


def test_a_damaged_cursor_offers_everything_still_on_disk_again(spools: Opener) -> None:
    spool = spools()
    for bid in "abc":
        put(spool, bid)
    spool.ack(1)
    spool.close()
    (spools.folder / "cursor").write_bytes(b"garbage")
    # Safe: the Ingest Gateway answers what it already has as duplicates.
    assert ids(spools().peek(10)) == ["a", "b", "c"]


def test_a_cursor_past_everything_on_disk_keeps_seqs_growing(spools: Opener) -> None:
    three(spools)
    (spools.folder / "cursor").write_bytes(encode_cursor(41))
    spool = spools()
    assert spool.peek(10) == []
    assert segments(spools.folder) == []
    assert put(spool, "d").seq == 42


def test_recovered_bodies_are_byte_for_byte(spools: Opener) -> None:
    spool = spools()
    blobs = [bytes(range(256)) * 40, b"", body_of("x", 500)]
    for i, blob in enumerate(blobs):
        put(spool, f"b{i}", blob)
    assert [b.body for b in spools.reopen(spool).peek(10)] == blobs


def test_a_record_that_cannot_be_set_aside_is_still_skipped_and_logged(
    spools: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    spool = spools()
    for bid in "abc":
        put(spool, bid)
    (seg,) = segments(spools.folder)
    (spools.folder / "quarantine").write_bytes(b"a file where the folder should be")
    flip(seg, record_spans(seg)[1][1] - 2)
    with caplog.at_level(logging.WARNING, logger="services.auth.spool.store"):
        assert ids(spool.peek(10)) == ["a", "c"]
    [event] = [r.__dict__ for r in caplog.records if r.__dict__.get("event") == "spool_error"]
    assert event["segment"] == seg.name


def test_every_set_aside_is_logged_with_where_it_was_and_where_it_is(
    spools: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    seg = three(spools)
    start, end = record_spans(seg)[1]
    flip(seg, start + 17)
    kept = spools.folder / "quarantine" / f"{seg.name}.{start:012d}.bad"
    # A stale, longer copy from an earlier start is replaced, not written over in place.
    kept.parent.mkdir()
    kept.write_bytes(b"stale" * 1000)
    with caplog.at_level(logging.INFO, logger="services.auth.spool"):
        spools()
    assert len(kept.read_bytes()) == end - start
    events = [r.__dict__ for r in caplog.records if r.__dict__.get("event") == "spool_quarantine"]
    assert [(e["segment"], e["offset"], e["bytes"], e["kept_at"]) for e in events] == [
        (seg.name, start, end - start, str(kept))
    ]
    [opened] = [r.__dict__ for r in caplog.records if r.__dict__.get("event") == "spool_open"]
    assert opened["quarantined"] == 1


def test_damaged_heads_are_counted_moved_aside_and_logged(
    spools: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    spool = spools(segment_bytes=1200)
    for bid in "abcdef":
        put(spool, bid, b"x" * 300)
    spool.close()
    first, second = segments(spools.folder)[:2]
    flip(first, 2)
    flip(second, 2)
    with caplog.at_level(logging.INFO, logger="services.auth.spool"):
        spool = spools(segment_bytes=1200)
    assert ids(spool.peek(10)) == ["e", "f"]
    assert [p.name for p in quarantined(spools.folder)] == [first.name, second.name]
    events = [r.__dict__ for r in caplog.records if r.__dict__.get("event") == "spool_quarantine"]
    folder = str(spools.folder / "quarantine")
    assert [(e["segment"], e["kept_at"]) for e in events] == [
        (first.name, folder),
        (second.name, folder),
    ]
    [opened] = [r.__dict__ for r in caplog.records if r.__dict__.get("event") == "spool_open"]
    assert opened["quarantined"] == 2


def test_the_start_up_report_counts_every_damaged_record(
    spools: Opener, caplog: pytest.LogCaptureFixture
) -> None:
    spool = spools()
    for bid in "abcde":
        put(spool, bid)
    spool.close()
    (seg,) = segments(spools.folder)
    spans = record_spans(seg)
    flip(seg, spans[1][1] - 2)
    flip(seg, spans[3][1] - 2)
    with caplog.at_level(logging.INFO, logger="services.auth.spool"):
        assert ids(spools().peek(10)) == ["a", "c", "e"]
    [opened] = [r.__dict__ for r in caplog.records if r.__dict__.get("event") == "spool_open"]
    assert (opened["quarantined"], opened["batches"]) == (2, 3)
