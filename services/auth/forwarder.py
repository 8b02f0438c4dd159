"""The Auth Gateway's hop to the Ingest Gateway: signed, retried, behind a circuit breaker.

:meth:`Forwarder.forward` moves a push's bytes as they arrived (no re-encoding) over gRPC
(``/logops.v1.LogService/Push`` with the raw ``PushRequest``) or HTTP (``POST /v1/logs``
with the body, its Content-Type/Encoding and ``X-LogOps-*`` headers).

- Every attempt is signed afresh (a repeated nonce is refused as a replay) and carries
  the same bytes, so the same ``batch_id``: Ingest's idempotency makes retries safe, and
  a retried push that was in fact stored comes back ``duplicate``.
- Only retryable outcomes are retried: the table's retryable reasons, and no answer at
  all (refused or reset connections, timeouts, gRPC UNAVAILABLE/DEADLINE_EXCEEDED without
  our ErrorInfo). Any other refusal comes back at once as the same ``LogOpsError``.
- Between attempts: full-jitter exponential backoff, ``random(0, min(cap, base * 2**n))``
  (AWS, "Exponential Backoff And Jitter"), at least the server's Retry-After/RetryInfo,
  never past the caller's deadline: an attempt's timeout is ``min(attempt timeout, time
  left)``, and it stops when no time is left for another attempt.
- Breaker open or attempts spent: ``Unavailable`` (``downstream_unavailable``); the
  caller spools the batch.
"""

from __future__ import annotations

import http.client
import logging
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import grpc
import orjson
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from logops.v1 import logs_pb2

from clients.transports import http_error
from services.auth.breaker import ForwardBreaker, Permit
from services.common.errors import BadRequest, Internal, LogOpsError, Unavailable
from services.common.grpc_errors import error_from_rpc
from services.common.grpc_server import embedded_length, varint_size
from services.common.model import PushResult
from services.common.pb_codec import result_from_dict, result_from_pb

log = logging.getLogger(__name__)

PUSH_METHOD = "/logops.v1.LogService/Push"
MEDIA_PROTOBUF = "application/x-protobuf"
# Outcomes of one attempt: the label values of the forward-attempts metric.
OUTCOMES = ("ok", "duplicate", "client_error", "server_error", "retryable", "transport_error",
            "timeout", "breaker_open")

Signer = Callable[[bytes, str], Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class Payload:
    """One authenticated push, as it arrived.

    ``push_request`` marks a serialized ``logops.v1.PushRequest`` (a gRPC front's
    request; build it with :meth:`from_push_request`). Anything else is an HTTP body:
    ``media_type`` its Content-Type (JSON, NDJSON, CSV, text, or a ``LogBatch`` as
    ``application/x-protobuf``), ``content_encoding`` ``gzip`` or empty, ``meta`` its
    ``X-LogOps-*`` headers (batch names for bodies without an envelope).
    """

    body: bytes
    media_type: str
    content_encoding: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)
    batch_id: str = ""
    records: int = 0
    push_request: bool = False

    def __post_init__(self) -> None:
        if self.push_request and (self.media_type != MEDIA_PROTOBUF or self.content_encoding):
            raise ValueError(f"a PushRequest payload is {MEDIA_PROTOBUF}, without encoding")

    @classmethod
    def from_push_request(cls, body: bytes, batch_id: str = "", records: int = 0) -> Payload:
        return cls(body, MEDIA_PROTOBUF, batch_id=batch_id, records=records, push_request=True)


class ForwardObserver(Protocol):
    """Metrics of the hop; ``outcome`` is one of ``OUTCOMES``, ``state`` a breaker state."""

    def attempt(self, outcome: str, seconds: float) -> None: ...
    def breaker_state(self, state: str) -> None: ...


class _NoMetrics:
    def attempt(self, outcome: str, seconds: float) -> None: ...
    def breaker_state(self, state: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Prepared:
    """A payload as one transport sends it: ``body`` sent and signed with ``media_type``."""

    body: bytes
    media_type: str
    headers: dict[str, str] = field(default_factory=dict)


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


class Forwarder:
    """Forwards pushes to ``target`` (``grpc://HOST:PORT`` or ``http://HOST:PORT``).

    Thread-safe: one long-lived gRPC channel or a small pool of keep-alive HTTP
    connections serves every request thread. ``sign(body, media_type)`` returns the
    hop's ``x-logops-*`` headers (None: unsigned). ``sleep``, ``clock`` (monotonic, the
    base of ``deadline``) and ``rng`` (uniform in [0, 1)) are there for tests, as is
    ``transport`` (instead of opening ``target``).
    """

    def __init__(
        self,
        target: str,
        sign: Signer | None,
        attempt_timeout_sec: float,
        max_attempts: int,
        backoff_base_sec: float,
        backoff_max_sec: float,
        breaker: ForwardBreaker,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
        *,
        observer: ForwardObserver | None = None,
        min_attempt_sec: float = 0.05,
        transport: ForwardTransport | None = None,
    ) -> None:
        if min(max_attempts, attempt_timeout_sec, min_attempt_sec) <= 0 or not (
            0 <= backoff_base_sec <= backoff_max_sec
        ):
            raise ValueError("forwarder needs positive attempts and timeouts, 0 <= base <= max")
        self.target = target
        self._hop = transport or _open_transport(target)
        self._sign = sign
        self._attempt_timeout, self._max_attempts = attempt_timeout_sec, max_attempts
        self._backoff_base, self._backoff_max = backoff_base_sec, backoff_max_sec
        self._min_attempt, self._breaker = min_attempt_sec, breaker
        self._sleep, self._clock, self._rng = sleep, clock, rng
        self._observer = observer or _NoMetrics()
        breaker.watch(self._observer.breaker_state)

    def forward(self, payload: Payload, deadline: float) -> PushResult:
        """Deliver ``payload`` before ``deadline`` (absolute, on ``clock``).

        Raises the server's ``LogOpsError`` for a refusal that retrying cannot change,
        ``Unavailable`` (``downstream_unavailable``) when Ingest cannot take it now, and
        ``ValueError`` for a payload that is not a PushRequest on a gRPC target (the
        caller converts such bodies first: a LogBatch goes inside a PushRequest).
        """
        prepared = self._hop.prepare(payload)
        failure: LogOpsError | None = None
        for attempt in range(self._max_attempts):
            # No backoff when the breaker has opened meanwhile: the caller spools sooner.
            if attempt and (
                self._breaker.state == "open" or not self._back_off(attempt - 1, failure, deadline)
            ):
                break
            timeout = min(self._attempt_timeout, deadline - self._clock())
            if timeout < self._min_attempt:
                break
            permit = self._breaker.admit()
            if permit is None:
                self._observer.attempt("breaker_open", 0.0)
                raise Unavailable(
                    f"forwarding to {self.target} is paused: its circuit breaker is open",
                    reason="downstream_unavailable",
                    retry_after=self._breaker.retry_after(),
                ) from failure
            outcome = self._attempt(prepared, timeout, permit)
            if isinstance(outcome, PushResult):
                return outcome
            failure = outcome
        raise self._gave_up(failure) from failure

    def close(self) -> None:
        self._hop.close()

    def _attempt(
        self, prepared: Prepared, timeout: float, permit: Permit
    ) -> PushResult | LogOpsError:
        """One try; returns a retryable error, raises any other."""
        started = self._clock()
        try:
            signed = self._sign(prepared.body, prepared.media_type) if self._sign else {}
            result = self._hop.send(prepared, signed, timeout, permit.trial)
        except LogOpsError as exc:
            self._breaker.record(permit, exc)
            self._observer.attempt(_outcome_of(exc), self._clock() - started)
            if not exc.mapping.retryable:
                raise
            log.debug(
                "forward attempt failed: %s", exc.message,
                extra={"event": "forward_retry", "reason": exc.reason},
            )
            return exc
        except BaseException as exc:
            self._breaker.record(permit, exc)
            raise
        self._breaker.record(permit)
        self._observer.attempt("duplicate" if result.duplicate else "ok", self._clock() - started)
        return result

    def _back_off(self, retry: int, failure: LogOpsError | None, deadline: float) -> bool:
        """Sleep before retry number ``retry`` (0 first); False when the deadline forbids it."""
        ceiling = min(self._backoff_max, self._backoff_base * 2.0 ** min(retry, 60))
        floor = (failure.retry_after if failure else None) or 0.0
        room = deadline - self._clock() - self._min_attempt
        if room <= 0 or floor > room:
            return False
        # Jitter is cut short to leave time for the attempt; a server's wait is not.
        self._sleep(min(max(self._rng() * ceiling, floor), room))
        return True

    def _gave_up(self, failure: LogOpsError | None) -> Unavailable:
        why = failure.message if failure else "no time left before the caller's deadline"
        wait = (failure.retry_after if failure else None) or 0.0
        return Unavailable(
            f"the Ingest Gateway at {self.target} did not take the batch: {why}",
            reason="downstream_unavailable",
            retry_after=max(wait, self._backoff_max, self._breaker.retry_after()),
        )


def _outcome_of(exc: LogOpsError) -> str:
    if isinstance(exc, NoAnswer):
        return exc.outcome
    if exc.mapping.retryable:
        return "retryable"
    return "server_error" if exc.http_status >= 500 else "client_error"


def _open_transport(target: str) -> ForwardTransport:
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
    def __init__(self, target: str) -> None:
        self._channel = grpc.insecure_channel(target, options=_GRPC_OPTIONS)
        # No request serializer: the PushRequest's bytes go out as they came in.
        self._push = self._channel.unary_unary(
            PUSH_METHOD,
            request_serializer=None,
            response_deserializer=logs_pb2.PushResponse.FromString,
        )

    def prepare(self, payload: Payload) -> Prepared:
        if not payload.push_request:
            raise ValueError(
                f"only a serialized PushRequest goes over gRPC as is, not {payload.media_type!r}"
            )
        return Prepared(payload.body, MEDIA_PROTOBUF)

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
        return result_from_pb(response)

    def close(self) -> None:
        self._channel.close()


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
