"""What the Auth Gateway's fronts hand its core, and what they get back.

Plain data, no framework types: the fronts turn an HTTP request or a gRPC call into an
:class:`AuthRequest`, call ``AuthCore.handle`` and turn the :class:`AuthOutcome` (or the
``LogOpsError`` it raises) into a response. Rate-limit numbers travel with both, so the
fronts send ``RateLimit-*`` fields on every answer, refusals included: HTTP headers, gRPC
trailing metadata.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from services.common.model import Batch, PushResult

MEDIA_PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True, slots=True)
class RateInfo:
    """The limit that is closest to running out, for the ``RateLimit-*`` fields."""

    limit: int
    remaining: int
    reset_sec: float
    # The limit's name ("records", "requests", "global") and refill window in seconds.
    policy: str = ""
    window_sec: float = 0.0

    def fields(self) -> list[tuple[str, str]]:
        """The ``RateLimit-*`` fields: HTTP headers on one front, trailing metadata (names
        in lower case) on the other. ``RateLimit-Limit/-Remaining/-Reset`` as the common
        practice writes them, and the same numbers as draft-ietf-httpapi-ratelimit-headers-10's
        structured fields when the limit has a name."""
        remaining, reset = max(0, self.remaining), max(0, math.ceil(self.reset_sec))
        out = [
            ("RateLimit-Limit", str(self.limit)),
            ("RateLimit-Remaining", str(remaining)),
            ("RateLimit-Reset", str(reset)),
        ]
        if self.policy:
            window = max(1, math.ceil(self.window_sec))
            out.append(("RateLimit-Policy", f'"{self.policy}";q={self.limit};w={window}'))
            out.append(("RateLimit", f'"{self.policy}";r={remaining};t={reset}'))
        return out


@dataclass(frozen=True, slots=True)
class AuthRequest:
    front: str  # "grpc" or "http"
    request_id: str
    # Lowercased names: the x-logops-* signature headers (gRPC metadata alike) and, on
    # HTTP, the X-LogOps-* batch headers for bodies without an envelope.
    headers: Mapping[str, str]
    # Lowercased, without parameters: the HTTP Content-Type, or application/x-protobuf on
    # gRPC, where ``push_request`` says the body is a serialized PushRequest.
    media_type: str
    content_encoding: str
    # The exact bytes received (read within the body limit by the front): what was signed.
    body: bytes
    push_request: bool = False
    # Seconds the client gives the call (gRPC deadline), or None: the configured budget.
    timeout_sec: float | None = None


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    """A push accepted by Ingest (``result``), or spooled for later (``result.spooled``:
    HTTP 202, gRPC OK)."""

    result: PushResult
    rate: RateInfo | None = None


@dataclass(frozen=True, slots=True)
class Payload:
    """One authenticated push, as it arrived.

    ``push_request`` marks a serialized ``logops.v1.PushRequest`` (a gRPC front's
    request; build it with :meth:`from_push_request`). Anything else is an HTTP body:
    ``media_type`` its Content-Type (JSON, NDJSON, CSV, text, or a ``LogBatch`` as
    ``application/x-protobuf``), ``content_encoding`` ``gzip`` or empty, ``meta`` its
    ``X-LogOps-*`` headers (batch names for bodies without an envelope). ``decoded``
    decodes such a body, for a hop that cannot carry it as it is (gRPC): only then is the
    cost paid.
    """

    body: bytes
    media_type: str
    content_encoding: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)
    batch_id: str = ""
    records: int = 0
    push_request: bool = False
    decoded: Callable[[], Batch] | None = None

    def __post_init__(self) -> None:
        if self.push_request and (self.media_type != MEDIA_PROTOBUF or self.content_encoding):
            raise ValueError(f"a PushRequest payload is {MEDIA_PROTOBUF}, without encoding")

    @classmethod
    def from_push_request(cls, body: bytes, batch_id: str = "", records: int = 0) -> Payload:
        return cls(body, MEDIA_PROTOBUF, batch_id=batch_id, records=records, push_request=True)
