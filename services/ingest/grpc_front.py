"""The Ingest Gateway's gRPC front: ``logops.v1.LogService/Push``, health and reflection.

Thin by design: decode the request into a ``Batch``, call the core, encode the result.
Size and concurrency caps are set on the server to match the core's limits, so an
oversized message is refused by gRPC before any of our code runs.
"""

from __future__ import annotations

from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from logops.v1 import logs_pb2

from services.common.config import IngestConfig
from services.common.errors import LogOpsError
from services.common.grpc_errors import abort, abort_unexpected
from services.common.interceptors import RequestIdInterceptor
from services.common.logs import request_id_var
from services.common.model import Batch
from services.common.pb_codec import batch_from_request_bytes, result_to_pb
from services.ingest.core import IngestCore

SERVICE_NAME = logs_pb2.DESCRIPTOR.services_by_name["LogService"].full_name
# Room for the protobuf framing around a body of max_body_bytes.
_FRAMING_SLACK = 64 * 1024


class LogServicePush:
    """``Push`` taking the request's raw bytes, so a malformed message is the caller's
    INVALID_ARGUMENT (gRPC's own deserializer would answer INTERNAL), and decoding
    happens after admission."""

    def __init__(self, core: IngestCore) -> None:
        self._core = core

    def __call__(self, body: bytes, context: grpc.ServicerContext) -> logs_pb2.PushResponse:
        rid = request_id_var.get()
        try:
            result = self._core.handle("grpc", rid, lambda: self._decode(body))
        except LogOpsError as exc:
            abort(context, exc, rid)
        except Exception:
            abort_unexpected(context, rid)
        return result_to_pb(result)


    def _decode(self, body: bytes) -> Batch:
        return self._core.wire_batch(body, request=True) or batch_from_request_bytes(body)


def log_service_handler(push: LogServicePush) -> grpc.GenericRpcHandler[Any, Any]:
    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "Push": grpc.unary_unary_rpc_method_handler(
                push,
                request_deserializer=None,
                response_serializer=logs_pb2.PushResponse.SerializeToString,
            )
        },
    )


def create_grpc_server(
    core: IngestCore, cfg: IngestConfig
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Build (not start) the gRPC server; returns it, the bound port and its health servicer."""
    limits = cfg.limits
    max_message = limits.max_body_bytes + _FRAMING_SLACK
    # Above the core's own cap, so the core answers UNAVAILABLE + RetryInfo first; gRPC's
    # RESOURCE_EXHAUSTED is only the backstop. Every admitted RPC gets a thread.
    max_rpcs = limits.max_inflight * 2 + 8
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_rpcs, thread_name_prefix="grpc-worker"),
        interceptors=[RequestIdInterceptor()],
        maximum_concurrent_rpcs=max_rpcs,
        options=[
            ("grpc.max_receive_message_length", max_message),
            ("grpc.max_send_message_length", max_message),
            ("grpc.so_reuseport", 0),
        ],
    )
    server.add_generic_rpc_handlers((log_service_handler(LogServicePush(core)),))
    health_servicer = health.HealthServicer(
        experimental_non_blocking=True,
        experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=2),
    )
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if cfg.grpc_reflection:
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
    port = server.add_insecure_port(f"{_host(cfg.grpc.host)}:{cfg.grpc.port}")
    if port == 0:
        raise OSError(f"cannot bind gRPC to {cfg.grpc.host}:{cfg.grpc.port}")
    return server, port, health_servicer


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
