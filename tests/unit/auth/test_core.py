"""The Auth Gateway's core with its real parts (verifier, rate limiter, spool) and a
forwarder that stands in for the Ingest Gateway, so each decision shows on its own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from logops.v1 import logs_pb2

from services.auth.core import AuthCore
from services.auth.model import AuthRequest, Payload
from services.auth.ratelimit import MemoryRateLimiter
from services.auth.spool import Spool
from services.common.config import AuthConfig, load_config
from services.common.errors import (
    BadRequest,
    LogOpsError,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unavailable,
)
from services.common.model import PushResult
from services.common.nonces import MemoryNonceStore
from services.common.signing import Verifier, sign_headers
from tests.signing_testing import KEY, make_keyring


class FakeIngest:
    """Records what it is sent; answers OK, or raises what ``fail`` says."""

    def __init__(self) -> None:
        self.sent: list[Payload] = []
        self.fail: LogOpsError | None = None
        self.delivered = threading.Event()

    def forward(self, payload: Payload, deadline: float) -> PushResult:
        if self.fail is not None:
            raise self.fail
        self.sent.append(payload)
        self.delivered.set()
        return PushResult(batch_id=payload.batch_id, accepted=payload.records)

    def close(self) -> None:
        pass


class Counts:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.done: list[str] = []
        self.depth = (0, 0)

    def request_done(self, front: str, code: str, seconds: float, records: int) -> None:
        self.done.append(code)

    def inflight(self, front: str, delta: int) -> None:
        pass

    def rejected(self, reason: str) -> None:
        self.reasons.append(reason)

    def spool_depth(self, batches: int, nbytes: int) -> None:
        self.depth = (batches, nbytes)


def _cfg(**overrides: Any) -> AuthConfig:
    return load_config(env={}, overrides={f"auth.{k}": v for k, v in overrides.items()}).auth


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[FakeIngest, Counts, Any]]:
    ingest, counts = FakeIngest(), Counts()
    cores: list[AuthCore] = []

    def make(signed: bool = True, **overrides: Any) -> AuthCore:
        cfg = _cfg(**overrides)
        verifier = Verifier(make_keyring(), MemoryNonceStore()) if signed else None
        spool = Spool(tmp_path / f"spool{len(cores)}", 1 << 20, 100)
        core = AuthCore(
            cfg, verifier, MemoryRateLimiter(), ingest, spool, counts, lambda: "closed"
        )
        core.start()
        cores.append(core)
        return core

    yield ingest, counts, make
    for core in cores:
        core.close()


def _json_request(doc: Any, front: str = "http", **headers: str) -> AuthRequest:
    body = orjson.dumps(doc)
    signed = sign_headers(KEY, body, "application/json")
    return AuthRequest(front, "rid", {**signed, **headers}, "application/json", "", body)


def _grpc_request(batch: logs_pb2.LogBatch) -> AuthRequest:
    body = logs_pb2.PushRequest(batch=batch).SerializeToString()
    signed = sign_headers(KEY, body, "application/x-protobuf")
    return AuthRequest("grpc", "rid", signed, "application/x-protobuf", "", body, push_request=True)


def test_a_signed_json_push_goes_on_with_the_keys_emitter_and_a_batch_id(parts: Any) -> None:
    ingest, _, make = parts
    outcome = make().handle(_json_request([{"msg": "a"}, {"msg": "b"}]))
    (sent,) = ingest.sent
    assert sent.meta["emitter"] == KEY.emitter
    assert sent.batch_id.startswith("auth-") and sent.meta["batch_id"] == sent.batch_id
    assert (sent.records, sent.body) == (2, orjson.dumps([{"msg": "a"}, {"msg": "b"}]))
    assert outcome.result.accepted == 2 and outcome.result.request_id == "rid"
    assert outcome.rate is not None and outcome.rate.remaining < outcome.rate.limit


def test_a_body_claiming_another_emitter_is_stored_under_the_keys(parts: Any) -> None:
    ingest, _, make = parts
    make().handle(_json_request({"batch_id": "b1", "emitter": "spoofed", "records": [{}]}))
    (sent,) = ingest.sent
    assert orjson.loads(sent.body)["emitter"] == KEY.emitter
    assert sent.batch_id == "b1"


def test_a_grpc_push_keeps_its_bytes_and_gets_names_appended(parts: Any) -> None:
    ingest, _, make = parts
    batch = logs_pb2.LogBatch(emitter="spoofed", records=[logs_pb2.LogRecord(msg="x")] * 4)
    request = _grpc_request(batch)
    make().handle(request)
    (sent,) = ingest.sent
    assert sent.push_request and sent.body.startswith(request.body)
    parsed = logs_pb2.PushRequest.FromString(sent.body).batch
    assert (parsed.emitter, parsed.batch_id, len(parsed.records)) == (
        KEY.emitter, sent.batch_id, 4
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda r: replace(r, headers={}), "missing_auth"),
        (lambda r: replace(r, body=r.body + b" "), "bad_content_hash"),
        (lambda r: replace(r, headers={**r.headers, "x-logops-key-id": "nobody"}), "unknown_key"),
    ],
)
def test_refusals_are_counted_by_reason(parts: Any, change: Any, reason: str) -> None:
    ingest, counts, make = parts
    with pytest.raises(Unauthenticated) as info:
        make().handle(change(_json_request([{"msg": "a"}])))
    assert info.value.reason == reason
    assert counts.reasons == [reason] and counts.done == ["UNAUTHENTICATED"]
    assert ingest.sent == []


def test_a_replay_is_refused(parts: Any) -> None:
    _, _, make = parts
    core, request = make(), _json_request([{"msg": "a"}])
    core.handle(request)
    with pytest.raises(Unauthenticated) as info:
        core.handle(request)
    assert info.value.reason == "replay"


def test_size_and_record_limits(parts: Any) -> None:
    _, counts, make = parts
    core = make(**{"limits.max_body_bytes": 64, "limits.max_records": 2})
    with pytest.raises(TooLarge) as info:
        core.handle(_json_request([{"msg": "x" * 100}]))
    assert info.value.reason == "too_large"
    with pytest.raises(TooLarge) as info:
        core.handle(_json_request([{}, {}, {}]))
    assert info.value.reason == "too_many_records"
    assert counts.reasons == ["too_large", "too_many_records"]


def test_over_the_keys_rate_a_push_is_refused_with_the_numbers(parts: Any) -> None:
    _, _, make = parts
    core = make(**{"records_per_key.per_sec": 1.0, "records_per_key.burst": 3})
    core.handle(_json_request([{}, {}, {}]))
    with pytest.raises(RateLimited) as info:
        core.handle(_json_request([{}]))
    assert info.value.retry_after is not None and info.value.retry_after > 0
    assert info.value.rate.limit == 3 and info.value.rate.remaining == 0  # type: ignore[attr-defined]
    with pytest.raises(TooLarge) as big:  # more than the burst can ever pass
        core.handle(_json_request([{}] * 4))
    assert big.value.reason == "too_many_records"


def test_ingest_away_spools_then_the_drainer_delivers_in_order(parts: Any) -> None:
    ingest, counts, make = parts
    core = make()
    ingest.fail = Unavailable("down", reason="downstream_unavailable")
    ids = []
    for i in range(3):
        outcome = core.handle(_json_request({"batch_id": f"b{i}", "records": [{"msg": i}]}))
        assert outcome.result.spooled and outcome.result.accepted == 0
        ids.append(outcome.result.batch_id)
    assert counts.depth[0] == 3
    ingest.fail = None
    assert ingest.delivered.wait(10)
    deadline = threading.Event()
    for _ in range(100):
        if len(ingest.sent) == 3:
            break
        deadline.wait(0.05)
    assert [p.batch_id for p in ingest.sent] == ids
    decoded = ingest.sent[0].decoded
    assert decoded is not None and decoded().batch_id == "b0"  # for a gRPC hop


def test_a_client_error_from_ingest_comes_back_and_is_not_spooled(parts: Any) -> None:
    ingest, counts, make = parts
    core = make()
    ingest.fail = BadRequest("no")
    with pytest.raises(BadRequest):
        core.handle(_json_request([{"msg": "a"}]))
    assert counts.depth == (0, 0)


def test_open_mode_takes_unsigned_pushes_and_keeps_their_emitter(parts: Any) -> None:
    ingest, _, make = parts
    body = orjson.dumps({"emitter": "mine", "records": [{"msg": "a"}]})
    make(signed=False).handle(AuthRequest("http", "r", {}, "application/json", "", body))
    (sent,) = ingest.sent
    assert sent.body == body and "emitter" not in sent.meta
