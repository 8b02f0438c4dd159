"""How a push's bytes travel from the Auth Gateway to the Ingest Gateway: the payload, and
one transport per hop protocol.

:class:`Payload` is a push as it arrived; a transport sends it as it is (no re-encoding)
over gRPC (``/logops.v1.LogService/Push`` with the raw ``PushRequest``) or HTTP (``POST
/v1/logs`` with the body, its Content-Type/Encoding and ``X-LogOps-*`` headers, through a
small pool of keep-alive connections). A transport answers Ingest's result, raises its
refusal as the ``LogOpsError`` it stands for, or :class:`NoAnswer`. Retries, backoff and
the breaker are :mod:`services.auth.forwarder`'s.

An HTTP JSON body leaving over gRPC is re-encoded: by the C extension
(``_native.push_request_json``, shared with the Ingest Gateway) when it is built and takes
the body, without a Python object per record; else by :func:`_converted`, the reference.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Protocol

import grpc
import orjson
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from logops.v1 import logs_pb2

from clients.transports import PUSH_METHOD, http_error
from services.auth.model import MEDIA_PROTOBUF, Payload
from services.common.codecs import BATCH_META_KEYS, media_kind
from services.common.errors import BadRequest, Internal, LogOpsError, Unavailable
from services.common.grpc_errors import error_from_rpc
from services.common.grpc_server import embedded_length, varint_size
from services.common.model import Batch, PushResult, Rejection
from services.common.pb_codec import SEQ_MESSAGE, record_to_pb, result_from_dict, result_from_pb

_native: ModuleType | None
try:
    # The Ingest Gateway's C extension: one build for both gateways (see native.py).
    from services.ingest import _native  # type: ignore[attr-defined,no-redef]
except ImportError:  # not built: the pure-Python reference converts
    _native = None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A payload as one transport sends it: ``body`` sent and signed with ``media_type``."""

    body: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)
    # A body converted for the hop: the original index of each record sent, and the
    # records refused before sending; Ingest's answer is mapped back through them.
    kept: Sequence[int] | None = None
    refused: tuple[Rejection, ...] = ()


class ForwardTransport(Protocol):
    """How a push reaches Ingest: gRPC and HTTP here, a fake in tests.

    ``send`` returns Ingest's answer, raises its refusal as the ``LogOpsError`` it
    stands for, or :class:`NoAnswer`. A ``patient`` send (the breaker's trial) waits
    for a connection within ``timeout`` instead of failing at once.
    """

    def prepare(self, payload: Payload) -> Prepared: ...
    def send(
        self, prepared: Prepared, signed: Mapping[str, str], timeout: float, patient: bool
    ) -> PushResult: ...
    def close(self) -> None: ...


class NoAnswer(Unavailable):
    """No answer from Ingest (``outcome``: ``transport_error`` or ``timeout``): maybe
    stored, maybe not; a retry with the same batch_id settles it."""

    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message, reason="downstream_unavailable")
        self.outcome = outcome


def open_transport(target: str) -> ForwardTransport:
    url = urllib.parse.urlsplit(target)
    if url.scheme not in ("grpc", "http") or not url.hostname or url.port is None:
        raise ValueError(f"forward target must be grpc://HOST:PORT or http://HOST:PORT: {target!r}")
    if url.scheme == "grpc":
        return _GrpcHop(url.netloc)
    return _HttpHop(url.hostname, url.port)


# A channel that failed to connect waits before trying again (up to 120 s by default) and
# fails every call meanwhile; the breaker already paces trials, so keep that wait short.
_GRPC_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class _GrpcHop:
    def __init__(self, target: str, native: bool = True) -> None:
        """``native``: convert JSON bodies in C when the extension is built."""
        self._native = _native if native else None
        self._channel = grpc.insecure_channel(target, options=_GRPC_OPTIONS)
        # No request serializer: the PushRequest's bytes go out as they came in.
        self._push = self._channel.unary_unary(
            PUSH_METHOD,
            request_serializer=None,
            response_deserializer=logs_pb2.PushResponse.FromString,
        )

    def prepare(self, payload: Payload) -> Prepared:
        if payload.push_request:
            return Prepared(payload.body, MEDIA_PROTOBUF)
        if payload.decoded is None:
            raise ValueError(
                f"a {payload.media_type!r} body goes over gRPC only with its decoded batch"
            )
        fast = _native_converted(self._native, payload) if self._native is not None else None
        return fast if fast is not None else _converted(payload.decoded())

    def send(
        self, prepared: Prepared, signed: Mapping[str, str], timeout: float, patient: bool
    ) -> PushResult:
        metadata = tuple((key.lower(), value) for key, value in signed.items())
        try:
            # A channel in reconnect backoff fails calls at once, even when Ingest is back:
            # a trial waits for the reconnection instead.
            response = self._push(
                prepared.body, timeout=timeout, metadata=metadata, wait_for_ready=patient
            )
        except grpc.RpcError as err:
            raise _rpc_error(err) from err
        return _mapped_back(result_from_pb(response), prepared)

    def close(self) -> None:
        self._channel.close()


# Ingest's own words for the same record pushed to it directly.
_UNCARRIED = SEQ_MESSAGE


def _converted(batch: Batch) -> Prepared:
    """An HTTP body's batch as a PushRequest: the one re-encoding on the hot path, for a
    body that arrived over HTTP and leaves over gRPC. A record Ingest would refuse for its
    ``seq`` (not a whole number from 0 to 2**64-1) is refused here, by its original index,
    in Ingest's words; a null leaves its field unset, as Ingest reads a null."""
    records, kept = [], []
    refused = list(batch.rejections)
    for index, record in enumerate(batch.records):
        if record is None:
            continue
        # LogBatch has no format of its own: each record carries the batch's, as Ingest
        # gives it to every record of a JSON batch whose own is absent or false.
        if batch.default_format and not record.get("format"):
            record = {**record, "format": batch.default_format}
        try:
            records.append(record_to_pb(record))
        except ValueError as exc:  # as Ingest refuses the record pushed to it directly
            refused.append(Rejection(index, "invalid_record", str(exc)))
            continue
        kept.append(index)
    pb = logs_pb2.LogBatch(
        batch_id=batch.batch_id,
        emitter=batch.emitter,
        scenario_id=batch.scenario_id,
        run_id=batch.run_id,
        records=records,
    )
    body = logs_pb2.PushRequest(batch=pb).SerializeToString()
    return Prepared(body, MEDIA_PROTOBUF, kept=tuple(kept), refused=tuple(refused))


def _native_converted(native: ModuleType, payload: Payload) -> Prepared | None:
    """What :func:`_converted` makes of a JSON body, made in C from the body's bytes; None
    when the extension does not take the body (the reference then decides). A compressed
    body is left to the reference, which gets it inflated already."""
    if payload.content_encoding or media_kind(payload.media_type) != "json":
        return None
    scanned = native.scan_json(payload.body)
    if scanned is None:
        return None
    *own, default_format, count, start, end = scanned
    # As codecs.decode_body fills them: the body's names first, then the headers'.
    meta = payload.meta
    names = tuple(v or meta.get(k, "") for v, k in zip(own, BATCH_META_KEYS, strict=True))
    converted = native.push_request_json(
        payload.body, start, end, names, default_format or meta.get("format", "")
    )
    if converted is None:
        return None
    body, refused = converted
    if not refused:
        return Prepared(body, MEDIA_PROTOBUF, kept=range(count))
    gone = set(refused)
    return Prepared(
        body,
        MEDIA_PROTOBUF,
        kept=tuple(i for i in range(count) if i not in gone),
        refused=tuple(Rejection(i, "invalid_record", _UNCARRIED) for i in refused),
    )


def _mapped_back(result: PushResult, prepared: Prepared) -> PushResult:
    """Ingest's answer in the indices of the body the client sent."""
    if prepared.kept is None:
        return result
    rejections = [
        Rejection(prepared.kept[r.index], r.reason, r.message)
        for r in result.rejections
        if r.index < len(prepared.kept)
    ]
    rejections += prepared.refused
    rejections.sort(key=lambda r: r.index)
    return replace(result, rejected=result.rejected + len(prepared.refused), rejections=rejections)


def _rpc_error(err: grpc.RpcError) -> LogOpsError:
    """The server's error, or no answer: UNAVAILABLE/DEADLINE_EXCEEDED without ErrorInfo
    come from the transport, not from a LogOps server."""
    code = err.code() if isinstance(err, grpc.Call) else None
    if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return error_from_rpc(err)
    status = rpc_status.from_call(err)
    if status is not None and any(
        d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR) for d in status.details
    ):
        return error_from_rpc(err)
    outcome = "timeout" if code == grpc.StatusCode.DEADLINE_EXCEEDED else "transport_error"
    return NoAnswer(f"gRPC {code.name}: {err.details()}", outcome)


class _HttpHop:
    ACCEPT = f"{MEDIA_PROTOBUF}, application/json;q=0.5"

    def __init__(self, host: str, port: int) -> None:
        self._pool = _ConnectionPool(host, port)

    def prepare(self, payload: Payload) -> Prepared:
        headers = {key.lower(): value for key, value in payload.meta.items()}
        headers |= {"content-type": payload.media_type, "accept": self.ACCEPT}
        if payload.content_encoding:
            headers["content-encoding"] = payload.content_encoding
        body = log_batch_of(payload.body) if payload.push_request else payload.body
        return Prepared(body, payload.media_type, headers)

    def send(
        self, prepared: Prepared, signed: Mapping[str, str], timeout: float, patient: bool
    ) -> PushResult:
        headers = prepared.headers | {key.lower(): value for key, value in signed.items()}
        status, reply_headers, data = self._pool.post(prepared.body, headers, timeout)
        if not 200 <= status < 300:
            raise http_error(status, reply_headers, data)
        try:
            if reply_headers.get("content-type", "").startswith(MEDIA_PROTOBUF):
                return result_from_pb(logs_pb2.PushResponse.FromString(data))
            return result_from_dict(orjson.loads(data))
        except (DecodeError, ValueError, KeyError, TypeError) as exc:
            raise Internal(f"unreadable answer from the Ingest Gateway: {exc}") from exc

    def close(self) -> None:
        self._pool.close()


def log_batch_of(request: bytes) -> bytes:
    """The ``LogBatch`` inside a serialized ``PushRequest``, for ``POST /v1/logs``.

    A slice when the batch is the request's only field (as every encoder writes it);
    otherwise protobuf merges what is there.
    """
    size = embedded_length(request, 1)
    # Only one field-1 occurrence spanning the whole message has exactly this length.
    if request[:1] == b"\x0a" and len(request) == 1 + varint_size(size) + size:
        return request[len(request) - size :]
    try:
        batch: bytes = logs_pb2.PushRequest.FromString(request).batch.SerializeToString()
    except DecodeError as exc:
        raise BadRequest(f"body is not a valid logops.v1.PushRequest: {exc}") from exc
    return batch


# A connection the server closed while it sat idle fails like this on its next request.
_STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
_IO_ERRORS = (OSError, http.client.HTTPException)
_Reply = tuple[int, dict[str, str], bytes]


class _ConnectionPool:
    """Keep-alive connections to one server, each used by one thread at a time
    (``http.client`` connections are not thread-safe); up to ``max_idle`` are kept. The
    timeout bounds each socket operation (connect, send, each read), as http.client does."""

    def __init__(self, host: str, port: int, max_idle: int = 8) -> None:
        self._host, self._port, self._max_idle = host, port, max_idle
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    def post(self, body: bytes, headers: dict[str, str], timeout: float) -> _Reply:
        conn = self._take()
        if conn is not None:
            try:
                return self._exchange(conn, body, headers, timeout)
            except _STALE:
                pass  # closed by the server while idle (after 15 s): once more, on a new one
            except _IO_ERRORS as exc:
                raise _no_answer(exc) from exc
        try:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            return self._exchange(conn, body, headers, timeout)
        except _IO_ERRORS as exc:
            raise _no_answer(exc) from exc

    def _exchange(
        self, conn: http.client.HTTPConnection, body: bytes, headers: dict[str, str], timeout: float
    ) -> _Reply:
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        try:
            try:
                conn.request("POST", "/v1/logs", body=body, headers=headers)
            except OSError as exc:
                # A server may refuse a body as soon as it has the headers and close
                # while the body is still going out: its answer is waiting.
                if conn.sock is None or isinstance(exc, TimeoutError):
                    raise
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            conn.close()
            raise
        if resp.will_close:
            conn.close()
        else:
            self._give(conn)
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def _take(self) -> http.client.HTTPConnection | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed, idle, self._idle = True, self._idle, []
        for conn in idle:
            conn.close()


def _no_answer(exc: BaseException) -> NoAnswer:
    outcome = "timeout" if isinstance(exc, TimeoutError) else "transport_error"
    return NoAnswer(f"no answer from the Ingest Gateway: {exc!r}", outcome)
