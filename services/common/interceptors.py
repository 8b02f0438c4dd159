"""gRPC server interceptor that gives every unary call a request id on its worker thread.

The interceptor itself runs on gRPC's polling thread, so it only wraps the handler; the
wrapper sets the context variables where the behaviour actually runs, and sends the id
back in the trailing metadata (``x-request-id``), as the HTTP front sends its header.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from services.common.logs import accept_request_id, front_var, request_id_var


class RequestIdInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        incoming = {
            key: value
            for key, value in handler_call_details.invocation_metadata or ()
            if isinstance(value, str)
        }
        behaviour = handler.unary_unary

        def with_request_id(request: Any, context: grpc.ServicerContext) -> Any:
            rid = accept_request_id(incoming.get("x-request-id"))
            request_id_var.set(rid)
            front_var.set("grpc")
            context.set_trailing_metadata((("x-request-id", rid),))
            return behaviour(request, context)

        # The handler is a namedtuple: swap the behaviour, keep the (de)serializers.
        wrapped: grpc.RpcMethodHandler[Any, Any] = handler._replace(
            unary_unary=with_request_id
        )
        return wrapped
