"""Clients of the Auth Gateway for tests: throwaway keys, an Ingest + Auth pair on free ports,
and raw signed pushes over either front.

Requests are built by hand (bytes, headers, metadata), so each test controls exactly what
is signed and what is sent; an :class:`Answer` looks the same whichever front carried it.
"""

from __future__ import annotations

import http.client
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import orjson
from logops.v1 import logs_pb2

from clients.launcher import GatewayProcess
from services.auth.wiring import AuthGateway, BoundAddresses
from services.common.grpc_errors import error_from_rpc
from services.common.keys import ApiKey, KeyRing
from services.common.pb_codec import result_from_pb
from services.common.signing import sign_headers
from services.ingest.wiring import IngestGateway
from tests.conftest import AuthFactory, GatewayFactory, stored_lines

PUSH = "/logops.v1.LogService/Push"
KEY_ID, EMITTER = "k-one", "emitter-one"
HOP_KEY_ID = "auth-gateway"  # the Auth Gateway's own key, for its hop to Ingest
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


RATES: dict[str, dict[str, Any]] = {
    "k-tight": {"records_per_sec": 1.0, "burst": 3},
    "k-slow": {"requests_per_sec": 1.0},
}
# A relay in front of the gateway: its batches keep the emitters they name.
ROLES: dict[str, str] = {"k-relay": "forwarder"}


def emitter_of(key_id: str) -> str:
    return key_id.replace("k-", "emitter-")


@dataclass
class Keys:
    secrets: dict[str, list[str]] = field(default_factory=dict)

    def add(self, key_id: str, count: int = 1) -> list[str]:
        self.secrets[key_id] = [secrets.token_urlsafe(32) for _ in range(count)]
        return self.secrets[key_id]

    def ring(self) -> KeyRing:
        return KeyRing(
            ApiKey(
                k,
                emitter_of(k),
                tuple(s.encode() for s in v),
                **RATES.get(k, {}),
                role=ROLES.get(k, "client"),
            )
            for k, v in self.secrets.items()
        )

    @classmethod
    def made(cls) -> Keys:
        """k-one (emitter-one), k-rotating with two secrets, k-tight: 1 record/s, burst 3,
        k-slow: 1 request/s, k-relay: a forwarder."""
        keys = cls()
        for key_id, count in (
            (KEY_ID, 1),
            ("k-rotating", 2),
            ("k-tight", 1),
            ("k-slow", 1),
            ("k-relay", 1),
        ):
            keys.add(key_id, count)
        return keys


def keys_file(tmp_path: Path, keys: Keys) -> Path:
    path = tmp_path / "keys.yaml"
    entries: dict[str, dict[str, Any]] = {
        k: {"emitter": emitter_of(k), "secrets": v} for k, v in keys.secrets.items()
    }
    for key_id, entry in entries.items():
        if key_id in RATES:
            entry["rate"] = RATES[key_id]
        if key_id == HOP_KEY_ID or key_id in ROLES:
            entry["role"] = "forwarder"  # its batches keep their emitters on Ingest
    path.write_text(json.dumps({"keys": entries}))  # JSON is YAML
    path.chmod(0o600)
    return path


@dataclass
class Pair:
    ingest: IngestGateway
    auth: AuthGateway
    restart_ingest: Callable[[], IngestGateway]


def target_of(ingest: IngestGateway, hop: str) -> str:
    """The Ingest Gateway as ``--forward`` names it."""
    assert ingest.addresses is not None
    if hop == "grpc":
        return f"grpc://{ingest.addresses.grpc_target}"
    return ingest.addresses.http_url


def start_pair(
    start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys, hop: str = "grpc"
) -> Pair:
    ingest = start_gateway()
    a = ingest.addresses
    assert a is not None
    auth = auth_gateway(target_of(ingest, hop), keys.ring(), **FAST)

    def restart() -> IngestGateway:
        ports = {"http.port": a.http_port, "grpc.port": a.grpc_port}
        return start_gateway(sink_dir=ingest.cfg.sink.dir, **ports)

    return Pair(ingest, auth, restart)


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
            answer, done = call.with_call(body, metadata=list(headers.items()), timeout=20)
        except grpc.RpcError as err:
            exc = error_from_rpc(err)
            assert err.code().name == exc.code
            trailers = _text_metadata(err.trailing_metadata())
            return Answer(exc.http_status, exc.reason, {}, trailers, exc.retry_after)
    result = result_from_pb(answer).to_dict()
    return Answer(
        202 if result["spooled"] else 200, "", result, _text_metadata(done.trailing_metadata())
    )


def _text_metadata(metadata: Any) -> dict[str, str]:
    """Trailing metadata as headers: the text entries (binary ``-bin`` ones left out)."""
    return {k: v for k, v in (metadata or ()) if isinstance(v, str)}


def push(
    front: str,
    gw: AuthGateway | GatewayProcess,
    keys: Keys,
    doc: dict[str, Any],
    key_id: str = KEY_ID,
    secret: int = 0,
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
