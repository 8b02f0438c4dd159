"""Crash repair of the idempotency index at start-up: which lines a restart keeps.

A line is kept only when it is exactly one entry (or one line of missing counts right
before its entry) of the documented shape; whatever else a crash or a hand left in the
index is dropped, and the ids and answers of the good lines around it are kept, however
the index is read (in one block or in pieces, checked whole or line by line).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.ingest import sink_recovery
from services.ingest.sink import StoredBatch
from tests.unit.ingest.sink_testing import DAY, NOON, SinkFactory, batch, index_lines, stored_index

NAME = f"{DAY}.ndjson"


def _index(sink_dir: Path) -> Path:
    return sink_dir / ".index" / f"{DAY}.idx"


def _entry(batch_id: str, *fields: Any) -> bytes:
    return orjson.dumps([batch_id, *fields]) + b"\n"


def test_a_line_of_counts_whose_entry_is_another_batchs_is_dropped(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    index, lines = stored_index(make_sink, sink_dir, "abc")
    # Counts of a batch "x" whose entry never made it, with c's entry after them.
    index.write_bytes(lines[0] + lines[1] + _entry("x", 9, 9, 9, 9) + lines[2])
    second = make_sink()
    assert [second.lookup(bid) for bid in "abc"] == [StoredBatch(3, 0)] * 3
    assert second.lookup("x") is None
    assert index.read_bytes() == b"".join(lines)


def test_counts_torn_off_at_the_end_of_a_read_do_not_go_to_the_next_entry(
    make_sink: SinkFactory, sink_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, lines = stored_index(make_sink, sink_dir)
    stray = _entry("x", 9, 9, 9, 9)
    index.write_bytes(lines[0] + stray + lines[1])
    # One read ends with the stray counts; the next one opens with b's entry.
    monkeypatch.setattr(sink_recovery, "_BLOCK", len(lines[0] + stray))
    second = make_sink()
    assert (second.lookup("a"), second.lookup("b")) == (StoredBatch(3, 0), StoredBatch(3, 0))
    assert index.read_bytes() == b"".join(lines)


def test_a_damaged_line_of_counts_is_dropped_and_its_entry_kept(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    first = make_sink()
    first.append("a", batch("a"), StoredBatch(3, 0, (1, 0, 0, 0)))
    first.append("b", batch("b"), StoredBatch(3, 0, (0, 2, 0, 0)))
    first.append("c", batch("c"), StoredBatch(3, 0))
    first.close()
    index = _index(sink_dir)
    lines = index.read_bytes().splitlines(keepends=True)  # a's counts, a, b's counts, b, c
    assert orjson.loads(lines[0]) == ["a", 1, 0, 0, 0]
    damaged = _entry("a", -1, 0, 0, 0)
    index.write_bytes(damaged + b"".join(lines[1:]))
    second = make_sink()
    # The entry is still answered, without counts nobody can trust.
    assert [second.lookup(bid) for bid in "abc"] == [
        StoredBatch(3, 0),
        StoredBatch(3, 0, (0, 2, 0, 0)),
        StoredBatch(3, 0),
    ]
    assert index.read_bytes() == b"".join(lines[1:])


_END = len(batch("a"))
SHAPES = {
    "one-item-too-many": _entry("bad", 3, 0, NAME, 0, _END, NOON, "extra"),
    "accepted-as-text": _entry("bad", "3", 0, NAME, 0, _END, NOON),
    "rejected-as-float": _entry("bad", 3, 0.5, NAME, 0, _END, NOON),
    "start-as-float": _entry("bad", 3, 0, NAME, 0.5, _END, NOON),
    "end-as-bool": _entry("bad", 3, 0, NAME, 0, True, NOON),
    "time-as-text": _entry("bad", 3, 0, NAME, 0, _END, "noon"),
    # Two entries on one line: the newline between them is gone.
    "two-on-one-line": _entry("bad", 3, 0, NAME, 0, _END, NOON).replace(b"\n", b",")
    + _entry("bad too", 3, 0, NAME, 0, _END, NOON),
}


@pytest.mark.parametrize("line", SHAPES.values(), ids=SHAPES.keys())
def test_an_entry_of_a_shape_this_sink_does_not_write_is_dropped(
    make_sink: SinkFactory, sink_dir: Path, line: bytes
) -> None:
    index, lines = stored_index(make_sink, sink_dir)
    # Alone among good lines: the block passes or fails on this line only.
    index.write_bytes(lines[0] + line + lines[1])
    second = make_sink()
    assert index.read_bytes() == b"".join(lines)
    assert [second.lookup(bid) for bid in "ab"] == [StoredBatch(3, 0)] * 2
    assert (second.lookup("bad"), second.lookup("bad too")) == (None, None)


def test_batches_in_two_data_files_of_a_day_all_survive_a_restart(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    first = make_sink(max_file_bytes=500)
    for bid in "abcd":
        first.append(bid, batch(bid), StoredBatch(3, 0))
    first.close()
    files = {p.name: p.read_bytes() for p in sink_dir.glob("*.ndjson")}
    assert files == {NAME: batch("a") + batch("b"), f"{DAY}.1.ndjson": batch("c") + batch("d")}
    second = make_sink(max_file_bytes=500)
    assert {p.name: p.read_bytes() for p in sink_dir.glob("*.ndjson")} == files
    assert [second.lookup(bid) for bid in "abcd"] == [StoredBatch(3, 0)] * 4


def test_ids_with_spaces_next_to_a_bad_line_are_kept(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    ids = ["order 1", "order\t2", "order 3"]
    first = make_sink()
    for bid in ids:
        first.append(bid, batch("x"), StoredBatch(3, 0))
    first.close()
    index = _index(sink_dir)
    lines = index.read_bytes().splitlines(keepends=True)
    index.write_bytes(lines[0] + b"{not json}\n" + lines[1] + lines[2])
    second = make_sink()
    assert [e[0] for e in index_lines(sink_dir)] == ids
    assert [second.lookup(bid) for bid in ids] == [StoredBatch(3, 0)] * 3


def test_a_zeroed_run_in_a_large_index_is_one_dropped_line(
    make_sink: SinkFactory, sink_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # After a power loss some file systems show a run of zero bytes where a write was lost.
    first = make_sink(durability="none")
    ids = [f"id-{i}" for i in range(200)]
    for bid in ids:
        first.append(bid, b'{"a": 1}\n', StoredBatch(1, 0))
    first.close()
    index = _index(sink_dir)
    lines = index.read_bytes().splitlines(keepends=True)
    index.write_bytes(b"".join(lines[:150]) + b"\x00" * 40 + b"\n" + b"".join(lines[150:]))
    with caplog.at_level(logging.INFO, logger="services.ingest.sink"):
        caplog.clear()  # only this start-up, whatever the earlier ones logged
        second = make_sink()
    [event] = [r.__dict__ for r in caplog.records if r.__dict__.get("event") == "sink_open"]
    assert (event["dropped_index_lines"], event["loaded"]) == (1, 200)
    assert all(second.lookup(bid) == StoredBatch(1, 0) for bid in ids)
    assert index.read_bytes() == b"".join(lines)
