"""What the transports put on the wire, and how they read refusals (no network)."""

from __future__ import annotations

import email.utils
import gzip

import pytest
from logops.v1 import logs_pb2

from clients.transports import (
    PUSH_METHOD,
    GrpcTransport,
    HttpTransport,
    PreparingTransport,
    encode_json,
    http_error,
    retry_after,
)
from services.common.errors import RateLimited, TooLarge, Unauthenticated, Unavailable
from services.common.model import Batch
from services.common.pb_codec import batch_from_bytes, batch_from_request_bytes

BATCH = Batch(records=[{"msg": "hello", "level": "INFO"}], batch_id="b-1", emitter="web")


def test_the_grpc_method_comes_from_the_generated_descriptor() -> None:
    assert PUSH_METHOD == "/logops.v1.LogService/Push"


def test_grpc_prepares_the_serialized_push_request_once() -> None:
    client = GrpcTransport("127.0.0.1:1")
    try:
        prepared = client.prepare(BATCH)
    finally:
        client.close()
    assert isinstance(client, PreparingTransport)
    assert prepared.media_type == "application/x-protobuf" and not prepared.headers
    request = logs_pb2.PushRequest.FromString(prepared.body)
    assert (request.batch.batch_id, request.batch.records[0].msg) == ("b-1", "hello")
    assert batch_from_request_bytes(prepared.body).batch_id == "b-1"


@pytest.mark.parametrize("content_type", ["application/json", "application/x-protobuf"])
def test_http_gzip_sends_and_signs_the_compressed_bytes(content_type: str) -> None:
    plain = HttpTransport("http://127.0.0.1:1", content_type).prepare(BATCH)
    packed = HttpTransport("http://127.0.0.1:1", content_type, compress=True).prepare(BATCH)
    assert packed.headers == {"Content-Type": content_type, "Content-Encoding": "gzip"}
    assert plain.headers == {"Content-Type": content_type}
    assert packed.media_type == plain.media_type == content_type
    assert gzip.decompress(packed.body) == plain.body
    if content_type == "application/json":
        assert plain.body == encode_json(BATCH)
    else:
        assert batch_from_bytes(plain.body).records[0]["msg"] == "hello"


def test_http_refuses_a_media_type_it_has_no_encoder_for() -> None:
    with pytest.raises(ValueError, match="content_type"):
        HttpTransport("http://127.0.0.1:1", "application/xml")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), (" 2 ", 2.0), ("1.5", 1.5), ("0", 0.0), ("-1", None), ("soon", None),
     ("", None), (None, None), ("nan", None)],
)
def test_retry_after_delay_seconds(value: str | None, seconds: float | None) -> None:
    assert retry_after(value) == seconds


def test_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    assert retry_after(email.utils.formatdate(now + 30, usegmt=True), now) == 30.0
    assert retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0


@pytest.mark.parametrize(
    ("status", "body", "headers", "cls", "reason", "wait"),
    [
        (429, b'{"error":{"reason":"rate_limited","message":"m"}}', {"retry-after": "2"},
         RateLimited, "rate_limited", 2.0),
        (503, b"<html>busy</html>", {"retry-after": "5"}, Unavailable, "overloaded", 5.0),
        (413, b"", {}, TooLarge, "too_large", None),
        (401, b'{"error":{"reason":"replay","message":"m"}}', {}, Unauthenticated, "replay",
         None),
    ],
)
def test_http_refusals_become_the_servers_exception(
    status: int, body: bytes, headers: dict[str, str], cls: type, reason: str,
    wait: float | None,
) -> None:
    err = http_error(status, headers, body)
    assert (type(err), err.reason, err.retry_after) == (cls, reason, wait)


def test_a_spooled_answer_is_a_result_not_an_error() -> None:
    result = HttpTransport.result(202, {}, b'{"batch_id":"b-1","accepted":0,"spooled":true}')
    assert result.spooled and result.batch_id == "b-1"
