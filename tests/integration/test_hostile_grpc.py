"""Hostile clients on the gRPC front, on real sockets, with a good client served throughout.

Each test reproduces an attack that once held the gRPC front: one connection taking every
call slot with streams that never send their message, a flood of calls over the in-flight
cap, TCP connections that never speak, a message a byte over the body limit. Deadlines
are shortened through the config so the tests run in seconds; nothing here asserts a
duration, and waits are polls with generous bounds.
"""

from __future__ import annotations

import logging
import resource
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from logops.v1 import logs_pb2

from clients.transports import HttpTransport
from services.common.grpc_errors import error_from_rpc
from services.common.grpc_server import REFUSAL_THREADS, SERVICE_THREADS
from services.ingest.wiring import IngestGateway
from tests.conftest import GatewayFactory

pytestmark = pytest.mark.slow

PUSH = "/logops.v1.LogService/Push"
SERVER_POOLS = ("grpc-admitted", "grpc-refusal", "grpc-service")
MAX_BODY = 4 * 1024 * 1024
SERVING = health_pb2.HealthCheckResponse.SERVING


def _channel(gw: IngestGateway) -> grpc.Channel:
    """A channel on a connection of its own (equal channels share one in a process)."""
    assert gw.addresses is not None
    return grpc.insecure_channel(
        gw.addresses.grpc_target,
        options=[
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ],
    )


def _request(batch: logs_pb2.LogBatch | None = None) -> bytes:
    batch = batch or logs_pb2.LogBatch(records=[logs_pb2.LogRecord(msg="good client")])
    return logs_pb2.PushRequest(batch=batch).SerializeToString()


def _push(channel: grpc.Channel, body: bytes | None = None, **kw: object) -> logs_pb2.PushResponse:
    raw = channel.unary_unary(PUSH)(body or _request(), timeout=60, **kw)
    return logs_pb2.PushResponse.FromString(raw)


def _silent(stop: threading.Event) -> Iterator[bytes]:
    """A request stream that sends no message until ``stop``, then half-closes."""
    stop.wait(300)
    yield from ()


def _server_threads(pools: tuple[str, ...] = SERVER_POOLS) -> int:
    """Threads of the gRPC server's pools (a pool never shrinks, so this is also the
    most there have been)."""
    return sum(t.name.startswith(pools) for t in threading.enumerate())


def _serving(channel: grpc.Channel) -> bool:
    check = health_pb2_grpc.HealthStub(channel).Check
    request = health_pb2.HealthCheckRequest(service="logops.v1.LogService")
    return bool(check(request, timeout=60).status == SERVING)


def _reflected_services(channel: grpc.Channel) -> list[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (answer,) = stub.ServerReflectionInfo(iter([request]), timeout=60)
    return [s.name for s in answer.list_services_response.service]


def _rich_status(err: grpc.RpcError) -> tuple[str, str, int]:
    """ErrorInfo reason and domain, and RetryInfo seconds, of a failed call."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, f"no rich status in {err}"
    info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
    for detail in status.details:
        if not detail.Unpack(info):
            detail.Unpack(retry)
    return info.reason, info.domain, retry.retry_delay.seconds


def _poll(predicate: Callable[[], bool], timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_one_connection_with_silent_streams_does_not_starve_other_clients(
    start_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Three times the per-connection cap of streams that send headers and no message:
    the connection holds at most its cap of call slots, each for the message deadline,
    while a good client on another connection is served every time."""
    caplog.set_level(logging.DEBUG, logger="services.common.grpc_deadline")
    cap, inflight = 4, 8
    gw = start_gateway(
        **{
            "connections.body_timeout_sec": 1.0,
            "connections.grpc_max_streams_per_connection": cap,
            "limits.max_inflight": inflight,
        }
    )
    before, stop = _server_threads(), threading.Event()
    hostile, good = _channel(gw), _channel(gw)
    try:
        silent = [hostile.stream_unary(PUSH).future(_silent(stop)) for _ in range(3 * cap)]
        pushes, deadline = 0, time.monotonic() + 300
        while not all(f.done() for f in silent):
            assert time.monotonic() < deadline, "the silent streams were never ended"
            assert _push(good).accepted == 1
            assert _serving(good)
            pushes += 1
            time.sleep(0.01)  # pace the good client; the machine is shared
        endings = Counter(f.code() for f in silent)
        threads = _server_threads() - before
    finally:
        stop.set()
        hostile.close()
        good.close()
    print(f"good pushes during the attack: {pushes}, all accepted; server threads +{threads}")
    # Ended by the server (reset), not by the client's iterator, which never finished.
    assert endings == {grpc.StatusCode.CANCELLED: 3 * cap}
    timeouts = [r for r in caplog.records if getattr(r, "event", "") == "message_timeout"]
    assert len(timeouts) == 3 * cap
    late = gw.registry.get_sample_value(
        "logops_ingest_requests_total", {"front": "grpc", "code": "DEADLINE_EXCEEDED"}
    )
    assert late == 3 * cap
    assert pushes >= 1
    assert threads <= inflight + REFUSAL_THREADS + SERVICE_THREADS


def _refused_while_held(
    channel: grpc.Channel, holder: grpc.Channel, stop: threading.Event, held: int
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
            _push(channel)
        except grpc.RpcError as err:
            return err
    raise AssertionError("pushes were never refused while the slots were held")


def test_calls_over_the_cap_are_refused_at_once_in_the_contract_shape(
    start_gateway: GatewayFactory,
) -> None:
    inflight = 2
    gw = start_gateway(**{"limits.max_inflight": inflight, "limits.retry_after_sec": 3})
    before, stop = _server_threads(), threading.Event()
    holder, good = _channel(gw), _channel(gw)
    try:
        err = _refused_while_held(good, holder, stop, inflight)
        assert err.code() == grpc.StatusCode.UNAVAILABLE
        assert _rich_status(err) == ("overloaded", "logops", 3)
        assert error_from_rpc(err).reason == "overloaded"
        # The refusal does not wait for the request message: this call never sends one.
        with pytest.raises(grpc.RpcError) as info:
            good.stream_unary(PUSH)(_silent(stop), timeout=60)
        assert _rich_status(info.value)[0] == "overloaded"
        flood = [good.unary_unary(PUSH).future(_request(), timeout=120) for _ in range(300)]
        assert Counter(f.code() for f in flood) == {grpc.StatusCode.UNAVAILABLE: 300}
        refused = gw.registry.get_sample_value(
            "logops_ingest_requests_total", {"front": "grpc", "code": "UNAVAILABLE"}
        )
        assert refused is not None and refused >= 302  # counted, though the core never saw them
        # Health and reflection run on threads of their own.
        assert _serving(good)
        assert "logops.v1.LogService" in _reflected_services(good)
        threads = _server_threads() - before
    finally:
        stop.set()  # the silent streams half-close without a message and end
    assert _poll(lambda: _accepted(good))
    holder.close()
    good.close()
    print(f"server threads after 300 refusals: +{threads}")
    assert threads <= inflight + REFUSAL_THREADS + SERVICE_THREADS


def _accepted(channel: grpc.Channel) -> bool:
    try:
        return _push(channel).accepted == 1
    except grpc.RpcError:
        return False


def test_silent_streams_on_other_methods_take_neither_push_nor_threads(
    start_gateway: GatewayFactory,
) -> None:
    """Health checks, health watches and reflection streams that never send their message
    are ended after the deadline too, on threads of their own lane; Push is served."""
    gw = start_gateway(**{"connections.body_timeout_sec": 1.0})
    not_push = ("grpc-service", "grpc-refusal")
    before, stop = _server_threads(not_push), threading.Event()
    methods = (
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    )
    hostile = [_channel(gw) for _ in range(4)]
    good = _channel(gw)
    try:
        silent = [
            channel.stream_stream(method)(_silent(stop))
            for channel in hostile
            for method in methods
            for _ in range(8)
        ]
        pushes = 0
        for call in silent:
            with pytest.raises(grpc.RpcError) as info:
                next(call)
            assert info.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
            assert _push(good).accepted == 1
            pushes += 1
        assert _serving(good)
        watch = health_pb2_grpc.HealthStub(good).Watch(health_pb2.HealthCheckRequest(), timeout=60)
        assert next(watch).status == SERVING
        watch.cancel()
        threads = _server_threads(not_push) - before
    finally:
        stop.set()
        for channel in (*hostile, good):
            channel.close()
    print(f"pushes while {len(silent)} silent streams were ended: {pushes}; threads +{threads}")
    assert threads <= REFUSAL_THREADS + SERVICE_THREADS


def test_calls_beyond_the_stream_cap_wait_on_the_client_and_succeed(
    start_gateway: GatewayFactory,
) -> None:
    gw = start_gateway(**{"connections.grpc_max_streams_per_connection": 2})
    with _channel(gw) as channel:
        calls = [channel.unary_unary(PUSH).future(_request(), timeout=120) for _ in range(40)]
        answers = [logs_pb2.PushResponse.FromString(c.result()).accepted for c in calls]
    assert answers == [1] * 40


def test_a_unary_client_gets_the_answers_it_always_got(gateway: IngestGateway) -> None:
    with _channel(gateway) as channel:
        two = channel.stream_unary(PUSH)(iter([_request(), _request()]), timeout=60)
        assert logs_pb2.PushResponse.FromString(two).accepted == 1  # the first message only
        with pytest.raises(grpc.RpcError) as info:
            channel.stream_unary(PUSH)(iter([]), timeout=60)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert info.value.details() == f'"{PUSH}" requires exactly one request message.'


def _batch_of(size: int, batch_id: str) -> logs_pb2.LogBatch:
    """A LogBatch of exactly ``size`` serialized bytes, in records under the record limit."""
    chunk = 200_000
    batch = logs_pb2.LogBatch(batch_id=batch_id)
    while batch.ByteSize() + chunk + 16 < size:
        batch.records.add(msg="x" * chunk)
    last = batch.records.add()
    for _ in range(8):
        last.msg = "x" * (len(last.msg) + size - batch.ByteSize())
        if batch.ByteSize() == size:
            return batch
    raise AssertionError(f"no batch of {size} bytes")


@pytest.mark.parametrize("compression", [grpc.Compression.NoCompression, grpc.Compression.Gzip])
def test_grpc_takes_a_batch_as_large_as_http_takes_and_no_larger(
    gateway: IngestGateway, compression: grpc.Compression
) -> None:
    limit = gateway.cfg.limits.max_body_bytes
    assert limit == MAX_BODY
    with _channel(gateway) as channel:
        largest = _batch_of(limit, f"largest-{compression.name}")
        assert _push(channel, _request(largest), compression=compression).accepted == len(
            largest.records
        )
        with pytest.raises(grpc.RpcError) as info:
            _push(channel, _request(_batch_of(limit + 1, "over")), compression=compression)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _rich_status(info.value)[:2] == ("too_large", "logops")


def test_a_message_far_over_the_limit_is_refused_by_grpc_core_before_buffering(
    gateway: IngestGateway,
) -> None:
    """Past the slack, grpc core refuses the message itself (no ErrorInfo can be added
    there); the client library still reads it as the too_large HTTP gives."""
    limit = gateway.cfg.limits.max_body_bytes
    with _channel(gateway) as channel, pytest.raises(grpc.RpcError) as info:
        _push(channel, _request(_batch_of(limit + 128 * 1024, "far-over")))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_from_rpc(info.value).reason == "too_large"


def test_http_takes_the_same_largest_batch(gateway: IngestGateway) -> None:
    assert gateway.addresses is not None
    http = HttpTransport(gateway.addresses.http_url, timeout=60)
    headers = {"Content-Type": "application/x-protobuf"}
    largest = _batch_of(MAX_BODY, "largest-http")
    status, _, _ = http.post(largest.SerializeToString(), headers)
    assert status == 200
    status, _, _ = http.post(_batch_of(MAX_BODY + 1, "over-http").SerializeToString(), headers)
    assert status == 413
    http.close()


def _room_for(sockets: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = sockets + 512
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            pytest.skip(f"needs {want} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _closed_by_server(sockets: list[socket.socket], timeout: float = 120.0) -> int:
    """Read and drop what the server sends until it closes; returns how many it closed."""
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    closed, deadline = 0, time.monotonic() + timeout
    while closed < len(sockets) and time.monotonic() < deadline:
        for key, _ in selector.select(1.0):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                selector.unregister(sock)
                closed += 1
    selector.close()
    for sock in sockets:
        sock.close()
    return closed


def test_connections_that_never_speak_are_dropped(start_gateway: GatewayFactory) -> None:
    _room_for(1030)
    gw = start_gateway(**{"connections.header_timeout_sec": 1.0})
    assert gw.addresses is not None
    port = gw.addresses.grpc_port
    mute = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(1030)]
    assert _closed_by_server(mute) == 1030
    with _channel(gw) as channel:
        assert _push(channel).accepted == 1


# An HTTP/2 client's opening: the preface, empty SETTINGS, and the ack of the server's.
_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")
_SETTINGS_ACK = bytes.fromhex("000000040100000000")


def test_idle_connections_are_closed(start_gateway: GatewayFactory) -> None:
    """Connections past their handshake but without calls close after the idle timeout
    (the handshake timeout is long here, so it is not what closes them)."""
    gw = start_gateway(
        **{"connections.header_timeout_sec": 300.0, "connections.grpc_idle_timeout_sec": 1.0}
    )
    assert gw.addresses is not None
    idle = []
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", gw.addresses.grpc_port), timeout=30)
        sock.sendall(_PREFACE + _SETTINGS_ACK)
        idle.append(sock)
    assert _closed_by_server(idle) == 50
    with _channel(gw) as channel:
        assert _push(channel).accepted == 1
