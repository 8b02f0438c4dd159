"""Crash repair of the NDJSON sink at start-up: torn lines, unindexed data, damaged indexes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.ingest import sink_recovery
from services.ingest.sink import StoredBatch
from tests.unit.ingest.sink_testing import (
    DAY,
    FsyncLog,
    SinkFactory,
    batch,
    index_lines,
    records,
    stored_index,
)

DATA = f"sink/{DAY}.ndjson"
INDEX = f"sink/.index/{DAY}.idx"

# -- crash repair ---------------------------------------------------------------------------


def test_a_large_index_with_damage_in_the_middle_and_at_the_end(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    first = make_sink(durability="none")
    ids = [f"id-{i}" for i in range(3000)]
    for bid in ids:
        first.append(bid, b'{"a": 1}\n', StoredBatch(1, 0))
    first.close()
    index = sink_dir / ".index" / f"{DAY}.idx"
    lines = index.read_bytes().splitlines(keepends=True)
    lines[1234] = b'["id-1234",1,0,"20250301.ndjson",0,"bad",0]\n'
    lines[2000] = b"{not json\n"
    index.write_bytes(b"".join(lines) + b'["torn",1,0')
    # The data of the last 100 batches never reached the disk.
    os.truncate(sink_dir / f"{DAY}.ndjson", 9 * 2900)
    second = make_sink()
    kept = [bid for i, bid in enumerate(ids) if i not in (1234, 2000) and i < 2900]
    assert [e[0] for e in index_lines(sink_dir)] == kept
    assert all(second.lookup(bid) == StoredBatch(1, 0) for bid in kept)
    assert [second.lookup(bid) for bid in ("id-1234", "id-2000", "id-2900", "torn")] == [None] * 4


def test_a_torn_last_data_line_is_cut_off(make_sink: SinkFactory, sink_dir: Path) -> None:
    first = make_sink()
    first.append("a", batch("a"), StoredBatch(3, 0))
    first.append("b", batch("b"), StoredBatch(3, 0))
    first.close()
    path = sink_dir / f"{DAY}.ndjson"
    with path.open("ab") as fh:
        fh.write(b'{"batch": "c", "i": 0, "pa')
    make_sink()
    assert path.read_bytes() == batch("a") + batch("b")


def test_a_torn_index_line_is_cut_off(make_sink: SinkFactory, sink_dir: Path) -> None:
    first = make_sink()
    first.append("a", batch("a"), StoredBatch(3, 0))
    first.close()
    index = sink_dir / ".index" / f"{DAY}.idx"
    with index.open("ab") as fh:
        fh.write(b'["b",3,0,"20250301.ndj')
    second = make_sink()
    assert [e[0] for e in index_lines(sink_dir)] == ["a"]
    assert second.append("b", batch("b"), StoredBatch(3, 0)) is None
    assert [e[0] for e in index_lines(sink_dir)] == ["a", "b"]
    assert [r["batch"] for r in records(sink_dir)] == ["a"] * 3 + ["b"] * 3


def test_index_entries_past_the_end_of_their_data_are_dropped(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    first = make_sink()
    for bid in "abc":
        first.append(bid, batch(bid), StoredBatch(3, 0))
    first.close()
    path = sink_dir / f"{DAY}.ndjson"
    # As if only batch a and half of batch b had reached the disk.
    os.truncate(path, len(batch("a")) + len(batch("b")) // 2)
    second = make_sink()
    assert path.read_bytes() == batch("a")
    assert [e[0] for e in index_lines(sink_dir)] == ["a"]
    assert second.lookup("a") is not None
    assert second.append("b", batch("b"), StoredBatch(3, 0)) is None
    assert second.append("c", batch("c"), StoredBatch(3, 0)) is None
    assert [r["batch"] for r in records(sink_dir)] == ["a"] * 3 + ["b"] * 3 + ["c"] * 3


def test_a_bad_line_inside_the_index_is_dropped_and_the_rest_kept(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    index, lines = stored_index(make_sink, sink_dir)
    index.write_bytes(lines[0] + b"\x00\x00garbage\n" + lines[1])
    second = make_sink()
    assert [e[0] for e in index_lines(sink_dir)] == ["a", "b"]
    assert second.lookup("a") is not None and second.lookup("b") is not None


def test_unindexed_data_is_cut_back_to_the_last_indexed_batch(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    first = make_sink(max_file_bytes=200)
    first.append("a", batch("a"), StoredBatch(3, 0))
    first.close()
    # Written but never indexed, so never acknowledged: in the current and in a new file.
    with (sink_dir / f"{DAY}.ndjson").open("ab") as fh:
        fh.write(batch("lost"))
    (sink_dir / f"{DAY}.1.ndjson").write_bytes(batch("lost too"))
    second = make_sink(max_file_bytes=200)
    assert (sink_dir / f"{DAY}.ndjson").read_bytes() == batch("a")
    assert (sink_dir / f"{DAY}.1.ndjson").read_bytes() == b""
    assert second.append("lost", batch("lost"), StoredBatch(3, 0)) is None
    assert [r["batch"] for r in records(sink_dir)] == ["a"] * 3 + ["lost"] * 3


def test_data_of_a_day_without_index_only_loses_its_torn_line(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    sink_dir.mkdir()
    foreign = sink_dir / "20250228.ndjson"
    foreign.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a"')
    make_sink()
    assert foreign.read_bytes() == b'{"a": 1}\n{"a": 2}\n'


@pytest.mark.parametrize("split", [True, False], ids=["split-before-the-counts", "one-block"])
def test_only_the_counts_line_right_before_an_entry_belongs_to_it(
    make_sink: SinkFactory, sink_dir: Path, monkeypatch: pytest.MonkeyPatch, split: bool
) -> None:
    first = make_sink()
    first.append("a", batch("a"), StoredBatch(3, 0))
    first.append("b", batch("b"), StoredBatch(3, 0, (0, 0, 2, 0)))
    first.close()
    index = sink_dir / ".index" / f"{DAY}.idx"
    lines = index.read_bytes().splitlines(keepends=True)  # a, b's counts, b
    stray = b'["b",9,9,9,9]\n'  # another line of counts for b, not right before b
    index.write_bytes(lines[0] + stray + lines[1] + lines[2])
    if split:  # the stray line ends one read, b's own counts open the next
        monkeypatch.setattr(sink_recovery, "_BLOCK", len(lines[0] + stray))
    second = make_sink()
    assert second.lookup("b") == StoredBatch(3, 0, (0, 0, 2, 0))
    assert index.read_bytes() == b"".join(lines)


# -- what repair makes durable --------------------------------------------------------------


def test_a_clean_restart_changes_and_fsyncs_nothing(
    make_sink: SinkFactory, sink_dir: Path, fsyncs: FsyncLog
) -> None:
    first = make_sink()
    first.append("a", batch("a"), StoredBatch(3, 0))
    first.close()
    fsyncs.take()
    make_sink()
    assert fsyncs.take() == []
    assert (sink_dir / f"{DAY}.ndjson").read_bytes() == batch("a")


def test_a_cut_data_file_is_fsynced_before_the_sink_takes_pushes(
    make_sink: SinkFactory, sink_dir: Path, fsyncs: FsyncLog
) -> None:
    first = make_sink()
    first.append("a", batch("a"), StoredBatch(3, 0))
    first.close()
    with (sink_dir / f"{DAY}.ndjson").open("ab") as fh:
        fh.write(batch("lost") + b'{"torn')
    fsyncs.take()
    make_sink()
    # Otherwise a second crash could bring the cut tail back under new batches.
    assert fsyncs.take() == [DATA]
    assert (sink_dir / f"{DAY}.ndjson").read_bytes() == batch("a")


def test_a_cut_index_tail_is_fsynced(
    make_sink: SinkFactory, sink_dir: Path, fsyncs: FsyncLog
) -> None:
    first = make_sink()
    first.append("a", batch("a"), StoredBatch(3, 0))
    first.close()
    with (sink_dir / ".index" / f"{DAY}.idx").open("ab") as fh:
        fh.write(b'["b",3,0,"20250301.ndj')
    fsyncs.take()
    make_sink()
    assert fsyncs.take() == [INDEX]
    assert [e[0] for e in index_lines(sink_dir)] == ["a"]


def test_an_index_rewritten_without_a_bad_line_replaces_the_old_one_durably(
    make_sink: SinkFactory, sink_dir: Path, fsyncs: FsyncLog
) -> None:
    first = make_sink()
    for bid in "ab":
        first.append(bid, batch(bid), StoredBatch(3, 0))
    first.close()
    index = sink_dir / ".index" / f"{DAY}.idx"
    lines = index.read_bytes().splitlines(keepends=True)
    index.write_bytes(lines[0] + b"garbage\n" + lines[1])
    fsyncs.take()
    make_sink()
    # The new copy is on disk before it takes the old one's name, and the rename is
    # made durable by an fsync of the folder; the copy leaves no file behind.
    assert fsyncs.take() == [f"{INDEX}.tmp", f"replace {INDEX}", "sink/.index"]
    assert index.read_bytes() == lines[0] + lines[1]
    assert sorted(p.name for p in index.parent.iterdir()) == [f"{DAY}.idx"]


# -- torn tails: cut at the last complete line ----------------------------------------------

LINES = b"".join(b'{"n": %d, "pad": "%s"}\n' % (i, b"y" * 80) for i in range(1200))


@pytest.mark.parametrize(
    ("content", "kept"),
    [
        (b"\n", b"\n"),
        (b'{"torn', b""),
        # A torn tail longer than one 64 KiB read, after more than a read of whole lines.
        (LINES + b"z" * 70_000, LINES),
        # The last newline is the first byte of the last read.
        (b'{"a": 1}\n' + b"z" * 65_535, b'{"a": 1}\n'),
    ],
    ids=["one-empty-line", "no-newline-at-all", "long-tail-after-long-lines", "newline-opens-read"],
)
def test_a_torn_tail_is_cut_right_after_the_last_newline(
    make_sink: SinkFactory, sink_dir: Path, content: bytes, kept: bytes
) -> None:
    sink_dir.mkdir()
    path = sink_dir / "20250228.ndjson"  # a day without an index: only its torn line goes
    path.write_bytes(content)
    make_sink()
    assert path.read_bytes() == kept


def test_a_long_torn_tail_after_indexed_batches_is_cut_at_their_end(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    first = make_sink(durability="none")
    for i in range(40):
        first.append(f"b{i}", batch(f"b{i}", width=1000), StoredBatch(3, 0))
    first.close()
    path = sink_dir / f"{DAY}.ndjson"
    stored = path.read_bytes()
    assert len(stored) > 65_536
    with path.open("ab") as fh:
        fh.write(b"z" * 70_000)
    second = make_sink()
    assert path.read_bytes() == stored
    assert all(second.lookup(f"b{i}") == StoredBatch(3, 0) for i in range(40))


def test_a_batch_whose_one_byte_never_reached_the_disk_is_not_answered(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    first = make_sink(durability="none")
    first.append("empty-line", b"\n", StoredBatch(1, 0))
    first.close()
    os.truncate(sink_dir / f"{DAY}.ndjson", 0)  # its index entry made it, its data did not
    second = make_sink()
    assert second.lookup("empty-line") is None
    assert index_lines(sink_dir) == []


def test_a_one_byte_batch_outlives_the_repair_of_a_torn_tail_after_it(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    first = make_sink()
    first.append("empty-line", b"\n", StoredBatch(1, 0))
    first.close()
    path = sink_dir / f"{DAY}.ndjson"
    with path.open("ab") as fh:
        fh.write(b'{"torn')
    second = make_sink()
    assert path.read_bytes() == b"\n"
    assert second.lookup("empty-line") == StoredBatch(1, 0)


# -- how a damaged index is rewritten -------------------------------------------------------


def test_damage_only_at_the_end_of_the_index_is_cut_in_place(
    make_sink: SinkFactory, sink_dir: Path, fsyncs: FsyncLog
) -> None:
    first = make_sink()
    for bid in "ab":
        first.append(bid, batch(bid), StoredBatch(3, 0))
    first.close()
    index = sink_dir / ".index" / f"{DAY}.idx"
    good = index.read_bytes()
    # A bad line and a torn one after it: one cut, no copy of a possibly large index.
    index.write_bytes(good + b"garbage\n" + b'["c",3,0,"2025')
    fsyncs.take()
    second = make_sink()
    assert fsyncs.take() == [INDEX]
    assert index.read_bytes() == good
    assert second.lookup("b") == StoredBatch(3, 0)


def test_good_lines_between_a_bad_line_and_a_torn_one_are_kept(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    index, lines = stored_index(make_sink, sink_dir, "abc")
    index.write_bytes(lines[0] + b"garbage\n" + lines[1] + lines[2] + b'["d",3,0,"2025')
    second = make_sink()
    assert index.read_bytes() == b"".join(lines)
    assert [second.lookup(bid) for bid in "abc"] == [StoredBatch(3, 0)] * 3


def test_a_rewritten_index_keeps_the_permissions_the_sink_gives_it(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    first = make_sink()
    for bid in "ab":
        first.append(bid, batch(bid), StoredBatch(3, 0))
    first.close()
    index = sink_dir / ".index" / f"{DAY}.idx"
    mode = index.stat().st_mode
    lines = index.read_bytes().splitlines(keepends=True)
    index.write_bytes(lines[0] + b"garbage\n" + lines[1])
    make_sink()
    assert oct(index.stat().st_mode) == oct(mode)


def test_a_copy_left_by_an_interrupted_rewrite_does_not_leak_into_the_index(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    index, lines = stored_index(make_sink, sink_dir)
    index.write_bytes(lines[0] + b"garbage\n" + lines[1])
    # An earlier start-up died while writing its copy, longer than the one to come.
    (index.parent / f"{DAY}.idx.tmp").write_bytes(b"x" * 4096 + b"\n")
    second = make_sink()
    assert index.read_bytes() == lines[0] + lines[1]
    assert sorted(p.name for p in index.parent.iterdir()) == [f"{DAY}.idx"]
    assert second.lookup("b") == StoredBatch(3, 0)
