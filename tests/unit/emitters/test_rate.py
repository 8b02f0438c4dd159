"""The rate engine's schedule: when each event is due, how many by a time, and lateness."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emitters.rate import MAX_EPS, Lateness, Schedule, Segment, wait_until

STAGES = st.lists(
    st.fixed_dictionaries(
        {
            "duration_sec": st.floats(0.1, 20.0),
            "eps": st.floats(0.0, 5_000.0),
            "ramp": st.booleans(),
        }
    ),
    min_size=1,
    max_size=5,
)


def test_a_constant_rate_puts_event_i_at_i_over_rate() -> None:
    sched = Schedule.constant(200.0, count=1000)
    assert sched.total == 1000
    assert [sched.due(i) for i in (0, 1, 2, 999)] == [0.0, 0.005, 0.01, 4.995]
    assert sched.end_sec() == 4.995
    with pytest.raises(IndexError):
        sched.due(1000)


def test_due_by_counts_events_at_or_before_a_time() -> None:
    sched = Schedule.constant(10.0, count=50)
    assert sched.due_by(-0.1) == 0
    assert sched.due_by(0.0) == 1  # event 0 is due at the start
    assert sched.due_by(0.0999) == 1
    assert sched.due_by(0.1) == 2
    assert sched.due_by(1.0) == 11
    assert sched.due_by(100.0) == 50  # capped by the count


def test_a_duration_holds_rate_times_duration_events() -> None:
    assert Schedule.constant(1000.0, duration=2.5).total == 2500
    assert Schedule.constant(3.0, duration=1.0).total == 3
    # Whichever ends first.
    assert Schedule.constant(1000.0, count=10, duration=2.0).total == 10
    assert Schedule.constant(10.0, count=100, duration=2.0).total == 20
    assert Schedule.constant(10.0).total is None


@pytest.mark.parametrize("eps", [0.0, -1.0, MAX_EPS + 1, math.nan, math.inf])
def test_rates_outside_1_to_50000_are_refused(eps: float) -> None:
    with pytest.raises(ValueError):
        Schedule.constant(eps, count=1)


def test_stages_hold_each_rate_for_its_duration() -> None:
    sched = Schedule.from_stages(
        [
            {"duration_sec": 2, "eps": 100},
            {"duration_sec": 1, "eps": 0},
            {"duration_sec": 3, "eps": 50},
        ]
    )
    assert sched.total == 200 + 150
    assert sched.expected(2.0) == 200
    assert sched.expected(3.0) == 200  # the pause
    assert sched.due(199) == pytest.approx(1.99)
    assert sched.due(200) == pytest.approx(3.0)  # the first event after the pause
    assert sched.rate_at(2.5) == 0.0
    assert sched.rate_at(4.0) == 50.0


def test_a_profile_ramps_up_holds_and_ramps_down() -> None:
    sched = Schedule.from_profile(
        100.0,
        20.0,
        start_after_sec=2.0,
        ramp_up_sec=4.0,
        stop_after_sec=16.0,
        ramp_down_sec=4.0,
    )
    # 0 for 2 s, 0 -> 100 over 4 s (200), 100 for 6 s (600), 100 -> 0 over 4 s (200).
    assert sched.total == 1000
    assert sched.due(0) == pytest.approx(2.0)
    assert sched.rate_at(4.0) == pytest.approx(50.0)
    assert sched.expected(6.0) == pytest.approx(200.0)
    assert sched.expected(20.0) == pytest.approx(1000.0)
    # On the ramp, event n is due where 100/4 * t^2 / 2 = n.
    assert sched.due(50) == pytest.approx(2.0 + math.sqrt(50 * 2 / 25.0))
    with pytest.raises(ValueError):
        Schedule.from_profile(100.0, 10.0, start_after_sec=6.0, ramp_up_sec=5.0)


def test_jitter_is_seeded_and_stays_within_its_bounds() -> None:
    def build(seed: int) -> Schedule:
        return Schedule.from_stages([{"duration_sec": 30, "eps": 1000}], jitter_pct=20, seed=seed)

    a, b, c = build(1), build(1), build(2)
    assert a.segments == b.segments
    assert a.segments != c.segments
    assert len(a.segments) == 30
    assert all(800.0 <= s.start_eps <= 1200.0 for s in a.segments)
    assert a.total is not None and 24_000 <= a.total <= 36_000


@settings(max_examples=60, deadline=None)
@given(STAGES, st.data())
def test_every_event_is_due_in_order_and_counted_by_due_by(
    stages: list[dict[str, float]], data: st.DataObject
) -> None:
    if sum(s["duration_sec"] * s["eps"] for s in stages) < 2:
        return
    sched = Schedule.from_stages(stages)
    assert sched.total is not None and sched.total >= 1
    i = data.draw(st.integers(0, sched.total - 1))
    t = sched.due(i)
    assert 0.0 <= t <= sched.length_sec + 1e-6
    assert sched.due_by(t) >= i + 1
    if i + 1 < sched.total:
        nxt = sched.due(i + 1)
        assert nxt >= t
        if nxt - t > 1e-6:
            assert sched.due_by((t + nxt) / 2) == i + 1
    # The schedule's own account: due_by(end) is every event.
    assert sched.due_by(sched.length_sec) == sched.total


@given(st.floats(0.0, 10.0), st.floats(0.001, 10_000.0), st.floats(0.0, 10_000.0))
def test_a_ramp_segment_inverts_its_own_count(t: float, r0: float, r1: float) -> None:
    seg = Segment(10.0, r0, r1)
    n = seg.count_at(t)
    assert seg.offset_of(n) == pytest.approx(t, rel=1e-6, abs=1e-6)


def test_lateness_counts_late_events_and_reads_percentiles() -> None:
    late = Lateness(threshold_sec=0.010)
    late.add(0.0, 90)  # on time
    late.add(0.005, 5)  # behind, within the threshold
    late.add(0.250, 5)
    assert late.late == 5
    assert late.count == 100
    assert late.max_sec == 0.250
    assert late.percentile(0.5) == 0.0
    assert late.percentile(0.92) == pytest.approx(0.005, rel=0.13)
    assert late.percentile(0.99) == pytest.approx(0.250, rel=0.13)
    assert late.to_dict()["late"] == 5


def test_wait_until_returns_at_once_when_stopped() -> None:
    stop = threading.Event()
    stop.set()
    assert wait_until(float("inf"), stop) is False
    assert wait_until(0.0, threading.Event()) is True


def test_a_run_lasts_its_count_over_its_rate_or_its_duration() -> None:
    assert Schedule.constant(10.0, count=25).done_sec() == pytest.approx(2.5)
    assert Schedule.constant(10.0, duration=3.0).done_sec() == 3.0
    assert Schedule.constant(3.0, duration=1.1).done_sec() == 1.1
    assert Schedule.constant(10.0).done_sec() is None
    tail = Schedule.from_profile(10.0, 10.0, stop_after_sec=4.0)
    assert (tail.total, tail.done_sec()) == (40, 10.0)
