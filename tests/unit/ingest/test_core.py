"""The Ingest core without any front: admission, validation, idempotency, metrics."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from services.common.config import load_config
from services.common.errors import (
    BadRequest,
    RequestTimeout,
    TooLarge,
    Unauthenticated,
    Unavailable,
)
from services.common.model import Batch, PushResult
from services.common.nonces import MemoryNonceStore
from services.common.signing import Verifier, sign_headers
from services.ingest import core as core_module
from services.ingest.core import IncomingPush, IngestCore
from services.ingest.metrics import IngestMetrics
from services.ingest.sink import NdjsonSink, SinkError, StoredBatch
from tests.signing_testing import KEY, make_keyring


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def core(tmp_path: Path, registry: CollectorRegistry) -> Iterator[IngestCore]:
    cfg = load_config(env={}, overrides={"ingest.sink.dir": str(tmp_path / "sink")}).ingest
    metrics = IngestMetrics(registry)
    c = IngestCore(cfg, NdjsonSink(cfg.sink, observer=metrics), metrics, clock=lambda: 1.7e9)
    c.start()
    yield c
    c.close()


def given(make: Callable[[], Batch]) -> IncomingPush:
    """A push whose decoding is ``make`` (nothing to read, unsigned)."""
    return IncomingPush(read=lambda: b"", decode=lambda _: make())


def lines(core: IngestCore) -> list[bytes]:
    out: list[bytes] = []
    for path in sorted(Path(core.cfg.sink.dir).glob("*.ndjson")):
        out.extend(path.read_bytes().splitlines())
    return out


def test_concurrent_pushes_of_one_batch_store_it_once(core: IngestCore) -> None:
    results = []
    barrier = threading.Barrier(8)

    def push() -> None:
        barrier.wait()
        results.append(core.push(Batch(records=[{"msg": "x"}] * 100, batch_id="same")))

    threads = [threading.Thread(target=push) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.duplicate for r in results) == [False] + [True] * 7
    assert all(r.accepted == 100 for r in results)
    assert len(lines(core)) == 100


def test_in_flight_cap_refuses_before_decoding(core: IngestCore) -> None:
    inside = threading.Semaphore(0)
    release = threading.Event()
    decoded = []

    def slow_decode() -> Batch:
        inside.release()
        release.wait(5)
        return Batch(records=[{"msg": "x"}])

    holders = [
        threading.Thread(target=core.handle, args=("http", "r", given(slow_decode)))
        for _ in range(core.limits.max_inflight)
    ]
    for t in holders:
        t.start()
    for _ in holders:  # every slot is taken by a request held in its decode step
        assert inside.acquire(timeout=5)

    def counted() -> Batch:
        decoded.append(1)
        return Batch(records=[])

    with pytest.raises(Unavailable) as info:
        core.handle("grpc", "r", given(counted))
    assert info.value.reason == "overloaded" and info.value.retry_after_seconds == 1
    assert decoded == []
    release.set()
    for t in holders:
        t.join()
    assert core.handle("grpc", "r", given(lambda: Batch(records=[{"msg": "y"}]))).accepted == 1


def test_limits_and_names(core: IngestCore) -> None:
    over = core.limits.max_body_bytes + 1
    with pytest.raises(TooLarge) as info:
        core.check_body_size(over)
    assert str(info.value) == f"body of {over} bytes exceeds the limit of {over - 1}"
    core.check_body_size(core.limits.max_body_bytes)
    core.check_body_size(None)
    with pytest.raises(TooLarge, match="10001 records"):
        core.push(Batch(records=[{"msg": "x"}] * 10_001))
    with pytest.raises(BadRequest, match="emitter"):
        core.push(Batch(records=[], emitter="tab\there"))


def test_every_outcome_is_counted_once(core: IngestCore, registry: CollectorRegistry) -> None:
    batch = Batch(records=[{"msg": "a", "level": "error"}], emitter="e")
    core.handle("http", "r", given(lambda: batch))

    def bad() -> Batch:
        raise BadRequest("nope")

    with pytest.raises(BadRequest):
        core.handle("grpc", "r", given(bad))
    value = registry.get_sample_value
    assert value("logops_ingest_requests_total", {"front": "http", "code": "OK"}) == 1
    assert value("logops_ingest_requests_total", {"front": "grpc", "code": "INVALID_ARGUMENT"}) == 1
    assert value("logops_ingest_records_accepted_total", {"emitter": "e", "level": "ERROR"}) == 1
    assert value("logops_ingest_inflight_requests", {"front": "grpc"}) == 0


class Calls:
    """An IngestObserver that keeps what ``request_done`` was told."""

    def __init__(self) -> None:
        self.done: list[tuple[str, str, int]] = []
        self.seconds: list[float | None] = []

    def request_done(self, front: str, code: str, seconds: float | None, records: int) -> None:
        self.done.append((front, code, records))
        self.seconds.append(seconds)

    def inflight(self, front: str, delta: int) -> None: ...
    def batch_stored(self, emitter: str, nb: object) -> None: ...
    def duplicate(self) -> None: ...


@pytest.fixture
def observed(tmp_path: Path) -> Iterator[tuple[IngestCore, Calls]]:
    cfg = load_config(env={}, overrides={"ingest.sink.dir": str(tmp_path / "sink")}).ingest
    calls = Calls()
    c = IngestCore(cfg, NdjsonSink(cfg.sink), calls, clock=lambda: 1.7e9)  # type: ignore[arg-type]
    c.start()
    yield c, calls
    c.close()


def test_refusals_before_the_core_are_counted_by_front_and_code(
    observed: tuple[IngestCore, Calls],
) -> None:
    core, calls = observed
    core.refusal_counter("http")(Unavailable("busy", reason="overloaded", retry_after=1))
    # Nothing was read, and the request was not timed: no latency sample.
    assert (calls.done, calls.seconds) == ([("http", "UNAVAILABLE", 0)], [None])


def test_a_refusal_before_the_core_counts_as_a_request_but_not_in_the_latency(
    core: IngestCore, registry: CollectorRegistry
) -> None:
    # A push ended for a late body waited its whole body timeout: counting it as 0 s would
    # make the latency SLO look better the more clients stall.
    core.refusal_counter("grpc")(RequestTimeout("request message not received within 10 s"))
    value = registry.get_sample_value
    late = {"front": "grpc", "code": "DEADLINE_EXCEEDED"}
    assert value("logops_ingest_requests_total", late) == 1
    assert not value("logops_ingest_request_duration_seconds_count", {"front": "grpc"})


def test_each_outcome_reports_its_code_and_the_records_decoded(
    observed: tuple[IngestCore, Calls],
) -> None:
    core, calls = observed

    def broken() -> Batch:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        core.handle("grpc", "r", given(broken))
    core.handle("http", "r", given(lambda: Batch(records=[{"msg": "a"}] * 3)))
    assert calls.done == [("grpc", "INTERNAL", 0), ("http", "OK", 3)]


def test_records_are_stamped_with_the_ingest_time_in_milliseconds(core: IngestCore) -> None:
    core.push(Batch(records=[{"msg": "x"}], batch_id="t"))
    (line,) = lines(core)
    assert json.loads(line)["ingest_ts"] == "2023-11-14T22:13:20.000Z"  # clock() == 1.7e9


def test_a_duplicate_answers_with_this_requests_id_and_the_original_counts(
    core: IngestCore,
) -> None:
    first = core.push(Batch(records=[{"msg": "x"}, {"msg": 1}], batch_id="d"), "req-1")
    again = core.push(Batch(records=[{"msg": "x"}], batch_id="d"), "req-2")
    assert (first.duplicate, first.request_id) == (False, "req-1")
    assert again == type(again)(
        batch_id="d",
        accepted=first.accepted,
        rejected=first.rejected,
        duplicate=True,
        missing=first.missing,
        request_id="req-2",
    )


def test_a_sink_that_cannot_be_written_is_a_retryable_refusal(
    core: IngestCore, caplog: pytest.LogCaptureFixture
) -> None:
    sink = core._sink

    def failing(*args: object) -> None:
        raise SinkError("cannot append to the sink: No space left on device")

    sink.append = failing  # type: ignore[method-assign,assignment]
    with caplog.at_level("ERROR"), pytest.raises(Unavailable) as info:
        core.push(Batch(records=[{"msg": "x"}], batch_id="lost"))
    assert info.value.reason == "sink_unavailable"
    assert info.value.retry_after_seconds == core.limits.retry_after_sec
    assert str(info.value) == "the log sink cannot be written; nothing was stored, retry later"
    (record,) = caplog.records
    assert record.getMessage() == "sink write failed; batch not acknowledged"
    assert record.__dict__["event"] == "sink_error"
    assert "No space left on device" in record.__dict__["error"]


@pytest.mark.parametrize("key", ["batch_id", "emitter", "scenario_id", "run_id"])
def test_a_bad_name_is_refused_naming_its_field(core: IngestCore, key: str) -> None:
    batch = Batch(records=[], batch_id="ok")
    setattr(batch, key, "tab\there")
    with pytest.raises(BadRequest, match=f"^{key} must be printable ASCII$"):
        core.push(batch)


@pytest.mark.parametrize(
    ("key", "limit"), [("batch_id", 128), ("emitter", 64), ("scenario_id", 128), ("run_id", 128)]
)
def test_a_name_is_taken_up_to_its_limit_and_refused_past_it(
    core: IngestCore, key: str, limit: int
) -> None:
    longest = Batch(records=[{"msg": "x"}], batch_id="at-limit")
    setattr(longest, key, "n" * limit)
    stored = core.push(longest)
    assert (stored.accepted, stored.duplicate) == (1, False)
    (line,) = lines(core)
    assert json.loads(line)[key] == "n" * limit
    past = Batch(records=[{"msg": "x"}], batch_id="past-limit")
    setattr(past, key, "n" * (limit + 1))
    with pytest.raises(BadRequest) as info:
        core.push(past)
    assert str(info.value) == f"{key} is longer than {limit} characters"


def test_a_push_meeting_its_first_copy_still_in_fsync_is_answered_with_its_own_request_id(
    core: IngestCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    core.push(Batch(records=[{"msg": "warm"}], batch_id="warm"))  # the day's files exist
    sink = core._sink
    inside, second_appends = threading.Event(), threading.Event()
    real_append, real_fsync = sink.append, os.fsync

    def append(batch_id: str, data: bytes, stored: StoredBatch) -> StoredBatch | None:
        if threading.current_thread().name == "second":
            second_appends.set()
        return real_append(batch_id, data, stored)

    def fsync_once_the_second_appends(fd: int) -> None:
        # The first copy is written but not durable: the second push found no stored
        # answer, normalised its records and hands them to the sink too.
        inside.set()
        assert second_appends.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(sink, "append", append)
    monkeypatch.setattr(os, "fsync", fsync_once_the_second_appends)
    results: dict[str, PushResult] = {}

    def send(request_id: str) -> None:
        batch = Batch(records=[{"msg": "x"}, {"msg": 1}], batch_id="same")
        results[request_id] = core.push(batch, request_id)

    threads = [
        threading.Thread(target=send, args=(f"req-{n}",), name=n) for n in ("first", "second")
    ]
    threads[0].start()
    assert inside.wait(10)
    threads[1].start()
    for t in threads:
        t.join(10)
    first, second = results["req-first"], results["req-second"]
    assert (first.duplicate, first.request_id) == (False, "req-first")
    assert second == PushResult(
        batch_id="same",
        accepted=first.accepted,
        rejected=first.rejected,
        duplicate=True,
        missing=first.missing,
        request_id="req-second",
    )
    assert len(lines(core)) == 1 + first.accepted


def test_a_request_is_timed_from_admission_to_answer(
    observed: tuple[IngestCore, Calls], monkeypatch: pytest.MonkeyPatch
) -> None:
    core, calls = observed
    ticks = iter(range(1000, 2000, 5))
    # A clock of the core alone that moves 5 s between readings (and is far from zero,
    # as perf_counter is on a host that has been up a while).
    monkeypatch.setattr(core_module, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    core.handle("http", "r", given(lambda: Batch(records=[{"msg": "a"}])))
    assert calls.seconds == [5]


def test_readiness_says_why_and_check_ready_refuses_as_a_push_would(core: IngestCore) -> None:
    assert core.readiness() is None
    core.check_ready()
    sink_dir = Path(core.cfg.sink.dir)
    sink_dir.rename(sink_dir.with_name("moved"))
    assert core.readiness() == "sink directory missing"
    with pytest.raises(Unavailable) as info:
        core.check_ready()
    refused = (str(info.value), info.value.reason, info.value.retry_after_seconds)
    assert refused == ("sink directory missing", "sink_unavailable", 1)
    sink_dir.with_name("moved").rename(sink_dir)
    assert core.readiness() is None
    # A front that stopped serving makes the gateway not ready for good, sink or not.
    core.fail("grpc server stopped")
    assert core.readiness() == "grpc server stopped"
    with pytest.raises(Unavailable, match=r"^grpc server stopped$"):
        core.check_ready()


@pytest.fixture
def verifying(tmp_path: Path, registry: CollectorRegistry) -> Iterator[IngestCore]:
    cfg = load_config(env={}, overrides={"ingest.sink.dir": str(tmp_path / "sink")}).ingest
    metrics = IngestMetrics(registry)
    verifier = Verifier(make_keyring(), MemoryNonceStore())
    c = IngestCore(cfg, NdjsonSink(cfg.sink, observer=metrics), metrics, verifier=verifier)
    c.start()
    yield c
    c.close()


def test_an_unsigned_push_is_refused_before_its_body_is_read(
    verifying: IngestCore, registry: CollectorRegistry
) -> None:
    reads: list[int] = []

    def read() -> bytes:
        reads.append(1)
        return b"{}"

    incoming = IncomingPush(read, lambda _: Batch(records=[{"msg": "x"}]), {}, "application/json")
    with pytest.raises(Unauthenticated) as info:
        verifying.handle("http", "r", incoming)
    assert (info.value.reason, reads) == ("missing_auth", [])
    reason = {"reason": "missing_auth"}
    assert registry.get_sample_value("logops_ingest_auth_rejected_total", reason) == 1


def test_a_verified_push_is_decoded_from_the_bytes_that_were_signed(
    verifying: IngestCore,
) -> None:
    body = b'{"emitter": "web", "records": [{"msg": "x"}]}'
    decoded: list[bytes] = []

    def decode(raw: bytes) -> Batch:
        decoded.append(raw)
        return Batch(records=[{"msg": "x"}], emitter="web")

    headers = sign_headers(KEY, body, "application/json")
    incoming = IncomingPush(lambda: body, decode, headers, "application/json")
    assert verifying.handle("http", "r", incoming).accepted == 1
    assert decoded == [body]
    # A client key speaks for its own emitter, whatever the body claims.
    (line,) = lines(verifying)
    assert json.loads(line)["emitter"] == KEY.emitter != "web"
