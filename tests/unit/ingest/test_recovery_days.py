"""Crash repair at start-up across days and folder contents, and the start-up report.

Which days a restart repairs (those inside the deduplication window, and the newest), what
it leaves alone (older days, names the sink never writes, links), and the counts of the
``sink_open`` event an operator reads after a crash.
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from services.ingest.batch_index import DAY_SEC, day_of
from services.ingest.sink import StoredBatch
from tests.unit.ingest.sink_testing import DAY, NOON, Clock, SinkFactory, batch

TORN = b'{"batch": "torn", "i": 0, "pa'


def _store(make_sink: SinkFactory, when: float, ids: str, **cfg: Any) -> str:
    """Store one batch per letter of ``ids`` at ``when``; the day's name."""
    sink = make_sink(clock=Clock(when), **cfg)
    for bid in ids:
        assert sink.append(bid, batch(bid), StoredBatch(3, 0)) is None
    sink.close()
    return day_of(when)


def _tear(path: Path, tail: bytes = TORN) -> bytes:
    """Append what a crash left half written; the bytes the file held before."""
    before = path.read_bytes()
    with path.open("ab") as fh:
        fh.write(tail)
    return before


def _open_event(caplog: pytest.LogCaptureFixture) -> dict[str, Any]:
    [event] = [r.__dict__ for r in caplog.records if r.__dict__.get("event") == "sink_open"]
    return event


# -- which days a restart repairs -----------------------------------------------------------


def test_days_inside_the_window_are_repaired_and_answered(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    # With the default window of a day, yesterday afternoon is still inside it at noon.
    yesterday = _store(make_sink, NOON - DAY_SEC + 3600, "ab")
    _store(make_sink, NOON, "c")
    old = _tear(sink_dir / f"{yesterday}.ndjson")
    sink = make_sink()
    assert (sink_dir / f"{yesterday}.ndjson").read_bytes() == old
    assert [sink.lookup(bid) for bid in "abc"] == [StoredBatch(3, 0)] * 3


def test_days_before_the_window_are_left_as_they_are(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    old_days = [_store(make_sink, NOON - back * DAY_SEC, f"{back}") for back in (3, 2)]
    _store(make_sink, NOON, "a")
    # Start-up does not read (nor cut) what is past the window: retention deals with it.
    kept = {day: _tear(sink_dir / f"{day}.ndjson") + TORN for day in old_days}
    today = _tear(sink_dir / f"{DAY}.ndjson")
    sink = make_sink()
    assert {day: (sink_dir / f"{day}.ndjson").read_bytes() for day in old_days} == kept
    assert (sink_dir / f"{DAY}.ndjson").read_bytes() == today
    assert [sink.lookup(bid) for bid in "32"] == [None, None]
    assert sink.lookup("a") == StoredBatch(3, 0)


def test_a_day_that_ended_exactly_at_the_window_start_is_left_alone(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    yesterday = _store(make_sink, NOON - DAY_SEC, "a")
    _store(make_sink, NOON, "b")
    kept = _tear(sink_dir / f"{yesterday}.ndjson") + TORN
    # A 12-hour window at noon starts at midnight, the very end of yesterday.
    sink = make_sink(dedup_window_sec=12 * 3600)
    assert (sink_dir / f"{yesterday}.ndjson").read_bytes() == kept
    assert (sink.lookup("a"), sink.lookup("b")) == (None, StoredBatch(3, 0))


def test_the_newest_day_is_repaired_even_when_older_than_the_window(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    # The gateway was down for days: the last day it wrote is still where a crash tore it.
    days = [_store(make_sink, NOON - back * DAY_SEC, f"{back}") for back in (5, 4, 3)]
    kept = {day: _tear(sink_dir / f"{day}.ndjson") + TORN for day in days[:2]}
    newest = _tear(sink_dir / f"{days[2]}.ndjson")
    sink = make_sink()
    assert {day: (sink_dir / f"{day}.ndjson").read_bytes() for day in days[:2]} == kept
    assert (sink_dir / f"{days[2]}.ndjson").read_bytes() == newest
    assert sink.lookup("3") is None  # stored long before the window


# -- what else the folder holds -------------------------------------------------------------


def test_names_the_sink_never_writes_and_links_are_left_alone(
    make_sink: SinkFactory, sink_dir: Path, tmp_path: Path
) -> None:
    _store(make_sink, NOON, "a")
    outside = tmp_path / "elsewhere.ndjson"
    outside.write_bytes(b'{"a": 1}\n' + TORN)
    foreign = {
        sink_dir / "notes.txt": b"no newline",
        sink_dir / f"{DAY}.ndjson.gz": b"\x1f\x8b not a whole archive",
        sink_dir / "20251399.ndjson": b'{"not": "a real day"}\n' + TORN,
        sink_dir / ".index" / "notes.idx": b"[",
    }
    for path, content in foreign.items():
        path.write_bytes(content)
    (sink_dir / f"{DAY}.2.ndjson").symlink_to(outside)
    (sink_dir / f"{DAY}.3.ndjson").mkdir()
    today = _tear(sink_dir / f"{DAY}.ndjson")
    sink = make_sink()
    assert {path: path.read_bytes() for path in foreign} == foreign
    assert outside.read_bytes() == b'{"a": 1}\n' + TORN
    assert (sink_dir / f"{DAY}.2.ndjson").is_symlink()
    assert (sink_dir / f"{DAY}.ndjson").read_bytes() == today
    assert sink.lookup("a") == StoredBatch(3, 0)


def test_a_day_whose_data_files_are_gone_still_answers_its_ids(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    _store(make_sink, NOON, "ab", max_file_bytes=300)
    # Moved away by hand: the batches were acknowledged, so a retry must not store them again.
    for path in sink_dir.glob("*.ndjson"):
        path.unlink()
    sink = make_sink()
    assert [sink.lookup(bid) for bid in "ab"] == [StoredBatch(3, 0)] * 2
    assert sink.append("a", batch("a"), StoredBatch(3, 0)) == StoredBatch(3, 0)


# -- the start-up report --------------------------------------------------------------------


def test_the_start_up_report_counts_what_the_repair_changed(
    make_sink: SinkFactory, sink_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    yesterday = _store(make_sink, NOON - DAY_SEC + 3600, "ab")
    _store(make_sink, NOON, "cd")
    # Yesterday: a bad index line between two entries, a batch written but never indexed.
    index = sink_dir / ".index" / f"{yesterday}.idx"
    lines = index.read_bytes().splitlines(keepends=True)
    index.write_bytes(lines[0] + b"garbage\n" + lines[1])
    _tear(sink_dir / f"{yesterday}.ndjson", batch("lost"))
    # Today: a torn index line and a torn data line.
    _tear(sink_dir / ".index" / f"{DAY}.idx", b'["e",3,0,"2025')
    _tear(sink_dir / f"{DAY}.ndjson")
    with caplog.at_level(logging.INFO, logger="services.ingest.sink"):
        caplog.clear()  # only this start-up, whatever the earlier ones logged
        began = time.perf_counter()
        make_sink()
        took = time.perf_counter() - began
    event = _open_event(caplog)
    counts = {k: event[k] for k in ("loaded", "dropped_index_lines", "truncated_bytes")}
    assert counts == {
        "loaded": 4,
        "dropped_index_lines": 2,
        "truncated_bytes": len(batch("lost")) + len(TORN),
    }
    assert isinstance(event["seconds"], float) and 0 <= event["seconds"] <= took


def test_a_clean_start_reports_nothing_repaired(
    make_sink: SinkFactory, caplog: pytest.LogCaptureFixture
) -> None:
    _store(make_sink, NOON, "abc")
    with caplog.at_level(logging.INFO, logger="services.ingest.sink"):
        caplog.clear()  # only this start-up, whatever the earlier ones logged
        make_sink()
    event = _open_event(caplog)
    assert (event["loaded"], event["dropped_index_lines"], event["truncated_bytes"]) == (3, 0, 0)


@pytest.mark.parametrize("enabled", [True, False], ids=["gc-on", "gc-off"])
def test_start_up_leaves_the_garbage_collector_as_it_found_it(
    make_sink: SinkFactory, enabled: bool
) -> None:
    # Repair turns it off while it parses millions of lines; left off, cycles pile up forever.
    _store(make_sink, NOON, "ab")
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        make_sink()
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
