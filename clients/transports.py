"""Client transports for pushing batches to a LogOps gateway: ``send(batch) -> PushResult``.

One encoder per payload kind (``encode_json``, ``encode_ndjson``, ``encode_csv``,
``encode_text``, protobuf via ``pb_codec``), shared by the transports; the transports only
move bytes. Bodies without an envelope of their own (NDJSON, CSV, text) carry the batch's
names in ``X-LogOps-*`` headers (:func:`meta_headers`). :meth:`prepare` encodes a batch once into a
:class:`Prepared` (body, media type, headers); :meth:`send_prepared` is one attempt that
signs those exact bytes afresh (a given ``signer``) and sends them, so a retry
(:class:`clients.retry.RetryingTransport`) re-signs but never re-encodes. A refusal comes
back as the same ``LogOpsError`` subclass whichever transport carried it.
"""

from __future__ import annotations

import csv
import email.utils
import gzip
import http.client
import io
import math
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import grpc
import orjson
from logops.v1 import logs_pb2

from clients.signed import Signer, as_signer
from services.common.errors import (
    HTTP_STATUS_REASONS,
    LogOpsError,
    Unavailable,
    error_from_reason,
)
from services.common.grpc_errors import error_from_rpc
from services.common.keys import ApiKey
from services.common.model import Batch, PushResult
from services.common.pb_codec import batch_to_pb, result_from_dict, result_from_pb
from services.common.signing import GRPC_MEDIA_TYPE, media_type_of

MEDIA_JSON = "application/json"
MEDIA_PROTOBUF = "application/x-protobuf"
MEDIA_NDJSON = "application/x-ndjson"
MEDIA_CSV = "text/csv"
MEDIA_TEXT = "text/plain"
# The HTTP body kinds a client can send (PRODUCT.md section 3), by name.
HTTP_BODIES: Mapping[str, str] = {
    "json": MEDIA_JSON,
    "ndjson": MEDIA_NDJSON,
    "csv": MEDIA_CSV,
    "text": MEDIA_TEXT,
    "protobuf": MEDIA_PROTOBUF,
}
# Batch names sent as headers with a body that has no envelope (Ingest and Auth read them).
META_HEADERS = {
    "batch_id": "X-LogOps-Batch-Id",
    "emitter": "X-LogOps-Emitter",
    "scenario_id": "X-LogOps-Scenario-Id",
    "run_id": "X-LogOps-Run-Id",
}

# The generated stub's serializer takes a PushRequest object, so the raw (already signed)
# bytes cannot go through it without being parsed and serialized again; the call is made
# on the channel instead, with the method's name taken from the generated descriptor.
_PUSH = logs_pb2.DESCRIPTOR.services_by_name["LogService"].methods_by_name["Push"]
PUSH_METHOD = f"/{_PUSH.containing_service.full_name}/{_PUSH.name}"

# A channel that failed to connect waits before trying again (up to 120 s by default) and
# fails every call meanwhile; retries have their own backoff, so keep that wait short.
_GRPC_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class Transport(Protocol):
    def send(self, batch: Batch) -> PushResult: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch encoded once: the ``body`` every attempt sends and signs with ``media_type``,
    and the request headers that describe it (HTTP only)."""

    body: bytes
    media_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class PreparingTransport(Transport, Protocol):
    """A transport that encodes once and sends the same bytes on every attempt.

    ``timeout`` bounds one attempt (below the transport's own timeout), so a caller
    with a deadline can keep an attempt within it.
    """

    def prepare(self, batch: Batch) -> Prepared: ...
    def send_prepared(self, prepared: Prepared, timeout: float | None = None) -> PushResult: ...


def encode_json(batch: Batch) -> bytes:
    """The JSON batch object of ``POST /v1/logs``."""
    doc: dict[str, Any] = {
        "batch_id": batch.batch_id,
        "emitter": batch.emitter,
        "scenario_id": batch.scenario_id,
        "run_id": batch.run_id,
        "records": [r for r in batch.records if r is not None],
    }
    if batch.default_format:
        doc["format"] = batch.default_format
    return orjson.dumps(doc)


def encode_ndjson(batch: Batch) -> bytes:
    """One JSON record per line (``application/x-ndjson``); names go in headers."""
    dump, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    return b"".join([dump(r, option=newline) for r in batch.records if r is not None])


def encode_csv(batch: Batch) -> bytes:
    """A CSV document (RFC 4180): a header naming every key the records use, in the order
    first seen, then one row per record. Text goes as it is, other values as JSON text,
    an absent key as an empty field (which the gateway reads as absent)."""
    records = [r for r in batch.records if r is not None]
    columns = list(dict.fromkeys(key for rec in records for key in rec))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_csv_value(rec.get(key)) for key in columns] for rec in records])
    return out.getvalue().encode("utf-8")


def _csv_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value, default=str).decode()


def encode_text(batch: Batch) -> bytes:
    """One raw line per record (``text/plain``), the format named by ``X-LogOps-Format``.

    Only the line travels: a record's other fields (``stream``, ``seq``) reach the gateway
    only if the line itself carries them."""
    lines: list[str] = []
    for rec in batch.records:
        if rec is None:
            continue
        raw = rec.get("raw")
        if not isinstance(raw, str) or "\n" in raw:
            raise ValueError("a text body carries records with a one-line 'raw' only")
        lines.append(raw)
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def batch_format(batch: Batch) -> str:
    """The format to name in ``X-LogOps-Format``: the batch's, else its first record's."""
    if batch.default_format:
        return batch.default_format
    for rec in batch.records:
        if rec is not None and isinstance(rec.get("format"), str):
            return str(rec["format"])
    return ""


def meta_headers(batch: Batch) -> dict[str, str]:
    """The ``X-LogOps-*`` headers that name a batch sent without an envelope."""
    headers = {h: getattr(batch, name) for name, h in META_HEADERS.items() if getattr(batch, name)}
    fmt = batch_format(batch)
    if fmt:
        headers["X-LogOps-Format"] = fmt
    return headers


_BODY_ENCODERS: Mapping[str, Callable[[Batch], bytes]] = {
    MEDIA_JSON: encode_json,
    MEDIA_NDJSON: encode_ndjson,
    MEDIA_CSV: encode_csv,
    MEDIA_TEXT: encode_text,
    MEDIA_PROTOBUF: lambda batch: batch_to_pb(batch).SerializeToString(),
}


def encode_push_request(batch: Batch) -> bytes:
    """The serialized ``PushRequest`` of ``LogService/Push``."""
    body: bytes = logs_pb2.PushRequest(batch=batch_to_pb(batch)).SerializeToString()
    return body


def _timeout(own: float, limit: float | None) -> float:
    # Never zero: a socket timeout of 0 would make the HTTP connection non-blocking.
    return own if limit is None else max(0.001, min(own, limit))


class GrpcTransport:
    """Pushes over gRPC; with a ``signer``, each call carries the five ``x-logops-*``
    metadata entries signed over the serialized ``PushRequest`` it sends."""

    def __init__(
        self,
        target: str,
        timeout: float = 10.0,
        metadata: Sequence[tuple[str, str]] = (),
        max_message_bytes: int = 8 * 1024 * 1024,
        *,
        signer: Signer | ApiKey | None = None,
    ) -> None:
        self._channel = grpc.insecure_channel(
            target,
            options=[
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes),
                *_GRPC_RECONNECT,
            ],
        )
        # No request serializer: the bytes signed are the bytes sent.
        self._push = self._channel.unary_unary(
            PUSH_METHOD,
            request_serializer=None,
            response_deserializer=logs_pb2.PushResponse.FromString,
        )
        self._timeout = timeout
        self._metadata = tuple(metadata)
        self._signer = as_signer(signer)

    def send(self, batch: Batch) -> PushResult:
        return self.send_prepared(self.prepare(batch))

    def send_pb(self, request: logs_pb2.PushRequest) -> PushResult:
        return self.send_prepared(Prepared(request.SerializeToString(), GRPC_MEDIA_TYPE))

    def prepare(self, batch: Batch) -> Prepared:
        return Prepared(encode_push_request(batch), GRPC_MEDIA_TYPE)

    def send_prepared(self, prepared: Prepared, timeout: float | None = None) -> PushResult:
        metadata = self._metadata
        if self._signer is not None:
            signed = self._signer.sign(prepared.body, GRPC_MEDIA_TYPE)
            metadata += tuple(signed.items())
        try:
            response = self._push(
                prepared.body, timeout=_timeout(self._timeout, timeout), metadata=metadata
            )
        except grpc.RpcError as err:
            raise error_from_rpc(err) from err
        return result_from_pb(response)

    def close(self) -> None:
        self._channel.close()


_Reply = tuple[int, dict[str, str], bytes]
# How a connection the server closed fails on the next request (RemoteDisconnected is a
# ConnectionResetError). A timeout is not among them: the server may be working on it.
_CLOSED = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class HttpTransport:
    """Keeps one connection open (one thread at a time); ``content_type`` is one of
    :data:`HTTP_BODIES` (JSON, NDJSON, CSV, text or protobuf). ``compress`` sends the body
    gzipped (``Content-Encoding: gzip``), and a ``signer`` signs the body as sent, that is
    the compressed bytes, with the request's media type."""

    def __init__(
        self,
        base_url: str,
        content_type: str = MEDIA_JSON,
        timeout: float = 10.0,
        *,
        signer: Signer | ApiKey | None = None,
        compress: bool = False,
        path: str = "/v1/logs",
    ) -> None:
        if media_type_of(content_type) not in _BODY_ENCODERS:
            raise ValueError(f"content_type must be one of {', '.join(_BODY_ENCODERS)}")
        url = urllib.parse.urlsplit(base_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 80
        self._timeout = timeout
        self._content_type = content_type
        self._signer = as_signer(signer)
        self._compress = compress
        self._path = path
        self._conn: http.client.HTTPConnection | None = None

    def send(self, batch: Batch) -> PushResult:
        return self.send_prepared(self.prepare(batch))

    def prepare(self, batch: Batch) -> Prepared:
        media_type = media_type_of(self._content_type)
        body = _BODY_ENCODERS[media_type](batch)
        headers = {"Content-Type": self._content_type}
        if media_type not in (MEDIA_JSON, MEDIA_PROTOBUF):
            headers.update(meta_headers(batch))
        if self._compress:
            body = gzip.compress(body, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
        return Prepared(body, media_type, headers)

    def send_prepared(self, prepared: Prepared, timeout: float | None = None) -> PushResult:
        signer = self._signer

        def headers() -> Mapping[str, str]:
            if signer is None:
                return prepared.headers
            return {**prepared.headers, **signer.sign(prepared.body, prepared.media_type)}

        return self.result(*self._exchange(prepared.body, headers, self._path, timeout))

    def post(self, body: bytes, headers: dict[str, str], path: str = "/v1/logs") -> _Reply:
        """POST raw bytes (unsigned: ``headers`` as given); sent again once on a fresh
        connection if the connection was closed under it."""
        return self._exchange(body, lambda: headers, path, None)

    def _exchange(
        self,
        body: bytes,
        headers: Callable[[], Mapping[str, str]],
        path: str,
        timeout: float | None,
    ) -> _Reply:
        """One request, sent again at once on a fresh connection once if the connection
        was closed under it (a kept-alive one the server had dropped, or one accepted at
        the server's connection cap and closed to make room); ``headers`` is asked for
        each sending, so no signature is reused.

        Any other failure (refused, timed out, a second reset) is no answer: maybe stored,
        maybe not. It is not resent here; a retry with the same batch_id, after a
        backoff, settles it.
        """
        for sending in (1, 2):
            conn = self._connection(_timeout(self._timeout, timeout))
            sent = dict(headers())
            try:
                return _round_trip(conn, path, body, sent)
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if sending == 2 or not isinstance(exc, _CLOSED):
                    raise Unavailable(
                        f"no answer from {self._host}:{self._port}: {exc}",
                        reason="downstream_unavailable",
                    ) from exc
        raise AssertionError("unreachable")

    @staticmethod
    def result(status: int, headers: dict[str, str], data: bytes) -> PushResult:
        # 202: an Auth Gateway took the batch into its spool (the body says ``spooled``).
        if 200 <= status < 300:
            return result_from_dict(orjson.loads(data))
        raise http_error(status, headers, data)

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        self._conn.timeout = timeout
        if self._conn.sock is not None:
            self._conn.sock.settimeout(timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _round_trip(
    conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> _Reply:
    try:
        conn.request("POST", path, body=body, headers=headers)
    except OSError:
        # A server may refuse an oversized body as soon as it has the headers and close
        # while the body is still going out: its answer is waiting (it drains first).
        if conn.sock is None:
            raise
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def http_error(status: int, headers: dict[str, str], data: bytes) -> LogOpsError:
    """Rebuild the server's exception from an error response."""
    try:
        err = orjson.loads(data)["error"]
        reason, message = str(err["reason"]), str(err["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        # Not our error body (a proxy, or the HTTP server refusing before the app ran).
        fallback = "internal" if status >= 500 and status != 503 else "bad_request"
        reason = HTTP_STATUS_REASONS.get(status, fallback)
        message = f"HTTP {status}: {data[:200].decode(errors='replace')}"
    return error_from_reason(reason, message, retry_after(headers.get("retry-after")))


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date
    (RFC 9110 section 10.2.3); None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
