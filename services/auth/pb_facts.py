"""What the Auth Gateway reads of a PushRequest, by the protobuf runtime (upb, in C).

Six times faster than walking the records in Python (:func:`services.auth.inspect.
push_request_facts`, the dependency-free reference the core falls back on), and as
strict as Ingest will be: a request upb cannot parse is the client's ``bad_request``
here already.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError
from logops.v1 import logs_pb2

from services.auth.inspect import WireFacts
from services.common.errors import BadRequest


def push_request_facts(body: bytes) -> WireFacts:
    try:
        batch = logs_pb2.PushRequest.FromString(body).batch
    except DecodeError as exc:
        raise BadRequest(f"body is not a valid PushRequest: {exc}") from exc
    return WireFacts(batch.batch_id, batch.emitter, len(batch.records))
