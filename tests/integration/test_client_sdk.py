"""The Python client SDK against real servers: retries, idempotent batch ids, signing, refusals.

Pushes go to a real Ingest Gateway on free ports. Ingest does not verify signatures yet, so
signed pushes go to small servers in this file that verify them with the gateways' own
``Verifier`` over the bytes as received (its nonce store refuses a nonce seen before, so a
retry that reused one would fail there) and answer as a gateway does, refusals included.
"""

from __future__ import annotations

import gzip
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import orjson
import pytest
from logops.v1 import logs_pb2

from clients.retry import RetryingTransport
from clients.signed import Signer
from clients.transports import (
    MEDIA_JSON,
    MEDIA_PROTOBUF,
    GrpcTransport,
    HttpTransport,
    PreparingTransport,
)
from services.common.errors import (
    LogOpsError,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unavailable,
)
from services.common.grpc_errors import abort
from services.common.keys import ApiKey, KeyRing
from services.common.model import Batch, PushResult
from services.common.nonces import MemoryNonceStore
from services.common.pb_codec import batch_from_bytes, batch_from_request_bytes
from services.common.signing import GRPC_MEDIA_TYPE, H_NONCE, Verifier, sign_headers
from services.ingest.wiring import IngestGateway
from tests.conftest import FRONTS, GatewayFactory, stored_lines

KEY = ApiKey("sdk-client", "sdk", (b"the client sdk's integration secret",))
WRONG = Signer("sdk-client", b"not the secret the server knows")
BIG = 3 * 1024 * 1024  # large, still under Ingest's 4 MiB body limit


def _transport(front: str, address: str, **kwargs: Any) -> PreparingTransport:
    if front == "grpc":
        return GrpcTransport(address, **kwargs)
    return HttpTransport(address, **kwargs)


def _client(gw: IngestGateway, front: str, **kwargs: Any) -> PreparingTransport:
    assert gw.addresses is not None
    address = gw.addresses.grpc_target if front == "grpc" else gw.addresses.http_url
    return _transport(front, address, **kwargs)


# --- pushes to the Ingest Gateway ------------------------------------------------------

@pytest.mark.parametrize(
    ("front", "content_type", "compress"),
    [
        ("grpc", MEDIA_PROTOBUF, False),
        ("http", MEDIA_JSON, False),
        ("http", MEDIA_JSON, True),
        ("http", MEDIA_PROTOBUF, False),
        ("http", MEDIA_PROTOBUF, True),
    ],
)
def test_pushes_are_stored_on_both_fronts_with_and_without_gzip(
    gateway: IngestGateway, front: str, content_type: str, compress: bool
) -> None:
    extra = {} if front == "grpc" else {"content_type": content_type, "compress": compress}
    client = RetryingTransport(_client(gateway, front, **extra))
    try:
        named = client.send(Batch(records=[{"msg": "one"}, {"msg": "two"}], batch_id="sdk-1"))
        unnamed = client.send(Batch(records=[{"msg": "three"}], emitter="sdk"))
    finally:
        client.close()
    assert (named.batch_id, named.accepted, unnamed.accepted) == ("sdk-1", 2, 1)
    assert len(unnamed.batch_id) == 32 and not unnamed.batch_id.startswith("gw-")
    lines = stored_lines(gateway.cfg.sink.dir)
    assert [(line["msg"], line["batch_id"]) for line in lines] == [
        ("one", "sdk-1"), ("two", "sdk-1"), ("three", unnamed.batch_id),
    ]


@pytest.mark.parametrize("front", FRONTS)
def test_a_retry_after_a_lost_answer_comes_back_duplicate_and_is_stored_once(
    gateway: IngestGateway, front: str
) -> None:
    """The first attempt is stored, but only after the client stopped waiting for it:
    the retry carries the same batch_id and Ingest answers ``duplicate``."""
    gave_up, stored = threading.Event(), threading.Event()
    push = gateway.core.push
    calls: list[str] = []

    def late_first(batch: Batch, request_id: str = "") -> PushResult:
        calls.append(batch.batch_id)
        if len(calls) > 1:
            return push(batch, request_id)
        gave_up.wait(30)
        try:
            return push(batch, request_id)
        finally:
            stored.set()

    def sleep(seconds: float) -> None:
        gave_up.set()
        assert stored.wait(30)

    gateway.core.push = late_first  # type: ignore[method-assign]
    client = RetryingTransport(_client(gateway, front, timeout=1.0), sleep=sleep)
    try:
        result = client.send(Batch(records=[{"msg": "once"}, {"msg": "only"}]))
    finally:
        client.close()
    assert len(calls) == 2 and calls[0] == calls[1] == result.batch_id
    assert (result.duplicate, result.accepted) == (True, 2)
    assert [line["msg"] for line in stored_lines(gateway.cfg.sink.dir)] == ["once", "only"]


# --- servers that verify signatures ----------------------------------------------------

class VerifyingPush:
    """What a signing gateway does with a push: verify it over the bytes received, then
    refuse it with the next scripted error, or take it (a batch id seen before is a
    duplicate)."""

    def __init__(self, *refusals: LogOpsError) -> None:
        self.verifier = Verifier(KeyRing([KEY]), MemoryNonceStore())
        self.refusals = list(refusals)
        self.seen: list[tuple[dict[str, str], bytes]] = []
        self.batches: list[Batch] = []
        self._lock = threading.Lock()

    def handle(
        self, headers: dict[str, str], body: bytes, media_type: str, decode: Callable[[], Batch]
    ) -> PushResult:
        with self._lock:
            self.seen.append((headers, body))
            self.verifier.verify(headers, body, media_type)
            if self.refusals:
                raise self.refusals.pop(0)
            batch = decode()
            duplicate = any(b.batch_id == batch.batch_id for b in self.batches)
            self.batches.append(batch)
        accepted = 0 if duplicate else len(batch.records)
        return PushResult(batch.batch_id, accepted=accepted, duplicate=duplicate)


@contextmanager
def grpc_server(push: VerifyingPush) -> Iterator[str]:
    def handle(body: bytes, context: grpc.ServicerContext) -> logs_pb2.PushResponse:
        headers = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        try:
            result = push.handle(
                headers, body, GRPC_MEDIA_TYPE, lambda: batch_from_request_bytes(body)
            )
        except LogOpsError as exc:
            abort(context, exc, "test-request")
        return logs_pb2.PushResponse(
            batch_id=result.batch_id, accepted=result.accepted, duplicate=result.duplicate
        )

    handler = grpc.method_handlers_generic_handler(
        "logops.v1.LogService",
        {
            "Push": grpc.unary_unary_rpc_method_handler(
                handle,
                request_deserializer=None,  # the raw bytes, as the signature covers them
                response_serializer=logs_pb2.PushResponse.SerializeToString,
            )
        },
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(2),
        handlers=(handler,),
        options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)],
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0)


def _http_batch(headers: dict[str, str], body: bytes) -> Batch:
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    if headers.get("content-type", "").startswith(MEDIA_PROTOBUF):
        return batch_from_bytes(body)
    doc = orjson.loads(body)
    return Batch(records=doc["records"], batch_id=doc["batch_id"])


@contextmanager
def http_server(push: VerifyingPush) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                result = push.handle(
                    headers, body, headers.get("content-type", ""),
                    lambda: _http_batch(headers, body),
                )
            except LogOpsError as exc:
                self._answer(exc.http_status, exc.to_dict("test-request"), exc.retry_after_seconds)
                return
            self._answer(200, result.to_dict(), None)

        def _answer(self, status: int, doc: dict[str, object], wait: int | None) -> None:
            data = orjson.dumps(doc)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if wait is not None:
                self.send_header("Retry-After", str(wait))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def verifying_client(
    front: str, push: VerifyingPush, signer: Signer | ApiKey = KEY, **kwargs: Any
) -> Iterator[PreparingTransport]:
    with (grpc_server if front == "grpc" else http_server)(push) as address:
        client = _transport(front, address, signer=signer, **kwargs)
        try:
            yield client
        finally:
            client.close()


@pytest.mark.parametrize(
    ("front", "http_options"),
    [
        ("grpc", {}),
        ("http", {}),
        ("http", {"compress": True}),
        ("http", {"content_type": MEDIA_PROTOBUF, "compress": True}),
    ],
)
@pytest.mark.parametrize(
    "refusal",
    [
        RateLimited("over the key's rate", retry_after=2),
        Unavailable("too busy", reason="overloaded", retry_after=1),
    ],
    ids=["rate_limited", "overloaded"],
)
def test_each_attempt_is_signed_afresh_over_the_same_bytes_and_waits_as_told(
    front: str, http_options: dict[str, Any], refusal: LogOpsError
) -> None:
    push = VerifyingPush(refusal)
    slept: list[float] = []
    with verifying_client(front, push, **http_options) as inner:
        client = RetryingTransport(inner, sleep=slept.append)
        result = client.send(Batch(records=[{"msg": "signed"}]))
        again = client.send(Batch(records=[{"msg": "signed"}], batch_id=result.batch_id))
    assert (result.accepted, result.duplicate, again.duplicate) == (1, False, True)
    assert len(slept) == 1 and slept[0] >= refusal.retry_after  # type: ignore[operator]
    first, second, third = push.seen
    assert first[1] == second[1] == third[1]  # the same bytes, each time signed afresh
    assert len({first[0][H_NONCE], second[0][H_NONCE], third[0][H_NONCE]}) == 3
    assert {b.batch_id for b in push.batches} == {result.batch_id}
    if http_options.get("compress"):
        assert first[0]["content-encoding"] == "gzip"
        assert _http_batch(first[0], first[1]).records[0]["msg"] == "signed"


@pytest.mark.parametrize("front", FRONTS)
def test_a_wrong_secret_is_refused_at_once_not_retried(front: str) -> None:
    push = VerifyingPush()
    slept: list[float] = []
    with verifying_client(front, push, signer=WRONG) as inner:
        client = RetryingTransport(inner, sleep=slept.append)
        with pytest.raises(Unauthenticated) as info:
            client.send(Batch(records=[{"msg": "forged"}]))
    assert info.value.reason == "bad_signature"
    assert (len(push.seen), slept) == (1, [])


# --- the same refusal, the same exception, on either transport -----------------------

@contextmanager
def overloaded_gateway(start_gateway: GatewayFactory) -> Iterator[IngestGateway]:
    """An Ingest Gateway whose only in-flight slot is held by a push slowed on purpose."""
    gw = start_gateway(**{"http_threads": 2, "limits.max_inflight": 1})
    entered, release = threading.Event(), threading.Event()
    push = gw.core.push

    def held(batch: Batch, request_id: str = "") -> PushResult:
        entered.set()
        release.wait(30)
        return push(batch, request_id)

    gw.core.push = held  # type: ignore[method-assign]
    holder = _client(gw, "grpc", timeout=30)
    thread = threading.Thread(target=holder.send, args=(Batch(records=[{"msg": "hold"}]),))
    thread.start()
    try:
        assert entered.wait(10)
        yield gw
    finally:
        release.set()
        thread.join(30)
        holder.close()


@contextmanager
def refusing(status: int, start_gateway: GatewayFactory) -> Iterator[dict[str, str]]:
    """Addresses by front that refuse a large push with ``status``: the verifying servers
    for 401 (signed with the wrong secret) and 429, Ingest for 413 and 503."""
    if status in (401, 429):
        push = VerifyingPush(*(RateLimited("over the key's rate", retry_after=3) for _ in FRONTS))
        with grpc_server(push) as target, http_server(push) as url:
            yield {"grpc": target, "http": url}
        return
    with ExitStack() as stack:
        if status == 413:
            gw = start_gateway()
        else:
            gw = stack.enter_context(overloaded_gateway(start_gateway))
        assert gw.addresses is not None
        yield {"grpc": gw.addresses.grpc_target, "http": gw.addresses.http_url}


def _big_batch(size: int) -> Batch:
    return Batch(records=[{"msg": "x" * 1000} for _ in range(size // 1000)], batch_id="big-1")


@pytest.mark.parametrize(
    ("status", "cls", "reason", "wait"),
    [
        (401, Unauthenticated, "bad_signature", None),
        (413, TooLarge, "too_large", None),
        (429, RateLimited, "rate_limited", 3.0),
        (503, Unavailable, "overloaded", 1.0),
    ],
)
def test_the_same_refusal_is_the_same_exception_on_grpc_and_http(
    start_gateway: GatewayFactory, status: int, cls: type, reason: str, wait: float | None
) -> None:
    size = 5 * 1024 * 1024 if status == 413 else BIG
    refusals: dict[str, LogOpsError] = {}
    with refusing(status, start_gateway) as addresses:
        for front, address in addresses.items():
            client = _transport(front, address, signer=WRONG if status == 401 else KEY)
            with pytest.raises(LogOpsError) as info:
                client.send(_big_batch(size))
            client.close()
            refusals[front] = info.value
    for front, exc in refusals.items():
        assert (type(exc), exc.reason, exc.retry_after) == (cls, reason, wait), front


# --- refusals of large bodies, read by other HTTP clients ------------------------------

def _urllib_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.headers.get("Retry-After") or "", resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers.get("Retry-After") or "", err.read()


def _requests_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
    requests = pytest.importorskip("requests")
    resp = requests.post(url, data=body, headers=headers, timeout=30)
    return int(resp.status_code), str(resp.headers.get("Retry-After") or ""), bytes(resp.content)


@pytest.mark.parametrize("post", [_urllib_post, _requests_post], ids=["urllib", "requests"])
@pytest.mark.parametrize(
    ("status", "reason", "size"),
    [
        (401, "bad_signature", BIG),
        (413, "too_large", 5 * 1024 * 1024),  # refused from its head, then drained
        (429, "rate_limited", BIG),
        (503, "overloaded", BIG),
    ],
)
def test_refusals_of_large_bodies_are_read_not_reset(
    start_gateway: GatewayFactory,
    post: Callable[[str, bytes, dict[str, str]], tuple[int, str, bytes]],
    status: int, reason: str, size: int,
) -> None:
    body = b"[" + b'{"msg":"' + b"x" * (size - 12) + b'"}]'
    headers = {"Content-Type": MEDIA_JSON}
    secret = b"not the secret the server knows" if status == 401 else KEY.signing_secret
    headers |= sign_headers((KEY.key_id, secret), body, MEDIA_JSON)
    with refusing(status, start_gateway) as addresses:
        got, retry_after, data = post(addresses["http"] + "/v1/logs", body, headers)
    assert (got, orjson.loads(data)["error"]["reason"]) == (status, reason)
    assert bool(retry_after) == (status in (429, 503))
