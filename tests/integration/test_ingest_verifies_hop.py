"""The Ingest Gateway with keys: only pushes signed with one of them are stored, on both fronts.

Real gateways on free ports; requests are built by hand (bytes, headers, metadata) so each
test controls exactly what is signed and what is sent. Without keys Ingest stays open: the
rest of the suite runs that way.
"""

from __future__ import annotations

import gzip
import http.client
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from logops.v1 import logs_pb2

from clients.launcher import GatewayProcess, GatewayStartError
from services.common.errors import LogOpsError
from services.common.grpc_errors import error_from_rpc
from services.common.signing import GRPC_MEDIA_TYPE, sign_headers
from services.ingest.wiring import IngestGateway
from tests.conftest import GatewayFactory, stored_lines

HOP_KEY_ID = "auth-gateway"
Key = tuple[str, str]


@pytest.fixture
def hop_key() -> Key:
    return HOP_KEY_ID, secrets.token_urlsafe(32)


def write_keys(path: Path, *keys: Key, clients: tuple[Key, ...] = ()) -> Path:
    """``keys`` are forwarders (the Auth Gateway's hop), ``clients`` client keys."""
    lines = ["keys:"]
    roles = [(k, "forwarder") for k in keys] + [(k, "client") for k in clients]
    for (key_id, secret), role in roles:
        lines += [f"  {key_id}:", f"    emitter: {key_id}", f"    secrets: [{secret}]"]
        lines += [f"    role: {role}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def keys_file(tmp_path: Path, hop_key: Key) -> Path:
    return write_keys(tmp_path / "keys.yaml", hop_key)


@pytest.fixture
def verifying(start_gateway: GatewayFactory, keys_file: Path) -> IngestGateway:
    return start_gateway(keys_file=str(keys_file))


def batch_body(batch_id: str, front: str) -> tuple[bytes, str]:
    """A two-record batch from emitter ``web`` as ``front`` sends it, with its media type."""
    records = [{"level": "INFO", "msg": "hello"}, {"level": "WARN", "msg": "disk 91%"}]
    if front == "http":
        body = {"batch_id": batch_id, "emitter": "web", "records": records}
        return orjson.dumps(body), "application/json"
    batch = logs_pb2.LogBatch(
        batch_id=batch_id,
        emitter="web",
        records=[logs_pb2.LogRecord(level=r["level"], msg=r["msg"]) for r in records],
    )
    return logs_pb2.PushRequest(batch=batch).SerializeToString(), GRPC_MEDIA_TYPE


def send(
    gw: IngestGateway, front: str, body: bytes, headers: dict[str, str], content_type: str = ""
) -> dict[str, Any]:
    """Send ``body`` as it is; the answer as JSON, or raise the gateway's refusal."""
    assert gw.addresses is not None
    if front == "grpc":
        with grpc.insecure_channel(gw.addresses.grpc_target) as channel:
            push = channel.unary_unary(
                "/logops.v1.LogService/Push",
                request_serializer=None,
                response_deserializer=logs_pb2.PushResponse.FromString,
            )
            try:
                answer = push(body, metadata=list(headers.items()), timeout=10)
            except grpc.RpcError as exc:
                raise error_from_rpc(exc) from None
        return {"accepted": answer.accepted, "duplicate": answer.duplicate}
    conn = http.client.HTTPConnection(gw.addresses.http_host, gw.addresses.http_port, timeout=10)
    try:
        headers = {"Content-Type": content_type or "application/json", **headers}
        conn.request("POST", "/v1/logs", body=body, headers=headers)
        reply = conn.getresponse()
        status, data = reply.status, reply.read()
    finally:
        conn.close()
    answer: dict[str, Any] = orjson.loads(data)
    if status != 200:
        error = answer["error"]
        raise Refused(status, error["reason"], error["message"])
    return answer


class Refused(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason = status, reason


def refusal(call: Callable[[], object]) -> tuple[int | str, str]:
    """(HTTP status or gRPC code, reason) of a refused call."""
    with pytest.raises((Refused, LogOpsError)) as info:
        call()
    exc = info.value
    if isinstance(exc, Refused):
        return exc.status, exc.reason
    assert isinstance(exc, LogOpsError)
    return exc.code, exc.reason


def unauthenticated(front: str) -> int | str:
    return 401 if front == "http" else "UNAUTHENTICATED"


def rejected(gw: IngestGateway, reason: str) -> float | None:
    return gw.registry.get_sample_value("logops_ingest_auth_rejected_total", {"reason": reason})


def test_signed_pushes_are_stored_under_the_batch_own_emitter(
    verifying: IngestGateway, hop_key: Key, front: str
) -> None:
    body, media = batch_body(f"signed-{front}", front)
    answer = send(verifying, front, body, sign_headers(hop_key, body, media))
    assert answer["accepted"] == 2
    lines = stored_lines(verifying.cfg.sink.dir)
    # The hop key forwards other emitters' batches: its own emitter is not imposed.
    assert [(r["emitter"], r["msg"]) for r in lines] == [("web", "hello"), ("web", "disk 91%")]


def test_a_client_keys_pushes_are_stored_under_its_own_emitter(
    start_gateway: GatewayFactory, tmp_path: Path, hop_key: Key, front: str
) -> None:
    client = ("client-key", secrets.token_urlsafe(32))
    gw = start_gateway(keys_file=str(write_keys(tmp_path / "k.yaml", hop_key, clients=(client,))))
    body, media = batch_body(f"client-{front}", front)  # the body claims emitter "web"
    assert send(gw, front, body, sign_headers(client, body, media))["accepted"] == 2
    assert {r["emitter"] for r in stored_lines(gw.cfg.sink.dir)} == {"client-key"}


def test_unsigned_pushes_are_refused_as_missing_auth_and_nothing_is_stored(
    verifying: IngestGateway, front: str
) -> None:
    body, _ = batch_body("unsigned", front)
    assert refusal(lambda: send(verifying, front, body, {})) == (
        unauthenticated(front), "missing_auth"
    )
    assert stored_lines(verifying.cfg.sink.dir) == []
    assert rejected(verifying, "missing_auth") == 1
    requests = {"front": front, "code": "UNAUTHENTICATED"}
    assert verifying.registry.get_sample_value("logops_ingest_requests_total", requests) == 1


def wrong_secret(key: Key, body: bytes, media: str) -> dict[str, str]:
    return sign_headers((key[0], secrets.token_urlsafe(32)), body, media)


def unknown_key(key: Key, body: bytes, media: str) -> dict[str, str]:
    return sign_headers(("someone-else", key[1]), body, media)


def skewed(key: Key, body: bytes, media: str) -> dict[str, str]:
    return sign_headers(key, body, media, now=time.time() - 400)


def other_body(key: Key, body: bytes, media: str) -> dict[str, str]:
    return sign_headers(key, body + b" ", media)


def other_media_type(key: Key, body: bytes, media: str) -> dict[str, str]:
    return sign_headers(key, body, "text/plain")


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (wrong_secret, "bad_signature"),
        (unknown_key, "unknown_key"),
        (skewed, "clock_skew"),
        (other_body, "bad_content_hash"),
        (other_media_type, "bad_signature"),
    ],
)
def test_a_forged_or_stale_signature_is_refused_with_its_reason(
    verifying: IngestGateway,
    hop_key: Key,
    front: str,
    forge: Callable[[Key, bytes, str], dict[str, str]],
    reason: str,
) -> None:
    body, media = batch_body("forged", front)
    headers = forge(hop_key, body, media)
    assert refusal(lambda: send(verifying, front, body, headers)) == (
        unauthenticated(front), reason
    )
    assert stored_lines(verifying.cfg.sink.dir) == []
    assert rejected(verifying, reason) == 1


def test_a_replayed_request_is_refused(
    verifying: IngestGateway, hop_key: Key, front: str
) -> None:
    body, media = batch_body("replayed", front)
    headers = sign_headers(hop_key, body, media)
    assert send(verifying, front, body, headers)["accepted"] == 2
    assert refusal(lambda: send(verifying, front, body, headers)) == (
        unauthenticated(front), "replay"
    )
    # Signed again (a retry), the same batch is acknowledged as already stored.
    again = send(verifying, front, body, sign_headers(hop_key, body, media))
    assert again["duplicate"] is True
    assert len(stored_lines(verifying.cfg.sink.dir)) == 2


def test_a_gzip_body_is_verified_over_the_compressed_bytes_it_travelled_as(
    verifying: IngestGateway, hop_key: Key
) -> None:
    plain, media = batch_body("gzipped", "http")
    body = gzip.compress(plain)
    gz = {"Content-Encoding": "gzip"}
    over_plain = {**sign_headers(hop_key, plain, media), **gz}
    assert refusal(lambda: send(verifying, "http", body, over_plain)) == (401, "bad_content_hash")
    answer = send(verifying, "http", body, {**sign_headers(hop_key, body, media), **gz})
    assert answer["accepted"] == 2


def test_the_media_type_signed_is_the_content_type_without_parameters(
    verifying: IngestGateway, hop_key: Key
) -> None:
    body, _ = batch_body("charset", "http")
    headers = sign_headers(hop_key, body, "application/json")
    answer = send(verifying, "http", body, headers, "Application/JSON; charset=utf-8")
    assert answer["accepted"] == 2


def test_an_oversized_signed_body_is_too_large_before_its_hash_is_checked(
    start_gateway: GatewayFactory, keys_file: Path, hop_key: Key, front: str
) -> None:
    gw = start_gateway(keys_file=str(keys_file), **{"limits.max_body_bytes": 64})
    body, media = batch_body("x" * 100, front)
    # Signed over other bytes: had the hash been checked first, this would be a 401.
    headers = sign_headers(hop_key, b"other", media)
    status = 413 if front == "http" else "RESOURCE_EXHAUSTED"
    assert refusal(lambda: send(gw, front, body, headers)) == (status, "too_large")


# `logops ingest` as a user runs it: where the keys come from, and what it says at start.


@pytest.fixture
def processes() -> Iterator[Callable[..., GatewayProcess]]:
    started: list[GatewayProcess] = []

    def start(sink: Path, *extra: str, env: dict[str, str] | None = None) -> GatewayProcess:
        gw = GatewayProcess(
            ["ingest", "--http-port", "0", "--grpc-port", "0", "--sink-dir", str(sink), *extra],
            env=env,
        )
        started.append(gw)
        return gw.start()

    yield start
    for gw in started:
        gw.stop()


def signed_http_push(target: GatewayProcess, key: Key) -> int:
    body, media = batch_body("cli", "http")
    host, port = target.http_url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(
            "POST", "/v1/logs", body=body,
            headers={"Content-Type": media, **sign_headers(key, body, media)},
        )
        return conn.getresponse().status
    finally:
        conn.close()


@pytest.mark.slow
def test_the_cli_verifies_with_a_keys_file_from_the_flag_or_the_environment(
    tmp_path: Path, keys_file: Path, hop_key: Key, processes: Callable[..., GatewayProcess]
) -> None:
    by_flag = processes(tmp_path / "a", "--keys-file", str(keys_file))
    by_env = processes(tmp_path / "b", env={"LOGOPS_INGEST_KEYS_FILE": str(keys_file)})
    for gw in (by_flag, by_env):
        assert gw.listening["verify"] is True
        assert signed_http_push(gw, hop_key) == 200
        assert signed_http_push(gw, (HOP_KEY_ID, secrets.token_urlsafe(32))) == 401
    # The Auth Gateway's variables are its own: an Ingest beside it stays as configured.
    inline = keys_file.read_text(encoding="utf-8")
    beside_auth = processes(tmp_path / "c", env={"LOGOPS_AUTH_KEYS": inline})
    assert beside_auth.listening["verify"] is False


@pytest.mark.slow
def test_the_cli_refuses_to_start_with_a_keys_file_it_cannot_use(tmp_path: Path) -> None:
    short = tmp_path / "short.yaml"
    short.write_text("keys:\n  k:\n    emitter: e\n    secrets: [short]\n", encoding="utf-8")
    for path, expected in ((tmp_path / "absent.yaml", "cannot read keys file"),
                           (short, "keys.k.secrets[0]")):
        gw = GatewayProcess(["ingest", "--http-port", "0", "--grpc-port", "0",
                             "--sink-dir", str(tmp_path / "s"), "--keys-file", str(path)])
        with pytest.raises(GatewayStartError):
            gw.start(timeout=30)
        assert gw.proc is not None and gw.proc.returncode == 2
        assert any(expected in str(line.get("msg", "")) for line in gw.logs), gw.logs


@pytest.mark.slow
def test_an_open_ingest_beyond_loopback_says_so(
    tmp_path: Path, processes: Callable[..., GatewayProcess]
) -> None:
    gw = processes(tmp_path / "s", "--host", "0.0.0.0")
    assert gw.listening["verify"] is False
    warnings = [e for e in gw.logs if e.get("event") == "unverified_exposed"]
    assert warnings and warnings[0]["level"] == "WARNING"
