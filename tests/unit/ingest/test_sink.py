"""The NDJSON sink: rotation, whole batches, idempotency across restarts, concurrency.

Crash repair at start-up is tested in ``test_sink_recovery.py``, the fsyncs of each
durability mode in ``test_sink_durability.py``, disk failures and readiness in
``test_sink_failures.py``.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.config import SinkConfig
from services.ingest import sink_recovery
from services.ingest.sink import NdjsonSink, StoredBatch
from tests.unit.ingest.sink_testing import (
    DAY,
    NOON,
    Clock,
    Recorder,
    SinkFactory,
    batch,
    data_files,
    index_lines,
    records,
)

ROOT = Path(__file__).resolve().parents[2]


# -- rotation and whole batches -------------------------------------------------------------


def test_files_rotate_by_utc_day_of_the_clock(make_sink: SinkFactory, sink_dir: Path) -> None:
    clock = Clock(NOON + 12 * 3600 - 1)  # 23:59:59
    sink = make_sink(clock)
    assert sink.append("before", batch("before"), StoredBatch(3, 0)) is None
    clock.now += 2
    assert sink.append("after", batch("after"), StoredBatch(3, 0)) is None
    assert [p.name for p in data_files(sink_dir)] == ["20250301.ndjson", "20250302.ndjson"]
    assert {r["batch"] for r in records(sink_dir)} == {"before", "after"}
    assert (sink_dir / "20250302.ndjson").read_bytes() == batch("after")
    assert [e[0] for e in index_lines(sink_dir, "20250302")] == ["after"]


def test_size_rotation_never_splits_a_batch(make_sink: SinkFactory, sink_dir: Path) -> None:
    sink = make_sink(max_file_bytes=1000)
    ids = [f"b{i}" for i in range(8)]
    for bid in ids:
        sink.append(bid, batch(bid, lines=4), StoredBatch(4, 0))  # 264 bytes each
    sink.append("huge", batch("huge", lines=40), StoredBatch(40, 0))
    sink.append("after", batch("after"), StoredBatch(3, 0))
    files = data_files(sink_dir)
    assert [p.name for p in files][:3] == [f"{DAY}.ndjson", f"{DAY}.1.ndjson", f"{DAY}.2.ndjson"]
    for path in files:
        content = path.read_bytes()
        in_file = [json.loads(line)["batch"] for line in content.splitlines()]
        if in_file != ["huge"] * 40:
            assert len(content) <= 1000
        # Each batch sits whole, in order, in exactly one file.
        for bid in set(in_file):
            assert path.read_bytes().count(batch(bid, lines=in_file.count(bid))) == 1
    huge = next(p for p in files if b'"huge"' in p.read_bytes())
    assert huge.read_bytes() == batch("huge", lines=40)
    assert [r["batch"] for r in records(sink_dir)] == [
        *(b for b in ids for _ in range(4)),
        *["huge"] * 40,
        *["after"] * 3,
    ]


def test_an_all_rejected_batch_is_remembered_without_data(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    sink = make_sink()
    assert sink.append("empty", b"", StoredBatch(0, 7)) is None
    assert sink.append("empty", b"", StoredBatch(0, 7)) == StoredBatch(0, 7)
    assert records(sink_dir) == []


def test_bad_arguments_are_refused(make_sink: SinkFactory) -> None:
    sink = make_sink()
    id_rule = r"^batch_id must be 1 to 128 characters$"
    with pytest.raises(ValueError, match=id_rule):
        sink.append("", batch("x"), StoredBatch(3, 0))
    with pytest.raises(ValueError, match=id_rule):
        sink.append("x" * 129, batch("x"), StoredBatch(3, 0))
    with pytest.raises(ValueError, match=r"^data must be complete NDJSON lines$"):
        sink.append("torn", b'{"a": 1}', StoredBatch(1, 0))
    with pytest.raises(ValueError):
        sink.append("\ud800", batch("x"), StoredBatch(3, 0))
    assert sink.lookup("torn") is None


def test_an_id_of_the_full_128_characters_is_stored_and_remembered(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    # The gateway takes batch ids up to 128 characters: the longest must be kept too.
    longest = "x" * 128
    first = make_sink()
    assert first.append(longest, batch("long"), StoredBatch(3, 0)) is None
    first.close()
    again = make_sink()
    assert again.lookup(longest) == StoredBatch(3, 0)
    assert again.append(longest, batch("long"), StoredBatch(3, 0)) == StoredBatch(3, 0)
    assert [e[0] for e in index_lines(sink_dir)] == [longest]


# -- idempotency ----------------------------------------------------------------------------


def test_duplicate_answers_the_first_counts_and_writes_nothing(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    observer = Recorder()
    sink = make_sink(observer=observer)
    assert sink.lookup("b1") is None
    assert sink.append("b1", batch("b1"), StoredBatch(3, 1)) is None
    size = (sink_dir / f"{DAY}.ndjson").stat().st_size
    assert sink.lookup("b1") == StoredBatch(3, 1)
    assert sink.append("b1", batch("b1", lines=9), StoredBatch(9, 0)) == StoredBatch(3, 1)
    assert (sink_dir / f"{DAY}.ndjson").stat().st_size == size
    assert len(index_lines(sink_dir)) == 1
    assert observer.written == [len(batch("b1"))]


ODD_IDS = ["plain", "tab\there", "new\nline", 'quote"s', "back\\slash", "zażółć-日本", "\u2028x"]


def test_idempotency_survives_a_restart(make_sink: SinkFactory, sink_dir: Path) -> None:
    first = make_sink()
    for n, bid in enumerate(ODD_IDS):
        first.append(bid, batch(str(n)), StoredBatch(3, n))
    first.close()
    second = make_sink()
    for n, bid in enumerate(ODD_IDS):
        assert second.lookup(bid) == StoredBatch(3, n)
        assert second.append(bid, batch("again"), StoredBatch(3, 0)) == StoredBatch(3, n)
    assert all(r["batch"] != "again" for r in records(sink_dir))
    assert [e[0] for e in index_lines(sink_dir)] == ODD_IDS


def test_opening_logs_the_folder_the_mode_and_what_start_up_found(
    make_sink: SinkFactory, sink_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = make_sink()
    for bid in "ab":
        first.append(bid, batch(bid), StoredBatch(3, 0))
    first.close()
    caplog.clear()  # the first open is logged too where logging is set up to show INFO
    with caplog.at_level(logging.INFO, logger="services.ingest.sink"):
        make_sink(durability="none")
    (record,) = [r for r in caplog.records if r.__dict__.get("event") == "sink_open"]
    keys = ("sink_dir", "durability", "loaded", "dropped_index_lines", "truncated_bytes")
    assert {key: record.__dict__[key] for key in keys} == {
        "sink_dir": str(sink_dir),
        "durability": "none",
        "loaded": 2,
        "dropped_index_lines": 0,
        "truncated_bytes": 0,
    }


def test_ids_older_than_the_window_are_not_loaded_at_restart(make_sink: SinkFactory) -> None:
    clock = Clock()
    first = make_sink(clock, dedup_window_sec=3600)
    first.append("old", batch("old"), StoredBatch(3, 0))
    clock.now += 1800
    first.append("new", batch("new"), StoredBatch(3, 0))
    first.close()
    clock.now += 1801
    reopened = make_sink(clock, dedup_window_sec=3600)
    assert reopened.lookup("old") is None
    assert reopened.lookup("new") == StoredBatch(3, 0)
    assert reopened.append("old", batch("old"), StoredBatch(3, 0)) is None


def test_the_id_cap_evicts_oldest_first(make_sink: SinkFactory) -> None:
    sink = make_sink(dedup_max_ids=3)
    for i in range(5):
        sink.append(f"b{i}", batch(f"b{i}"), StoredBatch(3, 0))
    assert [sink.lookup(f"b{i}") is not None for i in range(5)] == [False, False, True, True, True]
    sink.close()
    reopened = make_sink(dedup_max_ids=3)
    assert [reopened.lookup(f"b{i}") is not None for i in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]


def test_an_id_stored_twice_answers_its_latest_counts_after_restart(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    # Possible when an id comes back after the cap forgot it; bulk and line-by-line loads agree.
    for count in (3, 300):
        first = make_sink(dedup_max_ids=1, durability="none")
        first.append("twice", batch("1"), StoredBatch(3, 1))
        for i in range(count):
            first.append(f"other-{count}-{i}", b"", StoredBatch(0, 1))
        first.append("twice", batch("2"), StoredBatch(3, 2))
        first.close()
        assert make_sink().lookup("twice") == StoredBatch(3, 2)
        (sink_dir / ".index" / f"{DAY}.idx").unlink()
        for path in data_files(sink_dir):
            path.unlink()


def test_yesterdays_ids_are_loaded_inside_the_window(make_sink: SinkFactory) -> None:
    clock = Clock()
    make_sink(clock).append("yesterday", batch("y"), StoredBatch(3, 0))
    clock.now += 86_400 - 60
    assert make_sink(clock).lookup("yesterday") == StoredBatch(3, 0)


MISSING = [(1, 0, 2, 0), (0, 0, 0, 0), (70_000, 1, 0, 3), (0, 5, 0, 0)]


@pytest.mark.parametrize("block", [97, 1 << 20], ids=["small-blocks", "one-block"])
@pytest.mark.parametrize("damaged", [False, True], ids=["clean", "damaged"])
def test_missing_counts_are_answered_again_also_after_a_restart(
    make_sink: SinkFactory,
    sink_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    block: int,
    damaged: bool,
) -> None:
    first = make_sink(durability="none")
    answers = {f"b{i}": StoredBatch(3, i % 2, MISSING[i % 4]) for i in range(300)}
    for bid, answer in answers.items():
        assert first.append(bid, batch(bid, lines=1), answer) is None
        assert first.lookup(bid) == answer
    assert first.append("b2", batch("x"), StoredBatch(1, 0)) == answers["b2"]
    first.close()
    index = sink_dir / ".index" / f"{DAY}.idx"
    lines = index.read_bytes().splitlines(keepends=True)
    assert [json.loads(line)[1:] for line in lines[3:5]] == [
        [70_000, 1, 0, 3],
        [3, 0, "20250301.ndjson", 2 * len(batch("b0", 1)), 3 * len(batch("b0", 1)), NOON],
    ]
    if damaged:  # start-up then checks the lines around it one by one
        index.write_bytes(b"".join(lines[:200]) + b"{bad\n" + b"".join(lines[200:]))
    # Small reads split a batch's two lines between blocks.
    monkeypatch.setattr(sink_recovery, "_BLOCK", block)
    second = make_sink()
    assert {bid: second.lookup(bid) for bid in answers} == answers
    assert index.read_bytes() == b"".join(lines)


@settings(max_examples=40, deadline=None)
@given(
    missing=st.lists(st.sampled_from(MISSING), min_size=1, max_size=60),
    block=st.integers(16, 400),
    bad_at=st.integers(0, 200),
)
def test_any_read_size_and_a_bad_line_anywhere_keep_every_answer(
    missing: list[tuple[int, int, int, int]], block: int, bad_at: int
) -> None:
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        cfg = SinkConfig(dir=folder, durability="none")
        first = NdjsonSink(cfg, clock=Clock())
        first.open()
        answers = {f"b{i}": StoredBatch(1, 0, m) for i, m in enumerate(missing)}
        for bid, answer in answers.items():
            first.append(bid, batch(bid, lines=1), answer)
        first.close()
        index = Path(folder) / ".index" / f"{DAY}.idx"
        lines = index.read_bytes().splitlines(keepends=True)
        at = bad_at % (len(lines) + 1)
        index.write_bytes(b"".join(lines[:at]) + b"[1,2]\n" + b"".join(lines[at:]))
        patch.setattr(sink_recovery, "_BLOCK", block)
        second = NdjsonSink(cfg, clock=Clock())
        second.open()
        assert {bid: second.lookup(bid) for bid in answers} == answers
        assert index.read_bytes() == b"".join(lines)
        second.close()


def test_an_index_of_the_previous_version_still_loads(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    (sink_dir / ".index").mkdir(parents=True)
    (sink_dir / f"{DAY}.ndjson").write_bytes(batch("a") + batch("b"))
    end = len(batch("a"))
    (sink_dir / ".index" / f"{DAY}.idx").write_bytes(
        b'["a",3,0,"20250301.ndjson",0,%d,1740830400.0]\n'
        b'["b",2,1,"20250301.ndjson",%d,%d,1740830400.5]\n' % (end, end, 2 * end)
    )
    sink = make_sink()
    assert (sink.lookup("a"), sink.lookup("b")) == (StoredBatch(3, 0), StoredBatch(2, 1))
    assert sink.lookup("b") == StoredBatch(2, 1, (0, 0, 0, 0))


@pytest.mark.parametrize("tail", [b'["b",3,0,"2025', b""], ids=["torn-entry", "no-entry"])
def test_missing_counts_without_their_entry_are_dropped(
    make_sink: SinkFactory, sink_dir: Path, tail: bytes
) -> None:
    first = make_sink()
    first.append("a", batch("a"), StoredBatch(3, 0, (1, 1, 1, 1)))
    first.close()
    index = sink_dir / ".index" / f"{DAY}.idx"
    kept = index.read_bytes()
    with index.open("ab") as fh:  # b's counts made it to the disk, its entry did not
        fh.write(b'["b",3,0,0,0]\n' + tail)
    second = make_sink()
    assert index.read_bytes() == kept
    assert second.lookup("b") is None
    # Stored again without missing fields, b must not inherit the lost line's counts.
    assert second.append("b", batch("b"), StoredBatch(3, 0)) is None
    second.close()
    third = make_sink()
    assert [third.lookup(bid) for bid in "ab"] == [
        StoredBatch(3, 0, (1, 1, 1, 1)),
        StoredBatch(3, 0),
    ]


def test_missing_counts_followed_by_another_entry_are_dropped(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    first = make_sink()
    for bid in "abc":
        first.append(bid, batch(bid), StoredBatch(3, 0, (0, 0, 3, 0)))
    first.close()
    index = sink_dir / ".index" / f"{DAY}.idx"
    lines = index.read_bytes().splitlines(keepends=True)
    index.write_bytes(b"".join(lines[:2]) + b'["x",1,2,3,4]\n' + b"".join(lines[2:]))
    second = make_sink()
    assert index.read_bytes() == b"".join(lines)
    assert all(second.lookup(bid) == StoredBatch(3, 0, (0, 0, 3, 0)) for bid in "abc")


# -- concurrency ----------------------------------------------------------------------------


def test_eight_threads_write_every_line_once_and_whole(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
    sink = make_sink(max_file_bytes=20_000)
    per_thread, lines = 40, 10
    answers: dict[str, list[StoredBatch | None]] = {}
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(per_thread):
            # Every id is also sent by a second thread: one stores it, one hears duplicate.
            for bid in (f"t{t}-{i}", f"t{(t + 1) % 8}-{i}"):
                result = sink.append(bid, batch(bid, lines), StoredBatch(lines, 0))
                with lock:
                    answers.setdefault(bid, []).append(result)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(sorted(a, key=str) == [None, StoredBatch(lines, 0)] for a in answers.values())
    seen: list[str] = []
    for path in data_files(sink_dir):
        found = [json.loads(line) for line in path.read_bytes().splitlines()]
        # Lines of one batch are contiguous and in order: no interleaving.
        for start in range(0, len(found), lines):
            chunk = found[start : start + lines]
            assert [r["i"] for r in chunk] == list(range(lines))
            assert len({r["batch"] for r in chunk}) == 1
            seen.append(chunk[0]["batch"])
    assert sorted(seen) == sorted(answers)
    assert len(data_files(sink_dir)) > 1
