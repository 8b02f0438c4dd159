"""One emitter's account during a scenario run: every send's outcome, totals and per second.

:class:`EmitterAccount` is the :data:`~emitters.emit.SendObserver` of one emit loop. For
each send it writes the ``sends.jsonl`` line of the run-folder contract and adds the
records to the totals and to the second the send started in (``timeline.jsonl``).

Outcomes: a gateway's answer is ``accepted``, ``partial`` (some records refused, their
seqs in ``rejected_seqs``), ``rejected`` (all refused), ``spooled`` (202 from the Auth
Gateway) or ``duplicate`` (already stored). A refusal the gateway gave (bad signature,
rate limited, overloaded ...) is ``rejected`` with its reason; no answer at all (a refused
connection, a timeout, ``downstream_unavailable``) is ``failed``: maybe stored, maybe not.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emitters.emit import SendReport
from services.common.errors import LogOpsError

# Retryable refusals that are still an answer from the far end (nothing was stored).
ANSWERED_RETRYABLE = frozenset({"rate_limited", "overloaded"})


@dataclass(slots=True)
class Counts:
    """Records by outcome; ``accepted`` holds every acknowledged record (stored, spooled or
    already stored), ``spooled`` and ``duplicate`` say how many of them were which."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    spooled: int = 0
    duplicate: int = 0
    late: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    failed_by_reason: Counter[str] = field(default_factory=Counter)
    rtts: list[float] = field(default_factory=list)

    def add(self, other: Counts) -> None:
        for name in ("sent", "accepted", "rejected", "failed", "spooled", "duplicate", "late"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rejected_by_reason.update(other.rejected_by_reason)
        self.failed_by_reason.update(other.failed_by_reason)
        self.rtts.extend(other.rtts)


@dataclass(frozen=True, slots=True)
class Outcome:
    outcome: str
    accepted: int
    rejected_seqs: list[int]
    reason: str | None
    rtt_known: bool = True


def classify(report: SendReport) -> Outcome:
    """What a send came to, in the terms of sends.jsonl."""
    first, count = report.first_seq, report.count
    if report.error is not None:
        return _classify_error(report.error, first, count)
    res = report.result
    assert res is not None
    if res.spooled:
        return Outcome("spooled", count, [], None)
    if res.duplicate:
        return Outcome("duplicate", count, [], None)
    rejected = sorted(first + r.index for r in res.rejections if 0 <= r.index < count)
    reason = res.rejections[0].reason if res.rejections else None
    if res.accepted + res.rejected < count and not rejected:
        # A line transport got only part of the batch out: the rest is unknown.
        return Outcome("failed", res.accepted, [], "partly_sent")
    if res.rejected and res.accepted:
        return Outcome("partial", res.accepted, rejected, reason)
    if res.rejected:
        return Outcome("rejected", 0, rejected or list(range(first, first + count)), reason)
    return Outcome("accepted", count, [], None)


def _classify_error(error: BaseException, first: int, count: int) -> Outcome:
    every = list(range(first, first + count))
    if isinstance(error, LogOpsError):
        if not error.mapping.retryable or error.reason in ANSWERED_RETRYABLE:
            return Outcome("rejected", 0, every, error.reason)
        return Outcome("failed", 0, [], error.reason, rtt_known=False)
    if isinstance(error, ValueError):
        return Outcome("rejected", 0, every, "invalid_record")
    return Outcome("failed", 0, [], type(error).__name__, rtt_known=False)


class EmitterAccount:
    """Counts one emitter's sends and writes their lines through ``write_send``."""

    def __init__(
        self,
        name: str,
        stream: str,
        start_wall: float,
        late_after_sec: float,
        write_send: Callable[[dict[str, Any]], None],
        on_send: Callable[[str, Counts], None] | None = None,
    ) -> None:
        self.name, self.stream = name, stream
        self.start_wall = start_wall
        self.late_after_sec = late_after_sec
        self._write = write_send
        self._on_send = on_send
        self._lock = threading.Lock()
        self.total = Counts()
        self.seconds: dict[int, Counts] = {}

    def __call__(self, report: SendReport) -> None:
        out = classify(report)
        rtt_ms = round(report.rtt_sec * 1000.0, 3) if out.rtt_known else None
        self._write({
            "t": round(report.started, 6),
            "rtt_ms": rtt_ms,
            "emitter": self.name,
            "stream": self.stream,
            "first_seq": report.first_seq,
            "count": report.count,
            "outcome": out.outcome,
            "rejected_seqs": out.rejected_seqs,
            "reason": out.reason,
        })
        one = self._counts(report, out, rtt_ms)
        second = max(0, int(report.started - self.start_wall))
        with self._lock:
            self.total.add(one)
            self.seconds.setdefault(second, Counts()).add(one)
        if self._on_send is not None:
            self._on_send(self.name, one)

    def _counts(self, report: SendReport, out: Outcome, rtt_ms: float | None) -> Counts:
        one = Counts(sent=report.count)
        if report.lateness_sec > self.late_after_sec:
            one.late = report.count
        if out.outcome == "failed":
            one.accepted = out.accepted
            one.failed = report.count - out.accepted
            one.failed_by_reason[out.reason or "unknown"] += one.failed
        else:
            one.rejected = len(out.rejected_seqs)
            one.accepted = report.count - one.rejected
            if one.rejected:
                one.rejected_by_reason[out.reason or "unknown"] += one.rejected
        if out.outcome == "spooled":
            one.spooled = report.count
        elif out.outcome == "duplicate":
            one.duplicate = report.count
        if rtt_ms is not None:
            one.rtts.append(rtt_ms)
        return one

    def snapshot(self) -> Counts:
        with self._lock:
            copy = Counts()
            copy.add(self.total)
            return copy

    def second(self, k: int) -> Counts:
        with self._lock:
            return self.seconds.get(k, Counts())


def percentiles(values: list[float]) -> dict[str, float] | None:
    """p50, p95 and p99 by nearest rank, or None without values."""
    if not values:
        return None
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99)}
