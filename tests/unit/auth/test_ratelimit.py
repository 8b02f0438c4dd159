"""GCRA rate limits in memory, on a settable clock: bursts, steady rates, what the headers say."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.auth.ratelimit import TOLERANCE_SEC, Decision, MemoryRateLimiter, Rate

ROOT = Path(__file__).resolve().parents[3]


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(
    clock: Clock, requests: Rate | None = None, global_records: Rate | None = None
) -> MemoryRateLimiter:
    return MemoryRateLimiter(clock=clock, requests=requests, global_records=global_records)


def test_a_fresh_key_sends_its_burst_at_once_then_waits_one_interval() -> None:
    clock = Clock()
    lim = limiter(clock)
    rate = Rate(per_sec=2.0, burst=10)
    assert lim.check("k", 10, rate) == Decision(True, 10, 0, 5.0, 0.0, "records", 5.0)
    denied = lim.check("k", 1, rate)
    assert denied == Decision(False, 10, 0, 5.0, 0.5, "records", 5.0)
    clock.now += 0.5
    assert lim.check("k", 1, rate).allowed


def test_steady_rate_admits_one_cell_per_interval_and_no_more() -> None:
    clock = Clock()
    lim = limiter(clock)
    rate = Rate(per_sec=4.0, burst=1)
    admitted = 0
    for step in range(400):  # 10 s in 25 ms steps
        clock.now = 1000.0 + step * 0.025
        admitted += lim.check("k", 1, rate).allowed
    assert admitted == 40


def test_remaining_and_reset_follow_the_refill() -> None:
    clock = Clock()
    lim = limiter(clock)
    rate = Rate(per_sec=10.0, burst=100)
    first = lim.check("k", 30, rate)
    assert first.remaining == 70
    assert first.reset_sec == pytest.approx(3.0)
    clock.now += 1.0  # 10 cells back
    second = lim.check("k", 5, rate)
    assert second.remaining == 75
    assert second.reset_sec == pytest.approx(2.5)
    clock.now += 2.5
    assert lim.check("k", 0, rate).remaining == 100


def test_a_batch_larger_than_the_burst_never_passes_and_costs_nothing() -> None:
    clock = Clock()
    lim = limiter(clock)
    rate = Rate(per_sec=1000.0, burst=50)
    too_big = lim.check("k", 51, rate)
    assert not too_big.allowed and too_big.exceeds_burst
    assert math.isinf(too_big.retry_after_sec)
    assert (too_big.limit, too_big.remaining) == (50, 50)
    clock.now += 3600
    assert lim.check("k", 51, rate).exceeds_burst
    assert lim.check("k", 50, rate).allowed


def test_a_denied_request_does_not_consume() -> None:
    clock = Clock()
    lim = limiter(clock)
    rate = Rate(per_sec=1.0, burst=10)
    assert lim.check("k", 6, rate).allowed
    denied = lim.check("k", 5, rate)
    assert not denied.allowed and not denied.exceeds_burst
    assert denied.remaining == 4
    assert denied.retry_after_sec == pytest.approx(1.0)
    assert lim.check("k", 4, rate).allowed


def test_requests_limit_denies_without_counting_the_records() -> None:
    clock = Clock()
    lim = limiter(clock, requests=Rate(per_sec=1.0, burst=2))
    records = Rate(per_sec=1.0, burst=25)
    assert lim.check("k", 10, records).allowed
    assert lim.check("k", 10, records).allowed
    denied = lim.check("k", 5, records)  # the 5 records would fit; the third request not
    assert not denied.allowed
    assert (denied.limit, denied.remaining) == (2, 0)
    assert denied.retry_after_sec == pytest.approx(1.0)
    clock.now += 1.0
    assert lim.check("k", 6, records).allowed  # 5 left + 1 refilled: the 5 were not counted


def test_global_cap_is_shared_by_keys_and_all_or_nothing() -> None:
    clock = Clock()
    lim = limiter(clock, global_records=Rate(per_sec=10.0, burst=100))
    own = Rate(per_sec=1.0, burst=80)
    assert lim.check("a", 80, own).allowed
    denied = lim.check("b", 30, own)
    assert not denied.allowed
    assert (denied.limit, denied.remaining) == (100, 20)
    assert denied.retry_after_sec == pytest.approx(1.0)
    assert lim.check("b", 20, own).allowed
    clock.now += 8.0  # global: 80 back; b: 60 left + 8 if the denied 30 were not counted
    assert lim.check("b", 68, own).allowed


def test_global_burst_smaller_than_a_batch_is_a_never_passing_batch() -> None:
    lim = limiter(Clock(), global_records=Rate(per_sec=10.0, burst=100))
    decision = lim.check("k", 150, Rate(per_sec=1000.0, burst=1000))
    assert decision.exceeds_burst and decision.limit == 100


def test_records_and_requests_decisions_pick_the_tighter_share() -> None:
    lim = limiter(Clock(), requests=Rate(per_sec=1.0, burst=4))
    tight_requests = lim.check("a", 10, Rate(per_sec=100.0, burst=1000))
    assert (tight_requests.limit, tight_requests.remaining) == (4, 3)
    tight_records = lim.check("b", 900, Rate(per_sec=100.0, burst=1000))
    assert (tight_records.limit, tight_records.remaining) == (1000, 100)


def test_keys_are_independent() -> None:
    lim = limiter(Clock())
    rate = Rate(per_sec=1.0, burst=5)
    assert lim.check("a", 5, rate).allowed
    assert not lim.check("a", 1, rate).allowed
    assert lim.check("b", 5, rate).allowed


def test_keys_idle_past_their_full_reset_are_forgotten() -> None:
    clock = Clock()
    lim = MemoryRateLimiter(clock=clock, requests=Rate(1.0, 5), sweep_interval_sec=1.0)
    lim.check("idle", 10, Rate(per_sec=1.0, burst=10))
    assert len(lim) == 2
    clock.now += 10.0 + 1.0  # past the records' reset (10 s) and the request's (1 s)
    lim.check("busy", 1, Rate(per_sec=1.0, burst=10))
    assert len(lim) == 2  # busy's two limits; idle's are gone
    assert lim.check("idle", 10, Rate(per_sec=1.0, burst=10)).allowed


def test_zero_records_costs_only_a_request_and_negative_is_refused() -> None:
    lim = limiter(Clock())
    rate = Rate(per_sec=1.0, burst=3)
    assert lim.check("k", 0, rate) == Decision(True, 3, 3, 0.0, 0.0, "records", 3.0)
    with pytest.raises(ValueError, match="negative"):
        lim.check("k", -1, rate)


@pytest.mark.parametrize(("per_sec", "burst"), [(0.0, 1), (-1.0, 1), (math.inf, 1), (1.0, 0)])
def test_rates_that_make_no_sense_are_refused(per_sec: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate"):
        Rate(per_sec=per_sec, burst=burst)


def test_concurrent_checks_never_admit_more_than_the_burst() -> None:
    lim = limiter(Clock(), requests=Rate(per_sec=1.0, burst=1000))
    rate = Rate(per_sec=1.0, burst=500)
    admitted: list[int] = []
    barrier = threading.Barrier(8)

    def hammer() -> None:
        barrier.wait()
        mine = sum(lim.check("k", 1, rate).allowed for _ in range(200))
        admitted.append(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(admitted) == 500


def test_importing_the_limits_does_not_load_the_redis_client() -> None:
    code = (
        "import json, sys; import services.auth.ratelimit, services.common.nonces; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert not [m for m in json.loads(out.stdout) if m == "redis" or m.startswith("redis.")]


# One request: (seconds since the previous one, key, records).
_requests = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=2.0, allow_nan=False),
        st.sampled_from(["a", "b"]),
        st.integers(min_value=0, max_value=12),
    ),
    min_size=1,
    max_size=60,
)
_rates = st.builds(
    Rate,
    per_sec=st.floats(min_value=0.5, max_value=50.0),
    burst=st.integers(min_value=1, max_value=20),
)


def _worst_window_excess(admitted: list[tuple[float, int]], rate: Rate) -> float:
    """Largest (cells admitted in [t_i, t_j]) - (burst + per_sec * (t_j - t_i))."""
    worst = -math.inf
    for i, (start, _) in enumerate(admitted):
        cells = 0
        for end, cost in admitted[i:]:
            cells += cost
            allowance = rate.burst + rate.per_sec * (end - start + TOLERANCE_SEC)
            worst = max(worst, cells - allowance)
    return worst


@settings(max_examples=200, deadline=None)
@given(requests=_requests, records=_rates, per_request=_rates, global_records=_rates)
def test_no_window_ever_admits_more_than_burst_plus_rate_times_window(
    requests: list[tuple[float, str, int]], records: Rate, per_request: Rate, global_records: Rate
) -> None:
    clock = Clock()
    lim = limiter(clock, requests=per_request, global_records=global_records)
    by_key: dict[str, list[tuple[float, int]]] = {"a": [], "b": []}
    calls: dict[str, list[tuple[float, int]]] = {"a": [], "b": []}
    every: list[tuple[float, int]] = []
    for gap, key, n in requests:
        clock.now += gap
        decision = lim.check(key, n, records)
        assert decision.exceeds_burst == (n > records.burst or n > global_records.burst)
        if decision.allowed:
            by_key[key].append((clock.now, n))
            calls[key].append((clock.now, 1))
            every.append((clock.now, n))
    for key in by_key:
        assert _worst_window_excess(by_key[key], records) <= 1e-9
        assert _worst_window_excess(calls[key], per_request) <= 1e-9
    assert _worst_window_excess(every, global_records) <= 1e-9


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=3.0, allow_nan=False), max_size=30),
    rate=_rates,
)
def test_remaining_and_retry_after_tell_the_truth(gaps: list[float], rate: Rate) -> None:
    """``remaining`` cells pass and one more does not; a denied request passes after
    ``retry_after_sec``; ``reset_sec`` later the whole burst is back."""
    clock = Clock()
    lim = limiter(clock)
    for gap in gaps:
        clock.now += gap
        remaining = lim.check("k", 0, rate).remaining
        if remaining < rate.burst:
            denied = lim.check("k", remaining + 1, rate)
            assert not denied.allowed
            clock.now += denied.retry_after_sec
            assert lim.check("k", remaining + 1, rate).allowed
        else:
            after = lim.check("k", remaining, rate)
            assert after.allowed and after.remaining == 0
            clock.now += after.reset_sec
            assert lim.check("k", 0, rate).remaining == rate.burst


def test_a_keys_own_requests_rate_replaces_the_gateways() -> None:
    clock = Clock()
    lim = limiter(clock, requests=Rate(100.0, 100))
    records = Rate(1000.0, 1000)
    own = Rate(1.0, 1)
    first = lim.check("slow", 1, records, own)
    assert first.allowed and (first.policy, first.limit, first.remaining) == ("requests", 1, 0)
    denied = lim.check("slow", 1, records, own)
    assert (denied.allowed, denied.policy, denied.retry_after_sec) == (False, "requests", 1.0)
    # Keys without their own keep the gateway's requests limit.
    assert all(lim.check("other", 1, records).allowed for _ in range(100))
    assert not lim.check("other", 1, records).allowed


def test_each_key_has_its_own_requests_limit() -> None:
    lim = limiter(Clock(), requests=Rate(per_sec=1.0, burst=2))
    records = Rate(per_sec=100.0, burst=100)
    assert lim.check("a", 1, records).allowed
    assert lim.check("a", 1, records).allowed
    assert not lim.check("a", 1, records).allowed
    assert lim.check("b", 1, records).allowed


def test_the_limit_that_binds_is_named_for_ratelimit_policy() -> None:
    """RateLimit-Policy names the limit: "records", "requests" or "global", whatever the
    key is called (a key id may hold a colon)."""
    lim = limiter(Clock(), global_records=Rate(per_sec=2.0, burst=4))
    records = Rate(per_sec=100.0, burst=100)
    shared = lim.check("team:a", 3, records)
    assert (shared.allowed, shared.policy, shared.limit, shared.window_sec) == (
        True,
        "global",
        4,
        2.0,
    )
    denied = lim.check("team:b", 2, records)
    assert (denied.allowed, denied.policy) == (False, "global")
    own = limiter(Clock()).check("team:a", 60, Rate(per_sec=10.0, burst=80))
    assert (own.policy, own.limit, own.remaining, own.window_sec) == ("records", 80, 20, 8.0)
