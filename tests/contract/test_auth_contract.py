"""Every case runs over both fronts of the Auth Gateway: the same signed push, or the same
fault in its signature or limits, gets the same answer and reason on gRPC and HTTP."""

from __future__ import annotations

import secrets
import time

import pytest

from services.common.errors import REASONS
from services.common.signing import sign_headers
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
