"""The Auth Gateway as an operator sees it: real servers on free ports, an Ingest Gateway
behind it, keys made for the test. The spool across an Ingest restart, the signed hop,
replicas sharing Redis, probes, metrics, /openapi.json and the ``logops auth`` process.
(What a client sees on both fronts is in tests/contract/test_auth_contract.py.)
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from falcon.inspect import inspect_routes
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients.launcher import GatewayProcess
from services.auth.wiring import AuthGateway
from services.common.signing import sign_headers
from services.ingest.wiring import IngestGateway
from tests.conftest import AuthFactory, GatewayFactory
from tests.contract.auth_clients import (
    EMITTER,
    FAST,
    HOP_KEY_ID,
    KEY_ID,
    Keys,
    Pair,
    batch,
    encode,
    keys_file,
    push,
    send,
    start_pair,
    stored,
    target_of,
    wait_for,
)
from tests.redis_server import RedisServer


@pytest.fixture
def keys() -> Keys:
    return Keys.made()


@pytest.fixture(params=["grpc", "http"], ids=lambda hop: f"hop-{hop}")
def hop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pair(start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys) -> Pair:
    return start_pair(start_gateway, auth_gateway, keys)


def test_hop_to_an_ingest_with_keys_is_signed_with_the_gateways_own_key(
    start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys, tmp_path: Path,
    front: str, hop: str,
) -> None:
    secret, secret_file = secrets.token_urlsafe(32), tmp_path / "hop.secret"
    secret_file.write_text(secret + "\n")
    hop_keys = Keys({HOP_KEY_ID: [secret]})
    ingest = start_gateway(keys_file=str(keys_file(tmp_path, hop_keys)))
    target = target_of(ingest, hop)
    hop_key = {"forward.key_id": HOP_KEY_ID, "forward.secret_file": str(secret_file)}
    auth = auth_gateway(target, keys.ring(), **FAST, **hop_key)
    doc = batch(records=2)
    assert push(front, auth, keys, doc).status == 200
    assert {line["emitter"] for line in stored(ingest, doc["batch_id"])} == {EMITTER}
    # Without the hop key Ingest refuses the hop, and the client hears Ingest's reason.
    unsigned = auth_gateway(target, keys.ring(), **FAST)
    refused = push(front, unsigned, keys, batch())
    assert (refused.status, refused.reason) == (401, "missing_auth")



@pytest.mark.slow
def test_replicas_sharing_redis_share_replay_protection_and_limits(
    start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys, tmp_path: Path,
    front: str,
) -> None:
    ingest = start_gateway()
    with RedisServer(tmp_path) as redis_server:
        one, two = (
            auth_gateway(target_of(ingest, "grpc"), keys.ring(), redis=redis_server.url, **FAST)
            for _ in range(2)
        )
        body, media = encode(front, batch())
        headers = sign_headers((KEY_ID, keys.secrets[KEY_ID][0]), body, media)
        assert send(front, one, body, media, headers).status == 200
        replayed = send(front, two, body, media, headers)
        assert (replayed.status, replayed.reason) == (401, "replay")
        # k-tight's 3 records per burst: 2 through one replica leave 1 for the other.
        assert push(front, one, keys, batch(records=2), key_id="k-tight").status == 200
        over = push(front, two, keys, batch(records=2), key_id="k-tight")
        assert (over.status, over.reason) == (429, "rate_limited")


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


def auth_process(ingest: IngestGateway, tmp_path: Path, *extra: str) -> GatewayProcess:
    return GatewayProcess(
        ["auth", "--http-port", "0", "--grpc-port", "0", "--spool-dir", str(tmp_path / "spool"),
         "--forward", target_of(ingest, "grpc"), *extra],
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

