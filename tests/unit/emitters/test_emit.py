"""The emit loop to a real file: every record once, in seq order, with an honest account."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.files import FileTransport, StdoutTransport
from emitters.content import ContentOptions
from emitters.emit import EmitLoop, EmitOptions, Progress, stderr_progress
from emitters.formats import get_format
from emitters.rate import Schedule
from emitters.source import Accounting, EventSource


def _loop(path: Path, schedule: Schedule, fmt: str = "json", **opts: object) -> EmitLoop:
    source = EventSource(get_format(fmt), ContentOptions(), Accounting("run-9", "f#0"), seed=4)
    options = EmitOptions("file-emitter", batched=False, **opts)  # type: ignore[arg-type]
    return EmitLoop(source, schedule, FileTransport(path), options, transport_name="file")


def _lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_count_records_reach_the_file_once_each_in_seq_order(tmp_path: Path) -> None:
    path = tmp_path / "out" / "emit.log"
    loop = _loop(path, Schedule.constant(5000.0, count=1234), batch_size=100)
    result = loop.run()
    loop.transport.close()
    lines = _lines(path)
    assert [line["seq"] for line in lines] == list(range(1234))
    assert {(line["run_id"], line["stream"]) for line in lines} == {("run-9", "f#0")}
    assert (result.sent, result.accepted, result.rejected, result.failed) == (1234, 1234, 0, 0)
    assert result.due == 1234
    assert result.batches >= 13  # never more than batch_size per batch
    assert result.stop_reason == "done"
    assert result.ok


def test_a_low_rate_flows_in_small_batches_by_linger(tmp_path: Path) -> None:
    loop = _loop(tmp_path / "e.log", Schedule.constant(50.0, count=10), linger_sec=0.005)
    result = loop.run()
    # 20 ms between events and 5 ms of linger: the events do not wait for a batch of 100
    # (each goes alone unless the machine stalls the loop past the next event).
    assert result.batches > 1
    assert result.sent == result.accepted == 10


def test_a_stop_sends_what_was_due_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    loop = _loop(path, Schedule.constant(1000.0), linger_sec=0.01)
    stop = threading.Event()
    readings: list[Progress] = []
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    result = loop.run(stop, progress=readings.append, progress_every=0.1)
    loop.transport.close()
    assert result.stop_reason == "signal"
    assert result.sent == result.due == len(_lines(path)) > 0
    assert result.accepted == result.sent
    assert readings[-1].result is result


def test_progress_lines_name_the_counters() -> None:
    out = io.StringIO()
    loop = EmitLoop(
        EventSource(get_format("csv"), ContentOptions(), Accounting("r", "s"), seed=1),
        Schedule.constant(10_000.0, count=10),
        StdoutTransport(io.BytesIO()),
        EmitOptions("e", batched=False),
    )
    result = loop.run(progress=stderr_progress(out))
    assert "target" in out.getvalue()
    assert "sent 10" in out.getvalue()
    # How many were late depends on the machine's load; the line says what the run counted.
    assert f"late {result.late}" in out.getvalue()


def test_a_closed_output_ends_the_run() -> None:
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    pipe = os.fdopen(write_fd, "wb", buffering=0)
    try:
        loop = EmitLoop(
            EventSource(get_format("json"), ContentOptions(), Accounting("r", "s"), seed=1),
            Schedule.constant(1000.0),
            StdoutTransport(pipe),
            EmitOptions("e", batched=False, batch_size=10),
        )
        result = loop.run()
    finally:
        with contextlib.suppress(OSError):
            pipe.close()
    assert result.stop_reason == "output_closed"
    assert result.failed == 10
    assert not result.ok


@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(1, 300),
    batch_size=st.integers(1, 64),
    linger_ms=st.floats(0.0, 5.0),
    first_seq=st.integers(0, 2**40),
)
def test_any_batching_delivers_each_seq_once_in_order(
    count: int, batch_size: int, linger_ms: float, first_seq: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.log"
        source = EventSource(
            get_format("json"),
            ContentOptions(),
            Accounting("r", "s", first_seq),
            seed=1,
            pool_size=16,
        )
        opts = EmitOptions("e", batch_size=batch_size, linger_sec=linger_ms / 1000, batched=False)
        transport = FileTransport(path)
        result = EmitLoop(source, Schedule.constant(20_000.0, count=count), transport, opts).run()
        transport.close()
        seqs = [line["seq"] for line in _lines(path)]
    assert seqs == list(range(first_seq, first_seq + count))
    assert result.sent == result.accepted == count
    assert result.batches >= -(-count // batch_size)
    assert result.ok


class _StallingFile(FileTransport):
    """A file whose first write stalls for longer than the whole schedule."""

    def __init__(self, path: Path, stall_sec: float) -> None:
        super().__init__(path)
        self._stall = stall_sec

    def send(self, batch):  # type: ignore[no-untyped-def]
        stall, self._stall = self._stall, 0.0
        threading.Event().wait(stall)
        return super().send(batch)


def test_a_far_end_slower_than_the_schedule_shows_in_the_achieved_rate(tmp_path: Path) -> None:
    """Everything due is still sent (late, after the window), but the achieved rate and the
    on-time count say the schedule was not met instead of averaging the overrun away."""
    source = EventSource(get_format("json"), ContentOptions(), Accounting("r", "s"), seed=4)
    options = EmitOptions("e", batched=False, batch_size=10)
    path = tmp_path / "e.log"
    loop = EmitLoop(source, Schedule.constant(100.0, count=100), _StallingFile(path, 1.5), options)
    result = loop.run()
    loop.transport.close()
    assert result.sent == len(_lines(path)) == 100
    assert result.window_sec == pytest.approx(result.elapsed_sec - result.overrun_sec)
    assert result.overrun_sec > 0
    assert result.sent_on_time < result.sent  # the first batch only went on time
    assert result.achieved_eps < result.target_eps
    assert result.late >= 90
