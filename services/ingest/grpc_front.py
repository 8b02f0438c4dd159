"""The Ingest Gateway's gRPC front: ``logops.v1.LogService/Push``, health and reflection.

Thin by design: hand the core the raw request, its metadata and how to decode it into a
``Batch``, then encode the result.
Connection, message and admission limits live in :class:`GrpcServer`, shared with the
Auth Gateway; here Push is named as the method they cap.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health
from logops.v1 import logs_pb2

from services.common.config import IngestConfig
from services.common.errors import LogOpsError
from services.common.fronts import create_log_service_server
from services.common.grpc_errors import abort, abort_unexpected
from services.common.grpc_server import GrpcServer, embedded_length
from services.common.logs import request_id_var
from services.common.model import Batch
from services.common.pb_codec import batch_from_request_bytes, result_to_pb
from services.common.signing import GRPC_MEDIA_TYPE
from services.ingest.core import IncomingPush, IngestCore

_BATCH_FIELD = logs_pb2.PushRequest.DESCRIPTOR.fields_by_name["batch"].number


class LogServicePush:
    """``Push`` taking the request's raw bytes, so a malformed message is the caller's
    INVALID_ARGUMENT (gRPC's own deserializer would answer INTERNAL), decoding happens
    after admission, and a signature is checked over the bytes as they were sent."""

    def __init__(self, core: IngestCore) -> None:
        self._core = core

    def __call__(self, body: bytes, context: grpc.ServicerContext) -> logs_pb2.PushResponse:
        rid = request_id_var.get()
        incoming = IncomingPush(
            read=lambda: self._sized(body),
            decode=self._decode,
            headers=context.invocation_metadata(),
            media_type=GRPC_MEDIA_TYPE,
        )
        try:
            result = self._core.handle("grpc", rid, incoming)
        except LogOpsError as exc:
            abort(context, exc, rid)
        except Exception:
            abort_unexpected(context, rid)
        return result_to_pb(result)

    def _sized(self, body: bytes) -> bytes:
        # The batch is held to the limit HTTP holds its body to: too_large, with ErrorInfo.
        self._core.check_body_size(embedded_length(body, _BATCH_FIELD))
        return body

    def _decode(self, body: bytes) -> Batch:
        return self._core.wire_batch(body, request=True) or batch_from_request_bytes(body)


def create_grpc_server(
    core: IngestCore, cfg: IngestConfig
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
