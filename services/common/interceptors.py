"""gRPC server interceptor that gives each call with one response a request id on its thread.

The interceptor itself runs on gRPC's polling thread, so it only wraps the handler; the
wrapper sets the context variables where the behaviour actually runs, and sends the id
back in the trailing metadata (``x-request-id``), as the HTTP front sends its header.
:func:`with_behaviour` is how every interceptor here swaps a behaviour: it keeps the
(de)serializers and the thread pool grpcio is to run the behaviour on.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from services.common.logs import accept_request_id, front_var, request_id_var

Behaviour = Callable[..., Any]
_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def behaviour_of(handler: grpc.RpcMethodHandler[Any, Any]) -> Behaviour:
    """The one behaviour a method handler carries, whatever its arity."""
    for kind in _KINDS:
        fn = getattr(handler, kind)
        if fn is not None:
            return fn  # type: ignore[no-any-return]
    raise ValueError("method handler without a behaviour")


def with_behaviour(
    handler: grpc.RpcMethodHandler[Any, Any],
    behaviour: Behaviour,
    pool: ThreadPoolExecutor | None = None,
) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` running ``behaviour`` instead, on ``pool`` or on the pool the old one
    named. grpcio reads ``experimental_thread_pool`` and ``experimental_non_blocking``
    (a response-streaming behaviour that takes a send callback) from the behaviour it
    runs, so both are carried over."""
    old = behaviour_of(handler)
    pool = pool or getattr(old, "experimental_thread_pool", None)
    if pool is not None:
        behaviour.experimental_thread_pool = pool  # type: ignore[attr-defined]
    if getattr(old, "experimental_non_blocking", False):
        behaviour.experimental_non_blocking = True  # type: ignore[attr-defined]
    kind = next(k for k in _KINDS if getattr(handler, k) is old)
    # The handler is a namedtuple: swap the behaviour, keep the (de)serializers.
    replaced: grpc.RpcMethodHandler[Any, Any] = handler._replace(**{kind: behaviour})
    return replaced


class HandlerInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """An interceptor that only rewrites the handler a call gets. It runs on gRPC's
    polling thread: ``wrap`` builds handlers and never blocks."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        return None if handler is None else self.wrap(handler, handler_call_details)

    @abc.abstractmethod
    def wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """The handler the call gets instead of ``handler``."""


class RequestIdInterceptor(HandlerInterceptor):
    def wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        if handler.response_streaming:
            return handler
        incoming = {
            key: value
            for key, value in details.invocation_metadata or ()
            if isinstance(value, str)
        }
        behaviour = behaviour_of(handler)

        def with_request_id(request: Any, context: grpc.ServicerContext) -> Any:
            rid = accept_request_id(incoming.get("x-request-id"))
            request_id_var.set(rid)
            front_var.set("grpc")
            context.set_trailing_metadata((("x-request-id", rid),))
            return behaviour(request, context)

        return with_behaviour(handler, with_request_id)
