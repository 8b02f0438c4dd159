"""Every case runs over both fronts of the Auth Gateway: the same signed push, or the same
fault in its signature or limits, gets the same answer and reason on gRPC and HTTP."""

from __future__ import annotations

import http.client
import json
import secrets
import time
import uuid
from typing import Any

import orjson
import pytest

from services.common.errors import REASONS
from services.common.signing import sign_headers
from services.ingest.wiring import IngestGateway
from tests.conftest import AuthFactory, GatewayFactory, stored_lines
from tests.contract.auth_clients import (
    BODY_LIMIT,
    EMITTER,
    KEY_ID,
    Keys,
    Pair,
    batch,
    encode,
    push,
    rejected,
    send,
    start_pair,
    stored,
)


@pytest.fixture
def keys() -> Keys:
    return Keys.made()


@pytest.fixture(params=["grpc", "http"], ids=lambda hop: f"hop-{hop}")
def hop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pair(start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys) -> Pair:
    return start_pair(start_gateway, auth_gateway, keys)


def test_signed_push_is_stored_once_under_the_keys_emitter(
    start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys, front: str, hop: str
) -> None:
    p = start_pair(start_gateway, auth_gateway, keys, hop)
    doc = batch(records=3, emitter="somebody-else")
    first = push(front, p.auth, keys, doc)
    assert (first.status, first.doc["accepted"], first.doc["duplicate"]) == (200, 3, False)
    # HTTP headers, gRPC trailing metadata: the same fields.
    assert int(first.headers["ratelimit-remaining"]) < int(first.headers["ratelimit-limit"])
    assert int(first.headers["ratelimit-reset"]) >= 1
    # Sent again, freshly signed (a retry): acknowledged as a duplicate, not stored again.
    again = push(front, p.auth, keys, doc)
    assert (again.status, again.doc["duplicate"]) == (200, True)
    lines = stored(p.ingest, doc["batch_id"])
    assert sorted(line["seq"] for line in lines) == [0, 1, 2]
    assert {line["emitter"] for line in lines} == {EMITTER}


def test_rotation_both_secrets_of_a_key_verify(pair: Pair, keys: Keys, front: str) -> None:
    for secret in (0, 1):
        doc = batch()
        answer = push(front, pair.auth, keys, doc, key_id="k-rotating", secret=secret)
        assert answer.status == 200, answer.doc
        assert stored(pair.ingest, doc["batch_id"])[0]["emitter"] == "emitter-rotating"


# -- refusals ------------------------------------------------------------------------------


def refused_request(reason: str, front: str, keys: Keys) -> tuple[bytes, str, dict[str, str]]:
    """A request that the gateway must refuse for ``reason``."""
    big = "x" * (BODY_LIMIT + 1024) if reason == "too_large" else "hello"
    body, media = encode(front, batch(msg=big))
    secret = keys.secrets[KEY_ID][0]
    signed: dict[str, dict[str, str]] = {
        "missing_auth": {},
        "unknown_key": sign_headers(("k-nobody", secret), body, media),
        "clock_skew": sign_headers((KEY_ID, secret), body, media, now=time.time() - 400),
        "bad_content_hash": sign_headers((KEY_ID, secret), encode(front, batch())[0], media),
        "bad_signature": sign_headers((KEY_ID, secrets.token_urlsafe(32)), body, media),
    }
    if reason in signed:
        return body, media, signed[reason]
    return body, media, sign_headers((KEY_ID, secret), body, media)


@pytest.mark.parametrize(
    "reason",
    [
        "missing_auth",
        "unknown_key",
        "clock_skew",
        "bad_content_hash",
        "bad_signature",
        "replay",
        "too_large",
    ],
)
def test_each_refusal_has_its_reason_and_is_counted(
    pair: Pair, keys: Keys, front: str, reason: str
) -> None:
    body, media, headers = refused_request(reason, front, keys)
    if reason == "replay":
        assert send(front, pair.auth, body, media, headers).status == 200
    before = rejected(pair.auth, reason)
    answer = send(front, pair.auth, body, media, headers)
    assert (answer.status, answer.reason) == (REASONS[reason].http_status, reason), answer.doc
    assert rejected(pair.auth, reason) == before + 1
    if reason != "replay":
        assert stored_lines(pair.ingest.cfg.sink.dir) == []


def test_rate_limited_with_headers_and_retry_delay(pair: Pair, keys: Keys, front: str) -> None:
    """k-tight: 1 record/s, burst 3."""
    ok = push(front, pair.auth, keys, batch(records=3), key_id="k-tight")
    assert ok.status == 200
    assert ok.headers["ratelimit-limit"] == "3" and ok.headers["ratelimit-remaining"] == "0"
    # The same numbers in draft-ietf-httpapi-ratelimit-headers-10's structured fields.
    assert ok.headers["ratelimit-policy"] == '"records";q=3;w=3'
    assert ok.headers["ratelimit"] == '"records";r=0;t=3'
    over = push(front, pair.auth, keys, batch(records=2), key_id="k-tight")
    assert (over.status, over.reason) == (429, "rate_limited")
    assert over.retry_after is not None and over.retry_after >= 1
    assert over.headers["ratelimit-limit"] == "3"
    assert over.headers["ratelimit-remaining"] == "0"
    assert int(over.headers["ratelimit-reset"]) >= 1
    assert rejected(pair.auth, "rate_limited") == 1
    # More than the burst can never pass: 413, not a 429 that waiting would not cure.
    never = push(front, pair.auth, keys, batch(records=4), key_id="k-tight")
    assert (never.status, never.reason, never.retry_after) == (413, "too_many_records", None)


def test_a_keys_own_requests_per_sec_holds(pair: Pair, keys: Keys, front: str) -> None:
    """k-slow: 1 request/s (burst one second's worth), records unlimited for it."""
    ok = push(front, pair.auth, keys, batch(records=5), key_id="k-slow")
    assert ok.status == 200, ok.doc
    assert ok.headers["ratelimit-policy"] == '"requests";q=1;w=1'
    over = push(front, pair.auth, keys, batch(records=1), key_id="k-slow")
    assert (over.status, over.reason) == (429, "rate_limited")
    assert over.retry_after == 1
    assert over.headers["ratelimit"] == '"requests";r=0;t=1'
    # Another key is not held back by k-slow's limit.
    assert push(front, pair.auth, keys, batch(records=1)).status == 200


def test_a_forwarder_key_keeps_the_emitters_it_relays(pair: Pair, keys: Keys, front: str) -> None:
    doc = batch(records=2, emitter="edge-relay-7")
    answer = push(front, pair.auth, keys, doc, key_id="k-relay")
    assert answer.status == 200, answer.doc
    assert {line["emitter"] for line in stored(pair.ingest, doc["batch_id"])} == {"edge-relay-7"}


# Values a JSON body may hold that the protobuf hop carries differently: each must be read
# through the Auth Gateway as Ingest reads it when pushed directly (a null is absent, a seq
# that is not a whole number from 0 to 2**64-1 is refused in Ingest's words).
ODD_RECORDS: list[dict[str, Any]] = [
    {"msg": "null ts and level", "ts": None, "level": None, "seq": 0},
    {"msg": None, "raw": "user=ana action=login", "format": None, "seq": 1},
    {"msg": "fractional seq", "seq": 1.5},
    {"msg": "boolean seq", "seq": True},
    {"msg": "whole float seq", "seq": 2.0},
    {"msg": "null seq", "seq": None, "service": None, "host": None, "stream": None},
    {"msg": "seq as digits", "seq": "7"},
    {"msg": "seq past 64 bits", "seq": "18446744073709551616"},
]


def _direct(ingest: IngestGateway, doc: dict[str, Any]) -> dict[str, Any]:
    a = ingest.addresses
    assert a is not None
    conn = http.client.HTTPConnection("127.0.0.1", a.http_port, timeout=20)
    try:
        conn.request("POST", "/v1/logs", orjson.dumps(doc), {"Content-Type": "application/json"})
        answer: dict[str, Any] = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    return answer


def _comparable(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the two pushes share: not their batch ids, nor the time they were stored (a
    record without its own ts takes that time as its ts)."""
    def kept(key: str, line: dict[str, Any]) -> bool:
        return key not in ("batch_id", "ingest_ts") and not (key == "ts" and line["ts_missing"])

    return [{k: v for k, v in line.items() if kept(k, line)} for line in lines]


def test_odd_json_values_are_read_as_ingest_reads_them_over_either_hop(
    start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys, hop: str
) -> None:
    p = start_pair(start_gateway, auth_gateway, keys, hop)
    direct_doc: dict[str, Any] = {
        "batch_id": uuid.uuid4().hex, "emitter": EMITTER, "format": "logfmt",
        "records": ODD_RECORDS,
    }  # fmt: skip
    relayed_doc = {**direct_doc, "batch_id": uuid.uuid4().hex}
    direct = _direct(p.ingest, direct_doc)
    relayed = push("http", p.auth, keys, relayed_doc)
    assert relayed.status == 200, relayed.doc
    for key in ("accepted", "rejected", "rejections", "missing"):
        assert relayed.doc[key] == direct[key], key
    assert [r["index"] for r in direct["rejections"]] == [2, 3, 4, 7]
    assert _comparable(stored(p.ingest, relayed_doc["batch_id"])) == _comparable(
        stored(p.ingest, direct_doc["batch_id"])
    )
