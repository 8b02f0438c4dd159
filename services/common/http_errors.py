"""Falcon side of the error table and request ids: one middleware, one set of handlers.

Every error leaves an HTTP front as ``{"error": {"code", "reason", "message",
"request_id"}}`` with the status from ``services.common.errors.REASONS`` and, where
retrying helps, ``Retry-After``. Falcon's own errors (404, 405, ...) are rewritten into
the same shape; an unexpected exception becomes a 500 with a request id and no trace.
"""

from __future__ import annotations

import logging
from typing import Any

import falcon
import orjson

from services.common.errors import HTTP_STATUS_REASONS, Internal, LogOpsError
from services.common.logs import accept_request_id, front_var, request_id_var

log = logging.getLogger(__name__)


class RequestIdMiddleware:
    """Takes ``X-Request-ID`` (or makes one), exposes it to logs, and echoes it back."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        rid = accept_request_id(req.get_header("X-Request-ID"))
        req.context.request_id = rid
        request_id_var.set(rid)
        front_var.set("http")

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        rid = getattr(req.context, "request_id", "")
        if rid:
            resp.set_header("X-Request-ID", rid)


def write_error(req: falcon.Request, resp: falcon.Response, exc: LogOpsError) -> None:
    rid = getattr(req.context, "request_id", "")
    resp.status = exc.http_status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps(exc.to_dict(rid))
    if exc.retry_after_seconds is not None:
        resp.set_header("Retry-After", str(exc.retry_after_seconds))


def _on_logops_error(
    req: falcon.Request, resp: falcon.Response, exc: LogOpsError, params: dict[str, Any]
) -> None:
    write_error(req, resp, exc)


def _on_falcon_error(
    req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError, params: dict[str, Any]
) -> None:
    status = exc.status_code
    reason = HTTP_STATUS_REASONS.get(status, "bad_request" if status < 500 else "internal")
    message = exc.description or exc.title or "request refused"
    err = LogOpsError(message, reason=reason)
    write_error(req, resp, err)
    resp.status = status
    headers = exc.headers or {}
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    for name, value in pairs:
        resp.set_header(name, value)


def _on_unexpected(
    req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]
) -> None:
    log.exception("unhandled error", extra={"event": "internal_error"})
    write_error(req, resp, Internal("internal error; quote the request id when reporting it"))


def install_error_handlers(app: falcon.App[Any, Any]) -> None:
    """Register the handlers once on the base classes; Falcon picks them by MRO."""
    app.add_error_handler(Exception, _on_unexpected)
    app.add_error_handler(falcon.HTTPError, _on_falcon_error)
    app.add_error_handler(LogOpsError, _on_logops_error)
