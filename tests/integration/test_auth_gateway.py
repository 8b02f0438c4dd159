"""The Auth Gateway as its clients see it: real servers on free ports, an Ingest Gateway behind.

Every case runs over both fronts with the same expectations (the error table makes a gRPC
refusal and an HTTP one the same reason), signed with throwaway keys made here.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from falcon.inspect import inspect_routes
from grpc_health.v1 import health_pb2, health_pb2_grpc
from logops.v1 import logs_pb2

from clients.launcher import GatewayProcess
from services.auth.wiring import AuthGateway, BoundAddresses
from services.common.errors import REASONS
from services.common.grpc_errors import error_from_rpc
from services.common.keys import ApiKey, KeyRing
from services.common.pb_codec import result_from_pb
from services.common.signing import sign_headers
from services.ingest.wiring import IngestGateway
from tests.conftest import AuthFactory, GatewayFactory, stored_lines

PUSH = "/logops.v1.LogService/Push"
KEY_ID, EMITTER = "k-one", "emitter-one"
BODY_LIMIT = 64 * 1024
# Quick to give up on a missing Ingest, so a spooled answer comes within a second or two.
FAST = {
    "limits.max_body_bytes": BODY_LIMIT,
    "forward.max_attempts": 2,
    "forward.attempt_timeout_sec": 1.0,
    "forward.backoff_max_sec": 0.1,
    "forward.deadline_sec": 3.0,
    "forward.breaker_reset_sec": 0.5,
}


@dataclass
class Keys:
    secrets: dict[str, list[str]] = field(default_factory=dict)

    def add(self, key_id: str, count: int = 1) -> list[str]:
        self.secrets[key_id] = [secrets.token_urlsafe(32) for _ in range(count)]
        return self.secrets[key_id]

    def ring(self) -> KeyRing:
        rates = {"k-tight": {"records_per_sec": 1.0, "burst": 3}}
        return KeyRing(
            ApiKey(k, k.replace("k-", "emitter-"), tuple(s.encode() for s in v), **rates.get(k, {}))
            for k, v in self.secrets.items()
        )


@pytest.fixture
def keys() -> Keys:
    made = Keys()
    for key_id, count in ((KEY_ID, 1), ("k-rotating", 2), ("k-tight", 1)):
        made.add(key_id, count)
    return made


@dataclass
class Pair:
    ingest: IngestGateway
    auth: AuthGateway
    restart_ingest: Callable[[], IngestGateway]


@pytest.fixture(params=["grpc", "http"], ids=lambda hop: f"hop-{hop}")
def hop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def start_pair(
    start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys, hop: str = "grpc"
) -> Pair:
    ingest = start_gateway()
    a = ingest.addresses
    assert a is not None
    target = f"grpc://{a.grpc_target}" if hop == "grpc" else a.http_url
    auth = auth_gateway(target, keys.ring(), **FAST)

    def restart() -> IngestGateway:
        ports = {"http.port": a.http_port, "grpc.port": a.grpc_port}
        return start_gateway(sink_dir=ingest.cfg.sink.dir, **ports)

    return Pair(ingest, auth, restart)


@pytest.fixture
def pair(start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys) -> Pair:
    return start_pair(start_gateway, auth_gateway, keys)


# -- what a client sends and sees ----------------------------------------------------------


def batch(records: int = 1, emitter: str = "liar", msg: str = "hello") -> dict[str, Any]:
    return {
        "batch_id": uuid.uuid4().hex,
        "emitter": emitter,
        "records": [{"msg": f"{msg} {i}", "seq": i} for i in range(records)],
    }


def encode(front: str, doc: dict[str, Any]) -> tuple[bytes, str]:
    """The body as each front takes it: JSON on HTTP, a serialized PushRequest on gRPC."""
    if front == "http":
        return orjson.dumps(doc), "application/json"
    records = [logs_pb2.LogRecord(msg=r["msg"], seq=r["seq"]) for r in doc["records"]]
    pb = logs_pb2.LogBatch(batch_id=doc["batch_id"], emitter=doc["emitter"], records=records)
    return logs_pb2.PushRequest(batch=pb).SerializeToString(), "application/x-protobuf"


@dataclass
class Answer:
    status: int  # HTTP's, or on gRPC the HTTP status the error table gives its reason
    reason: str
    doc: dict[str, Any]
    headers: dict[str, str]
    retry_after: float | None = None


def address(gw: AuthGateway | GatewayProcess) -> BoundAddresses:
    if isinstance(gw, AuthGateway):
        assert gw.addresses is not None
        return gw.addresses
    http_host, http_port = gw.http_url.removeprefix("http://").rsplit(":", 1)
    grpc_host, grpc_port = gw.grpc_target.rsplit(":", 1)
    return BoundAddresses(http_host, int(http_port), grpc_host, int(grpc_port))


def send(
    front: str, gw: AuthGateway | GatewayProcess, body: bytes, media: str, headers: dict[str, str]
) -> Answer:
    where = address(gw)
    if front == "http":
        conn = http.client.HTTPConnection(where.http_host, where.http_port, timeout=20)
        try:
            conn.request("POST", "/v1/logs", body, {"Content-Type": media, **headers})
            resp = conn.getresponse()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            doc = json.loads(resp.read())
        finally:
            conn.close()
        reason = doc["error"]["reason"] if "error" in doc else ""
        retry = float(hdrs["retry-after"]) if "retry-after" in hdrs else None
        return Answer(resp.status, reason, doc, hdrs, retry)
    with grpc.insecure_channel(where.grpc_target) as channel:
        call = channel.unary_unary(PUSH, response_deserializer=logs_pb2.PushResponse.FromString)
        try:
            answer = call(body, metadata=list(headers.items()), timeout=20)
        except grpc.RpcError as err:
            exc = error_from_rpc(err)
            assert err.code().name == exc.code  # type: ignore[attr-defined]
            return Answer(exc.http_status, exc.reason, {}, {}, exc.retry_after)
    result = result_from_pb(answer).to_dict()
    return Answer(202 if result["spooled"] else 200, "", result, {})


def push(
    front: str, gw: AuthGateway | GatewayProcess, keys: Keys, doc: dict[str, Any],
    key_id: str = KEY_ID, secret: int = 0,
) -> Answer:
    body, media = encode(front, doc)
    headers = sign_headers((key_id, keys.secrets[key_id][secret]), body, media)
    return send(front, gw, body, media, headers)


def rejected(gw: AuthGateway, reason: str) -> float:
    return gw.registry.get_sample_value("logops_auth_rejected_total", {"reason": reason}) or 0.0


def stored(gw: IngestGateway, batch_id: str) -> list[dict[str, Any]]:
    return [line for line in stored_lines(gw.cfg.sink.dir) if line["batch_id"] == batch_id]


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# -- accepted pushes -----------------------------------------------------------------------


def test_signed_push_is_stored_once_under_the_keys_emitter(
    start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys, front: str, hop: str
) -> None:
    p = start_pair(start_gateway, auth_gateway, keys, hop)
    doc = batch(records=3, emitter="somebody-else")
    first = push(front, p.auth, keys, doc)
    assert (first.status, first.doc["accepted"], first.doc["duplicate"]) == (200, 3, False)
    if front == "http":
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
    ["missing_auth", "unknown_key", "clock_skew", "bad_content_hash", "bad_signature",
     "replay", "too_large"],
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
    if front == "http":
        assert ok.headers["ratelimit-limit"] == "3" and ok.headers["ratelimit-remaining"] == "0"
    over = push(front, pair.auth, keys, batch(records=2), key_id="k-tight")
    assert (over.status, over.reason) == (429, "rate_limited")
    assert over.retry_after is not None and over.retry_after >= 1
    if front == "http":
        assert over.headers["ratelimit-limit"] == "3"
        assert over.headers["ratelimit-remaining"] == "0"
        assert int(over.headers["ratelimit-reset"]) >= 1
    assert rejected(pair.auth, "rate_limited") == 1
    # More than the burst can never pass: 413, not a 429 that waiting would not cure.
    never = push(front, pair.auth, keys, batch(records=4), key_id="k-tight")
    assert (never.status, never.reason, never.retry_after) == (413, "too_many_records", None)


# -- Ingest away: the spool ----------------------------------------------------------------


def test_ingest_down_spools_then_delivers_exactly_once(pair: Pair, keys: Keys, front: str) -> None:
    pair.ingest.stop(grace=0.1)
    doc = batch(records=2)
    answer = push(front, pair.auth, keys, doc)
    assert (answer.status, answer.doc["spooled"]) == (202, True)
    assert pair.auth.registry.get_sample_value("logops_auth_spool_batches") == 1
    ingest = pair.restart_ingest()
    wait_for(lambda: pair.auth.registry.get_sample_value("logops_auth_spool_batches") == 0)
    later = push(front, pair.auth, keys, batch())  # the hop is back for new pushes too
    assert later.status == 200
    assert sorted(line["seq"] for line in stored(ingest, doc["batch_id"])) == [0, 1]
    assert {line["emitter"] for line in stored(ingest, doc["batch_id"])} == {EMITTER}


# -- probes, metrics, the API document -----------------------------------------------------


def get(gw: AuthGateway, path: str) -> tuple[int, bytes]:
    assert gw.addresses is not None
    conn = http.client.HTTPConnection(gw.addresses.http_host, gw.addresses.http_port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_probes_health_and_metrics(pair: Pair, keys: Keys) -> None:
    assert get(pair.auth, "/healthz")[0] == 200
    assert get(pair.auth, "/readyz") == (200, b'{"status": "ready"}')
    assert pair.auth.addresses is not None
    with grpc.insecure_channel(pair.auth.addresses.grpc_target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "logops.v1.LogService"):
            status = stub.Check(health_pb2.HealthCheckRequest(service=service)).status
            assert status == health_pb2.HealthCheckResponse.SERVING
    push("grpc", pair.auth, keys, batch())
    text = get(pair.auth, "/metrics")[1].decode()
    for reason in ("missing_auth", "bad_signature", "replay", "rate_limited", "too_large"):
        assert f'logops_auth_rejected_total{{reason="{reason}"}} 0.0' in text
    assert 'logops_auth_requests_total{code="OK",front="grpc"} 1.0' in text
    assert 'logops_auth_forward_attempts_total{outcome="ok"} 1.0' in text
    assert 'logops_auth_breaker_state{state="closed"} 1.0' in text
    assert "logops_auth_breaker_open 0.0" in text
    assert 'logops_auth_request_duration_seconds_bucket{front="grpc",le="0.5"}' in text


def test_openapi_describes_every_route(pair: Pair) -> None:
    status, data = get(pair.auth, "/openapi.json")
    doc = json.loads(data)
    assert status == 200 and doc["openapi"].startswith("3.")
    served = {
        (route.path, method.method.lower())
        for route in inspect_routes(pair.auth.http_app)
        for method in route.methods
        if not method.internal
    }
    assert served == {(path, verb) for path, ops in doc["paths"].items() for verb in ops}
    push_op = doc["paths"]["/v1/logs"]["post"]
    required = {p["name"] for p in push_op["parameters"] if p["required"]}
    assert required == {"x-logops-key-id", "x-logops-timestamp", "x-logops-nonce",
                        "x-logops-content-sha256", "x-logops-signature"}
    assert {"200", "202", "401", "413", "429", "503"} <= set(push_op["responses"])
    assert "Retry-After" in push_op["responses"]["429"]["headers"]


# -- `logops auth`, the process ------------------------------------------------------------


def keys_file(tmp_path: Path, keys: Keys) -> Path:
    path = tmp_path / "keys.yaml"
    entries = {k: {"emitter": k.replace("k-", "emitter-"), "secrets": v}
               for k, v in keys.secrets.items()}
    path.write_text(json.dumps({"keys": entries}))  # JSON is YAML
    path.chmod(0o600)
    return path


def auth_process(ingest: IngestGateway, tmp_path: Path, *extra: str) -> GatewayProcess:
    assert ingest.addresses is not None
    return GatewayProcess(
        ["auth", "--http-port", "0", "--grpc-port", "0", "--spool-dir", str(tmp_path / "spool"),
         "--forward", f"grpc://{ingest.addresses.grpc_target}", *extra],
        env={"LOGOPS_AUTH_KEYS_FILE": "", "LOGOPS_AUTH_KEYS": ""},
    )


@pytest.mark.slow
def test_logops_auth_process_answers_a_signed_push(
    gateway: IngestGateway, keys: Keys, tmp_path: Path
) -> None:
    proc = auth_process(gateway, tmp_path, "--keys-file", str(keys_file(tmp_path, keys))).start()
    try:
        said = proc.listening
        assert (said["service"], said["mode"], said["redis"]) == ("auth", "hmac", False)
        assert said["forward"] == auth_process(gateway, tmp_path).args[-1]
        for front in ("http", "grpc"):
            doc = batch(records=2)
            answer = push(front, proc, keys, doc)
            assert answer.status == 200, answer.doc
            assert {x["emitter"] for x in stored(gateway, doc["batch_id"])} == {EMITTER}
    finally:
        assert proc.stop() == 0
    assert any(e.get("event") == "stopped" for e in proc.logs)


@pytest.mark.slow
def test_logops_auth_without_keys_in_hmac_mode_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGOPS_")}
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "auth", "--http-port", "0", "--grpc-port", "0",
         "--spool-dir", str(tmp_path / "spool")],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert done.returncode == 2
    assert "no keys" in done.stderr and "--keys-file" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["hmac", "none"])
def test_api_answers_as_documented(
    gateway: IngestGateway, keys: Keys, tmp_path: Path, mode: str
) -> None:
    """schemathesis from /openapi.json, as test_openapi_fuzz drives Ingest's. In mode none
    generated pushes go through to Ingest and its answers come back through the gateway;
    in mode hmac the signature headers are required and refused when wrong."""
    from tests.integration.test_openapi_fuzz import CHECKS

    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a dev dependency: run `make install`"
    flags = ["--mode", "none"]
    if mode == "hmac":
        flags = ["--keys-file", str(keys_file(tmp_path, keys))]
    proc = auth_process(gateway, tmp_path, *flags).start()
    try:
        warned = [e for e in proc.logs if e.get("event") == "auth_disabled"]
        assert [e["level"] for e in warned] == (["WARNING"] if mode == "none" else [])
        run = subprocess.run(
            [st, "run", proc.http_url + "/openapi.json", "--checks", CHECKS,
             "--max-examples", "60", "--seed", "1", "--workers", "2",
             "--request-timeout", "10", "--suppress-health-check", "all",
             "--report-dir", str(tmp_path / "report")],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        assert push("http", proc, keys, batch()).status == 200
    finally:
        assert proc.stop() == 0
