"""Retries for client transports: same batch_id, fresh signature, full-jitter backoff.

:class:`RetryingTransport` wraps a transport and is one itself (``send(batch) ->
PushResult``):

- A batch without ``batch_id`` gets one (``uuid4().hex``) before the first attempt, so
  every attempt carries the same id. The gateways' idempotency makes retries safe: a
  retry of a push that was in fact stored comes back ``duplicate``, not stored twice.
- The batch is encoded once when the inner transport can (``prepare``/``send_prepared``);
  each attempt signs those bytes afresh (a repeated nonce is refused as a replay).
- Only retryable outcomes are retried: the reasons the error table marks retryable
  (``rate_limited``, ``overloaded``, ``sink_unavailable``, ``downstream_unavailable``,
  the last also standing for "no answer at all"). Any other refusal (``bad_request``,
  ``too_large``, ``unauthenticated``...) is raised at once.
- Between attempts: full-jitter exponential backoff, ``rng() * min(cap, base * 2**n)``
  (AWS, "Exponential Backoff And Jitter"), but never less than the server's
  ``Retry-After``/``RetryInfo``; all within ``deadline_sec`` of the call. When attempts or
  time run out, the last refusal is raised as it came, so callers catch the same
  exception with or without retries.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
import uuid
from collections.abc import Callable

from clients.transports import PreparingTransport, Transport
from services.common.errors import LogOpsError
from services.common.model import Batch, PushResult

log = logging.getLogger(__name__)

Attempt = Callable[[float], PushResult]


def is_retryable(exc: BaseException) -> bool:
    """True for outcomes that another attempt may change (the error table decides)."""
    return isinstance(exc, LogOpsError) and exc.mapping.retryable


def with_batch_id(batch: Batch) -> Batch:
    """``batch`` itself when it has an id, else a copy with a new one (the caller's batch
    is left as it is)."""
    if batch.batch_id:
        return batch
    return dataclasses.replace(batch, batch_id=uuid.uuid4().hex)


def backoff_ceiling(retry: int, base_sec: float, cap_sec: float) -> float:
    """The most full jitter may wait before retry number ``retry`` (0 for the first)."""
    return min(cap_sec, base_sec * 2.0 ** min(retry, 60))


class RetryingTransport:
    """Retries ``inner``'s retryable refusals; see the module docstring for the policy.

    ``sleep``, ``rng`` (uniform in [0, 1)) and ``clock`` (monotonic) are there for tests.
    An attempt is not started with less than ``min_attempt_sec`` left before the deadline.
    """

    def __init__(
        self,
        inner: Transport,
        max_attempts: int = 5,
        base_sec: float = 0.1,
        cap_sec: float = 5.0,
        deadline_sec: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        *,
        clock: Callable[[], float] = time.monotonic,
        min_attempt_sec: float = 0.05,
    ) -> None:
        if max_attempts < 1 or deadline_sec <= 0 or min_attempt_sec < 0:
            raise ValueError("retries need max_attempts >= 1 and a positive deadline_sec")
        if not 0 <= base_sec <= cap_sec:
            raise ValueError("retries need 0 <= base_sec <= cap_sec")
        self.inner = inner
        self.max_attempts = max_attempts
        self.base_sec, self.cap_sec, self.deadline_sec = base_sec, cap_sec, deadline_sec
        self._sleep, self._rng, self._clock = sleep, rng, clock
        self._min_attempt = min_attempt_sec

    def send(self, batch: Batch) -> PushResult:
        """Deliver ``batch``; raises the last refusal when retrying cannot help or ends."""
        deadline = self._clock() + self.deadline_sec
        attempt = self._attempt_of(with_batch_id(batch))
        retry = 0
        while True:
            try:
                return attempt(deadline - self._clock())
            except LogOpsError as exc:
                if not is_retryable(exc):
                    raise
                delay = self._delay(retry, exc, deadline)
                if delay is None:
                    exc.add_note(f"gave up after {retry + 1} attempt(s)")
                    raise
                log.debug(
                    "push attempt %d failed (%s); retrying in %.3f s", retry + 1, exc.reason,
                    delay, extra={"event": "push_retry", "reason": exc.reason},
                )
                self._sleep(delay)
                retry += 1

    def close(self) -> None:
        self.inner.close()

    def _attempt_of(self, batch: Batch) -> Attempt:
        """One attempt, given the time left; the batch is encoded here, once, if it can."""
        inner = self.inner
        if isinstance(inner, PreparingTransport):
            prepared = inner.prepare(batch)
            return lambda left: inner.send_prepared(prepared, timeout=left)
        return lambda left: inner.send(batch)

    def _delay(self, retry: int, failure: LogOpsError, deadline: float) -> float | None:
        """Seconds to wait before retry number ``retry`` (0 first); None: give up."""
        if retry + 1 >= self.max_attempts:
            return None
        room = deadline - self._clock() - self._min_attempt
        floor = failure.retry_after or 0.0
        if room <= 0 or floor > room:
            return None
        jitter = self._rng() * backoff_ceiling(retry, self.base_sec, self.cap_sec)
        # Jitter is cut short to leave time for the attempt; the server's wait is not.
        return min(max(jitter, floor), room)
