"""The OpenAPI 3.1 description of the Auth Gateway's HTTP API, served at ``/openapi.json``.

The Auth Gateway takes the bodies the Ingest Gateway takes and hands them on as they
arrived, so its document is Ingest's with what authentication adds: the five
``x-logops-*`` signature headers, ``202`` (spooled for later delivery), ``401``, ``429``
and the ``RateLimit-*`` headers. Kept true by tests: every route of the Falcon app is
described here, and schemathesis drives the running server from this document.
"""

from __future__ import annotations

import copy
from typing import Any

from services.common.signing import (
    H_CONTENT_SHA256,
    H_KEY_ID,
    H_NONCE,
    H_SIGNATURE,
    H_TIMESTAMP,
)
from services.ingest.openapi import openapi_document as ingest_document

_SIGNATURE_HEADERS = (
    (H_KEY_ID, "The key's id.", r"^[!-~]{1,64}$"),
    (H_TIMESTAMP, "Unix seconds; at most 300 s from the gateway's clock.", r"^[0-9]{1,12}$"),
    (H_NONCE, "At least 16 random bytes, base64url without padding; used once.",
     r"^[A-Za-z0-9_-]{22,128}$"),
    (H_CONTENT_SHA256, "Lowercase hex SHA-256 of the exact body bytes sent.", r"^[0-9a-f]{64}$"),
    (H_SIGNATURE, "v1=<hex HMAC-SHA256 of the string to sign>, several comma-separated "
     "allowed (docs/signing.md).", r"^v1=[0-9a-f]{64}"),
)

_RATE_HEADERS = {
    "RateLimit-Limit": "Cells (records) of the limit closest to running out.",
    "RateLimit-Remaining": "Cells left in that limit now.",
    "RateLimit-Reset": "Whole seconds until that limit is back to its full burst.",
}
# draft-ietf-httpapi-ratelimit-headers-10, beside the older fields above.
_RATE_FIELDS = {
    "RateLimit-Policy": ('The same limit as a structured field: "<name>";q=<burst>;w=<seconds '
                         'to refill it>; name is records, requests or global.',
                         r'^"(records|requests|global)";q=[0-9]+;w=[0-9]+$'),
    "RateLimit": ('"<name>";r=<cells left>;t=<seconds until full>.',
                  r'^"(records|requests|global)";r=[0-9]+;t=[0-9]+$'),
}


def _rate_headers(retry_after: bool = False) -> dict[str, Any]:
    headers: dict[str, Any] = {
        name: {"description": text, "schema": {"type": "integer", "minimum": 0}}
        for name, text in _RATE_HEADERS.items()
    }
    for name, (text, pattern) in _RATE_FIELDS.items():
        headers[name] = {"description": text, "schema": {"type": "string", "pattern": pattern}}
    if retry_after:
        headers["Retry-After"] = {
            "description": "Seconds to wait before sending this batch again.",
            "schema": {"type": "integer", "minimum": 1},
        }
    return headers


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        out["headers"] = headers
    return out


def _signature_parameters() -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "header",
            "required": True,
            "description": text,
            "schema": {"type": "string", "pattern": pattern},
        }
        for name, text, pattern in _SIGNATURE_HEADERS
    ]


def _push_operation(base: dict[str, Any], signed: bool) -> dict[str, Any]:
    op = copy.deepcopy(base)
    op["summary"] = (
        "Authenticate a batch of log records and hand it to the Ingest Gateway "
        "(LOGOPS1-HMAC-SHA256; docs/signing.md)."
    )
    # Ingest may describe the same headers for its own use (optional there): ours replace them.
    ours = {name for name, _, _ in _SIGNATURE_HEADERS}
    others = [p for p in op["parameters"] if p["name"].lower() not in ours]
    op["parameters"] = (_signature_parameters() if signed else []) + others
    responses = op["responses"]
    responses["200"]["description"] = (
        "Stored by the Ingest Gateway (possibly in part; see rejections) or a duplicate. "
        "A logops.v1.PushResponse when the request's Accept names protobuf."
    )
    responses["200"]["headers"] = _rate_headers()
    responses["202"] = {
        "description": "The Ingest Gateway cannot take it now: kept in the durable spool "
        "(on disk before this answer) and delivered later; spooled is true.",
        "content": copy.deepcopy(responses["200"]["content"]),
        "headers": _rate_headers(),
    }
    responses["401"] = _error(
        "Not authenticated: missing_auth, unknown_key, clock_skew, bad_content_hash, "
        "bad_signature or replay (the error's reason says which)."
    )
    responses["413"] = _error("Body too large (too_large), or more records than the key's "
                              "burst or the batch limit (too_many_records).")
    responses["429"] = _error(
        "Over the key's rate limit; retry after Retry-After seconds.", _rate_headers(True)
    )
    responses["503"] = _error(
        "Overloaded, replay or rate state unreachable, or the Ingest Gateway is down and "
        "the spool is full; retry after Retry-After seconds."
    )
    op["responses"] = dict(sorted(responses.items()))
    return op


def openapi_document(mode: str = "hmac") -> dict[str, Any]:
    """The document for a gateway in ``mode``: in ``hmac`` the signature headers are
    required; in ``none`` they are not read at all, so they are not described."""
    doc = ingest_document()
    doc["info"] = {
        "title": "LogOps Auth Gateway",
        "version": "1",
        "description": "Checks signatures and rate limits, then forwards log batches to "
        "the Ingest Gateway, or spools them on disk while it is down.",
    }
    paths = doc["paths"]
    paths["/v1/logs"]["post"] = _push_operation(paths["/v1/logs"]["post"], mode == "hmac")
    paths["/readyz"]["get"]["summary"] = (
        "Readiness: the Ingest Gateway is reachable or the spool can take batches."
    )
    return doc
