"""Compressed bodies a real gateway must read whole or refuse whole, on both fronts.

HTTP: a gzip body of several members (``cat a.gz b.gz``, pigz, streaming shippers) is
stored in full; bytes after the last member, a truncated member or a deflate stream
with a tail are a 400 and store nothing.

gRPC: grpc core undoes message compression itself, before any of our code runs, so the
compressed message is sent here as raw HTTP/2 (``h2``). The one thing that must hold
is that a push is never answered OK with records left out.
"""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import struct
import uuid
import zlib
from typing import Any

import h2.connection
import h2.events
import pytest
from logops.v1 import logs_pb2

from services.ingest.wiring import IngestGateway
from tests.conftest import stored_lines

NDJSON = b"".join(b'{"msg":"record %d","seq":%d}\n' % (i, i) for i in range(40))


def _post(gw: IngestGateway, body: bytes, encoding: str) -> tuple[int, Any]:
    assert gw.addresses is not None
    conn = http.client.HTTPConnection(gw.addresses.http_host, gw.addresses.http_port, timeout=10)
    headers = {
        "Content-Type": "application/x-ndjson",
        "Content-Encoding": encoding,
        "X-LogOps-Batch-Id": uuid.uuid4().hex,
    }
    try:
        conn.request("POST", "/v1/logs", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _bad_request(doc: Any, words: str) -> None:
    err = doc["error"]
    assert (err["code"], err["reason"]) == ("INVALID_ARGUMENT", "bad_request")
    assert words in err["message"] and err["request_id"]


def test_every_gzip_member_is_stored(gateway: IngestGateway) -> None:
    cut = NDJSON.index(b"\n", len(NDJSON) // 3) + 1
    body = gzip.compress(NDJSON[:cut]) + gzip.compress(b"") + gzip.compress(NDJSON[cut:])
    status, doc = _post(gateway, body, "gzip")
    assert (status, doc["accepted"]) == (200, 40)
    assert [line["seq"] for line in stored_lines(gateway.cfg.sink.dir)] == list(range(40))


@pytest.mark.parametrize(
    ("body", "encoding", "words"),
    [
        (gzip.compress(NDJSON) + b"trailing junk", "gzip", "not a gzip member"),
        (gzip.compress(NDJSON) + gzip.compress(NDJSON)[:-5], "gzip", "truncated"),
        (gzip.compress(NDJSON)[:-1], "gzip", "truncated"),
        (zlib.compress(NDJSON) + b"\n", "deflate", "after the end of its deflate stream"),
    ],
    ids=["junk", "truncated-second-member", "truncated", "deflate-tail"],
)
def test_junk_or_truncation_is_a_400_and_nothing_is_stored(
    gateway: IngestGateway, body: bytes, encoding: str, words: str
) -> None:
    status, doc = _post(gateway, body, encoding)
    assert status == 400
    _bad_request(doc, words)
    assert stored_lines(gateway.cfg.sink.dir) == []


def test_a_flood_of_empty_members_is_refused(gateway: IngestGateway) -> None:
    empty = gzip.compress(b"")
    status, doc = _post(gateway, empty * (1024 * 1024 // len(empty)), "gzip")
    assert (status, doc["error"]["reason"]) == (413, "too_large")
    assert stored_lines(gateway.cfg.sink.dir) == []


# -- gRPC ---------------------------------------------------------------------------------


def _grpc_push(gw: IngestGateway, compressed: bytes) -> tuple[str, str, bytes]:
    """One Push whose message is ``compressed`` as sent (``grpc-encoding: gzip``);
    answers (grpc-status, grpc-message, response message bytes)."""
    assert gw.addresses is not None
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    conn.send_headers(
        1,
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/logops.v1.LogService/Push"),
            (":authority", gw.addresses.grpc_target),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-encoding", "gzip"),
        ],
    )
    conn.send_data(1, struct.pack(">BI", 1, len(compressed)) + compressed, end_stream=True)
    fields: dict[str, str] = {}
    data = b""
    with socket.create_connection(("127.0.0.1", gw.addresses.grpc_port), timeout=10) as sock:
        sock.sendall(conn.data_to_send())
        ended = False
        while not ended and (chunk := sock.recv(65536)):
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                    fields.update({_text(k): _text(v) for k, v in event.headers})
                elif isinstance(event, h2.events.DataReceived):
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                ended = ended or isinstance(event, h2.events.StreamEnded | h2.events.StreamReset)
            sock.sendall(conn.data_to_send())
    return fields.get("grpc-status", ""), fields.get("grpc-message", ""), data[5:]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _request(batch_id: str) -> bytes:
    records = [logs_pb2.LogRecord(msg=f"record {i}", seq=i) for i in range(1, 41)]
    batch = logs_pb2.LogBatch(batch_id=batch_id, emitter="gz", records=records)
    return logs_pb2.PushRequest(batch=batch).SerializeToString()


def test_grpc_reads_a_compressed_message_sent_raw(gateway: IngestGateway) -> None:
    status, _, data = _grpc_push(gateway, gzip.compress(_request("one")))
    assert status == "0"
    assert logs_pb2.PushResponse.FromString(data).accepted == 40


@pytest.mark.parametrize("junk", [b"", b"trailing junk"], ids=["two-members", "junk"])
def test_grpc_never_answers_ok_with_records_left_out(gateway: IngestGateway, junk: bytes) -> None:
    message = _request("split")
    cut = len(message) // 2
    compressed = gzip.compress(message[:cut]) + gzip.compress(message[cut:]) + junk
    status, text, _ = _grpc_push(gateway, compressed)
    stored = stored_lines(gateway.cfg.sink.dir)
    if junk or status != "0":
        # grpc core refuses what follows the first member (INTERNAL, "Decompression
        # failed due to not all input consumed") before the core sees the message.
        assert status not in ("", "0") and "ecompression" in text
        assert stored == []
    else:
        assert [line["seq"] for line in stored] == list(range(1, 41))
