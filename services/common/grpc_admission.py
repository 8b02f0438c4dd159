"""Admission of gRPC calls, decided before a call gets a thread, so a flood cannot take them all.

grpcio hands every call to a thread pool as soon as its headers arrive, and queues it
there when the pool is busy. :class:`AdmissionInterceptor` counts the calls in progress
per lane instead and decides on gRPC's polling thread, without waiting for anything: up
to the lane's cap a call runs on the lane's pool (for the capped methods, a fixed pool of
as many workers); over it the call is refused at once on a small pool of its own, without
reading its request message, in the contract's shape (UNAVAILABLE, ``ErrorInfo`` reason
``overloaded``, ``RetryInfo``), as the core refuses when it is full. Methods that are not
capped (health, reflection) share a default lane of their own, so they still answer while
the capped ones are saturated, and neither lane can fill the server.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc

from services.common.errors import LogOpsError, Unavailable
from services.common.grpc_errors import abort
from services.common.interceptors import HandlerInterceptor, behaviour_of, with_behaviour
from services.common.logs import request_id_var


class InflightGate:
    """A count of calls in progress with a cap; entering never waits."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._count = 0

    @property
    def in_flight(self) -> int:
        return self._count

    def try_enter(self) -> bool:
        with self._lock:
            if self._count >= self.limit:
                return False
            self._count += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._count -= 1


@dataclass(frozen=True)
class Lane:
    """Calls admitted under one cap, and the pool they run on (None: the pool the method
    itself names, else the server's)."""

    gate: InflightGate
    pool: ThreadPoolExecutor | None = None


class AdmissionInterceptor(HandlerInterceptor):
    """Admits each call through the gate of its method's lane, or refuses it on
    ``refusals``. Put it inside the interceptor that makes unary methods client-streaming,
    so neither an admitted call nor a refusal waits for the message before it runs."""

    def __init__(
        self,
        default: Lane,
        refusals: ThreadPoolExecutor,
        retry_after_sec: float,
        on_refused: Callable[[LogOpsError], None] | None = None,
    ) -> None:
        self._default = default
        self._on_refused = on_refused
        self._refusals = refusals
        self._retry_after = retry_after_sec
        self._lanes: dict[str, Lane] = {}

    def admit(self, methods: Iterable[str], lane: Lane) -> None:
        """Admit calls of these full method names (``/pkg.Service/Method``) through ``lane``
        rather than the default one."""
        self._lanes.update(dict.fromkeys(methods, lane))

    def wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        lane = self._lanes.get(details.method, self._default)
        if lane.gate.try_enter():
            admitted = _admitted(behaviour_of(handler), lane.gate)
            return with_behaviour(handler, admitted, lane.pool)
        return self._refusal(handler, lane.gate.limit)

    def _refusal(
        self, handler: grpc.RpcMethodHandler[Any, Any], limit: int
    ) -> grpc.RpcMethodHandler[Any, Any]:
        retry_after, on_refused = self._retry_after, self._on_refused

        def refuse(_requests: Any, context: grpc.ServicerContext, *_rest: Any) -> NoReturn:
            exc = Unavailable(
                f"more than {limit} requests in flight",
                reason="overloaded",
                retry_after=retry_after,
            )
            if on_refused is not None:
                on_refused(exc)
            abort(context, exc, request_id_var.get())

        make = (
            grpc.stream_stream_rpc_method_handler
            if handler.response_streaming
            else grpc.stream_unary_rpc_method_handler
        )
        refusal: grpc.RpcMethodHandler[Any, Any] = make(
            refuse,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        return with_behaviour(refusal, refuse, self._refusals)


def _admitted(behaviour: Callable[..., Any], gate: InflightGate) -> Callable[..., Any]:
    def run(*args: Any) -> Any:
        try:
            return behaviour(*args)
        finally:
            leave()

    # grpcio may still drop the handler without running it (its own concurrent-RPC
    # backstop, checked after the interceptors): the slot is then given back when the
    # behaviour is garbage. Called explicitly, the finalizer runs once.
    leave = weakref.finalize(run, gate.leave)
    return run
