"""The Auth Gateway's HTTP front: Falcon resources for ``/v1/logs`` and the probes.

Thin by design: read the body as it arrived (the hardened server has already refused a
body over the limit), name its media type, hand the exact bytes and the headers to the
core, and encode what comes back: 200, or 202 when the batch went to the spool, with
the ``RateLimit-*`` headers of the key's limit on answers and on 429s alike.
"""

from __future__ import annotations

from typing import Any

import falcon
import orjson
from prometheus_client import CollectorRegistry

from services.auth.core import AuthCore
from services.auth.model import AuthRequest, RateInfo
from services.auth.openapi import openapi_document
from services.common.codecs import media_kind
from services.common.errors import LogOpsError, RateLimited
from services.common.fronts import add_probe_routes
from services.common.http_errors import RequestIdMiddleware, install_error_handlers, write_error
from services.common.pb_codec import result_to_pb
from services.common.signing import media_type_of

MEDIA_PROTOBUF = "application/x-protobuf"


def set_rate_headers(resp: falcon.Response, rate: RateInfo | None) -> None:
    if rate is None:
        return
    for name, value in rate.fields():
        resp.set_header(name, value)


class LogsResource:
    def __init__(self, core: AuthCore) -> None:
        self._core = core
        self._refused = core.refusal_counter("http")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        outcome = self._core.handle(self._request(req))
        resp.status = falcon.HTTP_202 if outcome.result.spooled else falcon.HTTP_200
        set_rate_headers(resp, outcome.rate)
        if MEDIA_PROTOBUF in (req.accept or ""):
            resp.content_type = MEDIA_PROTOBUF
            resp.data = result_to_pb(outcome.result).SerializeToString()
        else:
            resp.content_type = falcon.MEDIA_JSON
            resp.data = orjson.dumps(outcome.result.to_dict())

    def _request(self, req: falcon.Request) -> AuthRequest:
        """The push as the core takes it; a refusal made here is counted as the core's."""
        try:
            media_kind(req.content_type)
        except LogOpsError as exc:
            self._refused(exc)
            raise
        # One byte past the limit is enough for the core to refuse the body as too_large,
        # once the signature headers have been checked (cheapest first).
        body = req.bounded_stream.read(self._core.limits.max_body_bytes + 1)
        return AuthRequest(
            front="http",
            request_id=req.context.request_id,
            headers=req.headers_lower,
            media_type=media_type_of(req.content_type or ""),
            content_encoding=(req.get_header("Content-Encoding") or "").strip().lower(),
            body=body,
            push_request=False,
        )


def _on_rate_limited(
    req: falcon.Request, resp: falcon.Response, exc: RateLimited, params: dict[str, Any]
) -> None:
    write_error(req, resp, exc)
    set_rate_headers(resp, getattr(exc, "rate", None))


def create_http_app(
    core: AuthCore, registry: CollectorRegistry, mode: str = "hmac"
) -> falcon.App[Any, Any]:
    app = falcon.App(middleware=[RequestIdMiddleware()])
    install_error_handlers(app)
    # Falcon picks the most specific handler: a 429 is the shared error plus its limit.
    app.add_error_handler(RateLimited, _on_rate_limited)
    app.add_route("/v1/logs", LogsResource(core))
    add_probe_routes(app, core.check_ready, registry, openapi_document(mode))
    return app
