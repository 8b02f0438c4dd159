"""The one error hierarchy of LogOps and the one table that maps it onto HTTP and gRPC.

Every refusal a gateway makes is a ``LogOpsError`` with a machine-readable ``reason``.
The reason decides the canonical ``code`` (a gRPC status name), the HTTP status and
whether a client should retry; both fronts and the client SDK read the same table, so
the same condition looks the same whichever transport carried it::

    LogOpsError
    ├── BadRequest                 400 / INVALID_ARGUMENT
    │   └── UnsupportedMediaType   415 / INVALID_ARGUMENT
    ├── Unauthenticated            401 / UNAUTHENTICATED
    ├── TooLarge                   413 / RESOURCE_EXHAUSTED
    ├── RateLimited                429 / RESOURCE_EXHAUSTED (+ Retry-After / RetryInfo)
    ├── Unavailable                503 / UNAVAILABLE        (+ Retry-After / RetryInfo)
    ├── NotFound                   404 / NOT_FOUND
    ├── RequestTimeout             408 / DEADLINE_EXCEEDED  (request head or body too slow)
    └── Internal                   500 / INTERNAL
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class Mapping:
    """How one reason travels: canonical code name, HTTP status, and retryability."""

    code: str
    http_status: int
    retryable: bool = False


# THE table. Reasons are a closed set: they label metrics and clients switch on them.
REASONS: dict[str, Mapping] = {
    "bad_request": Mapping("INVALID_ARGUMENT", 400),
    "unsupported_media_type": Mapping("INVALID_ARGUMENT", 415),
    "missing_auth": Mapping("UNAUTHENTICATED", 401),
    "unknown_key": Mapping("UNAUTHENTICATED", 401),
    "clock_skew": Mapping("UNAUTHENTICATED", 401),
    "bad_content_hash": Mapping("UNAUTHENTICATED", 401),
    "bad_signature": Mapping("UNAUTHENTICATED", 401),
    "replay": Mapping("UNAUTHENTICATED", 401),
    "too_large": Mapping("RESOURCE_EXHAUSTED", 413),
    "too_many_records": Mapping("RESOURCE_EXHAUSTED", 413),
    "headers_too_large": Mapping("RESOURCE_EXHAUSTED", 431),
    "request_timeout": Mapping("DEADLINE_EXCEEDED", 408),
    "rate_limited": Mapping("RESOURCE_EXHAUSTED", 429, retryable=True),
    "overloaded": Mapping("UNAVAILABLE", 503, retryable=True),
    "sink_unavailable": Mapping("UNAVAILABLE", 503, retryable=True),
    "downstream_unavailable": Mapping("UNAVAILABLE", 503, retryable=True),
    "not_found": Mapping("NOT_FOUND", 404),
    "method_not_allowed": Mapping("UNIMPLEMENTED", 405),
    "not_implemented": Mapping("UNIMPLEMENTED", 501),
    "internal": Mapping("INTERNAL", 500),
}

# HTTP statuses that Falcon or waitress may produce on their own, mapped to a reason.
HTTP_STATUS_REASONS: dict[int, str] = {
    400: "bad_request",
    401: "missing_auth",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    431: "headers_too_large",
    500: "internal",
    501: "not_implemented",
    503: "overloaded",
}


class LogOpsError(Exception):
    """Base of every error a gateway answers with; ``reason`` selects the mapping."""

    default_reason: ClassVar[str] = "internal"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        if self.reason not in REASONS:
            raise ValueError(f"unknown error reason {self.reason!r}")
        self.retry_after = retry_after

    @property
    def mapping(self) -> Mapping:
        return REASONS[self.reason]

    @property
    def code(self) -> str:
        return self.mapping.code

    @property
    def http_status(self) -> int:
        return self.mapping.http_status

    @property
    def retry_after_seconds(self) -> int | None:
        """Whole seconds to wait, rounded up, for Retry-After and RetryInfo alike."""
        if self.retry_after is None:
            return None
        return max(1, int(-(-self.retry_after // 1)))

    def to_dict(self, request_id: str | None = None) -> dict[str, object]:
        body: dict[str, object] = {
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
            "request_id": request_id or "",
        }
        if self.retry_after_seconds is not None:
            body["retry_after_seconds"] = self.retry_after_seconds
        return {"error": body}


class BadRequest(LogOpsError):
    default_reason = "bad_request"


class UnsupportedMediaType(BadRequest):
    default_reason = "unsupported_media_type"


class Unauthenticated(LogOpsError):
    default_reason = "missing_auth"


class TooLarge(LogOpsError):
    default_reason = "too_large"


class RateLimited(LogOpsError):
    default_reason = "rate_limited"


class Unavailable(LogOpsError):
    default_reason = "overloaded"


class NotFound(LogOpsError):
    default_reason = "not_found"


class RequestTimeout(LogOpsError):
    default_reason = "request_timeout"


class Internal(LogOpsError):
    default_reason = "internal"


_BY_CODE: dict[str, type[LogOpsError]] = {
    "INVALID_ARGUMENT": BadRequest,
    "UNAUTHENTICATED": Unauthenticated,
    "NOT_FOUND": NotFound,
    "DEADLINE_EXCEEDED": RequestTimeout,
    "UNAVAILABLE": Unavailable,
    "INTERNAL": Internal,
}


def error_from_reason(
    reason: str, message: str, retry_after: float | None = None
) -> LogOpsError:
    """Rebuild the exception a server raised from its explicit reason (client side)."""
    if reason not in REASONS:
        reason = "internal"
    mapping = REASONS[reason]
    cls: type[LogOpsError]
    if reason == "unsupported_media_type":
        cls = UnsupportedMediaType
    elif mapping.code == "RESOURCE_EXHAUSTED":
        cls = RateLimited if reason == "rate_limited" else TooLarge
    else:
        cls = _BY_CODE.get(mapping.code, Internal)
    return cls(message, reason=reason, retry_after=retry_after)
