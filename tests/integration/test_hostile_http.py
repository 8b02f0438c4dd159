"""Hostile clients on the HTTP front, on real sockets, with a good client served throughout.

Each test reproduces an attack that once took the front down or locked clients out:
descriptors past 1023, idle and slowloris connections, slow bodies, a flood of pushes,
request smuggling, oversized declarations. Deadlines are shortened through the config so
the tests run in seconds; nothing here asserts a duration.
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from typing import Any

import orjson
import pytest

from clients.transports import GrpcTransport, HttpTransport
from services.common.errors import Unavailable
from services.common.model import Batch
from services.common.process import raise_fd_limit
from services.ingest.wiring import IngestGateway
from tests.conftest import GatewayFactory, stored_lines

pytestmark = pytest.mark.slow

FAST = {
    "connections.header_timeout_sec": 1.0,
    "connections.body_timeout_sec": 1.0,
    "connections.idle_timeout_sec": 1.0,
}


def _push_ok(gw: IngestGateway, n: int = 3) -> int:
    """Pushes from a good client on both fronts; returns how many were accepted."""
    assert gw.addresses is not None
    ok = 0
    for client in (HttpTransport(gw.addresses.http_url), GrpcTransport(gw.addresses.grpc_target)):
        for _ in range(n):
            ok += client.send(Batch(records=[{"msg": "good client"}])).accepted
        client.close()
    return ok


def _requests(gw: IngestGateway, code: str) -> float:
    value = gw.registry.get_sample_value(
        "logops_ingest_requests_total", {"front": "http", "code": code}
    )
    return value or 0.0


def _connect(gw: IngestGateway, port: int | None = None) -> socket.socket:
    assert gw.addresses is not None
    sock = socket.create_connection(("127.0.0.1", port or gw.addresses.http_port), timeout=10)
    return sock


def _response(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, Any]]:
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    body = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, orjson.loads(body)


def _closed_by_server(sock: socket.socket, within: float = 15.0) -> bool:
    """Reads until the server closes the connection (what it sent before is dropped)."""
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except OSError:
        pass  # reset: closed too
    return True


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _need_fds(n: int) -> None:
    if raise_fd_limit() < n:
        pytest.skip(f"needs {n} file descriptors; the hard limit is lower")


def _wait(pred: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


@contextmanager
def _sockets() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    try:
        yield socks
    finally:
        for sock in socks:
            sock.close()


def test_descriptors_past_1023_leave_the_http_front_serving(start_gateway: GatewayFactory) -> None:
    """1,100 idle connections to the gRPC port push every new descriptor past 1023,
    where a select() loop dies; the HTTP front still answers, during and after."""
    _need_fds(4096)
    gw = start_gateway()
    assert gw.addresses is not None
    fds_before = _open_fds()
    with _sockets() as idle:
        for _ in range(1100):
            idle.append(_connect(gw, gw.addresses.grpc_port))
        assert _push_ok(gw) == 6
    assert _push_ok(gw) == 6
    assert gw.failure is None
    assert len(stored_lines(gw.cfg.sink.dir)) == 12
    assert _wait(lambda: _open_fds() <= fds_before + 8), (fds_before, _open_fds())


def test_a_dead_http_loop_makes_the_gateway_unready_and_reports_it(
    start_gateway: GatewayFactory,
) -> None:
    """If waitress's loop thread dies anyway, the gateway says so on gRPC health and
    through on_failure (the CLI then exits non-zero); it never stays half alive."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    failed = threading.Event()
    gw = start_gateway()
    gw._watch.on_failure = failed.set

    class Poison:  # a dispatcher whose poll entry raises: the loop's thread ends
        def readable(self) -> bool:
            raise RuntimeError("injected loop failure")

        writable = readable

    gw._http._server._map[-1] = Poison()
    gw._http._server.pull_trigger()
    assert failed.wait(10)
    assert gw.failure == "the http front stopped serving"
    assert gw.addresses is not None
    with grpc.insecure_channel(gw.addresses.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert gw.core.readiness() == "the http front stopped serving"
    gw._http._server._map.pop(-1, None)


def test_idle_and_slowloris_connections_are_closed_and_good_clients_served(
    start_gateway: GatewayFactory,
) -> None:
    """1,200 hostile connections: half never speak, half send a header byte now and
    then. The good client is served throughout; every hostile one is closed, the slow
    ones with a 408 in the JSON error shape; every acknowledged push is stored, and the
    descriptors come back once the attack is over."""
    _need_fds(4096)
    gw = start_gateway(**FAST)
    fds_before = _open_fds()
    with _sockets() as idle, _sockets() as slow:
        for i in range(1200):
            (idle if i % 2 else slow).append(_connect(gw))
        for sock in slow:
            sock.sendall(b"P")
        served = _push_ok(gw)
        for sock in slow:
            with suppress(OSError):  # already timed out and closed: fine
                sock.sendall(b"O")
        assert served == 6
        assert all(_closed_by_server(sock) for sock in idle)
        status, _, body = _response(slow[0])
        assert status == 408
        assert body["error"]["reason"] == "request_timeout"
        assert all(_closed_by_server(sock) for sock in slow)
    assert _push_ok(gw) == 6
    assert len(stored_lines(gw.cfg.sink.dir)) == 12
    # The server's side of every hostile connection is closed: its descriptors are back
    # (a few may differ: client connections of the good pushes, log files).
    assert _wait(lambda: _open_fds() <= fds_before + 8), (fds_before, _open_fds())


def test_a_body_that_trickles_gets_408_and_nothing_is_stored(
    start_gateway: GatewayFactory, tmp_path: Any
) -> None:
    gw = start_gateway(sink_dir=tmp_path / "sink", **FAST)
    sock = _connect(gw)
    sock.sendall(
        b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n[{\"msg\":"
    )
    for _ in range(3):  # never silent for a whole second, yet never done
        time.sleep(0.4)
        try:
            sock.sendall(b" ")
        except OSError:
            break
    status, headers, body = _response(sock)
    assert (status, body["error"]["reason"]) == (408, "request_timeout")
    assert headers["connection"] == "close"
    assert _requests(gw, "DEADLINE_EXCEEDED") == 1
    assert _push_ok(gw) == 6
    assert all(line["msg"] == "good client" for line in stored_lines(tmp_path / "sink"))


def test_a_flood_of_pushes_is_shed_with_503_not_queued(start_gateway: GatewayFactory) -> None:
    """Past the in-flight cap (running and queued together), a push is answered 503
    overloaded with Retry-After at once, on a connection that stays usable. The two
    workers are held by a core slowed on purpose (a slow disk cannot be made here)."""
    gw = start_gateway(**{"http_threads": 2, "limits.max_inflight": 4})
    release = threading.Event()
    push = gw.core.push
    gw.core.push = lambda *a, **k: (release.wait(30), push(*a, **k))[1]  # type: ignore[method-assign]
    assert gw.addresses is not None
    results: list[object] = []
    one_at_a_time = threading.Lock()

    def admitted() -> int:
        return sum(1 for r in results if not isinstance(r, Unavailable))

    def send() -> None:
        client = HttpTransport(gw.addresses.http_url, timeout=30)  # type: ignore[union-attr]
        try:
            results.append(client.send(Batch(records=[{"msg": "flood"}])))
        except Unavailable as exc:
            results.append(exc)
            # Once the admitted ones are done, retry on the same connection.
            release.wait(30)
            _wait(lambda: admitted() >= 4, 30)
            with one_at_a_time:
                results.append(client.send(Batch(records=[{"msg": "same connection"}])))
        finally:
            client.close()

    threads = [threading.Thread(target=send) for _ in range(20)]
    for t in threads:
        t.start()
    assert _wait(lambda: sum(isinstance(r, Unavailable) for r in results) >= 16)
    release.set()
    for t in threads:
        t.join(30)
    refusals = [r for r in results if isinstance(r, Unavailable)]
    assert len(refusals) == 16
    assert all(r.reason == "overloaded" and r.retry_after == 1 for r in refusals)
    assert admitted() == 20
    assert _requests(gw, "UNAVAILABLE") == 16  # shed before the core, and still counted


def _raw(gw: IngestGateway, payload: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    with _connect(gw) as sock:
        sock.sendall(payload)
        return _response(sock)


def test_content_length_with_chunked_is_refused_and_the_smuggled_request_never_runs(
    gateway: IngestGateway, tmp_path: Any
) -> None:
    smuggled = (
        b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 22\r\n\r\n[{\"msg\":\"smuggled\"}]"
    )
    body = b"0\r\n\r\n" + smuggled
    status, headers, err = _raw(
        gateway,
        b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n%s" % (len(body), body),
    )
    assert (status, err["error"]["reason"], headers["connection"]) == (400, "bad_request", "close")
    assert not any(line["msg"] == "smuggled" for line in stored_lines(gateway.cfg.sink.dir))


def test_expect_continue_over_the_limit_is_413_at_once(gateway: IngestGateway) -> None:
    limit = gateway.cfg.limits.max_body_bytes
    with _connect(gateway) as sock:
        sock.sendall(
            b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (limit + 1)
        )
        status, _, err = _response(sock)  # no 100 Continue comes first
    assert (status, err["error"]["reason"]) == (413, "too_large")


def test_a_body_of_exactly_the_limit_passes_waitress(gateway: IngestGateway) -> None:
    limit = gateway.cfg.limits.max_body_bytes
    record = b'{"msg":"x"}'
    body = b"[" + record + b" " * (limit - len(record) - 2) + b"]"
    assert len(body) == limit
    status, _, result = _raw(
        gateway,
        b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
    )
    assert (status, result["accepted"]) == (200, 1)


@pytest.mark.parametrize(
    ("payload", "status", "reason"),
    [
        (b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n",
         431, "headers_too_large"),
        (b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
         400, "bad_request"),
        (b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
         "not_implemented"),
        (b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "bad_request"),
        (b"POST /v1/logs HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n[]",
         400, "bad_request"),
    ],
    ids=["huge-header", "bad-chunk", "unknown-coding", "negative-length", "te-on-http10"],
)
def test_framing_refusals_have_the_json_error_body(
    gateway: IngestGateway, payload: bytes, status: int, reason: str
) -> None:
    got, headers, err = _raw(gateway, payload)
    assert (got, err["error"]["reason"]) == (status, reason)
    assert headers["content-type"] == "application/json"
    assert err["error"]["request_id"]


def test_a_client_still_sending_reads_the_refusal_instead_of_a_reset(
    gateway: IngestGateway,
) -> None:
    """An oversized body is refused from its head; the client goes on sending it (as
    simple clients do) and still reads the 413, because the server drains before closing."""
    limit = gateway.cfg.limits.max_body_bytes
    with _connect(gateway) as sock:
        sock.sendall(
            b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (limit + 1)
        )
        sock.sendall(b" " * (limit + 1))
        status, _, err = _response(sock)
    assert (status, err["error"]["reason"]) == (413, "too_large")


def test_at_the_connection_cap_idle_connections_make_room(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(**{"connections.max_connections": 50})
    with ExitStack() as stack:
        idle = stack.enter_context(_sockets())
        for _ in range(60):
            idle.append(_connect(gw))
        assert _push_ok(gw, 1) == 2
