"""The gRPC server's limits as numbers: message size around the body limit, and its options."""

from __future__ import annotations

import pytest
from google.protobuf import wrappers_pb2
from logops.v1 import logs_pb2

from services.common.config import ConnectionsConfig, LimitsConfig
from services.common.grpc_server import (
    MESSAGE_SLACK,
    embedded_length,
    request_size_limit,
    server_options,
)


@pytest.mark.parametrize("n", [1, 127, 128, 16_383, 16_384, 2**21 - 1, 2**21, 4_194_304])
def test_request_size_limit_is_the_serialized_size_of_a_field_1_body(n: int) -> None:
    # BytesValue is one length-delimited field 1, as PushRequest's batch is.
    assert request_size_limit(n) == len(wrappers_pb2.BytesValue(value=b"x" * n).SerializeToString())


def test_default_limit_wraps_a_4_mib_body() -> None:
    assert request_size_limit(4_194_304) == 4_194_309


def _request(msg: str, batch_id: str = "b") -> bytes:
    batch = logs_pb2.LogBatch(batch_id=batch_id, records=[logs_pb2.LogRecord(msg=msg)])
    return logs_pb2.PushRequest(batch=batch).SerializeToString()


def test_embedded_length_is_the_batch_size() -> None:
    batch = logs_pb2.LogBatch(batch_id="b", records=[logs_pb2.LogRecord(msg="m" * 300)])
    body = logs_pb2.PushRequest(batch=batch).SerializeToString()
    assert embedded_length(body, 1) == batch.ByteSize()
    assert embedded_length(b"", 1) == 0


def test_embedded_length_sums_repeated_occurrences_and_skips_other_fields() -> None:
    one, two = _request("a" * 200), _request("b" * 5000, "c")
    unknown = b"\x10\x96\x01" + b"\x19" + b"\0" * 8 + b"\x25" + b"\0" * 4 + b"\x1a\x03abc"
    merged = one + unknown + two  # protobuf merges the two batches into one
    assert embedded_length(merged, 1) == len(one) - 3 + len(two) - 3
    assert logs_pb2.PushRequest.FromString(merged).batch.ByteSize() <= embedded_length(merged, 1)


@pytest.mark.parametrize(
    "body",
    [b"\x0a", b"\x0a\xff", b"\x0a\x05ab", b"\x0b\x00", b"\x0a" + b"\xff" * 10],
)
def test_embedded_length_of_malformed_bytes_stays_within_them(body: bytes) -> None:
    assert 0 <= embedded_length(body, 1) <= len(body)


def test_options_follow_the_config() -> None:
    limits = LimitsConfig(max_body_bytes=1000)
    conns = ConnectionsConfig(
        header_timeout_sec=2.5,
        body_timeout_sec=7.0,
        grpc_idle_timeout_sec=60.0,
        grpc_max_connection_age_sec=600.0,
        grpc_max_streams_per_connection=8,
    )
    options = dict(server_options(limits, conns))
    assert options["grpc.max_receive_message_length"] == request_size_limit(1000) + MESSAGE_SLACK
    assert options["grpc.max_concurrent_streams"] == 8
    assert options["grpc.server_handshake_timeout_ms"] == 2500
    assert options["grpc.max_connection_idle_ms"] == 60_000
    assert options["grpc.max_connection_age_ms"] == 600_000
    assert options["grpc.max_connection_age_grace_ms"] == 7000
    # Clients may not ping more often than the server is willing to be pinged.
    assert options["grpc.http2.min_ping_interval_without_data_ms"] <= options[
        "grpc.keepalive_time_ms"
    ]
