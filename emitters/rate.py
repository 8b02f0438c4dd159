"""The open-model rate engine: when each event is due, how to wait for it, how late it was.

A :class:`Schedule` says at what time (seconds after the start) event ``i`` is due. It is
made of segments, each with a duration and a rate that is constant or changes linearly
(a ramp), so the same object describes ``--rate 1000 --count N``, a scenario's
``stages: [{duration_sec, eps}]`` and its ``schedule:`` (start after, ramp up, hold,
ramp down, jitter). The number of events due by time ``t`` is the integral of the rate,
``N(t)``; event ``i`` is due when ``N(t) = i``, so event 0 is due at the start.

Times are absolute: nothing that happens while sending moves them. A slow send makes
the events behind it late (see :class:`Lateness`), it never slows the schedule (the
"coordinated omission" that closed-loop generators fall into).
"""

from __future__ import annotations

import bisect
import math
import random
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

MAX_EPS = 50_000.0
# Jitter changes the rate once per slice of this many seconds.
JITTER_SLICE_SEC = 1.0


@dataclass(frozen=True, slots=True)
class Segment:
    """``duration`` seconds during which the rate goes linearly from ``start_eps`` to
    ``end_eps`` (equal for a constant rate, both 0 for a pause)."""

    duration: float
    start_eps: float
    end_eps: float

    def events(self) -> float:
        """How many events fall in the segment (the area under the rate)."""
        return (self.start_eps + self.end_eps) / 2.0 * self.duration

    def offset_of(self, n: float) -> float:
        """Seconds into the segment at which ``n`` of its events have fallen."""
        r0 = self.start_eps
        if n <= 0.0:
            return 0.0
        slope = (self.end_eps - r0) / self.duration
        if slope == 0.0:
            return n / r0
        # The root of slope/2 t^2 + r0 t - n = 0, in the form that does not cancel.
        return 2.0 * n / (r0 + math.sqrt(max(0.0, r0 * r0 + 2.0 * slope * n)))

    def count_at(self, t: float) -> float:
        """Events fallen ``t`` seconds into the segment."""
        t = min(max(t, 0.0), self.duration)
        slope = (self.end_eps - self.start_eps) / self.duration
        return self.start_eps * t + slope * t * t / 2.0

    def rate_at(self, t: float) -> float:
        return self.start_eps + (self.end_eps - self.start_eps) * (t / self.duration)


def _check_eps(eps: float, what: str = "rate") -> float:
    if not (math.isfinite(eps) and 0.0 <= eps <= MAX_EPS):
        raise ValueError(f"{what} must be between 0 and {MAX_EPS:.0f} events per second")
    return float(eps)


class Schedule:
    """When each event is due: :meth:`due` (seconds after the start), :meth:`due_by`.

    ``count`` caps the number of events; without it the schedule ends with its last
    segment, and a schedule with neither (an endless constant rate) runs until stopped.
    """

    def __init__(self, segments: Sequence[Segment], count: int | None = None) -> None:
        if count is not None and count < 0:
            raise ValueError("count must be >= 0")
        self.segments = tuple(s for s in segments if s.duration > 0)
        if not self.segments:
            raise ValueError("a schedule needs at least one segment with a duration")
        for seg in self.segments:
            _check_eps(seg.start_eps)
            _check_eps(seg.end_eps)
        self._starts: list[float] = []  # time at which each segment starts
        self._counts: list[float] = []  # events fallen before each segment
        t = n = 0.0
        for seg in self.segments:
            self._starts.append(t)
            self._counts.append(n)
            t += seg.duration
            n += seg.events()
        self.length_sec = t
        self._events = n
        ends = math.isfinite(t)
        # Events i with N(due) = i < N(end): ceil, less a hair for float noise.
        by_time = math.ceil(n - 1e-9) if ends else None
        if by_time is None and count is None:
            self.total: int | None = None
        else:
            self.total = min(x for x in (by_time, count) if x is not None)

    # -- building ---------------------------------------------------------------------

    @classmethod
    def constant(
        cls, eps: float, count: int | None = None, duration: float | None = None
    ) -> Schedule:
        """``eps`` events per second, for ``count`` events or ``duration`` seconds (or both,
        whichever ends first; neither: until stopped)."""
        if _check_eps(eps) <= 0:
            raise ValueError("rate must be above 0")
        length = math.inf if duration is None else float(duration)
        if length <= 0:
            raise ValueError("duration must be above 0")
        return cls([Segment(length, eps, eps)], count)

    @classmethod
    def from_stages(
        cls,
        stages: Sequence[Mapping[str, float]],
        jitter_pct: float = 0.0,
        seed: int | None = None,
    ) -> Schedule:
        """k6-style stages: ``[{"duration_sec": 10, "eps": 100}, ...]``, each a constant rate
        (add ``"ramp": True`` to go linearly from the previous stage's rate instead)."""
        segments: list[Segment] = []
        previous = 0.0
        for index, stage in enumerate(stages):
            try:
                duration, eps = float(stage["duration_sec"]), float(stage["eps"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"stage {index} needs numeric duration_sec and eps") from exc
            if not duration > 0:
                raise ValueError(f"stage {index}: duration_sec must be above 0")
            _check_eps(eps, f"stage {index}: eps")
            start = previous if stage.get("ramp") else eps
            segments.append(Segment(duration, start, eps))
            previous = eps
        return cls(jittered(segments, jitter_pct, seed))

    @classmethod
    def from_profile(
        cls,
        eps: float,
        duration_sec: float,
        *,
        start_after_sec: float = 0.0,
        ramp_up_sec: float = 0.0,
        stop_after_sec: float | None = None,
        ramp_down_sec: float = 0.0,
        jitter_pct: float = 0.0,
        seed: int | None = None,
    ) -> Schedule:
        """A scenario emitter's ``schedule:``: silent for ``start_after_sec``, ramps from 0 to
        ``eps`` over ``ramp_up_sec``, holds, ramps down to 0 over ``ramp_down_sec`` ending at
        ``stop_after_sec`` (default: the scenario's ``duration_sec``), then silent."""
        _check_eps(eps)
        stop = duration_sec if stop_after_sec is None else min(stop_after_sec, duration_sec)
        hold = stop - start_after_sec - ramp_up_sec - ramp_down_sec
        if min(start_after_sec, ramp_up_sec, ramp_down_sec) < 0 or hold < 0:
            raise ValueError(
                "schedule: start_after_sec + ramp_up_sec + ramp_down_sec must fit before "
                "stop_after_sec (or duration_sec), and none may be negative"
            )
        segments = [
            Segment(start_after_sec, 0.0, 0.0),
            Segment(ramp_up_sec, 0.0, eps),
            Segment(hold, eps, eps),
            Segment(ramp_down_sec, eps, 0.0),
            Segment(duration_sec - stop, 0.0, 0.0),
        ]
        return cls(jittered(segments, jitter_pct, seed))

    # -- reading ----------------------------------------------------------------------

    def _segment(self, t: float) -> int:
        return max(0, bisect.bisect_right(self._starts, t) - 1)

    def expected(self, t: float) -> float:
        """``N(t)``: events fallen by ``t`` seconds, as a real number (the schedule's own
        account of rate x elapsed, integrated over its shape)."""
        if t <= 0:
            return 0.0
        k = self._segment(t)
        return self._counts[k] + self.segments[k].count_at(t - self._starts[k])

    def due_by(self, t: float) -> int:
        """How many events are due at or before ``t`` seconds (event 0 is due at 0)."""
        n = math.floor(self.expected(t) + 1e-9) + 1 if t >= 0 else 0
        return n if self.total is None else min(n, self.total)

    def due(self, i: int) -> float:
        """Seconds after the start at which event ``i`` is due."""
        if self.total is not None and i >= self.total:
            raise IndexError(f"the schedule has {self.total} events")
        return self.time_of(float(i))

    def time_of(self, n: float) -> float:
        """Seconds after the start at which ``N(t)`` reaches ``n``."""
        # The last segment starting at or before n: a pause before it holds no events.
        k = max(0, bisect.bisect_right(self._counts, n) - 1)
        seg = self.segments[k]
        if seg.events() <= 0.0 or n > self._events + 1e-9:
            raise IndexError(f"{n} events fall beyond the schedule")
        return self._starts[k] + seg.offset_of(n - self._counts[k])

    def done_sec(self) -> float | None:
        """When the schedule's time for its last event is over: when ``N(t)`` reaches a
        ``count`` (N events at rate r: N/r), else the end of the last segment (``--duration
        S``: S, silent tail included). None without an end."""
        if self.total is None:
            return None
        if self.total < self._events - 1e-9:
            return self.time_of(float(self.total))
        return self.length_sec

    def due_times(self, start: int = 0) -> Iterator[float]:
        """``due(start)``, ``due(start + 1)``, ... until the schedule ends."""
        i = start
        while self.total is None or i < self.total:
            yield self.due(i)
            i += 1

    def rate_at(self, t: float) -> float:
        """The target rate at ``t`` seconds (0 past the end)."""
        if t < 0 or t >= self.length_sec:
            return 0.0
        k = self._segment(t)
        return self.segments[k].rate_at(t - self._starts[k])

    def end_sec(self) -> float | None:
        """When the last event is due, or None when the schedule has no end."""
        if self.total is None:
            return None
        return self.due(self.total - 1) if self.total else 0.0


def jittered(segments: Sequence[Segment], jitter_pct: float, seed: int | None) -> list[Segment]:
    """``segments`` cut into slices of :data:`JITTER_SLICE_SEC`, each slice's rate times a
    factor drawn uniformly from ``1 +- jitter_pct/100`` (seeded: the same shape each run)."""
    if not 0 <= jitter_pct <= 100:
        raise ValueError("jitter_pct must be between 0 and 100")
    if jitter_pct == 0:
        return list(segments)
    rng = random.Random(seed)
    span = jitter_pct / 100.0
    out: list[Segment] = []
    for seg in segments:
        if not math.isfinite(seg.duration):
            raise ValueError("an endless segment cannot be jittered")
        t = 0.0
        while t < seg.duration - 1e-12:
            d = min(JITTER_SLICE_SEC, seg.duration - t)
            factor = 1.0 + rng.uniform(-span, span)
            r0, r1 = seg.rate_at(t), seg.rate_at(t + d)
            out.append(Segment(d, min(MAX_EPS, r0 * factor), min(MAX_EPS, r1 * factor)))
            t += d
    return out


# -- waiting --------------------------------------------------------------------------

# Event.wait overshoots by tens of microseconds on Linux; the last stretch is spun.
SPIN_SEC = 0.0003


def wait_until(deadline: float, stop: threading.Event, spin_sec: float = SPIN_SEC) -> bool:
    """Wait until ``time.monotonic()`` reaches ``deadline``: a coarse ``stop.wait`` then a
    short spin. Returns False at once when ``stop`` is set (a signal handler sets it)."""
    clock = time.monotonic
    left = deadline - clock()
    if left > spin_sec and stop.wait(left - spin_sec):
        return False
    while clock() < deadline:
        if stop.is_set():
            return False
    return not stop.is_set()


# -- lateness -------------------------------------------------------------------------

# Histogram buckets from 1 us to ~1000 s, 20 per decade (each ~12 % wide).
_EDGES = tuple(10.0 ** (e / 20.0) * 1e-6 for e in range(0, 9 * 20 + 1))


class Lateness:
    """How late events went out: the late count (beyond ``threshold_sec``), the maximum,
    and percentiles from a log-bucketed histogram (to about 12 %)."""

    def __init__(self, threshold_sec: float = 0.010) -> None:
        self.threshold_sec = threshold_sec
        self.late = 0
        self.count = 0
        self.max_sec = 0.0
        self._hist = [0] * (len(_EDGES) + 1)

    def add(self, lateness_sec: float, n: int = 1) -> None:
        """``n`` events went out ``lateness_sec`` behind their planned time (<= 0: on time)."""
        self.count += n
        if lateness_sec <= 0:
            self._hist[0] += n
            return
        if lateness_sec > self.threshold_sec:
            self.late += n
        self.max_sec = max(self.max_sec, lateness_sec)
        self._hist[bisect.bisect_left(_EDGES, lateness_sec)] += n

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0..1) of lateness in seconds, as a bucket's upper edge."""
        if self.count == 0:
            return 0.0
        rank = q * self.count
        seen = 0
        for index, n in enumerate(self._hist):
            seen += n
            if seen >= rank and n:
                return 0.0 if index == 0 else min(self.max_sec, _EDGES[min(index, len(_EDGES) - 1)])
        return self.max_sec

    def to_dict(self) -> dict[str, float | int]:
        return {
            "late": self.late,
            "late_threshold_ms": self.threshold_sec * 1000.0,
            "lateness_max_ms": round(self.max_sec * 1000.0, 3),
            "lateness_p50_ms": round(self.percentile(0.50) * 1000.0, 3),
            "lateness_p95_ms": round(self.percentile(0.95) * 1000.0, 3),
            "lateness_p99_ms": round(self.percentile(0.99) * 1000.0, 3),
        }
