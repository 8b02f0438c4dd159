"""What both gateways' fronts share: the LogService gRPC server, the HTTP probe and
document routes, and the addresses a gateway bound. Each gateway brings only its Push
behaviour and its ``/v1/logs`` resource."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import falcon
import grpc
import orjson
from grpc_health.v1 import health
from logops.v1 import logs_pb2
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from services.common.config import ConnectionsConfig, LimitsConfig, ListenConfig
from services.common.errors import LogOpsError
from services.common.grpc_server import GrpcServer

SERVICE_NAME = logs_pb2.DESCRIPTOR.services_by_name["LogService"].full_name
PUSH_METHOD = f"/{SERVICE_NAME}/Push"


@dataclass(frozen=True)
class BoundAddresses:
    http_host: str
    http_port: int
    grpc_host: str
    grpc_port: int

    @property
    def http_url(self) -> str:
        return f"http://{self.http_host}:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"


def create_log_service_server(
    push: Callable[[bytes, grpc.ServicerContext], logs_pb2.PushResponse],
    limits: LimitsConfig,
    connections: ConnectionsConfig,
    listen: ListenConfig,
    reflection: bool,
    on_refused: Callable[[LogOpsError], None],
) -> tuple[GrpcServer, int, health.HealthServicer]:
    """Build (not start) the gRPC server for ``push``, which takes the request's raw bytes
    (decoded after admission; a malformed message is the caller's INVALID_ARGUMENT);
    returns it, the bound port and its health servicer."""
    handler = grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "Push": grpc.unary_unary_rpc_method_handler(
                push,
                request_deserializer=None,
                response_serializer=logs_pb2.PushResponse.SerializeToString,
            )
        },
    )
    server = GrpcServer(limits, connections, on_refused=on_refused)
    server.add_service(handler, capped=(PUSH_METHOD,))
    health_servicer = server.add_health((SERVICE_NAME,))
    if reflection:
        server.enable_reflection((SERVICE_NAME,))
    port = server.bind(listen.host, listen.port)
    return server, port, health_servicer


class HealthResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "ok"}


class ReadyResource:
    def __init__(self, check_ready: Callable[[], None]) -> None:
        self._check_ready = check_ready

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._check_ready()  # raises the same 503 a push would get
        resp.media = {"status": "ready"}


class MetricsResource:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self._registry)


class DocumentResource:
    """A JSON document encoded once (``/openapi.json``)."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self._body = orjson.dumps(document)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self._body


def add_probe_routes(
    app: falcon.App[Any, Any],
    check_ready: Callable[[], None],
    registry: CollectorRegistry,
    openapi: Mapping[str, Any],
) -> None:
    """``/healthz``, ``/readyz``, ``/metrics`` and ``/openapi.json``."""
    app.add_route("/healthz", HealthResource())
    app.add_route("/readyz", ReadyResource(check_ready))
    app.add_route("/metrics", MetricsResource(registry))
    app.add_route("/openapi.json", DocumentResource(openapi))
