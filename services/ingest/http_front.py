"""The Ingest Gateway's HTTP front: Falcon resources for ``/v1/logs`` and the probes.

Thin by design: tell the core how to read the body (check the declared size, read at
most the limit) and how to decode it (undo gzip within the limit, into a ``Batch``), with
the headers and media type a signature covers; the core decides the order. Responses
are the JSON form of ``PushResponse`` (or the protobuf itself when the client asks for it).
"""

from __future__ import annotations

from typing import Any

import falcon
import orjson
from prometheus_client import CollectorRegistry

from services.common.codecs import decode_body, decompress, media_kind
from services.common.errors import TooLarge
from services.common.fronts import add_probe_routes
from services.common.http_errors import RequestIdMiddleware, install_error_handlers
from services.common.model import Batch
from services.common.pb_codec import batch_from_bytes, result_to_pb
from services.common.signing import media_type_of
from services.ingest.core import IncomingPush, IngestCore
from services.ingest.openapi import openapi_document

MEDIA_PROTOBUF = "application/x-protobuf"
META_HEADERS = {
    "batch_id": "X-LogOps-Batch-Id",
    "emitter": "X-LogOps-Emitter",
    "scenario_id": "X-LogOps-Scenario-Id",
    "run_id": "X-LogOps-Run-Id",
    "format": "X-LogOps-Format",
}


class LogsResource:
    def __init__(self, core: IngestCore) -> None:
        self._core = core

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        rid = req.context.request_id
        incoming = IncomingPush(
            read=lambda: self._read(req),
            decode=lambda body: self._decode(req, body),
            headers=req.headers_lower,
            media_type=media_type_of(req.content_type or ""),
        )
        result = self._core.handle("http", rid, incoming)
        if MEDIA_PROTOBUF in (req.accept or ""):
            resp.content_type = MEDIA_PROTOBUF
            resp.data = result_to_pb(result).SerializeToString()
        else:
            resp.content_type = falcon.MEDIA_JSON
            resp.data = orjson.dumps(result.to_dict())

    def _read(self, req: falcon.Request) -> bytes:
        """The body as sent (still compressed), refused before reading when it cannot fit."""
        limit = self._core.limits.max_body_bytes
        self._core.check_body_size(req.content_length)
        media_kind(req.content_type)  # an unknown content type is refused before reading
        body: bytes = req.bounded_stream.read(limit + 1)
        if len(body) > limit:
            raise TooLarge(f"body exceeds the limit of {limit} bytes")
        return body

    def _decode(self, req: falcon.Request, body: bytes) -> Batch:
        kind = media_kind(req.content_type)
        limit = self._core.limits.max_body_bytes
        body = decompress(body, req.get_header("Content-Encoding"), limit)
        meta = {key: req.get_header(header) or "" for key, header in META_HEADERS.items()}
        return decode_body(kind, body, meta, protobuf=self._protobuf, json=self._core.json_batch)

    def _protobuf(self, body: bytes) -> Batch:
        return self._core.wire_batch(body, request=False) or batch_from_bytes(body)


def create_http_app(core: IngestCore, registry: CollectorRegistry) -> falcon.App[Any, Any]:
    app = falcon.App(middleware=[RequestIdMiddleware()])
    install_error_handlers(app)
    app.add_route("/v1/logs", LogsResource(core))
    add_probe_routes(app, core.check_ready, registry, openapi_document())
    return app
