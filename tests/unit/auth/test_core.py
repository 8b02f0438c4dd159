"""The Auth Gateway's core with its real parts (verifier, rate limiter, spool) and a
forwarder that stands in for the Ingest Gateway, so each decision shows on its own."""

from __future__ import annotations

import gzip
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from logops.v1 import logs_pb2

from services.auth.core import AuthCore
from services.auth.hop import open_transport
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
        self.refusals: list[LogOpsError] = []  # one each, before anything is taken
        self.delivered = threading.Event()

    def forward(self, payload: Payload, deadline: float) -> PushResult:
        if self.fail is not None:
            raise self.fail
        if self.refusals:
            raise self.refusals.pop(0)
        self.sent.append(payload)
        self.delivered.set()
        return PushResult(batch_id=payload.batch_id, accepted=payload.records)

    def close(self) -> None:
        pass


class Counts:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.done: list[str] = []
        self.calls: list[tuple[str, str, float | None, int]] = []
        self.depth = (0, 0)
        self.inflights: list[tuple[str, int]] = []

    def request_done(self, front: str, code: str, seconds: float | None, records: int) -> None:
        self.done.append(code)
        self.calls.append((front, code, seconds, records))

    def inflight(self, front: str, delta: int) -> None:
        self.inflights.append((front, delta))

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


# --- what goes on, at once or from the spool ---------------------------------------------


def _signed(body: bytes, media_type: str, encoding: str = "", **headers: str) -> AuthRequest:
    signed = sign_headers(KEY, body, media_type)
    return AuthRequest("http", "rid", {**signed, **headers}, media_type, encoding, body)


def _log_batch(batch_id: str = "", emitter: str = "", n: int = 2) -> bytes:
    records = [logs_pb2.LogRecord(msg=f"m{i}") for i in range(n)]
    batch = logs_pb2.LogBatch(batch_id=batch_id, emitter=emitter, records=records)
    return bytes(batch.SerializeToString())


def test_a_protobuf_batch_over_http_goes_on_inside_a_push_request_both_hops_carry(
    parts: Any,
) -> None:
    ingest, _, make = parts
    body = gzip.compress(_log_batch(emitter="spoofed", n=3))
    outcome = make().handle(_signed(body, "application/x-protobuf", "gzip"))
    (sent,) = ingest.sent
    assert sent.push_request and sent.records == 3 and outcome.result.accepted == 3
    batch = logs_pb2.PushRequest.FromString(sent.body).batch
    assert (batch.emitter, batch.batch_id, len(batch.records)) == (KEY.emitter, sent.batch_id, 3)
    assert sent.batch_id.startswith("auth-")
    # The default hop is gRPC: it takes the request as it is; the HTTP hop sends the batch.
    grpc_hop, http_hop = open_transport("grpc://127.0.0.1:9"), open_transport("http://127.0.0.1:9")
    try:
        assert grpc_hop.prepare(sent).body == sent.body
        assert logs_pb2.LogBatch.FromString(http_hop.prepare(sent).body) == batch
    finally:
        grpc_hop.close()
        http_hop.close()


def test_a_protobuf_batch_keeps_its_own_id_or_takes_the_header_one(parts: Any) -> None:
    ingest, _, make = parts
    core = make()
    core.handle(_signed(_log_batch(batch_id="own"), "application/x-protobuf"))
    core.handle(
        _signed(_log_batch(), "application/x-protobuf", **{"x-logops-batch-id": "from-header"})
    )
    ids = [logs_pb2.PushRequest.FromString(p.body).batch.batch_id for p in ingest.sent]
    assert ids == [p.batch_id for p in ingest.sent] == ["own", "from-header"]


CSV = b"ts,level,msg\n2026-01-01T00:00:00Z,info,\"a, quoted\"\n2026-01-01T00:00:01Z,warn,b\n"


def _kinds() -> list[Any]:
    """(request, records) of every kind of body, each naming its batch."""
    json_doc = orjson.dumps({"batch_id": "j1", "records": [{"msg": "a"}]})  # kept compressed
    grpc_batch = logs_pb2.LogBatch(batch_id="g1", emitter="x", records=[logs_pb2.LogRecord()])
    return [
        pytest.param(lambda: _grpc_request(grpc_batch), 1, id="grpc"),
        pytest.param(
            lambda: _signed(gzip.compress(_log_batch("p1")), "application/x-protobuf", "gzip"),
            2,
            id="protobuf-gzip",
        ),
        pytest.param(
            lambda: _signed(gzip.compress(json_doc), "application/json", "gzip"), 1,
            id="json-gzip",
        ),
        pytest.param(
            lambda: _signed(
                b'{"msg":"a"}\n\n{"msg":"b"}\n', "application/x-ndjson",
                **{"x-logops-batch-id": "n1", "x-logops-scenario-id": "s1"},
            ),
            2,
            id="ndjson-headers",
        ),
        pytest.param(lambda: _signed(CSV, "text/csv", **{"x-logops-batch-id": "c1"}), 2, id="csv"),
    ]


def _as_sent(payload: Payload) -> tuple[Any, ...]:
    decoded = payload.decoded() if payload.decoded is not None else None
    return (
        payload.body, payload.media_type, payload.content_encoding, dict(payload.meta),
        payload.batch_id, payload.records, payload.push_request, decoded,
    )


@pytest.mark.parametrize(("request_of", "records"), _kinds())
def test_a_spooled_push_reaches_ingest_as_it_would_have_at_once(
    parts: Any, request_of: Any, records: int
) -> None:
    ingest, _, make = parts
    make().handle(request_of())
    (at_once,) = ingest.sent
    ingest.sent.clear()
    ingest.delivered.clear()
    ingest.fail = Unavailable("down", reason="downstream_unavailable")
    spooling = make()
    assert spooling.handle(request_of()).result.spooled
    ingest.fail = None
    assert ingest.delivered.wait(10)
    (drained,) = ingest.sent
    assert _as_sent(drained) == _as_sent(at_once)
    assert at_once.records == records


def test_the_spooled_event_names_the_batch_and_why(
    parts: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ingest, _, make = parts
    ingest.fail = Unavailable("ingest is away", reason="downstream_unavailable")
    with caplog.at_level(logging.WARNING, logger="services.auth.core"):
        make().handle(_json_request({"batch_id": "b7", "records": [{}]}))
    [event] = [r.__dict__ for r in caplog.records if r.__dict__.get("event") == "spooled"]
    assert (event["batch_id"], event["cause"]) == ("b7", "ingest is away")


def test_a_spooled_batch_ingest_refuses_is_dropped_loudly(
    parts: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ingest, counts, make = parts
    ingest.fail = Unavailable("down", reason="downstream_unavailable")
    with caplog.at_level(logging.ERROR, logger="services.auth.core"):
        core = make()
        core.handle(_json_request({"batch_id": "doomed", "records": [{}]}))
        core.handle(_json_request({"batch_id": "fine", "records": [{}]}))
        # Ingest is back, and refuses the first batch for good.
        ingest.refusals = [BadRequest("no such field", reason="bad_request")]
        ingest.fail = None
        assert ingest.delivered.wait(10)
        for _ in range(200):
            if counts.depth == (0, 0):
                break
            threading.Event().wait(0.05)
    assert [p.batch_id for p in ingest.sent] == ["fine"]
    assert counts.depth == (0, 0)
    [event] = [r.__dict__ for r in caplog.records if r.__dict__.get("event") == "spool_refused"]
    assert (event["levelno"], event["batch_id"], event["reason"]) == (
        logging.ERROR, "doomed", "bad_request"
    )


def test_a_body_that_inflates_past_the_size_limit_is_refused(parts: Any) -> None:
    _, _, make = parts
    core = make(**{"limits.max_body_bytes": 1024})
    body = gzip.compress(orjson.dumps([{"msg": "x" * 4096}]))
    assert len(body) < 1024
    with pytest.raises(TooLarge):
        core.handle(_signed(body, "application/json", "gzip"))


def test_limit_refusals_say_what_to_do(parts: Any) -> None:
    _, _, make = parts
    core = make(**{"records_per_key.per_sec": 2.0, "records_per_key.burst": 3})
    with pytest.raises(TooLarge) as big:
        core.handle(_json_request([{}] * 4))
    assert big.value.message == (
        "a batch of 4 records is more than this key may send at once (3); split it"
    )
    core.handle(_json_request([{}] * 3))
    with pytest.raises(RateLimited) as slow:
        core.handle(_json_request([{}]))
    assert slow.value.message == "rate limit reached; retry in 0.5 s"


def test_only_auth_refusals_are_counted_as_rejected(parts: Any) -> None:
    _, counts, make = parts
    with pytest.raises(BadRequest) as info:
        make().handle(_signed(b"{}", "image/png"))
    assert info.value.reason == "unsupported_media_type"
    assert counts.reasons == [] and counts.done == ["INVALID_ARGUMENT"]


def test_ready_while_ingest_or_the_spool_can_take_a_push(tmp_path: Path) -> None:
    state = ["closed"]
    spool = Spool(tmp_path / "spool", 1 << 20, 1)
    core = AuthCore(
        _cfg(), None, MemoryRateLimiter(), FakeIngest(), spool, Counts(), lambda: state[0]
    )
    spool.open()
    try:
        assert core.readiness() is None
        state[0] = "open"  # Ingest away: the spool takes pushes
        assert core.readiness() is None
        core.check_ready()
        spool.put("b", "application/json", "", {}, b"[{}]", 1)  # now full
        assert core.readiness() == "ingest unreachable and spool unusable: spool full"
        with pytest.raises(Unavailable) as info:
            core.check_ready()
        assert (info.value.reason, info.value.retry_after) == (
            "downstream_unavailable", core.limits.retry_after_sec
        )
        assert info.value.message == core.readiness()
        state[0] = "half_open"
        assert core.readiness() is None
        core.fail("the HTTP front stopped")
        assert core.readiness() == "the HTTP front stopped"
    finally:
        spool.close()


def test_line_bodies_take_their_names_from_the_headers(parts: Any) -> None:
    ingest, _, make = parts
    core = make()
    lines = b'{"msg": "two words"}\n  \n{"msg": "b"}\n'
    core.handle(_signed(lines, "application/x-ndjson", **{"x-logops-batch-id": "n1"}))
    core.handle(_signed(b"one line\n\nanother line\n", "text/plain"))
    core.handle(_signed(CSV, "text/csv", **{"x-logops-batch-id": "c1"}))
    ndjson, text, csv = ingest.sent
    assert (ndjson.batch_id, ndjson.records, ndjson.body) == ("n1", 2, lines)
    assert text.batch_id.startswith("auth-") and text.records == 2
    assert (csv.batch_id, csv.records) == ("c1", 2)
    assert {p.meta["emitter"] for p in ingest.sent} == {KEY.emitter}


def test_a_json_batch_naming_nothing_goes_on_untouched_with_the_keys_names(parts: Any) -> None:
    ingest, _, make = parts
    body = orjson.dumps({"records": [{"msg": "a"}]})
    make().handle(_signed(body, "application/json"))
    (sent,) = ingest.sent
    assert sent.body == body
    assert sent.batch_id.startswith("auth-") and sent.meta["emitter"] == KEY.emitter


def test_a_grpc_push_naming_the_keys_own_emitter_gets_only_a_batch_id(parts: Any) -> None:
    ingest, _, make = parts
    request = _grpc_request(logs_pb2.LogBatch(emitter=KEY.emitter))
    make().handle(request)
    (sent,) = ingest.sent
    names = sent.body[len(request.body) :]
    assert logs_pb2.PushRequest.FromString(names).batch == logs_pb2.LogBatch(
        batch_id=sent.batch_id
    )


def test_open_mode_keeps_the_emitter_a_grpc_push_names(parts: Any) -> None:
    ingest, _, make = parts
    body = logs_pb2.PushRequest(batch=logs_pb2.LogBatch(batch_id="b", emitter="mine"))
    raw = body.SerializeToString()
    make(signed=False).handle(
        AuthRequest("grpc", "r", {}, "application/x-protobuf", "", raw, push_request=True)
    )
    (sent,) = ingest.sent
    assert sent.body == raw


def test_each_key_has_its_own_rate_limit(parts: Any) -> None:
    _, _, make = parts
    core = make(**{"records_per_key.per_sec": 1.0, "records_per_key.burst": 2})
    core.handle(_json_request([{}, {}]))
    with pytest.raises(RateLimited):
        core.handle(_json_request([{}]))
    other = make_keyring().get("other-key")
    assert other is not None
    body = orjson.dumps([{}, {}])
    signed = sign_headers(other, body, "application/json")
    assert core.handle(AuthRequest("http", "r", signed, "application/json", "", body))


def test_a_refusal_made_by_a_front_is_counted_like_the_cores_own(parts: Any) -> None:
    _, counts, make = parts
    refused = make().refusal_counter("grpc")
    refused(TooLarge("message over the gRPC limit"))
    assert counts.reasons == ["too_large"]
    # Counted, but not timed: no latency sample.
    assert counts.calls == [("grpc", "RESOURCE_EXHAUSTED", None, 0)]


@pytest.mark.parametrize(
    "body",
    [b'[{"msg": "caf\xe9"}]', b'{"records": [{"n": 1e400}]}', b'[{"msg": "a\\ud800b"}]'],
    ids=["latin-1 byte", "number past a double", "lone surrogate"],
)
def test_json_ingest_cannot_read_is_never_spooled(parts: Any, body: bytes) -> None:
    """The records are only skipped over on the way in; before a 202 the body is read as
    Ingest reads it, so the spool never holds a batch Ingest would refuse."""
    ingest, counts, make = parts
    core = make()
    ingest.fail = Unavailable("down", reason="downstream_unavailable")
    request = AuthRequest(
        "http", "rid", sign_headers(KEY, body, "application/json"), "application/json", "", body
    )
    with pytest.raises(BadRequest) as info:
        core.handle(request)
    assert info.value.message.startswith("body is not valid JSON: ")
    assert counts.depth == (0, 0)


def test_a_json_body_is_counted_without_building_its_records() -> None:
    import gc

    from services.auth.inspect import json_facts

    records = [{"msg": str(i), "n": [i]} for i in range(500)]
    body = orjson.dumps({"batch_id": "b", "records": records})
    del records
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        facts = json_facts(body)
        grown = len(gc.get_objects()) - before
    finally:
        gc.enable()
    assert (facts.batch_id, facts.records) == ("b", 500)
    assert grown < 50  # not one tracked object per record


def test_a_log_batch_spooled_before_it_went_in_a_push_request_is_delivered(
    parts: Any, tmp_path: Path
) -> None:
    ingest, _, make = parts
    old = Spool(tmp_path / "spool0", 1 << 20, 100)
    old.open()
    batch = _log_batch("old-1", KEY.emitter, n=2)
    old.put("old-1", "application/x-protobuf", "", {}, batch, 2)
    old.close()
    make()
    assert ingest.delivered.wait(10)
    (sent,) = ingest.sent
    assert (sent.push_request, sent.batch_id, sent.records) == (True, "old-1", 2)
    assert logs_pb2.PushRequest.FromString(sent.body).batch == logs_pb2.LogBatch.FromString(batch)


def test_a_body_of_exactly_the_size_limit_passes_and_one_byte_more_does_not(
    parts: Any,
) -> None:
    _, _, make = parts
    body = orjson.dumps([{"msg": "x" * 40}])
    core = make(**{"limits.max_body_bytes": len(body)})
    core.handle(_signed(body, "application/json"))
    bigger = orjson.dumps([{"msg": "x" * 41}])
    with pytest.raises(TooLarge) as info:
        core.handle(_signed(bigger, "application/json"))
    assert info.value.message == (
        f"body of {len(bigger)} bytes exceeds the limit of {len(body)}"
    )


def test_no_default_records_rate_means_no_limit_and_a_burst_of_one_means_one(
    parts: Any,
) -> None:
    _, _, make = parts
    unlimited = make(**{"records_per_key.per_sec": 0})
    assert unlimited.handle(_json_request([{}] * 50)).rate is None
    one = make(**{"records_per_key.per_sec": 0.001, "records_per_key.burst": 1})
    one.handle(_json_request([{}]))
    with pytest.raises(RateLimited):
        one.handle(_json_request([{}]))


def test_a_push_past_the_in_flight_cap_is_told_when_to_come_back(tmp_path: Path) -> None:
    inside, release = threading.Event(), threading.Event()

    class Slow(FakeIngest):
        def forward(self, payload: Payload, deadline: float) -> PushResult:
            inside.set()
            release.wait(10)
            return super().forward(payload, deadline)

    cfg = _cfg(**{"limits.max_inflight": 1, "limits.retry_after_sec": 7.0})
    spool = Spool(tmp_path / "spool", 1 << 20, 100)
    core = AuthCore(cfg, None, MemoryRateLimiter(), Slow(), spool, Counts(), lambda: "closed")
    core.start()
    body = orjson.dumps([{}])
    first = threading.Thread(
        target=core.handle, args=(AuthRequest("http", "a", {}, "application/json", "", body),)
    )
    first.start()
    try:
        assert inside.wait(10)
        with pytest.raises(Unavailable) as refused:
            core.handle(AuthRequest("http", "b", {}, "application/json", "", body))
        assert (refused.value.reason, refused.value.retry_after) == ("overloaded", 7.0)
    finally:
        release.set()
        first.join(10)
        core.close()


# --- the drainer, and what the core reports ------------------------------------------------


def _wait_for(check: Any, seconds: float = 10) -> bool:
    """Polls ``check`` until it holds (a wait for another thread, not a timing claim)."""
    pause = threading.Event()
    for _ in range(int(seconds / 0.02)):
        if check():
            return True
        pause.wait(0.02)
    return bool(check())


def test_the_drainer_outlives_a_spool_it_cannot_read_and_delivers_once_it_can(
    parts: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ingest, _, make = parts
    ingest.fail = Unavailable("down", reason="downstream_unavailable")
    with caplog.at_level(logging.ERROR, logger="services.auth.core"):
        core = make()
        core.handle(_json_request({"batch_id": "kept", "records": [{}]}))
        (seg,) = (tmp_path / "spool0").glob("seg-*.log")
        aside = seg.with_name("aside")
        seg.rename(aside)
        seg.mkdir()  # reading the segment now fails: the spool itself is broken
        ingest.fail = None

        def logged() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.__dict__.get("event") == "spool_drain_error"]

        assert _wait_for(lambda: logged() != [])
        assert ingest.sent == []
        seg.rmdir()
        aside.rename(seg)
        assert ingest.delivered.wait(10)
    [sent] = ingest.sent
    assert sent.batch_id == "kept"
    first = logged()[0]
    assert first.levelno == logging.ERROR and first.exc_info is not None


class _GoesAwayAfter(FakeIngest):
    """Takes ``room`` batches, then answers as an Ingest Gateway that went away."""

    def __init__(self) -> None:
        super().__init__()
        self.room: int | None = None

    def forward(self, payload: Payload, deadline: float) -> PushResult:
        if self.room == 0:
            raise Unavailable("gone again", reason="downstream_unavailable")
        result = super().forward(payload, deadline)
        if self.room is not None:
            self.room -= 1
        return result


def test_after_a_partial_drain_the_depth_gauge_shows_what_is_left(tmp_path: Path) -> None:
    ingest, counts = _GoesAwayAfter(), Counts()
    ingest.fail = Unavailable("down", reason="downstream_unavailable")
    spool = Spool(tmp_path / "spool", 1 << 20, 100)
    core = AuthCore(_cfg(), None, MemoryRateLimiter(), ingest, spool, counts, lambda: "closed")
    core.start()
    try:
        depths = []
        for i in range(3):
            body = orjson.dumps({"batch_id": f"b{i}", "records": [{"msg": "x" * (10 * i)}]})
            core.handle(AuthRequest("http", "r", {}, "application/json", "", body))
            depths.append(counts.depth)
        assert [d[0] for d in depths] == [1, 2, 3]
        ingest.room = 1
        ingest.fail = None  # back for one batch only
        assert ingest.delivered.wait(10)
        first_bytes = depths[0][1]
        assert _wait_for(lambda: counts.depth == (2, depths[2][1] - first_bytes))
        assert [p.batch_id for p in ingest.sent] == ["b0"]
    finally:
        core.close()


class _Broken(FakeIngest):
    def forward(self, payload: Payload, deadline: float) -> PushResult:
        raise RuntimeError("a bug, not a refusal")


class _PartlyTaken(FakeIngest):
    def forward(self, payload: Payload, deadline: float) -> PushResult:
        return PushResult(batch_id=payload.batch_id, accepted=2, rejected=1)


@pytest.mark.parametrize(
    ("ingest", "code", "records"),
    [(_PartlyTaken(), "OK", 3), (_Broken(), "INTERNAL", 0)],
    ids=["partly-taken", "raised"],
)
def test_every_request_is_counted_once_by_code_and_records(
    tmp_path: Path, ingest: FakeIngest, code: str, records: int
) -> None:
    counts = Counts()
    spool = Spool(tmp_path / "spool", 1 << 20, 100)
    core = AuthCore(_cfg(), None, MemoryRateLimiter(), ingest, spool, counts, lambda: "closed")
    core.start()
    try:
        body = orjson.dumps([{}, {}, {}])
        request = AuthRequest("grpc", "r", {}, "application/json", "", body)
        began = time.perf_counter()
        if code == "OK":
            core.handle(request)
        else:
            with pytest.raises(RuntimeError):
                core.handle(request)
        took = time.perf_counter() - began
    finally:
        core.close()
    [(front, counted, seconds, n)] = counts.calls
    assert (front, counted, n) == ("grpc", code, records)
    assert 0 <= seconds <= took  # the request's own time, not a clock reading
    assert counts.reasons == []
    # The in-flight gauge of its front went up and back down.
    assert counts.inflights == [("grpc", 1), ("grpc", -1)]


@pytest.mark.parametrize(
    ("per_sec", "burst", "at_once"),
    [(2.5, None, 2), (0.5, None, 1), (1.0, 5, 5)],
    ids=["a-seconds-worth", "at-least-one", "its-own-burst"],
)
def test_a_key_with_a_rate_of_its_own_may_send_its_burst_at_once_and_no_more(
    tmp_path: Path, per_sec: float, burst: int | None, at_once: int
) -> None:
    from services.common.keys import ApiKey, KeyRing

    key = ApiKey("rated", "rated-emitter", (b"rated-secret-0123456789",), per_sec, None, burst)
    verifier = Verifier(KeyRing([key]), MemoryNonceStore())
    spool = Spool(tmp_path / "spool", 1 << 20, 100)
    # The gateway's own default would let far more through.
    cfg = _cfg(**{"records_per_key.per_sec": 1000.0, "records_per_key.burst": 1000})
    core = AuthCore(cfg, verifier, MemoryRateLimiter(), FakeIngest(), spool, Counts(), lambda: "x")
    core.start()

    def push(n: int) -> Any:
        body = orjson.dumps([{}] * n)
        headers = sign_headers(key, body, "application/json")
        return core.handle(AuthRequest("http", "r", headers, "application/json", "", body))

    try:
        with pytest.raises(TooLarge) as big:
            push(at_once + 1)
        assert big.value.message == (
            f"a batch of {at_once + 1} records is more than this key may send at once "
            f"({at_once}); split it"
        )
        outcome = push(at_once)
        assert outcome.rate.limit == at_once and outcome.rate.remaining == 0
    finally:
        core.close()


def test_a_json_body_nested_too_deep_is_the_clients_bad_request_not_an_internal_error(
    parts: Any,
) -> None:
    ingest, counts, make = parts
    body = b"[" * 2000 + b"]" * 2000
    with pytest.raises(BadRequest) as info:
        make().handle(_signed(body, "application/json"))
    assert info.value.reason == "bad_request" and ingest.sent == []
    assert counts.done == ["INVALID_ARGUMENT"]


def test_a_protobuf_batch_naming_its_id_and_the_keys_emitter_goes_on_byte_for_byte(
    parts: Any,
) -> None:
    from services.auth.inspect import push_request_of

    ingest, _, make = parts
    body = _log_batch(batch_id="own", emitter=KEY.emitter, n=2)
    make().handle(_signed(body, "application/x-protobuf"))
    (sent,) = ingest.sent
    # Nothing to impose: not a byte is appended to what the client signed.
    assert sent.body == push_request_of(body)
    assert (sent.batch_id, sent.records) == ("own", 2)


def test_a_json_batch_naming_the_keys_own_emitter_goes_on_as_the_client_sent_it(
    parts: Any,
) -> None:
    ingest, _, make = parts
    doc = {"batch_id": "mine", "emitter": KEY.emitter, "records": [{"msg": "a"}]}
    body = gzip.compress(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    make().handle(_signed(body, "application/json", "gzip"))
    (sent,) = ingest.sent
    # Nothing to impose: the body is not decompressed, re-encoded or touched.
    assert (sent.body, sent.content_encoding) == (body, "gzip")
    assert sent.batch_id == "mine" and "emitter" not in sent.meta  # the body names it


def test_a_batch_of_exactly_the_record_limit_passes_and_one_more_is_refused_saying_so(
    parts: Any,
) -> None:
    ingest, _, make = parts
    core = make(**{"limits.max_records": 2})
    assert core.handle(_json_request([{}, {}])).result.accepted == 2
    with pytest.raises(TooLarge) as info:
        core.handle(_json_request([{}, {}, {}]))
    assert info.value.message == "batch of 3 records exceeds the limit of 2"
    assert len(ingest.sent) == 1


class _Deadlines(FakeIngest):
    def __init__(self) -> None:
        super().__init__()
        self.deadlines: list[float] = []

    def forward(self, payload: Payload, deadline: float) -> PushResult:
        self.deadlines.append(deadline)
        return super().forward(payload, deadline)


def test_a_push_and_its_spooled_delivery_each_get_the_whole_forward_deadline(
    tmp_path: Path,
) -> None:
    ingest = _Deadlines()
    now = [1000.0]
    cfg = _cfg(**{"forward.deadline_sec": 7.5})
    spool = Spool(tmp_path / "spool", 1 << 20, 100)
    core = AuthCore(
        cfg, None, MemoryRateLimiter(), ingest, spool, Counts(), lambda: "closed", lambda: now[0]
    )
    core.start()
    try:
        ingest.fail = Unavailable("down", reason="downstream_unavailable")
        body = orjson.dumps([{}])
        core.handle(AuthRequest("http", "r", {}, "application/json", "", body))
        assert ingest.deadlines[0] == 1007.5
        now[0] = 2000.0
        ingest.fail = None
        assert ingest.delivered.wait(10)
        # The drainer's attempt, on the clock of its own time.
        assert ingest.deadlines[-1] == 2007.5
    finally:
        core.close()
