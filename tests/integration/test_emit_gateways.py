"""Emitting through a real Auth Gateway into a real Ingest Gateway, over every gateway
transport and HTTP body kind, and checking that the sink holds exactly the records sent.

Both gateways run in this process on free ports. Pushes are signed with a client key
the Auth Gateway knows; it forwards over gRPC to Ingest, which writes the NDJSON sink.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from clients.signed import Signer
from clients.targets import TransportSpec, open_transport
from emitters.content import ContentOptions
from emitters.emit import EmitLoop, EmitOptions, EmitResult, RetryCounter
from emitters.formats import get_format
from emitters.rate import Schedule
from emitters.source import Accounting, EventSource
from services.auth.wiring import AuthGateway
from services.common.keys import ApiKey, KeyRing
from services.ingest.wiring import IngestGateway
from tests.conftest import AuthFactory, GatewayFactory, stored_lines

SECRET = b"the emitter's integration-test secret"
KEY = ApiKey("emit-key", "emitter-e", (SECRET,))
TIGHT = ApiKey("emit-tight", "emitter-t", (SECRET,), records_per_sec=100.0, burst=50)
SIGNER = Signer(KEY.key_id, SECRET)


@pytest.fixture
def gateways(
    start_gateway: GatewayFactory, auth_gateway: AuthFactory
) -> tuple[IngestGateway, AuthGateway]:
    ingest = start_gateway()
    assert ingest.addresses is not None
    auth = auth_gateway(f"grpc://{ingest.addresses.grpc_target}", KeyRing([KEY, TIGHT]))
    return ingest, auth


def emit(
    spec: TransportSpec,
    fmt: str,
    count: int,
    *,
    signer: Signer | None = SIGNER,
    structured: bool = False,
    run_id: str = "run-gw",
    rate: float = 5000.0,
    batch_size: int = 40,
    retries: RetryCounter | None = None,
) -> EmitResult:
    source = EventSource(
        get_format(fmt),
        ContentOptions(missing_ts_ratio=0.1),
        Accounting(run_id, "gw#1"),
        seed=11,
        line_keys=spec.line_keys,
    )
    retries = retries or RetryCounter()
    transport = open_transport(spec, signer, retry_sleep=retries)
    opts = EmitOptions("ignored-by-auth", batch_size=batch_size, structured=structured)
    loop = EmitLoop(
        source,
        Schedule.constant(rate, count=count),
        transport,
        opts,
        transport_name=spec.name,
        retries=retries,
    )
    try:
        return loop.run()
    finally:
        transport.close()


def stored_of(ingest: IngestGateway, run_id: str) -> list[dict[str, Any]]:
    return [line for line in stored_lines(ingest.cfg.sink.dir) if line["run_id"] == run_id]


def check_exactly_once(lines: list[dict[str, Any]], count: int, fmt: str) -> None:
    assert sorted(line["seq"] for line in lines) == list(range(count))
    assert {line["stream"] for line in lines} == {"gw#1"}
    assert {line["format"] for line in lines} == {fmt}
    # Ingest stores the key's emitter, whatever the batch said.
    assert {line["emitter"] for line in lines} == {"emitter-e"}
    # About 10 % of the lines had no timestamp, and Ingest saw that.
    missing = Counter(line["ts_missing"] for line in lines)
    assert 0 < missing[True] < count


@pytest.mark.parametrize(
    ("transport", "body", "fmt"),
    [
        ("grpc", "json", "json"),
        ("grpc", "json", "syslog"),
        ("http", "json", "json"),
        ("http", "json", "csv"),
        ("http", "ndjson", "logfmt"),
        ("http", "csv", "json"),
        ("http", "csv", "syslog"),
        ("http", "text", "json"),
        ("http", "text", "logfmt"),
        ("http", "protobuf", "csv"),
    ],
)
def test_every_record_is_stored_once_with_its_run_stream_and_seq(
    gateways: tuple[IngestGateway, AuthGateway], transport: str, body: str, fmt: str
) -> None:
    ingest, auth = gateways
    assert auth.addresses is not None
    target = auth.addresses.grpc_target if transport == "grpc" else auth.addresses.http_url
    run_id = f"run-{transport}-{body}-{fmt}"
    result = emit(TransportSpec(transport, target, http_body=body), fmt, 230, run_id=run_id)
    assert (result.sent, result.accepted, result.rejected, result.failed) == (230, 230, 0, 0)
    assert result.ok
    check_exactly_once(stored_of(ingest, run_id), 230, fmt)


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_json_may_go_structured(
    gateways: tuple[IngestGateway, AuthGateway], transport: str
) -> None:
    ingest, auth = gateways
    assert auth.addresses is not None
    target = auth.addresses.grpc_target if transport == "grpc" else auth.addresses.http_url
    run_id = f"run-structured-{transport}"
    result = emit(TransportSpec(transport, target), "json", 120, structured=True, run_id=run_id)
    assert result.accepted == 120
    lines = stored_of(ingest, run_id)
    assert sorted(line["seq"] for line in lines) == list(range(120))
    assert {line["format"] for line in lines} == {"structured"}
    assert all(line["trace_id"] for line in lines)


def test_straight_to_ingest_without_a_key(gateways: tuple[IngestGateway, AuthGateway]) -> None:
    ingest, _ = gateways
    assert ingest.addresses is not None
    spec = TransportSpec("grpc", ingest.addresses.grpc_target)
    result = emit(spec, "json", 90, signer=None, run_id="run-direct")
    assert result.ok
    lines = stored_of(ingest, "run-direct")
    assert sorted(line["seq"] for line in lines) == list(range(90))
    assert {line["emitter"] for line in lines} == {"ignored-by-auth"}


@pytest.mark.parametrize("body", ["protobuf", "ndjson", "csv"])
def test_http_bodies_straight_to_ingest(
    gateways: tuple[IngestGateway, AuthGateway], body: str
) -> None:
    ingest, _ = gateways
    assert ingest.addresses is not None
    run_id = f"run-direct-{body}"
    spec = TransportSpec("http", ingest.addresses.http_url, http_body=body)
    result = emit(spec, "logfmt", 110, signer=None, run_id=run_id)
    assert result.ok
    lines = stored_of(ingest, run_id)
    assert sorted(line["seq"] for line in lines) == list(range(110))
    assert {line["stream"] for line in lines} == {"gw#1"}


def test_a_wrong_signature_is_rejected_and_counted(
    gateways: tuple[IngestGateway, AuthGateway],
) -> None:
    ingest, auth = gateways
    assert auth.addresses is not None
    wrong = Signer(KEY.key_id, b"not the secret the gateway knows")
    spec = TransportSpec("http", auth.addresses.http_url)
    result = emit(spec, "json", 80, signer=wrong, run_id="run-wrong")
    assert (result.sent, result.accepted, result.rejected) == (80, 0, 80)
    assert dict(result.rejections) == {"bad_signature": 80}
    assert not result.ok
    assert stored_of(ingest, "run-wrong") == []


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_rate_limited_batches_wait_for_retry_after_and_keep_their_batch_id(
    gateways: tuple[IngestGateway, AuthGateway], transport: str
) -> None:
    ingest, auth = gateways
    assert auth.addresses is not None
    target = auth.addresses.grpc_target if transport == "grpc" else auth.addresses.http_url
    signer = Signer(TIGHT.key_id, SECRET)
    run_id = f"run-limited-{transport}"
    # 100 records/s with a burst of 50: batches of 50 at 1000/s outrun the limit at once.
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    retries = RetryCounter(wait)
    result = emit(
        TransportSpec(transport, target),
        "json",
        250,
        signer=signer,
        run_id=run_id,
        rate=1000.0,
        batch_size=50,
        retries=retries,
    )
    assert (result.accepted, result.failed) == (250, 0)
    assert result.retries == len(waits) > 0
    # Each refused batch waited as long as the gateway asked (Retry-After / RetryInfo:
    # 50 records at 100/s), not the 0.1 s the client's own backoff starts at, so one
    # retry was enough.
    assert min(waits) >= 0.4
    assert result.retries <= result.batches
    lines = stored_of(ingest, run_id)
    assert sorted(line["seq"] for line in lines) == list(range(250))
    # Retries kept the batch ids: 5 batches, each stored once.
    assert len({line["batch_id"] for line in lines}) == result.batches == 5


# -- a slow receiver ---------------------------------------------------------------------


class SlowReceiver(ThreadingHTTPServer):
    """Answers pushes as a gateway does, but holds the first request until released."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SlowHandler)
        self.seqs: list[int] = []
        self.peers: set[int] = set()
        self.release = threading.Event()
        self.first = threading.Event()
        self.lock = threading.Lock()


class _SlowHandler(BaseHTTPRequestHandler):
    server: SlowReceiver
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        doc = orjson.loads(body)
        if not self.server.first.is_set():
            self.server.first.set()
            self.server.release.wait(10)
        with self.server.lock:
            self.server.seqs.extend(rec["seq"] for rec in doc["records"])
            self.server.peers.add(self.client_address[1])
        reply = orjson.dumps({"batch_id": doc["batch_id"], "accepted": len(doc["records"])})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_slow_receiver_makes_events_late_and_the_schedule_does_not_slip(tmp_path: Path) -> None:
    server = SlowReceiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    # The receiver holds the first batch (planned at 0.095 s) for as long as 200 events take
    # to fall due (1 s): the 9 batches of 20 planned at 0.195 .. 0.995 s all go out behind
    # that, each at least 0.1 s late.
    schedule = Schedule.constant(200.0, duration=2.0)

    def release_later() -> None:
        server.first.wait(10)
        _wait_due(schedule, 200)
        server.release.set()

    releaser = threading.Thread(target=release_later, daemon=True)
    releaser.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        source = EventSource(
            get_format("json"), ContentOptions(), Accounting("r", "s"), seed=1, line_keys=()
        )
        transport = open_transport(TransportSpec("http", url))
        loop = EmitLoop(source, schedule, transport, EmitOptions("slow", batch_size=20))
        result = loop.run()
        transport.close()
    finally:
        server.shutdown()
        server.server_close()
    # Open model: a closed loop would have sent fewer in the 2 s; this one sends every
    # event the schedule had due, the ones behind the stall late.
    assert schedule.total == 400
    assert result.due == 400
    assert result.sent == result.accepted == 400
    assert sorted(server.seqs) == list(range(400))
    # Every batch went over the one kept-alive connection.
    assert result.batches >= 20
    assert len(server.peers) == 1
    assert result.late >= 180
    assert result.lateness.max_sec > 0


def _wait_due(schedule: Schedule, events: int) -> None:
    """Block until ``events`` events of ``schedule`` have fallen due since now."""
    gate = threading.Event()
    gate.wait(schedule.due(events))
