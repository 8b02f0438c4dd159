"""The Auth Gateway's gRPC front: ``logops.v1.LogService/Push``, health and reflection.

Thin by design: the request message's raw bytes (what the client signed: never
re-serialized) and the call's metadata go to the core, its result comes back as a
``PushResponse``. Connection, message and admission limits live in :class:`GrpcServer`,
shared with the Ingest Gateway; here Push is named as the method they cap.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from grpc_health.v1 import health
from logops.v1 import logs_pb2

from services.auth.core import AuthCore
from services.auth.model import AuthRequest, RateInfo
from services.common.config import AuthConfig
from services.common.errors import LogOpsError
from services.common.fronts import create_log_service_server
from services.common.grpc_errors import abort, abort_unexpected
from services.common.grpc_server import GrpcServer
from services.common.logs import request_id_var
from services.common.pb_codec import result_to_pb
from services.common.signing import GRPC_MEDIA_TYPE

# A deadline further away than this is no deadline (a year: no client means it).
NO_DEADLINE_SEC = 365 * 86400.0


def metadata_headers(metadata: Iterable[tuple[str, str | bytes]]) -> dict[str, str]:
    """Text metadata by lowercase name. A repeated name keeps every value, joined by
    commas as HTTP joins repeated headers, so both fronts see the same thing: several
    signatures are allowed, and any other signature header given twice is refused."""
    headers: dict[str, str] = {}
    for name, value in metadata:
        if not isinstance(value, str):
            continue  # binary (-bin) metadata: nothing the gateway reads
        lower = name.lower()
        headers[lower] = f"{headers[lower]}, {value}" if lower in headers else value
    return headers


def client_timeout(context: grpc.ServicerContext) -> float | None:
    """Seconds the client's deadline leaves, or None when it set none (grpc then reports
    the time to its "infinite future"): the core's own budget applies."""
    remaining = float(context.time_remaining())
    return remaining if remaining < NO_DEADLINE_SEC else None


class LogServicePush:
    """``Push`` taking the request's raw bytes: the signature covers them as sent, and a
    malformed message is the caller's INVALID_ARGUMENT, not gRPC's INTERNAL."""

    def __init__(self, core: AuthCore) -> None:
        self._core = core

    def __call__(self, body: bytes, context: grpc.ServicerContext) -> logs_pb2.PushResponse:
        rid = request_id_var.get()
        request = AuthRequest(
            front="grpc",
            request_id=rid,
            headers=metadata_headers(context.invocation_metadata() or ()),
            media_type=GRPC_MEDIA_TYPE,
            content_encoding="",
            body=body,
            push_request=True,
            timeout_sec=client_timeout(context),
        )
        try:
            outcome = self._core.handle(request)
        except LogOpsError as exc:
            abort(context, exc, rid, _rate_metadata(getattr(exc, "rate", None)))
        except Exception:
            abort_unexpected(context, rid)
        if outcome.rate is not None:
            context.set_trailing_metadata(_rate_metadata(outcome.rate))
        return result_to_pb(outcome.result)


def _rate_metadata(rate: RateInfo | None) -> tuple[tuple[str, str], ...]:
    """The HTTP front's ``RateLimit-*`` headers as trailing metadata (names in lower case,
    as gRPC requires)."""
    if rate is None:
        return ()
    return tuple((name.lower(), value) for name, value in rate.fields())


def create_grpc_server(
    core: AuthCore, cfg: AuthConfig
) -> tuple[GrpcServer, int, health.HealthServicer]:
    """Build (not start) the gRPC server; returns it, the bound port and its health servicer."""
    return create_log_service_server(
        LogServicePush(core),
        cfg.limits,
        cfg.connections,
        cfg.grpc,
        cfg.grpc_reflection,
        core.refusal_counter("grpc"),
    )
