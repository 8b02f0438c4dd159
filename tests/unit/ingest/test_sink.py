"""The NDJSON sink: rotation, whole batches, idempotency across restarts, repair, failures."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.config import SinkConfig
from services.ingest import sink_recovery
from services.ingest.sink import NdjsonSink, SinkError, StoredBatch

ROOT = Path(__file__).resolve().parents[2]
# 2025-03-01 12:00:00 UTC
NOON = 1_740_830_400.0
DAY = "20250301"


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A SinkObserver that remembers every call."""

    def __init__(self) -> None:
        self.written: list[int] = []
        self.errors = 0
        self.fsyncs: list[float] = []

    def sink_written(self, nbytes: int) -> None:
        self.written.append(nbytes)

    def sink_error(self) -> None:
        self.errors += 1

    def sink_fsync(self, seconds: float) -> None:
        self.fsyncs.append(seconds)


SinkFactory = Callable[..., NdjsonSink]


@pytest.fixture
def sink_dir(tmp_path: Path) -> Path:
    return tmp_path / "sink"


@pytest.fixture
def make_sink(sink_dir: Path) -> Iterator[SinkFactory]:
    opened: list[NdjsonSink] = []

    def make(
        clock: Clock | None = None, observer: Recorder | None = None, **cfg: Any
    ) -> NdjsonSink:
        sink = NdjsonSink(SinkConfig(dir=str(sink_dir), **cfg), observer, clock or Clock())
        sink.open()
        opened.append(sink)
        return sink

    yield make
    for sink in opened:
        sink.close()


def batch(batch_id: str, lines: int = 3, width: int = 40) -> bytes:
    pad = "x" * width
    return b"".join(
        json.dumps({"batch": batch_id, "i": i, "pad": pad}).encode() + b"\n" for i in range(lines)
    )


def data_files(sink_dir: Path) -> list[Path]:
    def order(p: Path) -> tuple[str, int]:
        parts = p.name.split(".")
        return parts[0], int(parts[1]) if len(parts) == 3 else 0

    return sorted(sink_dir.glob("*.ndjson"), key=order)


def records(sink_dir: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in data_files(sink_dir):
        raw = path.read_bytes()
        assert raw == b"" or raw.endswith(b"\n"), f"torn last line in {path.name}"
        out.extend(json.loads(line) for line in raw.splitlines())
    return out


def index_lines(sink_dir: Path, day: str = DAY) -> list[list[Any]]:
    path = sink_dir / ".index" / f"{day}.idx"
    return [json.loads(line) for line in path.read_bytes().splitlines()]


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
        *(b for b in ids for _ in range(4)), *["huge"] * 40, *["after"] * 3,
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
    with pytest.raises(ValueError):
        sink.append("", batch("x"), StoredBatch(3, 0))
    with pytest.raises(ValueError):
        sink.append("x" * 129, batch("x"), StoredBatch(3, 0))
    with pytest.raises(ValueError):
        sink.append("torn", b'{"a": 1}', StoredBatch(1, 0))
    with pytest.raises(ValueError):
        sink.append("\ud800", batch("x"), StoredBatch(3, 0))
    assert sink.lookup("torn") is None


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


def test_idempotency_survives_a_restart(
    make_sink: SinkFactory, sink_dir: Path
) -> None:
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
        False, False, True, True, True,
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
        StoredBatch(3, 0, (1, 1, 1, 1)), StoredBatch(3, 0),
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
    first = make_sink()
    for bid in "ab":
        first.append(bid, batch(bid), StoredBatch(3, 0))
    first.close()
    index = sink_dir / ".index" / f"{DAY}.idx"
    lines = index.read_bytes().splitlines(keepends=True)
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
        capture_output=True, text=True, check=True, cwd=ROOT, timeout=60,
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
    with pytest.raises(SinkError):
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
    with pytest.raises(SinkError):
        sink.open()
    assert sink.check_writable() == "sink not open"


# -- durability modes -----------------------------------------------------------------------


def test_batch_mode_fsyncs_before_returning(make_sink: SinkFactory) -> None:
    observer = Recorder()
    sink = make_sink(observer=observer, durability="batch")
    sink.append("a", batch("a"), StoredBatch(3, 0))
    # Data file, index file and both new directory entries.
    assert len(observer.fsyncs) >= 4
    before = len(observer.fsyncs)
    sink.append("b", batch("b"), StoredBatch(3, 0))
    assert len(observer.fsyncs) - before == 2


def test_interval_mode_fsyncs_in_the_background(make_sink: SinkFactory) -> None:
    observer = Recorder()
    sink = make_sink(observer=observer, durability="interval", fsync_interval_ms=10)
    sink.append("a", batch("a"), StoredBatch(3, 0))
    after_append = len(observer.fsyncs)
    deadline = time.monotonic() + 10
    while len(observer.fsyncs) < after_append + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(observer.fsyncs) >= after_append + 2


def test_none_mode_never_fsyncs(make_sink: SinkFactory, sink_dir: Path) -> None:
    observer = Recorder()
    sink = make_sink(observer=observer, durability="none", max_file_bytes=300)
    for i in range(20):
        sink.append(f"b{i}", batch(f"b{i}"), StoredBatch(3, 0))
    sink.close()
    assert observer.fsyncs == []
    assert len(observer.written) == 20
    assert len(records(sink_dir)) == 60


def test_unknown_durability_is_refused(sink_dir: Path) -> None:
    with pytest.raises(ValueError):
        NdjsonSink(SinkConfig(dir=str(sink_dir), durability="sometimes"))


def test_append_after_close_is_a_sink_error(make_sink: SinkFactory) -> None:
    sink = make_sink()
    sink.close()
    with pytest.raises(SinkError):
        sink.append("a", batch("a"), StoredBatch(3, 0))
