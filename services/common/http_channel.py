"""waitress's request parser, channel and error task, hardened against hostile clients.

waitress counts only silence: a client that sends a header byte every few seconds keeps
its connection forever, and every queued request waits however long the queue is. Here,
as nginx (``client_header_timeout``, ``client_body_timeout``, ``keepalive_timeout``,
lingering close) and Envoy (``request_headers_timeout``) do:

- a request head must be complete ``header_timeout`` after its first byte (and a new
  connection must start one within it), a body ``body_timeout`` after its head; both
  answer 408 and close;
- a keep-alive connection with nothing in progress closes after ``idle_timeout``;
- ``Content-Length`` together with ``Transfer-Encoding`` (request smuggling, RFC 9112
  section 6.3) is a 400 that closes the connection, and a declared body over the limit
  is a 413 at once (no ``100 Continue``);
- every refusal waitress makes on its own has the JSON error body of
  :mod:`services.common.errors`, and the connection is closed gracefully: our side is
  shut down, then what the client still sends is read and dropped, within a bound, so
  that it reads the answer instead of a reset.

Deadlines are checked on waitress's loop thread by :class:`HardenedChannel.check`,
which the server calls once a second.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any

import orjson
from waitress import utilities as wu
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError
from waitress.task import ErrorTask

from services.common.errors import HTTP_STATUS_REASONS, LogOpsError
from services.common.logs import accept_request_id

# Lingering close: how long and how much a closing connection still reads and drops.
LINGER_SEC = 5.0
LINGER_SILENCE_SEC = 2.0


@dataclass(frozen=True)
class ChannelPolicy:
    """What one connection may hold; built from ``ConnectionsConfig`` and the limits."""

    body_limit: int
    header_timeout: float
    body_timeout: float
    idle_timeout: float
    retry_after: float
    linger_bytes: int


class Overloaded(wu.Error):  # type: ignore[misc]
    code = 503
    reason = "Service Unavailable"


class RequestTimeout(wu.Error):  # type: ignore[misc]
    code = 408
    reason = "Request Timeout"


class RequestParser(HTTPRequestParser):  # type: ignore[misc]
    """waitress's parser with an exact body limit and no ambiguous framing."""

    error: Any

    def __init__(self, adj: Any, body_limit: int) -> None:
        super().__init__(adj)
        self.body_limit = body_limit

    def parse_header(self, header_plus: bytes) -> None:
        super().parse_header(header_plus)
        # waitress pops Transfer-Encoding on HTTP/1.1 (self.chunked tells); on 1.0 it
        # stays and Content-Length would frame the body: both are ambiguous framing.
        if "TRANSFER_ENCODING" in self.headers or (
            self.chunked and "CONTENT_LENGTH" in self.headers
        ):
            raise ParsingError("Content-Length and Transfer-Encoding together are refused")

    def received(self, data: bytes) -> int:
        consumed: int = super().received(data)
        if self.error is None and self.headers_finished and self._over_limit():
            self.error = wu.RequestEntityTooLarge(
                f"body exceeds the limit of {self.body_limit} bytes"
            )
            self.completed = True
            self.expect_continue = False
        return consumed

    def _over_limit(self) -> bool:
        if self.chunked:
            return self.body_rcv is not None and len(self.body_rcv) > self.body_limit
        return bool(self.content_length > self.body_limit)


class JsonErrorTask(ErrorTask):  # type: ignore[misc]
    """waitress's own refusals in the contract's shape: the JSON error body, the status
    from the one table, ``Retry-After`` where retrying helps."""

    def execute(self) -> None:
        err = self.request.error
        reason = HTTP_STATUS_REASONS.get(err.code, "bad_request" if err.code < 500 else "internal")
        rid = accept_request_id(self.request.headers.get("X_REQUEST_ID"))
        exc = LogOpsError(str(err.body), reason=reason)
        if isinstance(err, Overloaded):
            exc.retry_after = self.channel.server.policy.retry_after
        body = orjson.dumps(exc.to_dict(rid))
        self.status = f"{err.code} {err.reason}"
        self.response_headers.extend(
            [("Content-Type", "application/json"), ("X-Request-ID", rid)]
        )
        if exc.retry_after_seconds is not None:
            self.response_headers.append(("Retry-After", str(exc.retry_after_seconds)))
        on_refused = self.channel.server.on_refused
        if on_refused is not None:
            on_refused(exc)
        if not isinstance(err, Overloaded):
            # A shed request was read whole: its connection can carry the next one.
            self.set_close_on_finish()
            self.channel.linger_on_close = True
        self.content_length = len(body)
        self.write(body)


class HardenedChannel(HTTPChannel):  # type: ignore[misc]
    """One client connection, with deadlines for its request head and body."""

    error_task_class = JsonErrorTask
    # waitress's own attributes, declared for the type checker.
    request: Any
    requests: list[Any]
    last_activity: float
    will_close: bool
    linger_on_close = False
    lingering_until = 0.0
    linger_left = 0
    _tracked: RequestParser | None = None
    _request_started = 0.0
    _head_done = 0.0
    _spoke = False
    _closed = False

    def parser_class(self, adj: Any) -> RequestParser:
        # waitress calls ``self.parser_class(self.adj)``; a method gives it our limit.
        return RequestParser(adj, self.server.policy.body_limit)

    def received(self, data: bytes) -> bool:
        now = time.time()
        result: bool = super().received(data)
        self._spoke = True
        request = self.request
        if request is not self._tracked:
            self._tracked, self._request_started, self._head_done = request, now, 0.0
        if request is not None and request.headers_finished and not self._head_done:
            self._head_done = now
        return result

    def send_continue(self) -> None:
        # waitress would send 100 Continue, and mark the request incomplete again,
        # even for a request it has already refused (declared body over the limit).
        if self.request is not None and self.request.error is not None:
            self.request.expect_continue = False
            return
        super().send_continue()

    def check(self, now: float) -> None:
        """Enforce the deadlines; called on the loop thread about once a second."""
        policy: ChannelPolicy = self.server.policy
        if self.lingering_until:
            if now >= self.lingering_until or now - self.last_activity > LINGER_SILENCE_SEC:
                self.close_now()
        elif self.requests or self.will_close or self.close_when_flushed:
            pass  # a task is running or the connection is already closing
        elif self.request is not None and not self.request.completed:
            self._check_request(now, policy)
        elif self.total_outbufs_len:
            # An answer the client does not read: no progress for a body's time closes.
            if now - self.last_activity > policy.body_timeout:
                self.close_now()
        else:
            limit = policy.idle_timeout if self._spoke else policy.header_timeout
            if now - self.last_activity > limit:
                self.will_close = True  # idle: waitress closes it on its next turn

    def _check_request(self, now: float, policy: ChannelPolicy) -> None:
        if not self.request.headers_finished:
            if now - self._request_started > policy.header_timeout:
                self._time_out(f"request head not complete within {policy.header_timeout:g} s")
        elif now - self._head_done > policy.body_timeout:
            self._time_out(f"request body not complete within {policy.body_timeout:g} s")

    def idle(self) -> bool:
        """Nothing in progress: the connection may be closed to make room."""
        return not (self.requests or self.request or self.total_outbufs_len or self.lingering_until)

    def _time_out(self, message: str) -> None:
        request = self.request
        with self.requests_lock:
            request.error = RequestTimeout(message)
            request.completed = True
            self.request = None
            self.requests.append(request)
        self.server.add_task(self)

    # Lingering close: shut our side down after the answer, then read and drop what the
    # client still sends (bounded in time and bytes), so it reads the answer.
    def handle_close(self) -> None:
        if self.linger_on_close and self.connected and not self.lingering_until:
            self.linger_on_close = False
            try:
                self.socket.shutdown(socket.SHUT_WR)
            except OSError:
                self.close_now()
                return
            self.will_close = self.close_when_flushed = False
            self.lingering_until = time.time() + LINGER_SEC
            self.last_activity = time.time()
            self.linger_left = self.server.policy.linger_bytes
            return
        self.close_now()

    def close_now(self) -> None:
        if not self._closed:
            self._closed = True
            super().handle_close()

    def readable(self) -> bool:
        return True if self.lingering_until else bool(super().readable())

    def writable(self) -> bool:
        return False if self.lingering_until else bool(super().writable())

    def handle_read(self) -> None:
        if not self.lingering_until:
            super().handle_read()
            return
        try:
            data = self.socket.recv(65536)
        except OSError:
            data = b""
        self.linger_left -= len(data)
        self.last_activity = time.time()
        if not data or self.linger_left <= 0:
            self.close_now()

    def sheddable(self) -> bool:
        """The next request is a push that may be refused unread by the app (503)."""
        request = self.requests[0] if self.requests else None
        return request is not None and request.error is None and request.command == "POST"

    def shed(self) -> None:
        """Answer the next request 503 ``overloaded`` without queueing it."""
        self.requests[0].error = Overloaded("too many requests in flight; retry later")
        # service() takes requests_lock, which the caller may hold: run it on the loop.
        self.server.trigger.pull_trigger(self._serve_shed)

    def _serve_shed(self) -> None:
        if self.connected and self.requests:
            self.service()
