"""Durability modes of the NDJSON sink: which fsyncs happen before a push is acknowledged."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.common.config import SinkConfig
from services.ingest.sink import NdjsonSink, SinkError, StoredBatch
from tests.unit.ingest.sink_testing import (
    DAY,
    NOON,
    Clock,
    FsyncLog,
    Recorder,
    SinkFactory,
    batch,
    records,
)

ROOT = Path(__file__).resolve().parents[3]
DATA = f"sink/{DAY}.ndjson"
INDEX = f"sink/.index/{DAY}.idx"
# A file's creation is made durable by an fsync of its folder.
NEW_DAY = ["sink/.index", "sink"]

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


EXIT_WITHOUT_CLOSE = r"""
import sys
from services.common.config import SinkConfig
from services.ingest.sink import NdjsonSink, StoredBatch

cfg = SinkConfig(dir=sys.argv[1], durability="interval", fsync_interval_ms=3_600_000)
sink = NdjsonSink(cfg)
sink.open()
sink.append("a", b'{"msg": "x"}\n', StoredBatch(1, 0))
print("stored")
"""


def test_a_process_that_stops_without_closing_an_interval_sink_still_exits(
    sink_dir: Path,
) -> None:
    # A gateway stopping for another reason (an error at start-up, say) must not be kept
    # alive by the fsync thread, which only close() stops; the timeout is only a guard.
    out = subprocess.run(
        [sys.executable, "-c", EXIT_WITHOUT_CLOSE, str(sink_dir)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.stdout == "stored\n"
    assert [r["msg"] for r in records(sink_dir)] == ["x"]


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
    with pytest.raises(ValueError, match=r"^sink durability must be one of batch, interval, none$"):
        NdjsonSink(SinkConfig(dir=str(sink_dir), durability="sometimes"))


def test_append_after_close_is_a_sink_error(make_sink: SinkFactory) -> None:
    sink = make_sink()
    sink.close()
    with pytest.raises(SinkError, match=r"^the sink is not open$"):
        sink.append("a", batch("a"), StoredBatch(3, 0))


def push(sink: NdjsonSink, fsyncs: FsyncLog, batch_id: str) -> None:
    """One push, with its acknowledgement marked among the fsyncs."""
    assert sink.append(batch_id, batch(batch_id), StoredBatch(3, 0)) is None
    fsyncs.mark(f"ack {batch_id}")


def test_batch_mode_acknowledges_once_data_then_index_are_on_disk(
    make_sink: SinkFactory, fsyncs: FsyncLog
) -> None:
    sink = make_sink(durability="batch")
    assert fsyncs.take() == []  # a new, empty sink has nothing to repair
    push(sink, fsyncs, "a")
    # The day's files were created (their folders fsynced), then the batch written and
    # fsynced: its data first, so the index never points at data the disk lacks.
    assert fsyncs.take() == [*NEW_DAY, DATA, INDEX, "ack a"]
    push(sink, fsyncs, "b")
    assert fsyncs.take() == [DATA, INDEX, "ack b"]
    sink.close()
    assert fsyncs.take() == []  # nothing left unsynced


def test_batch_mode_makes_a_rotated_file_durable_before_acknowledging(
    make_sink: SinkFactory, fsyncs: FsyncLog
) -> None:
    sink = make_sink(durability="batch", max_file_bytes=300)
    push(sink, fsyncs, "a")
    fsyncs.take()
    push(sink, fsyncs, "b")
    assert fsyncs.take() == ["sink", f"sink/{DAY}.1.ndjson", INDEX, "ack b"]


def test_batch_mode_makes_the_next_days_files_durable_before_acknowledging(
    make_sink: SinkFactory, fsyncs: FsyncLog
) -> None:
    clock = Clock()
    sink = make_sink(clock, durability="batch")
    push(sink, fsyncs, "a")
    fsyncs.take()
    clock.now = NOON + 86_400
    push(sink, fsyncs, "b")
    assert fsyncs.take() == [*NEW_DAY, "sink/20250302.ndjson", "sink/.index/20250302.idx", "ack b"]


def test_interval_mode_acknowledges_before_the_fsync_and_close_catches_up(
    make_sink: SinkFactory, fsyncs: FsyncLog
) -> None:
    # An hour between rounds: within this test only close() fsyncs the batches.
    sink = make_sink(durability="interval", fsync_interval_ms=3_600_000)
    push(sink, fsyncs, "a")
    push(sink, fsyncs, "b")
    # New files are still made durable at once: a lost directory entry loses the file.
    assert fsyncs.take() == [*NEW_DAY, "ack a", "ack b"]
    sink.close()
    assert fsyncs.take() == [DATA, INDEX]


def test_none_mode_leaves_everything_to_the_page_cache(
    make_sink: SinkFactory, fsyncs: FsyncLog
) -> None:
    sink = make_sink(durability="none", max_file_bytes=300)
    for bid in ("a", "b", "c"):
        push(sink, fsyncs, bid)
    sink.close()
    assert fsyncs.take() == ["ack a", "ack b", "ack c"]


def test_each_fsync_is_timed_on_its_own(
    make_sink: SinkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    observer = Recorder()
    sink = make_sink(observer=observer, durability="batch")
    ticks = iter(range(0, 1000, 5))
    # A clock that moves 5 s between readings: each fsync is measured as one step.
    monkeypatch.setattr(time, "perf_counter", lambda: float(next(ticks)))
    sink.append("a", batch("a"), StoredBatch(3, 0))
    assert observer.fsyncs == [5.0] * 4
