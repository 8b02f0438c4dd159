"""The circuit breaker on the Auth Gateway's hop to Ingest: pybreaker's rules, without its lock.

pybreaker's ``CircuitBreaker.call()`` holds the breaker's lock while the guarded function
runs (danielfm/pybreaker#3; the PRs that tried to change it were not merged), so one
breaker around the forward would let one push reach Ingest at a time. Here the forward
runs outside the breaker, in two short steps around it:

- :meth:`ForwardBreaker.admit` decides, under a lock held for microseconds, whether a
  forward may go: always while closed; never while open until the reset timeout has
  passed; while half-open, exactly one trial at a time. It returns a :class:`Permit`.
- :meth:`ForwardBreaker.record` reports the outcome through pybreaker, calling
  ``breaker.call()`` on a function that returns or re-raises at once, so pybreaker's
  state machine, counters, exclusions and listeners stay the source of truth.

A permit carries the *term* it was issued in (a number that moves on every state
change), and an outcome from an earlier term is dropped: a slow forward admitted while
closed cannot pose as the half-open trial, or re-open a breaker that closed since
(Loki's distributor binds completions to a term the same way).

Answers below 500 (``bad_request``, ``too_large``, ``rate_limited``, ...) say Ingest is up:
they are successes for the breaker. Errors of 500 and above, timeouts and connection
failures count against it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pybreaker

from services.common.errors import LogOpsError

log = logging.getLogger(__name__)

# pybreaker's state names, as exported (metrics, /readyz): label values use underscores.
STATES = {
    pybreaker.STATE_CLOSED: "closed",
    pybreaker.STATE_OPEN: "open",
    pybreaker.STATE_HALF_OPEN: "half_open",
}


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to forward once; hand it back to :meth:`ForwardBreaker.record` with the outcome."""

    term: int
    trial: bool


def is_health_failure(exc: BaseException) -> bool:
    """Whether an outcome says Ingest is unwell: anything but a refusal below 500."""
    return not (isinstance(exc, LogOpsError) and exc.http_status < 500)


class ForwardBreaker:
    """A pybreaker ``CircuitBreaker`` that never holds its lock while a forward runs.

    ``clock`` (monotonic seconds) times the reset timeout, so tests can move time.
    """

    def __init__(
        self,
        fail_max: int = 5,
        reset_timeout_sec: float = 30.0,
        *,
        name: str = "ingest",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if fail_max < 1 or reset_timeout_sec < 0:
            raise ValueError("fail_max must be at least 1 and reset_timeout_sec not negative")
        self._clock = clock
        # Guards the term, the trial flag and the opening time; held for microseconds.
        self._lock = threading.Lock()
        self._term = 0
        self._trial = False
        self._opened_at = 0.0
        self._watchers: list[Callable[[str], None]] = []
        self._cb = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout_sec,
            exclude=[lambda exc: not is_health_failure(exc)],
            listeners=[_StateListener(self._state_changed)],
            state_storage=pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED),
            name=name,
        )

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half_open`` (for ``/readyz`` and the state metric)."""
        return STATES[self._cb.current_state]

    def watch(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(state)`` now and on every change; it runs under the breaker's
        lock, so it must only record the value (a gauge), never block."""
        with self._lock:
            self._watchers.append(callback)
            callback(self.state)

    def admit(self) -> Permit | None:
        """Leave to forward now, or None when the breaker says no."""
        with self._lock:
            state = self._cb.current_state
            if state == pybreaker.STATE_OPEN:
                if self._clock() - self._opened_at < self._cb.reset_timeout:
                    return None
                # pybreaker would only move on inside call(), on the wall clock; the
                # listener starts a new term.
                self._cb.half_open()
                state = pybreaker.STATE_HALF_OPEN
            if state == pybreaker.STATE_HALF_OPEN:
                if self._trial:
                    return None
                self._trial = True
                return Permit(self._term, trial=True)
            return Permit(self._term, trial=False)

    def record(self, permit: Permit, error: BaseException | None = None) -> None:
        """Report a forward's outcome: ``error`` None for an answer, else what went wrong."""
        with self._lock:
            if permit.term != self._term:
                return
            if permit.trial:
                self._trial = False
            # Raising the error again inside pybreaker adds its frames to the traceback
            # the caller will see: keep the original.
            traceback = error.__traceback__ if error is not None else None
            try:
                self._cb.call(_outcome, error)
            except pybreaker.CircuitBreakerError:
                pass  # the failure that trips the breaker comes back as this
            except BaseException as raised:
                if raised is not error:
                    raise
            finally:
                if error is not None:
                    error.__traceback__ = traceback

    def retry_after(self) -> float:
        """Seconds until the breaker lets a trial through (0 when it is not open)."""
        with self._lock:
            if self._cb.current_state != pybreaker.STATE_OPEN:
                return 0.0
            return max(0.0, self._opened_at + self._cb.reset_timeout - self._clock())

    def _state_changed(self, state: str) -> None:
        # Every transition happens inside admit() or record(), with self._lock held.
        self._term += 1
        self._trial = False
        exported = STATES[state]
        if state == pybreaker.STATE_OPEN:
            self._opened_at = self._clock()
            log.warning(
                "forward breaker opened",
                extra={"event": "breaker_state", "state": exported, "breaker": self._cb.name},
            )
        else:
            log.info(
                "forward breaker %s", exported.replace("_", "-"),
                extra={"event": "breaker_state", "state": exported, "breaker": self._cb.name},
            )
        for watcher in self._watchers:
            watcher(exported)


def _outcome(error: BaseException | None) -> None:
    if error is not None:
        raise error


class _StateListener(pybreaker.CircuitBreakerListener):
    def __init__(self, on_change: Callable[[str], None]) -> None:
        self._on_change = on_change

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self._on_change(new_state.name)
