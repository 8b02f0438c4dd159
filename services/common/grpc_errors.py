"""gRPC side of the error table: rich status out on servers, the same exception back on clients.

A ``LogOpsError`` leaves a gRPC front as the status code of its reason, with
``google.rpc.ErrorInfo`` (reason, domain ``logops``, request id) and, where retrying
helps, ``google.rpc.RetryInfo`` carrying the same delay as HTTP ``Retry-After``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.common.errors import Internal, LogOpsError, error_from_reason

log = logging.getLogger(__name__)

DOMAIN = "logops"


def to_status(exc: LogOpsError, request_id: str) -> grpc.Status:
    details = [
        _packed(
            error_details_pb2.ErrorInfo(
                reason=exc.reason, domain=DOMAIN, metadata={"request_id": request_id}
            )
        )
    ]
    if exc.retry_after_seconds is not None:
        delay = duration_pb2.Duration(seconds=exc.retry_after_seconds)
        details.append(_packed(error_details_pb2.RetryInfo(retry_delay=delay)))
    status = status_pb2.Status(
        code=code_pb2.Code.Value(exc.code), message=exc.message, details=details
    )
    return rpc_status.to_status(status)


@dataclass(frozen=True, slots=True)
class _Status(grpc.Status):  # type: ignore[misc]  # grpc.Status is an untyped interface
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


def abort(
    context: grpc.ServicerContext,
    exc: LogOpsError,
    request_id: str,
    metadata: Sequence[tuple[str, str]] = (),
) -> NoReturn:
    """End the call with the error's status; ``metadata`` goes out beside the status
    details in the trailers (the rate-limit fields of a refusal)."""
    status = to_status(exc, request_id)
    if metadata:
        status = _Status(status.code, status.details, (*status.trailing_metadata, *metadata))
    context.abort_with_status(status)
    raise AssertionError("abort_with_status returned")  # pragma: no cover


def abort_unexpected(context: grpc.ServicerContext, request_id: str) -> NoReturn:
    log.exception("unhandled error", extra={"event": "internal_error"})
    abort(context, Internal("internal error; quote the request id when reporting it"), request_id)


def error_from_rpc(err: grpc.RpcError) -> LogOpsError:
    """Rebuild the server's exception from a failed call (client side)."""
    reason, retry_after = "", None
    status = rpc_status.from_call(err) if isinstance(err, grpc.Call) else None
    details: list[any_pb2.Any] = list(status.details) if status else []
    for detail in details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_after = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
    message = (err.details() if isinstance(err, grpc.Call) else None) or str(err)
    if not reason:
        reason = _FALLBACK_REASONS.get(code, "internal")
    return error_from_reason(reason, message, retry_after)


_FALLBACK_REASONS = {
    grpc.StatusCode.INVALID_ARGUMENT: "bad_request",
    grpc.StatusCode.UNAUTHENTICATED: "missing_auth",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "too_large",
    # Without our ErrorInfo, UNAVAILABLE comes from the transport: no server answered.
    grpc.StatusCode.UNAVAILABLE: "downstream_unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "downstream_unavailable",
    grpc.StatusCode.NOT_FOUND: "not_found",
}


def _packed(msg: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(msg)  # type: ignore[arg-type]
    return packed
