"""A finished run's account: ``summary.json`` (totals, per emitter, verify, expectations) and
``timeline.jsonl`` (per second per emitter), from the runner's emitter accounts.

``accepted`` counts every record the far end acknowledged (stored, spooled or already
stored). ``rate_error_pct`` is ``|sent on time - N(T)| / N(T)`` in percent, ``N(T)`` being
the events the schedule had due over its own window ``T`` and "on time" sent by its end:
when the far end cannot keep up, the run goes on to send what fell due, late, and the
error shows how far the achieved rate fell short instead of hiding it. ``lost``,
``duplicates`` and the latency percentiles come from ``logops verify`` when the sink is
local; without it,
``lost``/``duplicates`` are not checked and latency is the send round trip (noted).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from emitters.expect import Reading, evaluate
from emitters.run_account import Counts, percentiles

if TYPE_CHECKING:
    from emitters.runner import Planned, ScenarioRunner


def _counts_dict(c: Counts, expected: float, on_time: int) -> dict[str, Any]:
    return {
        "sent": c.sent,
        "accepted": c.accepted,
        "rejected": c.rejected,
        "failed": c.failed,
        "late": c.late,
        "spooled": c.spooled,
        "duplicate_acks": c.duplicate,
        "sent_on_time": on_time,
        "rate_error_pct": _rate_error(on_time, expected),
    }


def _rate_error(sent: int, expected: float) -> float | None:
    if expected <= 0:
        return None
    return round(abs(sent - expected) / expected * 100.0, 3)


def _emitter_dict(p: Planned) -> dict[str, Any]:
    c, res = p.account.total, p.loop.result
    return {
        **_counts_dict(c, res.expected, res.sent_on_time),
        "format": p.spec.format,
        "transport": p.spec.transport,
        "target": p.target,
        "via": p.via,
        "target_eps": round(res.target_eps, 2),
        "achieved_eps": round(res.achieved_eps, 2),
        "overrun_sec": round(res.overrun_sec, 3),
        "rejected_by_reason": dict(c.rejected_by_reason),
        "failed_by_reason": dict(c.failed_by_reason),
        "rtt_ms": percentiles(c.rtts),
        "lateness_ms": {k: v for k, v in res.lateness.to_dict().items() if k != "late"},
        "retries": res.retries,
        "stop_reason": res.stop_reason,
    }


def build_summary(
    runner: ScenarioRunner, verify: dict[str, Any] | None, interrupted: bool
) -> dict[str, Any]:
    total = Counts()
    expected, on_time = 0.0, 0
    for p in runner.planned:
        total.add(p.account.total)
        expected += p.loop.result.expected
        on_time += p.loop.result.sent_on_time
    source = _Metrics(runner, total, expected, on_time, verify)
    expectations = [evaluate(e, source, runner.alert_verdict) for e in runner.scenario.expect]
    failed = interrupted or any(e["ok"] is False for e in expectations)
    elapsed = max((p.loop.result.elapsed_sec for p in runner.planned), default=0.0)
    return {
        "run_id": runner.opts.run_id,
        "scenario": runner.scenario.name,
        "started_at": runner.start_wall,
        "duration_sec": round(elapsed, 3),
        "exit_code": 1 if failed else 0,
        "interrupted": interrupted,
        "totals": _counts_dict(total, expected, on_time),
        "emitters": {p.spec.name: _emitter_dict(p) for p in runner.planned},
        "steps": runner.step_log,
        "events": runner.events,
        "verify": verify,
        "expectations": expectations,
    }


class _Metrics:
    """The value of each expectation metric, for the run or one emitter."""

    def __init__(self, runner: ScenarioRunner, total: Counts, expected: float, on_time: int,
                 verify: dict[str, Any] | None) -> None:
        self.total, self.expected, self.verify = total, expected, verify
        self.on_time = on_time
        self.by_name = {p.spec.name: p for p in runner.planned}

    def __call__(self, emitter: str | None, metric: str) -> Reading:
        if emitter is None:
            counts, expected, account = self.total, self.expected, self._verify_totals()
            on_time = self.on_time
        else:
            p = self.by_name[emitter]
            counts, expected = p.account.total, p.loop.result.expected
            on_time = p.loop.result.sent_on_time
            account = self._verify_stream(p.account.stream)
        if metric.startswith("rejected."):
            return float(counts.rejected_by_reason.get(metric.split(".", 1)[1], 0)), "runner"
        if metric in ("sent", "accepted", "rejected", "failed", "spooled", "late"):
            return float(getattr(counts, metric)), "runner"
        if metric in ("delivered_ratio", "rejected_ratio"):
            return self._ratio(metric, counts, account)
        if metric == "rate_error_pct":
            return _rate_error(on_time, expected), "runner: sent on time vs the schedule's N(T)"
        if metric.endswith("_latency_ms"):
            return self._latency(metric.split("_", 1)[0], counts, account)
        return self._verified(metric, account)

    def _verify_totals(self) -> dict[str, Any] | None:
        return None if self.verify is None else self.verify.get("totals")

    def _verify_stream(self, stream: str) -> dict[str, Any] | None:
        if self.verify is None:
            return None
        for s in self.verify.get("streams") or []:
            if s.get("stream") == stream:
                return dict(s)
        return {"missing": 0, "duplicated": 0, "delivered": 0, "latency_ms": None}

    def _ratio(self, metric: str, counts: Counts, account: dict[str, Any] | None) -> Reading:
        if counts.sent == 0:
            return None, "nothing was sent"
        if metric == "rejected_ratio":
            return counts.rejected / counts.sent, "runner"
        if account is not None:
            return account["delivered"] / counts.sent, "verify: stored / sent"
        return counts.accepted / counts.sent, "runner: acknowledged / sent (sink not verified)"

    def _latency(self, q: str, counts: Counts, account: dict[str, Any] | None) -> Reading:
        lat = account.get("latency_ms") if account else None
        if lat:
            return float(lat[q]), "verify: end to end (ingest_ts - send t)"
        pct = percentiles(counts.rtts)
        if pct is None:
            return None, "no send had a round trip"
        return pct[q], "runner: send round trip (end-to-end latency needs verify)"

    def _verified(self, metric: str, account: dict[str, Any] | None) -> Reading:
        if account is None:
            return None, ("not measured: logops verify did not run (the sink is not "
                          "local, or --no-verify)")
        key = "missing" if metric == "lost" else "duplicated"
        return float(account[key]), "verify"


def timeline_lines(runner: ScenarioRunner) -> Iterator[dict[str, Any]]:
    """One line per second per emitter, counts for that second (by send start)."""
    seconds = max((p.loop.result.elapsed_sec for p in runner.planned), default=0.0)
    for k in range(max(1, math.ceil(seconds))):
        for p in runner.planned:
            c = p.account.second(k)
            sched = p.loop.schedule
            yield {
                "t": k,
                "emitter": p.spec.name,
                "target_eps": round(sched.expected(k + 1) - sched.expected(k), 3),
                "sent": c.sent,
                "accepted": c.accepted,
                "rejected": dict(c.rejected_by_reason),
                "late": c.late,
                "failed": c.failed,
                "rtt_ms": percentiles(c.rtts),
            }
