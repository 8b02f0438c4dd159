"""The gRPC server a gateway runs: connection limits, message deadline, admission, and its threads.

:class:`GrpcServer` wraps ``grpc.Server`` and owns what the limits need, and stops it
with the server: the reaper that ends calls whose request message is late
(:mod:`~services.common.grpc_deadline`), the admission lanes
(:mod:`~services.common.grpc_admission`) and their threads: a fixed pool of
``max_inflight`` workers for the capped methods (Push), a few for the rest (health,
reflection) and two for refusals. The options come from the config's ``limits`` and
``connections`` sections:

- a connection opens at most ``grpc_max_streams_per_connection`` streams at once; a gRPC
  client queues the others;
- a connection must finish its HTTP/2 handshake within ``header_timeout_sec``, is closed
  after ``grpc_idle_timeout_sec`` without calls and asked to reconnect after
  ``grpc_max_connection_age_sec``, with ``body_timeout_sec`` of grace for its calls;
- keepalive as grpc's guides have it (gRFC A8/A9, ``doc/keepalive.md``);
- a request may carry a batch of exactly ``max_body_bytes``, as HTTP allows that body,
  and no larger: the front refuses a larger one with ErrorInfo ``too_large``; grpc core
  refuses messages past ``MESSAGE_SLACK`` beyond that itself (see ``server_options``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common.config import ConnectionsConfig, LimitsConfig
from services.common.errors import LogOpsError, RequestTimeout
from services.common.grpc_admission import AdmissionInterceptor, InflightGate, Lane
from services.common.grpc_deadline import MessageDeadlineInterceptor, MessageReaper
from services.common.interceptors import RequestIdInterceptor

# Health checks, reflection and anything else that is not capped: as many calls in
# progress as threads for them, so none waits behind streams that never send their
# message; more are refused at once.
SERVICE_THREADS = 8
REFUSAL_THREADS = 2

# Keepalive, after gRFC A8/A9 and grpc core's doc/keepalive.md: ping a connection that
# has calls but has been silent for a minute and drop it if the ping is not answered in
# 20 s (grpc's default timeout), rather than wait hours for TCP to notice a dead peer.
# Clients may ping as often as once a minute, the floor A8 suggests to them; more often
# than that, or without calls (idle connections are closed anyway), is a strike, and
# past two strikes the connection is closed (GOAWAY too_many_pings): grpc's defaults.
KEEPALIVE_TIME_MS = 60_000
KEEPALIVE_TIMEOUT_MS = 20_000
MIN_CLIENT_PING_INTERVAL_MS = 60_000
MAX_PING_STRIKES = 2
# Room above the largest acceptable request, so that a near miss reaches the front and is
# refused in the contract's shape; HTTP gives its bodies the same room.
MESSAGE_SLACK = 64 * 1024


def varint_size(value: int) -> int:
    size = 1
    while value >= 0x80:
        value >>= 7
        size += 1
    return size


def request_size_limit(max_body_bytes: int) -> int:
    """Size of a request whose field 1 is a body of ``max_body_bytes``: tag byte, length
    as a varint, body."""
    return 1 + varint_size(max_body_bytes) + max_body_bytes


def embedded_length(message: bytes, field: int = 1) -> int:
    """Bytes of the length-delimited ``field`` at the top level of a serialized message,
    summed over its occurrences (protobuf merges them). Counting stops at anything
    malformed; the decoder refuses that message anyway."""
    total, pos, end = 0, 0, len(message)
    while pos < end:
        key, pos = _varint(message, pos)
        wire_type = key & 7
        if wire_type == 2:
            size, pos = _varint(message, pos)
            if key >> 3 == field and pos + size <= end:
                total += size
            pos += size
        elif wire_type == 0:
            _, pos = _varint(message, pos)
        elif wire_type in _FIXED_SIZES:
            pos += _FIXED_SIZES[wire_type]
        else:
            break
    return total


_FIXED_SIZES = {1: 8, 5: 4}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it; a truncated one moves past the
    end, which ends :func:`embedded_length`'s loop."""
    value, shift = 0, 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    return 0, len(data) + 1


def server_options(limits: LimitsConfig, connections: ConnectionsConfig) -> list[tuple[str, int]]:
    # grpc core refuses a larger message itself (RESOURCE_EXHAUSTED without ErrorInfo),
    # after decompression too: the backstop that keeps the limit before buffering. The
    # batch inside an accepted message is measured by the front, which refuses anything
    # over max_body_bytes with ErrorInfo too_large.
    max_message = request_size_limit(limits.max_body_bytes) + MESSAGE_SLACK
    return [
        ("grpc.max_receive_message_length", max_message),
        ("grpc.max_send_message_length", max_message),
        ("grpc.max_concurrent_streams", connections.grpc_max_streams_per_connection),
        # grpc core's "overload protection" (on by default) counts a finished stream until
        # Python has let go of it, so a client queueing beyond the cap had its next streams
        # refused (UNAVAILABLE) as soon as a slot freed: 86 of 300 calls on 5 connections
        # in a trial. Off, the client's queued streams start as slots free, as they should;
        # the cap itself is still enforced on the streams that are open.
        ("grpc.http.overload_protection", 0),
        ("grpc.server_handshake_timeout_ms", _ms(connections.header_timeout_sec)),
        ("grpc.max_connection_idle_ms", _ms(connections.grpc_idle_timeout_sec)),
        ("grpc.max_connection_age_ms", _ms(connections.grpc_max_connection_age_sec)),
        # A call in progress at the maximum age gets as long as a request message has.
        ("grpc.max_connection_age_grace_ms", _ms(connections.body_timeout_sec)),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_CLIENT_PING_INTERVAL_MS),
        ("grpc.http2.max_ping_strikes", MAX_PING_STRIKES),
        ("grpc.so_reuseport", 0),
    ]


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class GrpcServer:
    """A ``grpc.Server`` with the limits above; ``start``/``stop`` as ``grpc.Server``'s."""

    def __init__(
        self,
        limits: LimitsConfig,
        connections: ConnectionsConfig,
        on_refused: Callable[[LogOpsError], None] | None = None,
    ) -> None:
        """``on_refused`` hears of every call refused here, before a front sees it: over
        a lane's cap (``overloaded``) or ended for a late message (``request_timeout``)."""
        self._pools: list[ThreadPoolExecutor] = []
        late = RequestTimeout(
            f"request message not received within {connections.body_timeout_sec:g} s"
        )
        self.reaper = MessageReaper(
            connections.body_timeout_sec,
            on_expired=None if on_refused is None else lambda: on_refused(late),
        )
        # The capped methods (Push): as many workers as calls admitted, so none waits.
        # At least one: a cap of 0 (refuse everything) is a valid setting.
        self._capped = Lane(
            InflightGate(limits.max_inflight),
            self._pool(max(1, limits.max_inflight), "grpc-admitted"),
        )
        self._admission = AdmissionInterceptor(
            Lane(InflightGate(SERVICE_THREADS)),
            self._pool(REFUSAL_THREADS, "grpc-refusal"),
            limits.retry_after_sec,
            on_refused,
        )
        self._server = grpc.server(
            self._pool(SERVICE_THREADS, "grpc-service"),
            # Outermost first: the request id wraps what admission chose, which wraps
            # the client-streaming form of each unary method.
            interceptors=[
                RequestIdInterceptor(),
                self._admission,
                MessageDeadlineInterceptor(self.reaper),
            ],
            # Only a backstop: both lanes refuse long before, with ErrorInfo, and a
            # refusal is short.
            maximum_concurrent_rpcs=2 * (limits.max_inflight + SERVICE_THREADS) + 256,
            options=server_options(limits, connections),
        )

    def add_service(
        self, handler: grpc.GenericRpcHandler[Any, Any], capped: Iterable[str] = ()
    ) -> None:
        """Serve ``handler``; calls of the ``capped`` full method names share the
        ``max_inflight`` cap, the others the default lane."""
        self._admission.admit(capped, self._capped)
        self._server.add_generic_rpc_handlers((handler,))

    def add_health(self, services: Iterable[str]) -> health.HealthServicer:
        """gRPC health checking, SERVING for the server (``""``) and ``services``."""
        # Watch runs on the service threads: it only holds one to read its request.
        servicer = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(servicer, self._server)
        for name in ("", *services):
            servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        return servicer

    def enable_reflection(self, services: Iterable[str]) -> None:
        names = (*services, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, self._server)

    def bind(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a free port); returns the port."""
        bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
        bound: int = self._server.add_insecure_port(f"{bracketed}:{port}")
        if bound == 0:
            raise OSError(f"cannot bind gRPC to {host}:{port}")
        return bound

    def start(self) -> None:
        self.reaper.start()
        self._server.start()

    def stop(self, grace: float | None) -> threading.Event:
        """Stop as ``grpc.Server.stop`` does; the event is set once the server has
        stopped and the threads it owns are released."""
        stopped = self._server.stop(grace)
        released = threading.Event()

        def release() -> None:
            stopped.wait()
            self.reaper.stop()
            for pool in self._pools:
                pool.shutdown(wait=False, cancel_futures=True)
            released.set()

        threading.Thread(target=release, name="grpc-stop", daemon=True).start()
        return released

    def _pool(self, workers: int, name: str) -> ThreadPoolExecutor:
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._pools.append(pool)
        return pool
