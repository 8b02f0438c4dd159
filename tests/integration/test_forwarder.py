"""The forwarder against real servers: an Ingest Gateway on free ports, and recorders of the hop.

Ingest does not verify signatures yet, so the hop's headers are checked on a recording HTTP
server and a recording gRPC servicer, with the gateway's own ``Verifier``: its nonce store
refuses a nonce seen before, so a retry that reused one would fail there.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import orjson
import pytest
from logops.v1 import logs_pb2

from services.auth.breaker import ForwardBreaker
from services.auth.forwarder import Forwarder
from services.auth.model import Payload
from services.common.errors import BadRequest, LogOpsError, Unavailable
from services.common.keys import ApiKey, KeyRing
from services.common.nonces import MemoryNonceStore
from services.common.signing import Verifier, sign_headers
from services.ingest.wiring import IngestGateway
from tests.conftest import GatewayFactory, stored_lines

HOP_KEY = ApiKey("auth-gateway", "auth", (b"the gateway's own secret",))


def sign(body: bytes, media_type: str) -> Mapping[str, str]:
    return sign_headers(HOP_KEY, body, media_type)


class Metrics:
    def __init__(self) -> None:
        self.attempts: list[str] = []
        self.states: list[str] = []

    def attempt(self, outcome: str, seconds: float) -> None:
        self.attempts.append(outcome)

    def breaker_state(self, state: str) -> None:
        self.states.append(state)


class Clock:
    """Real time plus a jump, so a test can let a breaker's reset timeout pass at once."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.skipped


ForwarderFactory = Callable[..., Forwarder]


@pytest.fixture
def forwarders() -> Iterator[ForwarderFactory]:
    made: list[Forwarder] = []

    def make(
        target: str,
        attempts: int = 3,
        breaker: ForwardBreaker | None = None,
        metrics: Metrics | None = None,
    ) -> Forwarder:
        fwd = Forwarder(
            target, sign, 3.0, attempts, 0.01, 0.05, breaker or ForwardBreaker(5, 30.0),
            observer=metrics,
        )
        made.append(fwd)
        return fwd

    yield make
    for fwd in made:
        fwd.close()


def target_of(gw: IngestGateway, front: str) -> str:
    assert gw.addresses is not None
    if front == "grpc":
        return f"grpc://{gw.addresses.grpc_target}"
    return gw.addresses.http_url


def deadline(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


def push_request(batch_id: str, *msgs: str) -> Payload:
    batch = logs_pb2.LogBatch(
        batch_id=batch_id, emitter="grpc-app", records=[logs_pb2.LogRecord(msg=m) for m in msgs]
    )
    body = logs_pb2.PushRequest(batch=batch).SerializeToString()
    return Payload.from_push_request(body, batch_id=batch_id, records=len(msgs))


def stored(gw: IngestGateway) -> list[dict[str, Any]]:
    return stored_lines(gw.cfg.sink.dir)


def test_a_json_body_goes_over_http_as_sent(
    gateway: IngestGateway, forwarders: ForwarderFactory
) -> None:
    body = orjson.dumps(
        {
            "batch_id": "fwd-json",
            "emitter": "web",
            "records": [{"lvl": "warn", "message": "disk 91%"}, {"level": "info", "msg": "ok"}],
        }
    )
    payload = Payload(body, "application/json", batch_id="fwd-json", records=2)
    result = forwarders(target_of(gateway, "http")).forward(payload, deadline())
    assert (result.batch_id, result.accepted, result.duplicate) == ("fwd-json", 2, False)
    lines = stored(gateway)
    assert [(r["msg"], r["level"], r["batch_id"], r["emitter"]) for r in lines] == [
        ("disk 91%", "WARN", "fwd-json", "web"),
        ("ok", "INFO", "fwd-json", "web"),
    ]


@pytest.mark.parametrize("encoding", ["", "gzip"])
def test_an_ndjson_body_takes_its_batch_from_the_meta_headers(
    gateway: IngestGateway, forwarders: ForwarderFactory, encoding: str
) -> None:
    body = b'{"msg": "first", "level": "error"}\n{"msg": "second"}\n'
    meta = {"X-LogOps-Batch-Id": f"fwd-nd-{encoding}", "X-LogOps-Emitter": "nd-app",
            "X-LogOps-Run-Id": "run-7"}
    payload = Payload(
        gzip.compress(body) if encoding else body, "application/x-ndjson", encoding, meta,
        batch_id=f"fwd-nd-{encoding}", records=2,
    )
    result = forwarders(target_of(gateway, "http")).forward(payload, deadline())
    assert result.accepted == 2
    assert [(r["msg"], r["batch_id"], r["emitter"], r["run_id"]) for r in stored(gateway)] == [
        ("first", f"fwd-nd-{encoding}", "nd-app", "run-7"),
        ("second", f"fwd-nd-{encoding}", "nd-app", "run-7"),
    ]


def test_push_request_bytes_are_stored(
    gateway: IngestGateway, forwarders: ForwarderFactory, front: str
) -> None:
    """Over gRPC as they are; over HTTP the LogBatch inside them, sliced out."""
    result = forwarders(target_of(gateway, front)).forward(
        push_request("fwd-pb", "one", "two"), deadline()
    )
    assert (result.batch_id, result.accepted) == ("fwd-pb", 2)
    assert [(r["msg"], r["batch_id"], r["emitter"]) for r in stored(gateway)] == [
        ("one", "fwd-pb", "grpc-app"),
        ("two", "fwd-pb", "grpc-app"),
    ]


def test_a_batch_forwarded_again_is_a_duplicate_and_stored_once(
    gateway: IngestGateway, forwarders: ForwarderFactory, front: str
) -> None:
    fwd = forwarders(target_of(gateway, front))
    first = fwd.forward(push_request("fwd-dup", "only once"), deadline())
    again = fwd.forward(push_request("fwd-dup", "only once"), deadline())
    assert (first.duplicate, again.duplicate, again.accepted) == (False, True, 1)
    assert [r["msg"] for r in stored(gateway)] == ["only once"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("scheme", ["grpc", "http"])
def test_nothing_listening_is_retried_then_downstream_unavailable_then_the_breaker_opens(
    forwarders: ForwarderFactory, scheme: str
) -> None:
    metrics = Metrics()
    breaker = ForwardBreaker(fail_max=3, reset_timeout_sec=30.0)
    fwd = forwarders(f"{scheme}://127.0.0.1:{free_port()}", 3, breaker, metrics)
    with pytest.raises(Unavailable) as err:
        fwd.forward(push_request("fwd-void", "lost?"), deadline())
    assert err.value.reason == "downstream_unavailable"
    assert metrics.attempts == ["transport_error"] * 3
    assert breaker.state == "open"
    with pytest.raises(Unavailable) as err:
        fwd.forward(push_request("fwd-void-2", "spool me"), deadline())
    assert err.value.reason == "downstream_unavailable"
    assert metrics.attempts[3:] == ["breaker_open"]
    assert metrics.states == ["closed", "open"]


def test_after_ingest_restarts_on_the_same_port_one_trial_closes_the_breaker(
    start_gateway: GatewayFactory, forwarders: ForwarderFactory, front: str
) -> None:
    gw = start_gateway()
    assert gw.addresses is not None
    ports = {"http.port": gw.addresses.http_port, "grpc.port": gw.addresses.grpc_port}
    clock, metrics = Clock(), Metrics()
    breaker = ForwardBreaker(fail_max=2, reset_timeout_sec=60.0, clock=clock)
    fwd = forwarders(target_of(gw, front), 1, breaker, metrics)
    assert fwd.forward(push_request("before", "a"), deadline()).accepted == 1

    gw.stop(grace=0.5)
    for _ in range(2):
        with pytest.raises(Unavailable):
            fwd.forward(push_request("during", "b"), deadline())
    assert breaker.state == "open"

    again = start_gateway(sink_dir=gw.cfg.sink.dir, **ports)
    clock.skipped += 60.0
    result = fwd.forward(push_request("during", "b"), deadline())
    assert (result.accepted, result.duplicate) == (1, False)
    assert breaker.state == "closed"
    assert metrics.states == ["closed", "open", "half_open", "closed"]
    assert [r["batch_id"] for r in stored(again)] == ["before", "during"]


def test_a_malformed_body_comes_back_at_once_as_bad_request(
    gateway: IngestGateway, forwarders: ForwarderFactory, front: str
) -> None:
    metrics = Metrics()
    breaker = ForwardBreaker(fail_max=1, reset_timeout_sec=30.0)
    fwd = forwarders(target_of(gateway, front), 3, breaker, metrics)
    if front == "grpc":
        # A batch field whose bytes are no LogBatch: Ingest decodes it, the forwarder does not.
        payload = Payload.from_push_request(b"\x0a\x03\xff\xff\xff")
    else:
        payload = Payload(b'{"batch_id": "x", "records": [', "application/json")
    with pytest.raises(BadRequest) as err:
        fwd.forward(payload, deadline())
    assert err.value.reason == "bad_request"
    assert metrics.attempts == ["client_error"]
    assert breaker.state == "closed"
    assert stored(gateway) == []


# --- the hop's signature, seen by the receiving side -----------------------------------------


def verifier() -> Verifier:
    return Verifier(KeyRing([HOP_KEY]), MemoryNonceStore())


class Recorder(BaseHTTPRequestHandler):
    """Records each request; answers the first 503 overloaded, the others 200."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(({k.lower(): v for k, v in self.headers.items()}, body))
        if len(self.seen) == 1:
            error = LogOpsError("busy", reason="overloaded", retry_after=0)
            self._answer(503, orjson.dumps(error.to_dict()), ("Retry-After", "0"))
        else:
            answer = {"batch_id": "fwd-hop", "accepted": 2, "duplicate": False}
            self._answer(200, orjson.dumps(answer))

    def _answer(self, status: int, data: bytes, *headers: tuple[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_recorder() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    seen: list[tuple[dict[str, str], bytes]] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_every_http_attempt_is_signed_afresh_over_the_bytes_sent(
    http_recorder: tuple[str, list[tuple[dict[str, str], bytes]]], forwarders: ForwarderFactory
) -> None:
    url, seen = http_recorder
    metrics = Metrics()
    body = gzip.compress(b"ts,level,msg\n2026-01-01T00:00:00Z,info,a\n2026-01-01T00:00:01Z,warn,b")
    meta = {"X-LogOps-Batch-Id": "fwd-hop", "X-LogOps-Emitter": "csv-app"}
    payload = Payload(body, "text/csv; charset=utf-8", "gzip", meta, "fwd-hop", 2)
    result = forwarders(url, metrics=metrics).forward(payload, deadline())
    assert result.accepted == 2
    assert metrics.attempts == ["retryable", "ok"]
    check = verifier()
    for headers, received in seen:
        assert received == body
        assert check.verify(headers, received, headers["content-type"]) == HOP_KEY
        assert headers["content-type"] == "text/csv; charset=utf-8"
        assert headers["content-encoding"] == "gzip"
        assert headers["x-logops-batch-id"] == "fwd-hop"
        assert headers["x-logops-emitter"] == "csv-app"
        assert "application/x-protobuf" in headers["accept"]


def test_every_grpc_attempt_is_signed_afresh_in_its_metadata(
    forwarders: ForwarderFactory,
) -> None:
    seen: list[tuple[dict[str, str], bytes]] = []

    def push(request: bytes, context: grpc.ServicerContext) -> logs_pb2.PushResponse:
        seen.append((dict(context.invocation_metadata()), request))
        if len(seen) == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "not yet")  # no ErrorInfo: no answer
        return logs_pb2.PushResponse(batch_id="fwd-hop", accepted=2)

    handler = grpc.method_handlers_generic_handler(
        "logops.v1.LogService",
        {
            "Push": grpc.unary_unary_rpc_method_handler(
                push, response_serializer=logs_pb2.PushResponse.SerializeToString
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(2), handlers=(handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        metrics = Metrics()
        payload = push_request("fwd-hop", "one", "two")
        fwd = forwarders(f"grpc://127.0.0.1:{port}", metrics=metrics)
        result = fwd.forward(payload, deadline())
    finally:
        server.stop(0)
    assert result.accepted == 2
    assert metrics.attempts == ["transport_error", "ok"]
    check = verifier()
    assert len(seen) == 2
    for metadata, received in seen:
        assert received == payload.body
        assert check.verify(metadata, received, "application/x-protobuf") == HOP_KEY
