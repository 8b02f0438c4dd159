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

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from services.auth.breaker import ForwardBreaker, Permit
from services.auth.hop import ForwardTransport, NoAnswer, Prepared, open_transport
from services.auth.model import Payload
from services.common.errors import LogOpsError, Unavailable
from services.common.model import PushResult

log = logging.getLogger(__name__)
# Outcomes of one attempt: the label values of the forward-attempts metric.
OUTCOMES = ("ok", "duplicate", "client_error", "server_error", "retryable", "transport_error",
            "timeout", "breaker_open")

Signer = Callable[[bytes, str], Mapping[str, str]]


class ForwardObserver(Protocol):
    """Metrics of the hop; ``outcome`` is one of ``OUTCOMES``, ``state`` a breaker state."""

    def attempt(self, outcome: str, seconds: float) -> None: ...
    def breaker_state(self, state: str) -> None: ...


class _NoMetrics:
    def attempt(self, outcome: str, seconds: float) -> None: ...
    def breaker_state(self, state: str) -> None: ...


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
        self._hop = transport or open_transport(target)
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
        # Time left once the shortest attempt is set aside: an attempt needs at least that.
        room = deadline - self._clock() - self._min_attempt
        if room < 0 or floor > room:
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
