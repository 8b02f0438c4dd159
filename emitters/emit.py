"""The emit loop: a format's events, paced by a :class:`Schedule`, through one transport.

The loop wakes only when a batch is due to go: when ``batch_size`` events have fallen due,
or ``linger_sec`` after the first event of a batch fell due, whichever comes first (so a
low rate still flows and a high one goes in full batches). On waking it renders the due
events (at most a batch) and sends them; a send is synchronous. A send that takes longer
than the gap to the next batch makes that batch late: it goes at once, with its lateness
(send start minus planned time) counted, and the schedule itself never moves, so after a
stall the loop catches up with the events that fell due meanwhile (open model).

Each event's ``ts`` is its due time on the wall clock (the start of the run plus its
offset), so a late event still says when it was meant to happen; ``seq`` is its index
from ``first_seq`` (0 by default), one stream per emitter run.

The counters are a plain :class:`EmitResult` that the scenario runner reads as well;
``progress`` (called about once a second) shows them live.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from clients.transports import Transport
from emitters.rate import Lateness, Schedule, wait_until
from emitters.source import EventSource
from services.common.errors import LogOpsError
from services.common.model import Batch, PushResult, Record

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EmitOptions:
    """How the loop batches and what it names: ``batched`` is True for transports whose
    records carry their own fields (grpc, http), ``structured`` sends a JSON format's
    records as fields rather than as a ``raw`` line."""

    emitter: str
    batch_size: int = 100
    linger_sec: float = 0.2
    late_after_sec: float = 0.010
    batched: bool = True
    structured: bool = False
    scenario_id: str = ""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.linger_sec < 0 or self.late_after_sec < 0:
            raise ValueError("linger_sec and late_after_sec must be >= 0")


@dataclass(slots=True)
class EmitResult:
    """The account of one emitter run. ``sent`` counts records handed to the transport;
    each ends ``accepted``, ``rejected`` (refused by the far end, or by the transport
    itself, with reasons in ``rejections``), ``failed`` (no answer after the retries,
    reasons in ``errors``) or ``spooled`` (taken by the Auth Gateway's durable spool for
    later delivery). ``due`` is what the schedule had due when the run ended."""

    run_id: str
    stream: str
    emitter: str
    format: str
    transport: str
    first_seq: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    spooled: int = 0
    duplicates: int = 0
    retries: int = 0
    batches: int = 0
    due: int = 0
    # N(t) over the schedule's own span (``window_sec``: until its last event's slot ends,
    # or until a stop). A far end slower than the schedule keeps the run going past it to
    # send what fell due: those events are late, and ``sent_on_time`` (sent by the end of
    # the window, within the lateness threshold) is what the achieved rate counts.
    expected: float = 0.0
    window_sec: float = 0.0
    sent_on_time: int = 0
    elapsed_sec: float = 0.0
    stop_reason: str = "running"
    lateness: Lateness = field(default_factory=Lateness)
    rejections: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def late(self) -> int:
        return self.lateness.late

    @property
    def achieved_eps(self) -> float:
        """Events sent on time per second of the schedule's window."""
        return self.sent_on_time / self.window_sec if self.window_sec > 0 else 0.0

    @property
    def target_eps(self) -> float:
        """The schedule's mean rate over its window: events fallen due per second."""
        return self.expected / self.window_sec if self.window_sec > 0 else 0.0

    @property
    def overrun_sec(self) -> float:
        """How long the run went on past the schedule's window to send what fell due."""
        return max(0.0, self.elapsed_sec - self.window_sec)

    @property
    def ok(self) -> bool:
        """Everything sent was accepted (or spooled), and nothing due was left unsent."""
        return (
            self.rejected == 0
            and self.failed == 0
            and self.sent >= self.due
            and self.accepted + self.spooled == self.sent
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "stream": self.stream,
            "emitter": self.emitter,
            "format": self.format,
            "transport": self.transport,
            "first_seq": self.first_seq,
            "last_seq": self.first_seq + self.sent - 1,
            "sent": self.sent,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed": self.failed,
            "spooled": self.spooled,
            "duplicates": self.duplicates,
            "retries": self.retries,
            "batches": self.batches,
            "due": self.due,
            "elapsed_sec": round(self.elapsed_sec, 3),
            "window_sec": round(self.window_sec, 3),
            "overrun_sec": round(self.overrun_sec, 3),
            "sent_on_time": self.sent_on_time,
            "target_eps": round(self.target_eps, 2),
            "achieved_eps": round(self.achieved_eps, 2),
            **self.lateness.to_dict(),
            "rejections": dict(self.rejections),
            "errors": dict(self.errors),
            "stop_reason": self.stop_reason,
            "ok": self.ok,
        }


@dataclass(frozen=True, slots=True)
class Progress:
    """One live reading: seconds since the start, the schedule's rate now, the rate sent
    over the last reading's interval, and the counters."""

    elapsed_sec: float
    target_eps: float
    window_eps: float
    result: EmitResult


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True, slots=True)
class SendReport:
    """One send as it went: when it started (Unix seconds), how long it took, which
    events it carried (``first_seq`` and ``count``), how late it went, and what came
    back: the transport's result, or the exception it raised (counted by the loop)."""

    started: float
    rtt_sec: float
    first_seq: int
    count: int
    lateness_sec: float
    result: PushResult | None = None
    error: BaseException | None = None


# Told of every send once its outcome is known (the scenario runner's sends.jsonl); it is
# called on the loop's thread, so it must be quick.
SendObserver = Callable[[SendReport], None]


class RetryCounter:
    """The sleep a retrying transport calls between attempts, counting them."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self.count = 0
        self._sleep = sleep

    def __call__(self, seconds: float) -> None:
        self.count += 1
        self._sleep(seconds)


class OutputClosed(Exception):
    """The reader of the output went away (a closed pipe): the run cannot go on."""


class EmitLoop:
    """Runs one emitter: ``source`` x ``schedule`` x ``transport``; see the module docstring."""

    def __init__(
        self,
        source: EventSource,
        schedule: Schedule,
        transport: Transport,
        opts: EmitOptions,
        *,
        transport_name: str = "",
        retries: RetryCounter | None = None,
        observer: SendObserver | None = None,
    ) -> None:
        self.source, self.schedule, self.transport, self.opts = source, schedule, transport, opts
        self.observer = observer
        acc = source.accounting
        self.result = EmitResult(
            run_id=acc.run_id,
            stream=acc.stream,
            emitter=opts.emitter,
            format=source.fmt.name,
            transport=transport_name,
            first_seq=acc.first_seq,
            lateness=Lateness(opts.late_after_sec),
        )
        self._retries = retries
        self._next = 0
        self._start = 0.0
        self._wall0 = 0.0
        self._stopped_at = 0.0
        self._on_time_until = math.inf

    def run(
        self,
        stop: threading.Event | None = None,
        progress: ProgressFn | None = None,
        progress_every: float = 1.0,
    ) -> EmitResult:
        """Emit until the schedule ends or ``stop`` is set, then account; never raises for
        what the far end does (that is counted)."""
        stop = stop or threading.Event()
        self._start = time.monotonic()
        self._wall0 = time.time()
        # A send counts as on time until the schedule's end, plus the lateness threshold.
        end = self.schedule.done_sec()
        self._on_time_until = math.inf if end is None else end + self.result.lateness.threshold_sec
        ticker = _Ticker(self, progress, progress_every) if progress else None
        try:
            self.result.stop_reason = "signal" if self._pace(stop, ticker) else "done"
            if self.result.stop_reason == "signal":
                self._stopped_at = time.monotonic()
                self._flush_due(self._stopped_at)
        except OutputClosed:
            self.result.stop_reason = "output_closed"
        finally:
            self._settle(time.monotonic())
        if ticker is not None:
            ticker.tick(time.monotonic(), final=True)
        return self.result

    def _pace(self, stop: threading.Event, ticker: _Ticker | None) -> bool:
        """The loop proper; True when stopped early."""
        total = self.schedule.total
        while total is None or self._next < total:
            planned = self._start + self._flush_offset(self._next)
            wake = planned if ticker is None else min(planned, ticker.next_at)
            if not wait_until(wake, stop):
                return True
            now = time.monotonic()
            if ticker is not None and now >= ticker.next_at:
                ticker.tick(now)
            if now >= planned:
                due = self.schedule.due_by(now - self._start)
                self._send(
                    max(min(due, self._next + self.opts.batch_size), self._next + 1), now - planned
                )
        # The last event's time slot runs to the end of the schedule: a run of N events at
        # rate r lasts N/r seconds, and --duration S lasts S.
        end = self.schedule.done_sec()
        if end is not None:
            wait_until(self._start + end, stop)
        return False

    def _flush_offset(self, first: int) -> float:
        """When the batch starting at event ``first`` is planned to go (seconds from start)."""
        last = first + self.opts.batch_size - 1
        total = self.schedule.total
        if total is not None:
            last = min(last, total - 1)
        return min(self.schedule.due(last), self.schedule.due(first) + self.opts.linger_sec)

    def _flush_due(self, now: float) -> None:
        """On a stop: send what had fallen due, in batches, then no more."""
        due = self.schedule.due_by(now - self._start)
        while self._next < due:
            planned = self._start + self._flush_offset(self._next)
            self._send(min(due, self._next + self.opts.batch_size), time.monotonic() - planned)

    def _settle(self, now: float) -> None:
        res = self.result
        res.elapsed_sec = now - self._start
        end = self.schedule.done_sec()
        if res.stop_reason == "done" and end is not None:
            res.due = self.schedule.total or res.sent
            res.window_sec = min(end, res.elapsed_sec)
        else:
            # What had fallen due when the run was stopped (and was sent then).
            res.window_sec = (self._stopped_at or now) - self._start
            res.due = self.schedule.due_by(res.window_sec)
            res.sent_on_time = res.sent
        res.expected = self.schedule.expected(res.window_sec)
        if self._retries is not None:
            res.retries = self._retries.count

    def _send(self, end: int, lateness: float) -> None:
        first, count = self._next, end - self._next
        batch = Batch(
            self._records(first, end),
            batch_id=uuid.uuid4().hex,
            emitter=self.opts.emitter,
            scenario_id=self.opts.scenario_id,
            run_id=self.source.accounting.run_id,
            # Structured records are fields, not lines of the format: Ingest labels them
            # "structured" when the batch names no format.
            default_format="" if self.opts.structured else self.source.fmt.name,
        )
        self._next = end
        res = self.result
        res.sent += count
        res.batches += 1
        res.lateness.add(lateness, count)
        if time.monotonic() - self._start <= self._on_time_until:
            res.sent_on_time = res.sent
        started, t0 = time.time(), time.monotonic()
        try:
            outcome = self.transport.send(batch)
        except BaseException as exc:
            self._tell(started, t0, first, count, lateness, None, exc)
            self._count_error(exc, count)
            return
        self._tell(started, t0, first, count, lateness, outcome, None)
        self._count(outcome, count)

    def _tell(
        self,
        started: float,
        t0: float,
        first: int,
        count: int,
        lateness: float,
        outcome: PushResult | None,
        error: BaseException | None,
    ) -> None:
        if self.observer is not None:
            seq = self.source.seq(first)
            rtt = time.monotonic() - t0
            self.observer(SendReport(started, rtt, seq, count, lateness, outcome, error))

    def _count_error(self, error: BaseException, count: int) -> None:
        """Count a send that raised; re-raise what the loop must not swallow."""
        res = self.result
        try:
            raise error
        except LogOpsError as exc:
            if exc.mapping.retryable:
                res.failed += count
                res.errors[exc.reason] += 1
            else:
                res.rejected += count
                res.rejections[exc.reason] += count
            return
        except BrokenPipeError as exc:
            res.failed += count
            res.errors["output_closed"] += 1
            raise OutputClosed from exc
        except OSError as exc:
            res.failed += count
            res.errors[type(exc).__name__] += 1
            return
        except ValueError as exc:
            # The encoder cannot carry these records (a text body, a line break in a line).
            res.rejected += count
            res.rejections["invalid_record"] += count
            log.warning("batch not sent: %s", exc, extra={"event": "emit_unsendable"})

    def _count(self, outcome: PushResult, count: int) -> None:
        res = self.result
        if outcome.spooled:
            res.spooled += count
            return
        res.accepted += outcome.accepted
        res.rejected += outcome.rejected
        res.duplicates += int(outcome.duplicate)
        for rej in outcome.rejections:
            res.rejections[rej.reason] += 1
        unsent = count - outcome.accepted - outcome.rejected
        if unsent > 0:
            # The transport got part of the batch out before it failed.
            res.failed += unsent
            res.errors["partly_sent"] += 1

    def _records(self, first: int, end: int) -> list[Record | None]:
        """Events ``first`` .. ``end - 1`` as records for the wire. Their due times are
        read at both ends and interpolated: exact for a constant rate, and within the
        batch's span (at most ``linger_sec``) on a ramp."""
        sched, source = self.schedule, self.source
        t0 = self._wall0 + sched.due(first)
        span = end - 1 - first
        step = (self._wall0 + sched.due(end - 1) - t0) / span if span else 0.0
        if not self.opts.batched:
            line = source.line
            return [{"raw": line(i, t0 + (i - first) * step)} for i in range(first, end)]
        run_id, stream = source.accounting.run_id, source.accounting.stream
        seq0 = source.accounting.first_seq
        if self.opts.structured:
            out: list[Record | None] = []
            for i in range(first, end):
                rec = source.record(i, t0 + (i - first) * step)
                rec["run_id"], rec["stream"], rec["seq"] = run_id, stream, seq0 + i
                out.append(rec)
            return out
        name, line = source.fmt.name, source.line
        return [
            {
                "raw": line(i, t0 + (i - first) * step),
                "format": name,
                "run_id": run_id,
                "stream": stream,
                "seq": seq0 + i,
            }
            for i in range(first, end)
        ]


class _Ticker:
    """Calls ``progress`` about every ``every`` seconds with the rate since the last call."""

    def __init__(self, loop: EmitLoop, progress: ProgressFn, every: float) -> None:
        self.loop, self.progress, self.every = loop, progress, every
        self.next_at = loop._start + every
        self._last_at, self._last_sent = loop._start, 0

    def tick(self, now: float, final: bool = False) -> None:
        loop = self.loop
        elapsed = now - loop._start
        span = now - self._last_at
        sent = loop.result.sent
        if final:
            window = loop.result.sent / elapsed if elapsed > 0 else 0.0
        else:
            window = (sent - self._last_sent) / span if span > 0 else 0.0
        if loop._retries is not None:
            loop.result.retries = loop._retries.count
        target = loop.schedule.rate_at(elapsed)
        self.progress(Progress(elapsed, target, window, loop.result))
        self._last_at, self._last_sent = now, sent
        if not final:
            while self.next_at <= now:
                self.next_at += self.every


def stderr_progress(out: TextIO) -> ProgressFn:
    """A progress line per reading: target vs achieved EPS, sent, rejected, late."""

    def show(p: Progress) -> None:
        r = p.result
        out.write(
            f"emit {p.elapsed_sec:7.1f}s  target {p.target_eps:8.0f} eps  achieved "
            f"{p.window_eps:8.0f} eps  sent {r.sent}  accepted {r.accepted}  rejected "
            f"{r.rejected}  failed {r.failed}  late {r.late}\n"
        )
        out.flush()

    return show
