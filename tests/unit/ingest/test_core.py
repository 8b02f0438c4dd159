"""The Ingest core without any front: admission, validation, idempotency, metrics."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from services.common.config import load_config
from services.common.errors import BadRequest, TooLarge, Unavailable
from services.common.model import Batch
from services.ingest.core import IngestCore
from services.ingest.metrics import IngestMetrics
from services.ingest.sink import NdjsonSink


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
        threading.Thread(target=core.handle, args=("http", "r", slow_decode))
        for _ in range(core.limits.max_inflight)
    ]
    for t in holders:
        t.start()
    for _ in holders:  # every slot is taken by a request held in its decode step
        assert inside.acquire(timeout=5)
    with pytest.raises(Unavailable) as info:
        core.handle("grpc", "r", lambda: decoded.append(1) or Batch(records=[]))
    assert info.value.reason == "overloaded" and info.value.retry_after_seconds == 1
    assert decoded == []
    release.set()
    for t in holders:
        t.join()
    assert core.handle("grpc", "r", lambda: Batch(records=[{"msg": "y"}])).accepted == 1


def test_limits_and_names(core: IngestCore) -> None:
    with pytest.raises(TooLarge):
        core.check_body_size(core.limits.max_body_bytes + 1)
    core.check_body_size(core.limits.max_body_bytes)
    core.check_body_size(None)
    with pytest.raises(TooLarge, match="10001 records"):
        core.push(Batch(records=[{"msg": "x"}] * 10_001))
    with pytest.raises(BadRequest, match="emitter"):
        core.push(Batch(records=[], emitter="tab\there"))


def test_every_outcome_is_counted_once(core: IngestCore, registry: CollectorRegistry) -> None:
    core.handle("http", "r", lambda: Batch(records=[{"msg": "a", "level": "error"}], emitter="e"))

    def bad() -> Batch:
        raise BadRequest("nope")

    with pytest.raises(BadRequest):
        core.handle("grpc", "r", bad)
    value = registry.get_sample_value
    assert value("logops_ingest_requests_total", {"front": "http", "code": "OK"}) == 1
    assert value("logops_ingest_requests_total", {"front": "grpc", "code": "INVALID_ARGUMENT"}) == 1
    assert value("logops_ingest_records_accepted_total", {"emitter": "e", "level": "ERROR"}) == 1
    assert value("logops_ingest_inflight_requests", {"front": "grpc"}) == 0
