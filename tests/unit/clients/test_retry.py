"""The client's retry policy, with a scripted transport and a clock that moves only when told."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
import pytest

from clients.retry import RetryingTransport, backoff_ceiling, is_retryable
from clients.signed import Signer
from clients.transports import Prepared, encode_json
from services.common.errors import (
    BadRequest,
    Internal,
    LogOpsError,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)
from services.common.keys import ApiKey, KeyRing
from services.common.model import Batch, PushResult
from services.common.nonces import MemoryNonceStore
from services.common.signing import H_NONCE, H_SIGNATURE, H_TIMESTAMP, Verifier

KEY = ApiKey("sdk-test", "sdk", (b"a secret of the client sdk tests",))
JSON = "application/json"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


Outcome = PushResult | LogOpsError | Callable[[Clock, float], PushResult | LogOpsError]


@dataclass
class Sent:
    body: bytes
    headers: dict[str, str]
    timeout: float | None


@dataclass
class ScriptedTransport:
    """Encodes like HttpTransport and signs each attempt like it; answers each attempt with
    the next scripted outcome, the last one for ever (a callable gets clock and timeout)."""

    clock: Clock
    script: list[Outcome]
    signer: Signer | None = None
    prepared: int = 0
    sent: list[Sent] = field(default_factory=list)

    def prepare(self, batch: Batch) -> Prepared:
        self.prepared += 1
        return Prepared(encode_json(batch), JSON, {"Content-Type": JSON})

    def send_prepared(self, prepared: Prepared, timeout: float | None = None) -> PushResult:
        headers = dict(prepared.headers)
        if self.signer is not None:
            headers |= self.signer.sign(prepared.body, prepared.media_type)
        self.sent.append(Sent(prepared.body, headers, timeout))
        outcome = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if callable(outcome):
            outcome = outcome(self.clock, timeout or 0.0)
        if isinstance(outcome, LogOpsError):
            raise outcome
        return outcome

    def send(self, batch: Batch) -> PushResult:
        return self.send_prepared(self.prepare(batch))

    def close(self) -> None:
        pass

    def batch_ids(self) -> list[str]:
        return [orjson.loads(s.body)["batch_id"] for s in self.sent]


def ok(duplicate: bool = False) -> PushResult:
    return PushResult(batch_id="b", accepted=1, duplicate=duplicate)


def overloaded(retry_after: float | None = None) -> Unavailable:
    return Unavailable("too busy", reason="overloaded", retry_after=retry_after)


def no_answer() -> Unavailable:
    return Unavailable("no answer from 127.0.0.1:1", reason="downstream_unavailable")


def rig(
    *script: Outcome, rng: Callable[[], float] = lambda: 1.0, signer: Signer | None = None,
    **kwargs: float,
) -> tuple[RetryingTransport, ScriptedTransport, Clock]:
    clock = Clock()
    inner = ScriptedTransport(clock, list(script), signer)
    retrying = RetryingTransport(
        inner, sleep=clock.sleep, rng=rng, clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )
    return retrying, inner, clock


def batch() -> Batch:
    return Batch(records=[{"msg": "hello"}])


@pytest.mark.parametrize(
    ("rng", "cap", "expected"),
    [
        (1.0, 5.0, [0.1, 0.2, 0.4, 0.8]),
        (0.5, 5.0, [0.05, 0.1, 0.2, 0.4]),
        (1.0, 0.3, [0.1, 0.2, 0.3, 0.3]),
        (0.0, 5.0, [0.0, 0.0, 0.0, 0.0]),
    ],
)
def test_backoff_is_full_jitter_under_an_exponential_ceiling(
    rng: float, cap: float, expected: list[float]
) -> None:
    retrying, inner, clock = rig(overloaded(), rng=lambda: rng, cap_sec=cap)
    with pytest.raises(Unavailable):
        retrying.send(batch())
    assert len(inner.sent) == 5
    assert clock.sleeps == pytest.approx(expected)


def test_random_jitter_stays_between_zero_and_the_ceiling() -> None:
    rng = random.Random(7)
    retrying, _, clock = rig(no_answer(), rng=rng.random, max_attempts=40, deadline_sec=1e6)
    with pytest.raises(Unavailable):
        retrying.send(batch())
    assert len(clock.sleeps) == 39
    for retry, slept in enumerate(clock.sleeps):
        assert 0 <= slept <= backoff_ceiling(retry, 0.1, 5.0)
    assert len(set(clock.sleeps)) == 39  # jittered, not a fixed ladder


@pytest.mark.parametrize("error", [RateLimited("slow down", retry_after=2.0), overloaded(7.0)])
def test_the_servers_retry_after_is_a_floor_even_past_the_cap(error: LogOpsError) -> None:
    retrying, inner, clock = rig(error, ok(), rng=lambda: 0.0)
    assert retrying.send(batch()).accepted == 1
    assert clock.sleeps == [error.retry_after]
    assert len(inner.sent) == 2


def test_a_retry_after_beyond_the_deadline_gives_up_at_once() -> None:
    retrying, inner, clock = rig(RateLimited("slow down", retry_after=40.0), ok())
    with pytest.raises(RateLimited) as info:
        retrying.send(batch())
    assert info.value.retry_after == 40.0  # the caller learns how long to wait
    assert clock.sleeps == [] and len(inner.sent) == 1


def test_attempts_and_waits_stay_within_the_deadline() -> None:
    def slow_no_answer(clock: Clock, timeout: float) -> LogOpsError:
        clock.now += min(timeout, 4.0)
        return no_answer()

    retrying, inner, clock = rig(
        slow_no_answer, base_sec=1.0, cap_sec=5.0, deadline_sec=10.0, max_attempts=10
    )
    started = clock.now
    with pytest.raises(Unavailable) as info:
        retrying.send(batch())
    assert clock.now - started <= 10.0
    timeouts = [s.timeout for s in inner.sent]
    assert timeouts[0] == pytest.approx(10.0)
    assert all(t is not None and 0 < t <= 10.0 for t in timeouts)
    assert timeouts == sorted(timeouts, reverse=True)  # each attempt gets the time left
    assert len(inner.sent) < 10
    assert any("gave up after" in note for note in info.value.__notes__)


def test_spent_attempts_raise_the_last_refusal() -> None:
    last = no_answer()
    retrying, inner, clock = rig(overloaded(), overloaded(), last, max_attempts=3)
    with pytest.raises(Unavailable) as info:
        retrying.send(batch())
    assert info.value is last
    assert (len(inner.sent), len(clock.sleeps)) == (3, 2)


def test_every_attempt_has_the_same_bytes_and_batch_id_and_a_fresh_signature() -> None:
    signer = Signer.from_key(KEY)
    retrying, inner, _ = rig(no_answer(), overloaded(), ok(duplicate=True), signer=signer)
    original = batch()
    assert retrying.send(original).duplicate
    assert original.batch_id == ""  # the caller's batch is not changed
    assert inner.prepared == 1  # encoded once
    ids = inner.batch_ids()
    assert len(ids) == 3 and len(set(ids)) == 1 and len(ids[0]) == 32
    assert len({s.body for s in inner.sent}) == 1
    assert len({s.headers[H_NONCE] for s in inner.sent}) == 3
    verifier = Verifier(KeyRing([KEY]), MemoryNonceStore())
    for sent in inner.sent:  # a reused nonce would be refused here as a replay
        assert verifier.verify(sent.headers, sent.body, sent.headers["Content-Type"]) == KEY
        assert sent.headers[H_SIGNATURE].startswith("v1=") and sent.headers[H_TIMESTAMP]


def test_a_batch_id_given_by_the_caller_is_kept() -> None:
    retrying, inner, _ = rig(no_answer(), ok())
    retrying.send(Batch(records=[{"msg": "x"}], batch_id="mine-1"))
    assert inner.batch_ids() == ["mine-1", "mine-1"]


@pytest.mark.parametrize(
    "error",
    [
        BadRequest("bad body"),
        UnsupportedMediaType("text/html"),
        TooLarge("too big"),
        TooLarge("too many", reason="too_many_records"),
        Unauthenticated("bad signature", reason="bad_signature"),
        Unauthenticated("replayed", reason="replay"),
        Internal("boom"),
    ],
    ids=lambda e: e.reason,
)
def test_client_errors_are_raised_at_once(error: LogOpsError) -> None:
    retrying, inner, clock = rig(error, ok())
    with pytest.raises(type(error)) as info:
        retrying.send(batch())
    assert info.value is error and not is_retryable(error)
    assert (len(inner.sent), clock.sleeps) == (1, [])


class SendOnly:
    """A transport without prepare/send_prepared: each attempt is a plain send."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def send(self, batch: Batch) -> PushResult:
        self.batches.append(batch)
        if len(self.batches) < 3:
            raise no_answer()
        return PushResult(batch_id=batch.batch_id, accepted=len(batch.records))

    def close(self) -> None:
        pass


def test_a_plain_transport_is_retried_with_the_same_batch_id() -> None:
    clock = Clock()
    inner = SendOnly()
    retrying = RetryingTransport(inner, sleep=clock.sleep, rng=lambda: 0.5, clock=clock)
    result = retrying.send(batch())
    assert len({b.batch_id for b in inner.batches}) == 1
    assert result.batch_id == inner.batches[0].batch_id != ""


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"deadline_sec": 0}, {"base_sec": 2.0, "cap_sec": 1.0},
     {"base_sec": -1.0}],
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryingTransport(SendOnly(), **kwargs)  # type: ignore[arg-type]
