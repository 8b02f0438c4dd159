"""The HTTP front as a client sees it: content types, errors, limits, probes, metrics."""

from __future__ import annotations

import gzip
import http.client
import json
import uuid
from typing import Any

import pytest
from falcon.inspect import inspect_routes
from logops.v1 import logs_pb2

from services.ingest.wiring import IngestGateway
from tests.conftest import GatewayFactory, stored_lines


def request(
    gw: IngestGateway,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    assert gw.addresses is not None
    conn = http.client.HTTPConnection(gw.addresses.http_host, gw.addresses.http_port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def push(gw: IngestGateway, body: bytes, ctype: str, **headers: str) -> tuple[int, Any, dict]:
    hdrs = {"Content-Type": ctype, "X-LogOps-Batch-Id": uuid.uuid4().hex, **headers}
    status, h, data = request(gw, "POST", "/v1/logs", body, hdrs)
    return status, json.loads(data) if data else None, h


def assert_error(doc: Any, code: str, reason: str) -> None:
    err = doc["error"]
    assert (err["code"], err["reason"]) == (code, reason)
    assert err["message"] and err["request_id"]


def test_ndjson_with_header_metadata(gateway: IngestGateway) -> None:
    body = b'{"ts":"2024-01-01T00:00:00Z","level":"info","msg":"a"}\n{"msg":"b"}\n'
    status, doc, _ = push(
        gateway, body, "application/x-ndjson", **{"X-LogOps-Emitter": "nd", "X-LogOps-Run-Id": "r9"}
    )
    assert status == 200 and doc["accepted"] == 2
    lines = stored_lines(gateway.cfg.sink.dir)
    assert {(x["emitter"], x["run_id"]) for x in lines} == {("nd", "r9")}


def test_plain_text_lines_with_named_format(gateway: IngestGateway) -> None:
    body = (
        b"2024-03-12T14:05:09Z web01 api[12]: ERROR boom\n"
        b"ts=2024-03-12T14:05:09Z level=warn msg=hello\n"
    )
    status, doc, _ = push(gateway, body, "text/plain", **{"X-LogOps-Format": "syslog"})
    assert status == 200
    assert (doc["accepted"], doc["rejected"]) == (1, 1)
    assert doc["rejections"][0]["index"] == 1


def test_plain_text_without_format_is_detected(gateway: IngestGateway) -> None:
    body = b"ts=2024-03-12T14:05:09Z level=warn msg=hello\njust words\n"
    status, doc, _ = push(gateway, body, "text/plain")
    assert status == 200 and doc["accepted"] == 2
    first, second = stored_lines(gateway.cfg.sink.dir)
    assert (first["format"], first["level"], first["msg"]) == ("logfmt", "WARN", "hello")
    assert (second["format"], second["msg"], second["ts_missing"]) == ("text", "just words", True)


def test_protobuf_body_and_protobuf_answer(gateway: IngestGateway) -> None:
    msg = logs_pb2.LogBatch(batch_id="pb-1", emitter="pb", records=[logs_pb2.LogRecord(msg="x")])
    status, headers, data = request(
        gateway, "POST", "/v1/logs", msg.SerializeToString(),
        {"Content-Type": "application/x-protobuf", "Accept": "application/x-protobuf"},
    )
    assert status == 200 and headers["content-type"] == "application/x-protobuf"
    answer = logs_pb2.PushResponse.FromString(data)
    assert (answer.batch_id, answer.accepted) == ("pb-1", 1)


def test_gzip_body(gateway: IngestGateway) -> None:
    body = gzip.compress(json.dumps([{"msg": "zipped"}] * 3).encode())
    status, doc, _ = push(gateway, body, "application/json", **{"Content-Encoding": "gzip"})
    assert status == 200 and doc["accepted"] == 3


@pytest.mark.parametrize(
    ("body", "ctype", "headers", "status", "code", "reason"),
    [
        (b"{oops", "application/json", {}, 400, "INVALID_ARGUMENT", "bad_request"),
        (b"\x08\x96\x01\xff\xff", "application/x-protobuf", {}, 400, "INVALID_ARGUMENT",
         "bad_request"),
        (b"<xml/>", "application/xml", {}, 415, "INVALID_ARGUMENT", "unsupported_media_type"),
        (b"[]", "", {}, 415, "INVALID_ARGUMENT", "unsupported_media_type"),
        (b"[]", "application/json", {"Content-Encoding": "br"}, 415, "INVALID_ARGUMENT",
         "unsupported_media_type"),
        (b"not gzip", "application/json", {"Content-Encoding": "gzip"}, 400, "INVALID_ARGUMENT",
         "bad_request"),
    ],
)
def test_malformed_bodies(
    gateway: IngestGateway,
    body: bytes, ctype: str, headers: dict[str, str], status: int, code: str, reason: str,
) -> None:
    got, doc, _ = push(gateway, body, ctype, **headers)
    assert got == status
    assert_error(doc, code, reason)
    assert stored_lines(gateway.cfg.sink.dir) == []


def test_gzip_bomb_is_413_and_server_stays_up(gateway: IngestGateway) -> None:
    bomb = gzip.compress(b"[" + b" " * (40 * 1024 * 1024) + b"]")
    status, doc, _ = push(gateway, bomb, "application/json", **{"Content-Encoding": "gzip"})
    assert status == 413
    assert_error(doc, "RESOURCE_EXHAUSTED", "too_large")
    assert request(gateway, "GET", "/healthz")[0] == 200


def test_declared_length_over_limit_refused_before_reading(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(**{"limits.max_body_bytes": 1024})
    status, doc, _ = push(gw, b"[" + b" " * 2000 + b"]", "application/json")
    assert status == 413
    assert_error(doc, "RESOURCE_EXHAUSTED", "too_large")


def test_request_id_is_echoed_and_reported(gateway: IngestGateway) -> None:
    _, doc, headers = push(gateway, b"{", "application/json", **{"X-Request-ID": "abc-123"})
    assert headers["x-request-id"] == "abc-123"
    assert doc["error"]["request_id"] == "abc-123"
    _, doc, headers = push(gateway, b"[]", "application/json")
    assert doc["request_id"] == headers["x-request-id"] != ""


def test_framework_errors_use_the_same_shape(gateway: IngestGateway) -> None:
    status, _, data = request(gateway, "GET", "/nope")
    assert status == 404
    assert_error(json.loads(data), "NOT_FOUND", "not_found")
    status, _, data = request(gateway, "GET", "/v1/logs")
    assert status == 405
    assert_error(json.loads(data), "UNIMPLEMENTED", "method_not_allowed")


def test_readiness_follows_the_sink(gateway: IngestGateway) -> None:
    assert request(gateway, "GET", "/readyz")[0] == 200


def test_metrics_exposition(gateway: IngestGateway) -> None:
    push(gateway, b'[{"msg":"a","level":"error"},{"msg":"b"}]', "application/json",
         **{"X-LogOps-Emitter": "m1"})
    push(gateway, b"{", "application/json")
    status, headers, data = request(gateway, "GET", "/metrics")
    text = data.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert 'logops_ingest_records_accepted_total{emitter="m1",level="ERROR"} 1.0' in text
    assert 'logops_ingest_requests_total{code="OK",front="http"} 1.0' in text
    assert 'logops_ingest_requests_total{code="INVALID_ARGUMENT",front="http"} 1.0' in text
    assert 'logops_ingest_missing_fields_total{field="ts",reason="absent"} 2.0' in text
    assert 'le="0.5"' in text


def test_thousands_of_emitter_names_keep_labels_bounded(gateway: IngestGateway) -> None:
    for i in range(1500):
        push(gateway, b'[{"msg":"x"}]', "application/json", **{"X-LogOps-Emitter": f"e{i}"})
    text = request(gateway, "GET", "/metrics")[2].decode()
    series = [ln for ln in text.splitlines()
              if ln.startswith("logops_ingest_records_accepted_total{")]
    assert len(series) <= 201
    assert any('emitter="other"' in ln for ln in series)
    assert len(stored_lines(gateway.cfg.sink.dir)) == 1500


def test_openapi_describes_every_route(gateway: IngestGateway) -> None:
    status, _, data = request(gateway, "GET", "/openapi.json")
    doc = json.loads(data)
    assert status == 200 and doc["openapi"].startswith("3.")
    served = {
        (route.path, method.method.lower())
        for route in inspect_routes(gateway.http_app)
        for method in route.methods
        if not method.internal
    }
    described = {(path, verb) for path, ops in doc["paths"].items() for verb in ops}
    assert served == described


def test_body_far_over_the_limit_is_413_for_the_client(gateway: IngestGateway) -> None:
    """waitress refuses bodies well past the limit itself; clients still see too_large."""
    from clients.transports import HttpTransport
    from services.common.errors import TooLarge

    assert gateway.addresses is not None
    client = HttpTransport(gateway.addresses.http_url)
    body = b"[" + b" " * (6 * 1024 * 1024) + b"]"
    with pytest.raises(TooLarge) as info:
        client.result(*client.post(body, {"Content-Type": "application/json"}))
    assert info.value.reason == "too_large"
    client.close()
    assert request(gateway, "GET", "/healthz")[0] == 200
