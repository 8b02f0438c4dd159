"""Hostile clients on the Auth Gateway, on real sockets, with a good signed client served.

The Auth Gateway shares its HTTP and gRPC fronts with the Ingest Gateway, so it must hold
up against the same attacks: descriptors past 1023, idle and slowloris connections, silent
gRPC streams, a flood over the in-flight cap, request smuggling, and simple clients that
keep sending a large body the server has already refused. An Ingest Gateway runs behind
it; deadlines are shortened through the config; nothing here asserts a duration.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from contextlib import suppress
from typing import Any

import grpc
import orjson
import pytest
import requests
from logops.v1 import logs_pb2

from services.auth.wiring import AuthGateway
from services.common.signing import sign_headers
from services.ingest.wiring import IngestGateway
from tests.conftest import AuthFactory, GatewayFactory, stored_lines
from tests.contract.auth_clients import (
    FAST,
    KEY_ID,
    PUSH,
    Keys,
    batch,
    encode,
    push,
    target_of,
)
from tests.integration.test_hostile_grpc import _rich_status, _silent
from tests.integration.test_hostile_http import (
    _closed_by_server,
    _need_fds,
    _response,
    _sockets,
)

pytestmark = pytest.mark.slow

SHORT_DEADLINES = {
    "connections.header_timeout_sec": 1.0,
    "connections.body_timeout_sec": 1.0,
    "connections.idle_timeout_sec": 1.0,
}


@pytest.fixture
def keys() -> Keys:
    return Keys.made()


def _pair(
    start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys, **overrides: Any
) -> tuple[IngestGateway, AuthGateway]:
    ingest = start_gateway()
    auth = auth_gateway(target_of(ingest, "grpc"), keys.ring(), **{**FAST, **overrides})
    return ingest, auth


def _good_pushes(auth: AuthGateway, keys: Keys, n: int = 3) -> int:
    """Signed pushes on both fronts, each on a new connection; returns how many got 200."""
    return sum(push(front, auth, keys, batch()).status == 200 for front in ("http", "grpc")
               for _ in range(n))


def _good_lines(ingest: IngestGateway) -> int:
    return sum(line["msg"] == "hello 0" for line in stored_lines(ingest.cfg.sink.dir))


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_descriptors_past_1023_leave_the_http_front_serving_signed_pushes(
    start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys
) -> None:
    """1,100 idle connections to Auth's gRPC port push every new descriptor past 1023;
    signed pushes are still answered on both fronts, during and after."""
    _need_fds(4096)
    ingest, auth = _pair(start_gateway, auth_gateway, keys)
    assert auth.addresses is not None
    with _sockets() as idle:
        for _ in range(1100):
            idle.append(_connect(auth.addresses.grpc_port))
        assert _good_pushes(auth, keys) == 6
    assert _good_pushes(auth, keys) == 6
    assert auth.failure is None
    assert _good_lines(ingest) == 12


def test_idle_and_slowloris_connections_are_closed_and_the_good_client_served(
    start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys
) -> None:
    """1,200 hostile connections on Auth's HTTP port, half silent, half sending a header
    byte now and then: all are closed by the server, the slow ones with a JSON 408."""
    _need_fds(4096)
    ingest, auth = _pair(start_gateway, auth_gateway, keys, **SHORT_DEADLINES)
    assert auth.addresses is not None
    with _sockets() as idle, _sockets() as slow:
        for i in range(1200):
            (idle if i % 2 else slow).append(_connect(auth.addresses.http_port))
        for sock in slow:
            sock.sendall(b"P")
        served = _good_pushes(auth, keys)
        for sock in slow:
            with suppress(OSError):  # already timed out and closed: fine
                sock.sendall(b"O")
        assert served == 6
        assert all(_closed_by_server(sock) for sock in idle)
        status, headers, body = _response(slow[0])
        assert (status, body["error"]["reason"]) == (408, "request_timeout")
        assert headers["content-type"] == "application/json"
        assert all(_closed_by_server(sock) for sock in slow)
    assert _good_pushes(auth, keys) == 6
    assert auth.failure is None
    assert _good_lines(ingest) == 12


def _channel(auth: AuthGateway) -> grpc.Channel:
    """A channel on a connection of its own (equal channels share one in a process)."""
    assert auth.addresses is not None
    return grpc.insecure_channel(
        auth.addresses.grpc_target, options=[("grpc.use_local_subchannel_pool", 1)]
    )


def _signed_push(channel: grpc.Channel, keys: Keys) -> logs_pb2.PushResponse:
    body, media = encode("grpc", batch())
    headers = sign_headers((KEY_ID, keys.secrets[KEY_ID][0]), body, media)
    raw = channel.unary_unary(PUSH)(body, metadata=list(headers.items()), timeout=60)
    return logs_pb2.PushResponse.FromString(raw)


def test_silent_streams_on_one_connection_are_ended_and_others_served(
    start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys
) -> None:
    """Three times the per-connection cap of streams that never send their message: the
    server ends them after the message deadline, while a good client on another
    connection is served every time."""
    cap = 4
    ingest, auth = _pair(
        start_gateway, auth_gateway, keys,
        **{
            "connections.body_timeout_sec": 1.0,
            "connections.grpc_max_streams_per_connection": cap,
            "limits.max_inflight": 8,
        },
    )
    stop = threading.Event()
    hostile, good = _channel(auth), _channel(auth)
    try:
        silent = [hostile.stream_unary(PUSH).future(_silent(stop)) for _ in range(3 * cap)]
        pushes, deadline = 0, time.monotonic() + 300
        while not all(f.done() for f in silent):
            assert time.monotonic() < deadline, "the silent streams were never ended"
            assert _signed_push(good, keys).accepted == 1
            pushes += 1
            time.sleep(0.01)  # pace the good client; the machine is shared
        endings = Counter(f.code() for f in silent)
    finally:
        stop.set()
        hostile.close()
        good.close()
    print(f"good signed pushes during the attack: {pushes}, all accepted")
    # Ended by the server (reset), not by the client's iterator, which never finished.
    assert endings == {grpc.StatusCode.CANCELLED: 3 * cap}
    assert pushes >= 1
    assert _good_lines(ingest) == pushes


def _refused_while_held(
    good: grpc.Channel, holder: grpc.Channel, keys: Keys, stop: threading.Event, held: int
) -> grpc.RpcError:
    """Hold ``held`` call slots with silent streams, then push until the push is refused.
    A silent stream that came while a push had a slot was refused itself: replace it."""
    streams: list[grpc.Future] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        streams = [s for s in streams if not s.done()]
        for _ in range(held - len(streams)):
            streams.append(holder.stream_unary(PUSH).future(_silent(stop)))
        try:
            _signed_push(good, keys)
        except grpc.RpcError as err:
            return err
    raise AssertionError("pushes were never refused while the slots were held")


def test_calls_over_the_inflight_cap_are_refused_overloaded_with_retry_info(
    start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys
) -> None:
    inflight = 2
    _, auth = _pair(
        start_gateway, auth_gateway, keys,
        **{"limits.max_inflight": inflight, "limits.retry_after_sec": 3},
    )
    stop = threading.Event()
    holder, good = _channel(auth), _channel(auth)
    try:
        err = _refused_while_held(good, holder, keys, stop, inflight)
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert _rich_status(err) == ("overloaded", "logops", 3)
    finally:
        stop.set()  # the silent streams half-close without a message and end
    deadline = time.monotonic() + 120
    while True:  # the slots come back: the good client is served again
        with suppress(grpc.RpcError):
            if _signed_push(good, keys).accepted == 1:
                break
        assert time.monotonic() < deadline, "never served again after the slots were freed"
        time.sleep(0.05)
    holder.close()
    good.close()


def test_content_length_with_chunked_is_refused_and_nothing_reaches_ingest(
    start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys
) -> None:
    """The smuggled request is signed, so it would be stored if it ever ran."""
    ingest, auth = _pair(start_gateway, auth_gateway, keys)
    assert auth.addresses is not None
    inner, media = encode("http", batch(msg="smuggled"))
    signed = sign_headers((KEY_ID, keys.secrets[KEY_ID][0]), inner, media)
    head = b"".join(f"{k}: {v}\r\n".encode() for k, v in signed.items())
    smuggled = (
        b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + head
        + b"Content-Length: %d\r\n\r\n%s" % (len(inner), inner)
    )
    body = b"0\r\n\r\n" + smuggled
    with _connect(auth.addresses.http_port) as sock:
        sock.sendall(
            b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%s" % (len(body), body)
        )
        status, headers, err = _response(sock)
    assert (status, err["error"]["reason"], headers["connection"]) == (400, "bad_request", "close")
    assert _good_pushes(auth, keys, 1) == 2  # ingest is there: a later push is stored
    assert not any(line["msg"].startswith("smuggled") for line in stored_lines(ingest.cfg.sink.dir))


# -- refusals on large bodies, as simple clients read them ---------------------------------

LIMIT = 8 * 1024 * 1024  # well past what loopback socket buffers hold


def _large(doc: dict[str, Any], size: int) -> bytes:
    """``doc`` as JSON padded with whitespace to ``size`` bytes (few records, many bytes)."""
    body = orjson.dumps(doc)
    return body + b" " * (size - len(body))


def _post_urllib(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str],
                                                                         dict[str, Any]]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers.items()), orjson.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), orjson.loads(err.read())


def _post_requests(url: str, body: bytes, headers: dict[str, str]) -> tuple[
        int, dict[str, str], dict[str, Any]]:
    resp = requests.post(url, data=body, headers=headers, timeout=60)
    return resp.status_code, dict(resp.headers), resp.json()


POSTERS = {"urllib": _post_urllib, "requests": _post_requests}


def _refusal_request(case: str, auth: AuthGateway, keys: Keys) -> tuple[bytes, dict[str, str]]:
    media = {"Content-Type": "application/json"}
    body = _large(batch(), 2 * LIMIT if case == "too_large" else LIMIT - 1024)
    if case == "missing_auth":
        return body, media
    if case == "rate_limited":  # the one request of the burst goes first
        assert push("http", auth, keys, batch()).status == 200
    return body, {**media, **sign_headers((KEY_ID, keys.secrets[KEY_ID][0]), body, media[
        "Content-Type"])}


@pytest.mark.parametrize("client", sorted(POSTERS))
@pytest.mark.parametrize(
    ("case", "status"), [("too_large", 413), ("missing_auth", 401), ("rate_limited", 429)]
)
def test_a_simple_client_reads_the_refusal_of_a_large_body_not_a_reset(
    start_gateway: GatewayFactory, auth_gateway: AuthFactory, keys: Keys,
    client: str, case: str, status: int,
) -> None:
    _, auth = _pair(
        start_gateway, auth_gateway, keys,
        **{"limits.max_body_bytes": LIMIT, "requests_per_key.per_sec": 0.001,
           "requests_per_key.burst": 1},
    )
    assert auth.addresses is not None
    body, headers = _refusal_request(case, auth, keys)
    got, answer_headers, doc = POSTERS[client](auth.addresses.http_url + "/v1/logs", body, headers)
    assert (got, doc["error"]["reason"]) == (status, case)
    if case == "rate_limited":
        assert float({k.lower(): v for k, v in answer_headers.items()}["retry-after"]) > 0

