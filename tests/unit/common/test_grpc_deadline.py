"""The request-message deadline: the reaper cancels late calls only, and unary answers stay."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from services.common.grpc_deadline import (
    MessageDeadlineInterceptor,
    MessageReaper,
    first_message,
)


class FakeContext:
    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def cancel(self) -> None:
        self.cancelled.set()

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise RuntimeError("aborted")


def _poll(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def reaper() -> Iterator[MessageReaper]:
    r = MessageReaper(0.05)
    r.start()
    yield r
    r.stop()


def test_late_call_is_cancelled_and_counted(reaper: MessageReaper) -> None:
    ctx = FakeContext()
    watch = reaper.watch(ctx)
    assert ctx.cancelled.wait(30)
    assert _poll(lambda: reaper.expired == 1)
    assert reaper.release(watch) is False
    assert reaper.watching == 0


def test_released_call_is_left_alone(reaper: MessageReaper) -> None:
    early, late = FakeContext(), FakeContext()
    watch = reaper.watch(early)
    assert reaper.release(watch) is True
    reaper.watch(late)  # due after the released one: once it is cancelled, the other was passed
    assert late.cancelled.wait(30)
    assert not early.cancelled.is_set()


def test_heap_stays_bounded_while_calls_come_and_go() -> None:
    reaper = MessageReaper(3600.0)
    for _ in range(20_000):
        reaper.release(reaper.watch(FakeContext()))
    held = reaper.watch(FakeContext())
    assert reaper.watching == 1
    assert len(reaper._heap) <= 2 * reaper.watching + 1024 + 1  # what compaction promises
    reaper.release(held)


def test_first_message_is_returned(reaper: MessageReaper) -> None:
    ctx = FakeContext()
    assert first_message(iter([b"one", b"two"]), ctx, reaper, "/s/M") == b"one"  # type: ignore[arg-type]
    assert reaper.watching == 0


def test_no_message_is_answered_as_grpcio_answers_a_unary_call(reaper: MessageReaper) -> None:
    ctx = FakeContext()
    with pytest.raises(RuntimeError):
        first_message(iter([]), ctx, reaper, "/s/M")  # type: ignore[arg-type]
    assert ctx.aborted == (
        grpc.StatusCode.UNIMPLEMENTED, '"/s/M" requires exactly one request message.'
    )


def test_message_that_comes_after_the_deadline_is_not_handled(reaper: MessageReaper) -> None:
    ctx = FakeContext()

    def late() -> Iterator[bytes]:
        ctx.cancelled.wait(30)
        yield b"too late"

    with pytest.raises(RuntimeError):
        first_message(late(), ctx, reaper, "/s/M")  # type: ignore[arg-type]
    assert ctx.aborted is not None and ctx.aborted[0] == grpc.StatusCode.DEADLINE_EXCEEDED


def _details(method: str = "/s/M") -> Any:
    return type("Details", (), {"method": method, "invocation_metadata": ()})()


def test_interceptor_serves_unary_methods_as_client_streaming(reaper: MessageReaper) -> None:
    calls: list[Any] = []

    def behaviour(request: Any, context: Any) -> bytes:
        calls.append(request)
        return b"ok"

    unary = grpc.unary_unary_rpc_method_handler(behaviour)
    interceptor = MessageDeadlineInterceptor(reaper)
    handler = interceptor.intercept_service(lambda _: unary, _details())
    assert handler.request_streaming and handler.unary_unary is None
    assert handler.stream_unary(iter([b"m"]), FakeContext()) == b"ok"
    assert calls == [b"m"]
    assert interceptor.intercept_service(lambda _: None, _details()) is None


def test_non_blocking_streaming_response_keeps_its_send_callback(reaper: MessageReaper) -> None:
    """As the health service's Watch: one request, responses through a callback."""
    sent: list[Any] = []

    def watch(request: Any, context: Any, send: Callable[[Any], None]) -> None:
        send(request)

    watch.experimental_non_blocking = True  # type: ignore[attr-defined]
    handler = MessageDeadlineInterceptor(reaper).intercept_service(
        lambda _: grpc.unary_stream_rpc_method_handler(watch), _details()
    )
    assert handler.request_streaming and handler.response_streaming
    assert handler.stream_stream.experimental_non_blocking
    handler.stream_stream(iter([b"svc"]), FakeContext(), sent.append)
    assert sent == [b"svc"]


def test_client_streaming_reads_are_watched_too(reaper: MessageReaper) -> None:
    ctx = FakeContext()

    def count(requests: Iterator[bytes], context: Any) -> int:
        return sum(1 for _ in requests)

    handler = MessageDeadlineInterceptor(reaper).intercept_service(
        lambda _: grpc.stream_unary_rpc_method_handler(count), _details()
    )
    assert handler.stream_unary(iter([b"a", b"b"]), ctx) == 2

    def stalled() -> Iterator[bytes]:
        yield b"a"
        ctx.cancelled.wait(30)
        yield b"too late"

    with pytest.raises(RuntimeError):
        handler.stream_unary(stalled(), ctx)
    assert ctx.aborted is not None and ctx.aborted[0] == grpc.StatusCode.DEADLINE_EXCEEDED
