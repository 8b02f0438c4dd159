"""The forwarder's retry policy, with a scripted transport and a clock that only moves when told."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import pytest
from logops.v1 import logs_pb2

from services.auth.breaker import ForwardBreaker
from services.auth.forwarder import Forwarder
from services.auth.hop import NoAnswer, Prepared, log_batch_of
from services.auth.model import Payload
from services.common.errors import (
    BadRequest,
    Internal,
    LogOpsError,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unavailable,
)
from services.common.model import PushResult

BODY = b'{"batch_id":"b-1","records":[{"msg":"hello"}]}'
PAYLOAD = Payload(BODY, "application/json", batch_id="b-1", records=1)
BASE, CAP = 0.1, 1.0

Outcome = PushResult | BaseException | Callable[["Clock", float], PushResult | BaseException]


class Clock:
    def __init__(self) -> None:
        self.now = 500.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Sent:
    body: bytes
    signed: dict[str, str]
    timeout: float
    patient: bool
    at: float


@dataclass
class ScriptedTransport:
    """Answers each send with the next scripted outcome, the last one for ever (a callable
    gets the clock and the timeout)."""

    clock: Clock
    script: list[Outcome]
    sent: list[Sent] = field(default_factory=list)

    def prepare(self, payload: Payload) -> Prepared:
        return Prepared(payload.body, payload.media_type)

    def send(
        self, prepared: Prepared, signed: Mapping[str, str], timeout: float, patient: bool
    ) -> PushResult:
        self.sent.append(Sent(prepared.body, dict(signed), timeout, patient, self.clock.now))
        outcome = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if callable(outcome):
            outcome = outcome(self.clock, timeout)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def close(self) -> None:
        pass


class Metrics:
    def __init__(self) -> None:
        self.attempts: list[str] = []
        self.seconds: list[float] = []
        self.states: list[str] = []

    def attempt(self, outcome: str, seconds: float) -> None:
        self.attempts.append(outcome)
        self.seconds.append(seconds)

    def breaker_state(self, state: str) -> None:
        self.states.append(state)


def ok(duplicate: bool = False) -> PushResult:
    return PushResult(batch_id="b-1", accepted=1, duplicate=duplicate)


def refused() -> NoAnswer:
    return NoAnswer("connection refused", "transport_error")


def overloaded(retry_after: float | None = None) -> Unavailable:
    return Unavailable("too busy", reason="overloaded", retry_after=retry_after)


def timed_out(clock: Clock, timeout: float) -> BaseException:
    """A send that uses its whole timeout and gets no answer."""
    clock.now += timeout
    return NoAnswer("timed out", "timeout")


@dataclass
class Rig:
    clock: Clock
    transport: ScriptedTransport
    breaker: ForwardBreaker
    metrics: Metrics
    forwarder: Forwarder
    nonces: Iterator[int]
    signed_with: list[tuple[bytes, str]]


def rig(
    *script: Outcome,
    attempts: int = 4,
    attempt_timeout: float = 2.0,
    rng: Callable[[], float] = lambda: 0.5,
    fail_max: int = 100,
) -> Rig:
    clock = Clock()
    transport = ScriptedTransport(clock, list(script))
    breaker = ForwardBreaker(fail_max, 30.0, clock=clock)
    metrics = Metrics()
    nonces = itertools.count()
    signed_with: list[tuple[bytes, str]] = []

    def sign(body: bytes, media_type: str) -> Mapping[str, str]:
        signed_with.append((body, media_type))
        return {"x-logops-key-id": "auth", "x-logops-nonce": f"nonce-{next(nonces)}"}

    forwarder = Forwarder(
        "http://ingest.invalid:8080", sign, attempt_timeout, attempts, BASE, CAP, breaker,
        sleep=clock.sleep, clock=clock, rng=rng, observer=metrics, transport=transport,
    )
    return Rig(clock, transport, breaker, metrics, forwarder, nonces, signed_with)


def test_an_answer_comes_back_at_once() -> None:
    r = rig(ok())
    assert r.forwarder.forward(PAYLOAD, r.clock.now + 10) == ok()
    assert r.metrics.attempts == ["ok"]
    assert r.clock.sleeps == []


def test_backoff_is_full_jitter_under_a_doubling_cap() -> None:
    draws = iter([0.999, 0.5, 0.25, 0.0, 0.999, 0.999])
    r = rig(refused(), attempts=7, rng=lambda: next(draws))
    with pytest.raises(Unavailable):
        r.forwarder.forward(PAYLOAD, r.clock.now + 60)
    ceilings = [min(CAP, BASE * 2**n) for n in range(6)]
    assert ceilings == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert r.clock.sleeps == pytest.approx(
        [0.999 * 0.1, 0.5 * 0.2, 0.25 * 0.4, 0.0, 0.999 * 1.0, 0.999 * 1.0]
    )
    assert all(0 <= s <= c for s, c in zip(r.clock.sleeps, ceilings, strict=True))


def test_the_servers_retry_after_is_a_floor() -> None:
    r = rig(overloaded(retry_after=3.0), overloaded(retry_after=3.0), ok(), rng=lambda: 0.9)
    r.forwarder.forward(PAYLOAD, r.clock.now + 60)
    assert r.clock.sleeps == [3.0, 3.0]
    assert r.metrics.attempts == ["retryable", "retryable", "ok"]


def test_a_retry_after_longer_than_the_time_left_gives_up_without_sleeping() -> None:
    r = rig(overloaded(retry_after=5.0))
    with pytest.raises(Unavailable) as err:
        r.forwarder.forward(PAYLOAD, r.clock.now + 4)
    assert err.value.reason == "downstream_unavailable"
    assert err.value.retry_after == pytest.approx(5.0)
    assert r.clock.sleeps == []
    assert len(r.transport.sent) == 1


def test_the_deadline_bounds_every_attempt_and_every_sleep() -> None:
    r = rig(timed_out, attempts=10, attempt_timeout=2.0, rng=lambda: 0.999)
    start = r.clock.now
    deadline = start + 5.0
    with pytest.raises(Unavailable) as err:
        r.forwarder.forward(PAYLOAD, deadline)
    assert err.value.reason == "downstream_unavailable"
    timeouts = [s.timeout for s in r.transport.sent]
    assert timeouts[0] == 2.0
    assert timeouts[-1] < 2.0, "the last attempt gets only the time left"
    for sent in r.transport.sent:
        assert sent.at + sent.timeout <= deadline + 1e-9
    assert r.clock.now <= deadline
    assert set(r.metrics.attempts) == {"timeout"}


def test_no_attempt_once_the_deadline_has_passed() -> None:
    r = rig(ok())
    with pytest.raises(Unavailable) as err:
        r.forwarder.forward(PAYLOAD, r.clock.now - 1)
    assert err.value.reason == "downstream_unavailable"
    assert r.transport.sent == []


@pytest.mark.parametrize(
    "refusal",
    [
        BadRequest("malformed body"),
        TooLarge("too big", reason="too_many_records"),
        Unauthenticated("replayed nonce", reason="replay"),
        Internal("boom"),
    ],
    ids=["bad_request", "too_many_records", "replay", "internal"],
)
def test_a_refusal_that_retrying_cannot_change_comes_back_at_once(refusal: LogOpsError) -> None:
    r = rig(refusal, ok(), fail_max=1)
    with pytest.raises(type(refusal)) as err:
        r.forwarder.forward(PAYLOAD, r.clock.now + 60)
    assert err.value is refusal
    assert len(r.transport.sent) == 1
    assert r.clock.sleeps == []
    expected = "server_error" if refusal.http_status >= 500 else "client_error"
    assert r.metrics.attempts == [expected]
    assert r.breaker.state == ("open" if expected == "server_error" else "closed")


def test_every_attempt_sends_the_same_bytes_with_a_fresh_signature() -> None:
    r = rig(refused(), overloaded(), timed_out, ok(duplicate=True))
    result = r.forwarder.forward(PAYLOAD, r.clock.now + 60)
    assert result.duplicate, "a retry of a batch that was stored is a success"
    assert [s.body for s in r.transport.sent] == [BODY] * 4
    assert all(s.body is BODY for s in r.transport.sent)
    assert r.signed_with == [(BODY, "application/json")] * 4
    nonces = [s.signed["x-logops-nonce"] for s in r.transport.sent]
    assert len(set(nonces)) == 4
    assert r.metrics.attempts == ["transport_error", "retryable", "timeout", "duplicate"]


def test_rate_limited_is_retried_after_its_wait() -> None:
    r = rig(RateLimited("slow down", retry_after=1.0), ok())
    r.forwarder.forward(PAYLOAD, r.clock.now + 60)
    assert r.clock.sleeps == [1.0]
    assert r.breaker.state == "closed"


def test_spent_attempts_end_in_downstream_unavailable() -> None:
    r = rig(refused(), attempts=3)
    with pytest.raises(Unavailable) as err:
        r.forwarder.forward(PAYLOAD, r.clock.now + 60)
    assert err.value.reason == "downstream_unavailable"
    assert err.value.retry_after is not None
    assert isinstance(err.value.__cause__, NoAnswer)
    assert len(r.transport.sent) == 3


def test_an_open_breaker_refuses_without_sending() -> None:
    r = rig(refused(), attempts=1, fail_max=2)
    for _ in range(2):
        with pytest.raises(Unavailable):
            r.forwarder.forward(PAYLOAD, r.clock.now + 60)
    assert r.metrics.states == ["closed", "open"]
    r.clock.now += 10
    with pytest.raises(Unavailable) as err:
        r.forwarder.forward(PAYLOAD, r.clock.now + 60)
    assert err.value.reason == "downstream_unavailable"
    assert err.value.retry_after == pytest.approx(20.0)
    assert len(r.transport.sent) == 2
    assert r.metrics.attempts[-1] == "breaker_open"


def test_the_trial_waits_for_a_connection_and_closes_the_breaker() -> None:
    r = rig(refused(), refused(), ok(), attempts=1, fail_max=2)
    for _ in range(2):
        with pytest.raises(Unavailable):
            r.forwarder.forward(PAYLOAD, r.clock.now + 60)
    r.clock.now += 30
    assert r.forwarder.forward(PAYLOAD, r.clock.now + 60) == ok()
    assert [s.patient for s in r.transport.sent] == [False, False, True]
    assert r.metrics.states == ["closed", "open", "half_open", "closed"]


def test_a_breaker_that_opens_between_attempts_stops_the_retries_at_once() -> None:
    r = rig(refused(), attempts=5, fail_max=1)
    with pytest.raises(Unavailable) as err:
        r.forwarder.forward(PAYLOAD, r.clock.now + 60)
    assert err.value.reason == "downstream_unavailable"
    assert err.value.retry_after == pytest.approx(30.0), "when the breaker lets a trial through"
    assert r.metrics.attempts == ["transport_error"]
    assert r.clock.sleeps == [], "no backoff once the breaker is open"


def test_an_unexpected_error_is_raised_and_counts_against_the_breaker() -> None:
    r = rig(RuntimeError("bug"), fail_max=1)
    with pytest.raises(RuntimeError):
        r.forwarder.forward(PAYLOAD, r.clock.now + 60)
    assert r.breaker.state == "open"


def test_a_retry_goes_while_the_shortest_attempt_still_fits() -> None:
    """An attempt needs at least ``min_attempt_sec``: the first one as every retry, after
    no wait as after a server's Retry-After."""
    cases = (([timed_out], 2.5, 2.0), ([overloaded(retry_after=1.0)], 1.5, 1.5))
    for script, deadline, first in cases:
        clock = Clock()
        transport = ScriptedTransport(clock, [*script, ok()])
        forwarder = Forwarder(
            "http://ingest.invalid:8080", None, 2.0, 3, 0.0, 0.0, ForwardBreaker(clock=clock),
            sleep=clock.sleep, clock=clock, min_attempt_sec=0.5, transport=transport,
        )
        assert forwarder.forward(PAYLOAD, clock.now + deadline) == ok()
        assert [s.timeout for s in transport.sent] == [first, 0.5]


def test_giving_up_says_why_and_when_to_come_back() -> None:
    clock = Clock()
    transport = ScriptedTransport(clock, [refused()])
    forwarder = Forwarder(
        "http://ingest.invalid:8080", None, 2.0, 2, 0.1, 0.4, ForwardBreaker(clock=clock),
        sleep=clock.sleep, clock=clock, transport=transport,
    )
    with pytest.raises(Unavailable) as err:
        forwarder.forward(PAYLOAD, clock.now + 60)
    assert err.value.message == (
        "the Ingest Gateway at http://ingest.invalid:8080 did not take the batch: "
        "connection refused"
    )
    assert err.value.retry_after == pytest.approx(0.4), "no server wait: the backoff cap"
    with pytest.raises(Unavailable) as late:
        forwarder.forward(PAYLOAD, clock.now - 1)
    assert late.value.message.endswith(": no time left before the caller's deadline")
    assert late.value.retry_after == pytest.approx(0.4)


def test_each_attempt_is_timed_on_the_forwarders_clock() -> None:
    r = rig(timed_out, ok(), attempts=3, attempt_timeout=2.0, rng=lambda: 0.0, fail_max=2)
    r.clock.now = 1000.0
    r.forwarder.forward(PAYLOAD, r.clock.now + 60)
    assert (r.metrics.attempts, r.metrics.seconds) == (["timeout", "ok"], [2.0, 0.0])
    r.transport.script = [refused()]
    with pytest.raises(Unavailable):
        r.forwarder.forward(PAYLOAD, r.clock.now + 60)  # two failures: the breaker opens
    with pytest.raises(Unavailable) as paused:
        r.forwarder.forward(PAYLOAD, r.clock.now + 60)
    assert (r.metrics.attempts[-1], r.metrics.seconds[-1]) == ("breaker_open", 0.0)
    assert paused.value.message == (
        "forwarding to http://ingest.invalid:8080 is paused: its circuit breaker is open"
    )


@pytest.mark.parametrize(
    ("min_attempt", "base", "cap"), [(0.0, 0.1, 1.0), (0.05, 0.5, 0.4)], ids=["min_attempt", "base"]
)
def test_settings_that_cannot_work_are_refused_saying_so(
    min_attempt: float, base: float, cap: float
) -> None:
    with pytest.raises(ValueError) as info:
        Forwarder(
            "http://127.0.0.1:1", None, 1.0, 1, base, cap, ForwardBreaker(),
            min_attempt_sec=min_attempt,
        )
    assert str(info.value) == "forwarder needs positive attempts and timeouts, 0 <= base <= max"


def test_concurrent_forwards_are_not_serialized() -> None:
    """32 forwards each wait inside the transport until all 32 are there: if anything
    around the transport let one through at a time, the barrier would break."""
    forwards = 32
    barrier = threading.Barrier(forwards, timeout=10)

    def meet_the_others(clock: Clock, timeout: float) -> PushResult:
        barrier.wait()
        return ok()

    transport = ScriptedTransport(Clock(), [meet_the_others])
    breaker = ForwardBreaker(fail_max=3)
    forwarder = Forwarder(
        "http://ingest.invalid:8080", None, 30.0, 1, BASE, CAP, breaker, transport=transport
    )
    failures: list[BaseException] = []

    def run() -> None:
        try:
            forwarder.forward(PAYLOAD, time.monotonic() + 60)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(forwards)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    broken = [f for f in failures if isinstance(f, threading.BrokenBarrierError)]
    assert not broken, (
        f"{len(broken)} of {forwards} forwards gave up waiting for the others inside the "
        "transport: forwards run one at a time"
    )
    assert not failures
    assert len(transport.sent) == forwards
    assert breaker.state == "closed"


# --- payloads and targets -------------------------------------------------------------------


def push_request(batch_id: str = "b-9", n: int = 2) -> bytes:
    batch = logs_pb2.LogBatch(
        batch_id=batch_id, records=[logs_pb2.LogRecord(msg=f"m{i}") for i in range(n)]
    )
    return bytes(logs_pb2.PushRequest(batch=batch).SerializeToString())


@pytest.mark.parametrize("records", [0, 1, 3, 2000])
def test_the_batch_inside_a_push_request_is_sliced_out(records: int) -> None:
    body = push_request(n=records)
    batch = log_batch_of(body)
    assert batch == logs_pb2.PushRequest.FromString(body).batch.SerializeToString()
    assert body.endswith(batch)


def test_a_push_request_with_its_batch_in_two_parts_is_merged() -> None:
    first = logs_pb2.PushRequest(batch=logs_pb2.LogBatch(batch_id="b-2"))
    second = logs_pb2.PushRequest(batch=logs_pb2.LogBatch(emitter="e"))
    body = first.SerializeToString() + second.SerializeToString()
    merged = logs_pb2.LogBatch.FromString(log_batch_of(body))
    assert (merged.batch_id, merged.emitter) == ("b-2", "e")


def test_a_body_that_is_no_push_request_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        log_batch_of(b"\x0a\xff\xff\xff")


def test_a_push_request_payload_is_protobuf_without_encoding() -> None:
    payload = Payload.from_push_request(push_request(), batch_id="b-9", records=2)
    assert (payload.media_type, payload.push_request) == ("application/x-protobuf", True)
    with pytest.raises(ValueError):
        Payload(b"", "application/json", push_request=True)
    with pytest.raises(ValueError):
        Payload(b"", "application/x-protobuf", content_encoding="gzip", push_request=True)


def test_an_http_body_goes_over_grpc_only_with_its_decoded_batch() -> None:
    forwarder = Forwarder("grpc://127.0.0.1:1", None, 1.0, 1, 0.1, 1.0, ForwardBreaker())
    try:
        with pytest.raises(ValueError, match="decoded batch"):
            forwarder.forward(PAYLOAD, 0.0)
    finally:
        forwarder.close()


@pytest.mark.parametrize(
    "target", ["127.0.0.1:50051", "https://ingest:443", "grpc://ingest", "http://:8080", "grpc:"]
)
def test_a_target_names_grpc_or_http_a_host_and_a_port(target: str) -> None:
    with pytest.raises(ValueError):
        Forwarder(target, None, 1.0, 1, 0.1, 1.0, ForwardBreaker())


@pytest.mark.parametrize(
    "settings",
    [(0.0, 1, 0.1, 1.0), (1.0, 0, 0.1, 1.0), (1.0, 1, 2.0, 1.0), (1.0, 1, -0.1, 1.0)],
)
def test_settings_that_cannot_work_are_refused(settings: tuple[float, int, float, float]) -> None:
    timeout, attempts, base, cap = settings
    with pytest.raises(ValueError):
        Forwarder("http://127.0.0.1:1", None, timeout, attempts, base, cap, ForwardBreaker())
