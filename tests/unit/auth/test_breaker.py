"""The forward breaker: pybreaker's rules, one trial at a time, and no lock around a forward."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pybreaker
import pytest

from services.auth.breaker import ForwardBreaker, Permit
from services.common.errors import (
    BadRequest,
    Internal,
    LogOpsError,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unavailable,
)

FORWARDS = 32


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def down() -> Unavailable:
    return Unavailable("no answer", reason="downstream_unavailable")


def make(fail_max: int = 3, reset: float = 30.0) -> tuple[ForwardBreaker, Clock, list[str]]:
    clock = Clock()
    breaker = ForwardBreaker(fail_max, reset, clock=clock)
    states: list[str] = []
    breaker.watch(states.append)
    return breaker, clock, states


def admitted(breaker: ForwardBreaker) -> Permit:
    permit = breaker.admit()
    assert permit is not None, f"refused while {breaker.state}"
    return permit


def fail(breaker: ForwardBreaker, times: int, error: Callable[[], BaseException] = down) -> None:
    for _ in range(times):
        breaker.record(admitted(breaker), error())


def test_opens_after_fail_max_consecutive_failures_and_rejects_while_open() -> None:
    breaker, clock, states = make(fail_max=3)
    fail(breaker, 2)
    assert breaker.state == "closed"
    fail(breaker, 1)
    assert breaker.state == "open"
    assert states == ["closed", "open"]
    clock.now += 29.9
    assert breaker.admit() is None
    assert breaker.retry_after() == pytest.approx(0.1)


def test_a_success_between_failures_starts_the_count_again() -> None:
    breaker, _, _ = make(fail_max=3)
    fail(breaker, 2)
    breaker.record(admitted(breaker))
    fail(breaker, 2)
    assert breaker.state == "closed"


def test_after_the_reset_timeout_exactly_one_trial_goes_through() -> None:
    breaker, clock, states = make(fail_max=1, reset=30.0)
    fail(breaker, 1)
    clock.now += 30.0
    trial = admitted(breaker)
    assert trial.trial
    assert breaker.state == "half_open"
    assert [breaker.admit() for _ in range(5)] == [None] * 5
    assert states == ["closed", "open", "half_open"]


def test_a_successful_trial_closes_the_breaker() -> None:
    breaker, clock, states = make(fail_max=1)
    fail(breaker, 1)
    clock.now += 30.0
    breaker.record(admitted(breaker))
    assert breaker.state == "closed"
    assert states[-1] == "closed"
    permits = [admitted(breaker) for _ in range(3)]
    assert not any(p.trial for p in permits)


def test_a_failed_trial_opens_it_again_for_a_whole_reset_timeout() -> None:
    breaker, clock, states = make(fail_max=1, reset=30.0)
    fail(breaker, 1)
    clock.now += 45.0
    breaker.record(admitted(breaker), down())
    assert breaker.state == "open"
    assert states == ["closed", "open", "half_open", "open"]
    assert breaker.retry_after() == pytest.approx(30.0)
    clock.now += 29.0
    assert breaker.admit() is None


@pytest.mark.parametrize(
    "refusal",
    [
        lambda: BadRequest("malformed body"),
        lambda: TooLarge("too big"),
        lambda: Unauthenticated("bad signature", reason="bad_signature"),
        lambda: RateLimited("slow down", retry_after=1.0),
    ],
    ids=["bad_request", "too_large", "bad_signature", "rate_limited"],
)
def test_refusals_below_500_never_count(refusal: Callable[[], LogOpsError]) -> None:
    breaker, clock, _ = make(fail_max=2)
    fail(breaker, 10, refusal)
    assert breaker.state == "closed"
    # Ingest answering at all is what a trial wants to know: a refusal closes it too.
    fail(breaker, 2)
    clock.now += 30.0
    breaker.record(admitted(breaker), refusal())
    assert breaker.state == "closed"


@pytest.mark.parametrize(
    "failure",
    [down, lambda: Internal("boom"), lambda: ConnectionRefusedError(111, "refused")],
    ids=["unavailable", "internal", "os_error"],
)
def test_errors_of_500_and_above_and_crashes_count(failure: Callable[[], BaseException]) -> None:
    breaker, _, _ = make(fail_max=2)
    fail(breaker, 2, failure)
    assert breaker.state == "open"


def test_a_late_outcome_from_an_earlier_term_is_dropped() -> None:
    breaker, clock, _ = make(fail_max=2)
    slow = admitted(breaker)  # a forward still running while the breaker trips
    fail(breaker, 2)
    clock.now += 30.0
    trial = admitted(breaker)
    breaker.record(slow)  # must not pose as the trial and close the breaker
    assert breaker.state == "half_open"
    assert breaker.admit() is None
    breaker.record(trial)
    assert breaker.state == "closed"
    breaker.record(slow, down())
    breaker.record(slow, down())  # must not open a breaker that closed since
    assert breaker.state == "closed"


def test_recording_keeps_the_errors_own_traceback() -> None:
    breaker, _, _ = make(fail_max=5)
    try:
        raise down()
    except Unavailable as exc:
        error = exc
    before = error.__traceback__
    breaker.record(admitted(breaker), error)
    assert error.__traceback__ is before


def test_watching_reports_the_current_state_first() -> None:
    breaker, _, _ = make(fail_max=1)
    fail(breaker, 1)
    seen: list[str] = []
    breaker.watch(seen.append)
    assert seen == ["open"]


def forward_through_barrier(admit_and_run: Callable[[Callable[[], None]], None]) -> list[str]:
    """Run FORWARDS fake forwards at once; each waits until all are inside. Returns errors."""
    barrier = threading.Barrier(FORWARDS, timeout=10)
    errors: list[str] = []

    def fake_forward() -> None:
        barrier.wait()

    def run() -> None:
        try:
            admit_and_run(fake_forward)
        except threading.BrokenBarrierError:
            errors.append("broken barrier")

    threads = [threading.Thread(target=run) for _ in range(FORWARDS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return errors


def test_concurrent_forwards_are_not_serialized() -> None:
    breaker, _, _ = make(fail_max=3)

    def admit_and_run(forward: Callable[[], None]) -> None:
        permit = admitted(breaker)
        try:
            forward()
        except BaseException as exc:
            breaker.record(permit, exc)
            raise
        breaker.record(permit)

    errors = forward_through_barrier(admit_and_run)
    assert not errors, (
        f"{len(errors)} of {FORWARDS} forwards never met the others inside the breaker: "
        "it runs forwards one at a time"
    )
    assert breaker.state == "closed"


def test_the_barrier_catches_pybreakers_own_call_serializing() -> None:
    """The check above is able to fail: pybreaker's call() holds its lock around the call."""
    cb = pybreaker.CircuitBreaker(fail_max=1000)
    barrier = threading.Barrier(4, timeout=0.5)
    broken: list[bool] = []

    def run() -> None:
        try:
            cb.call(barrier.wait)
        except threading.BrokenBarrierError:
            broken.append(True)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(broken) == 4


def test_a_late_outcome_is_dropped_however_many_times_the_breaker_turned() -> None:
    breaker, clock, _ = make(fail_max=1)
    fail(breaker, 1)
    clock.now += 30.0
    breaker.record(admitted(breaker))  # the trial closes it: a second closed period
    slow = admitted(breaker)  # a forward of that second period, still running
    fail(breaker, 1)
    clock.now += 30.0
    trial = admitted(breaker)
    breaker.record(slow)  # from two turns ago: it must not close the breaker
    assert breaker.state == "half_open"
    assert breaker.admit() is None
    breaker.record(trial, down())
    assert breaker.state == "open"


def test_no_wait_is_announced_unless_the_breaker_is_open() -> None:
    breaker, clock, _ = make(fail_max=1, reset=30.0)
    assert breaker.retry_after() == 0.0
    fail(breaker, 1)
    assert breaker.retry_after() == pytest.approx(30.0)
    clock.now += 30.0
    admitted(breaker)  # the trial: half-open
    assert breaker.retry_after() == 0.0


def test_every_state_change_is_logged_as_a_breaker_state_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    breaker = ForwardBreaker(1, 30.0, name="ingest-hop", clock=clock)
    with caplog.at_level(logging.INFO, logger="services.auth.breaker"):
        fail(breaker, 1)
        clock.now += 30.0
        breaker.record(admitted(breaker))
    events = [
        (r.levelno, r.__dict__.get("event"), r.__dict__.get("state"), r.__dict__.get("breaker"))
        for r in caplog.records
    ]
    assert events == [
        (logging.WARNING, "breaker_state", "open", "ingest-hop"),
        (logging.INFO, "breaker_state", "half_open", "ingest-hop"),
        (logging.INFO, "breaker_state", "closed", "ingest-hop"),
    ]


def test_the_gateways_breaker_is_named_ingest_in_its_events(
    caplog: pytest.LogCaptureFixture,
) -> None:
    breaker = ForwardBreaker(1, 30.0)  # as the wiring builds it
    with caplog.at_level(logging.WARNING, logger="services.auth.breaker"):
        fail(breaker, 1)
    assert [r.__dict__.get("breaker") for r in caplog.records] == ["ingest"]


@pytest.mark.parametrize(("fail_max", "reset"), [(0, 30.0), (1, -0.5)])
def test_settings_that_cannot_work_are_refused_by_name(fail_max: int, reset: float) -> None:
    with pytest.raises(ValueError) as info:
        ForwardBreaker(fail_max, reset)
    assert str(info.value) == "fail_max must be at least 1 and reset_timeout_sec not negative"


def test_a_reset_timeout_of_zero_lets_the_trial_through_at_once() -> None:
    breaker, _, _ = make(fail_max=1, reset=0.0)
    fail(breaker, 1)
    assert breaker.state == "open"
    assert admitted(breaker).trial
