"""What the Auth Gateway's fronts hand its core, and what they get back.

Plain data, no framework types: the fronts turn an HTTP request or a gRPC call into an
:class:`AuthRequest`, call ``AuthCore.handle`` and turn the :class:`AuthOutcome` (or the
``LogOpsError`` it raises) into a response. Rate-limit numbers travel with both, so the
HTTP front can send ``RateLimit-*`` headers on every answer, refusals included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.common.model import PushResult


@dataclass(frozen=True, slots=True)
class RateInfo:
    """The limit that is closest to running out, for ``RateLimit-*`` headers."""

    limit: int
    remaining: int
    reset_sec: float


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
