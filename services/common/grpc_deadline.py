"""A deadline for a gRPC call's request message, so a stream that never sends one frees its thread.

grpcio's sync server gives a call to a worker thread as soon as its headers arrive, and
the worker then waits for the request message with no timeout: a client that opens
streams and sends nothing holds a thread each for as long as it likes. Here every method
with one request message is served as client-streaming instead (the bytes on the wire
are the same: a unary client sends one message and half-closes, and reflection still
describes the method from its proto), so the worker reads the message from the request
iterator, and every read from a request iterator is watched by :class:`MessageReaper`,
one thread over a heap of deadlines: a call whose message is not in ``timeout`` seconds
after the worker started waiting is cancelled, which wakes the worker at once. The
client sees the stream reset (CANCELLED).

What a unary client sees otherwise does not change: its message is handled as before,
a second message is ignored as grpcio ignores it, and half-closing without a message is
answered as grpcio answers it (UNIMPLEMENTED, "requires exactly one request message").
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import grpc

from services.common.interceptors import HandlerInterceptor, behaviour_of, with_behaviour

log = logging.getLogger(__name__)

# Released watches stay in the heap until they reach its top; past this many beyond
# twice the live ones, the heap is rebuilt without them so its memory stays bounded.
_COMPACT_SLACK = 1024
_MISSING = object()


class Cancellable(Protocol):
    def cancel(self) -> None: ...
    def peer(self) -> str: ...


class Watch:
    """One call waiting for its request message."""

    __slots__ = ("context", "deadline", "expired")

    def __init__(self, deadline: float, context: Cancellable) -> None:
        self.deadline = deadline
        self.context: Cancellable | None = context
        self.expired = False

    def __lt__(self, other: Watch) -> bool:
        return self.deadline < other.deadline


class MessageReaper:
    """Cancels calls whose request message has not arrived ``timeout`` seconds after they
    started waiting for it. ``watch`` and ``release`` never block for long: the heap's
    lock is only held to push or pop."""

    def __init__(
        self,
        timeout: float,
        name: str = "grpc-reaper",
        clock: Callable[[], float] = time.monotonic,
        on_expired: Callable[[], None] | None = None,
    ) -> None:
        self.timeout = timeout
        self.expired = 0
        self._on_expired = on_expired
        self._name = name
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list[Watch] = []
        self._live = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._stopping = False
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify()
        if thread is not None:
            thread.join(timeout)

    @property
    def watching(self) -> int:
        """Calls waiting for their message now."""
        return self._live

    def watch(self, context: Cancellable) -> Watch:
        watch = Watch(self._clock() + self.timeout, context)
        with self._cond:
            heapq.heappush(self._heap, watch)
            self._live += 1
            if len(self._heap) > 2 * self._live + _COMPACT_SLACK:
                self._heap = [w for w in self._heap if w.context is not None]
                heapq.heapify(self._heap)
            if self._heap[0] is watch:
                self._cond.notify()
        return watch

    def release(self, watch: Watch) -> bool:
        """Stop watching; False when the call was already cancelled for being late."""
        with self._cond:
            if watch.context is None:
                return not watch.expired
            watch.context = None
            self._live -= 1
            return True

    def _run(self) -> None:
        while True:
            due = self._next_due()
            if due is None:
                return
            for context in due:
                self._cancel(context)

    def _next_due(self) -> list[Cancellable] | None:
        with self._cond:
            while not self._stopping:
                due = self._pop_due(self._clock())
                if due:
                    return due
                wait = self._heap[0].deadline - self._clock() if self._heap else None
                self._cond.wait(wait)
            return None

    def _pop_due(self, now: float) -> list[Cancellable]:
        due: list[Cancellable] = []
        while self._heap and (self._heap[0].context is None or self._heap[0].deadline <= now):
            watch = heapq.heappop(self._heap)
            if watch.context is not None:
                due.append(watch.context)
                watch.context = None
                watch.expired = True
                self._live -= 1
        return due

    def _cancel(self, context: Cancellable) -> None:
        self.expired += 1
        try:
            log.debug(
                "request message not received in time; cancelling the call",
                extra={
                    "event": "message_timeout",
                    "timeout_sec": self.timeout,
                    "peer": context.peer(),
                },
            )
            context.cancel()
        except Exception:  # the call may be gone already; nothing is waiting on it then
            log.debug("cancelling a late call failed", exc_info=True)
        if self._on_expired is not None:
            self._on_expired()


def first_message(
    requests: Iterator[Any], context: grpc.ServicerContext, reaper: MessageReaper, method: str
) -> Any:
    """The call's one request message, read within the reaper's deadline.

    A cancelled call raises grpcio's own ``RpcError`` here, which grpcio ends quietly.
    """
    request = next(WatchedRequests(requests, context, reaper), _MISSING)
    if request is _MISSING:
        # The answer grpcio gives a unary call that half-closes without a message.
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED, f'"{method}" requires exactly one request message.'
        )
    return request


class WatchedRequests:
    """A call's request iterator whose every read is watched by the reaper."""

    def __init__(
        self, requests: Iterator[Any], context: grpc.ServicerContext, reaper: MessageReaper
    ) -> None:
        self._requests = requests
        self._context = context
        self._reaper = reaper

    def __iter__(self) -> WatchedRequests:
        return self

    def __next__(self) -> Any:
        watch = self._reaper.watch(self._context)
        try:
            request = next(self._requests)
        finally:
            in_time = self._reaper.release(watch)
        if not in_time:
            # Already cancelled: no status reaches the client; this only ends the behaviour.
            self._context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"request message not received within {self._reaper.timeout:g} s",
            )
        return request


class MessageDeadlineInterceptor(HandlerInterceptor):
    """Puts every read of a request message under the reaper: methods with one request
    become client-streaming and read it with :func:`first_message`; client-streaming ones
    read through :class:`WatchedRequests` (a stream idle longer than the deadline between
    two messages is ended too). Runs on gRPC's polling thread: it only builds handlers.
    """

    def __init__(self, reaper: MessageReaper) -> None:
        self._reaper = reaper

    def wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any]:
        if handler.request_streaming:
            return _watched(handler, self._reaper)
        return _client_streaming(handler, details.method, self._reaper)


def _watched(
    handler: grpc.RpcMethodHandler[Any, Any], reaper: MessageReaper
) -> grpc.RpcMethodHandler[Any, Any]:
    behaviour = behaviour_of(handler)

    def serve(requests: Iterator[Any], context: grpc.ServicerContext, *rest: Any) -> Any:
        return behaviour(WatchedRequests(requests, context, reaper), context, *rest)

    return with_behaviour(handler, serve)


def _client_streaming(
    handler: grpc.RpcMethodHandler[Any, Any], method: str, reaper: MessageReaper
) -> grpc.RpcMethodHandler[Any, Any]:
    behaviour = behaviour_of(handler)

    def serve(requests: Iterator[Any], context: grpc.ServicerContext, *rest: Any) -> Any:
        # ``rest`` is the send callback of a non-blocking response-streaming behaviour.
        return behaviour(first_message(requests, context, reaper, method), context, *rest)

    kind = "stream_stream" if handler.response_streaming else "stream_unary"
    streaming = handler._replace(
        request_streaming=True, unary_unary=None, unary_stream=None, **{kind: behaviour}
    )
    return with_behaviour(streaming, serve)
