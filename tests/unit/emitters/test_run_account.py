"""What each send comes to in sends.jsonl, and the counts the runner keeps from it."""

from __future__ import annotations

from typing import Any

import pytest

from emitters.emit import SendReport
from emitters.run_account import EmitterAccount, classify, percentiles
from services.common.errors import RateLimited, Unauthenticated, Unavailable
from services.common.model import PushResult, Rejection


def report(result: PushResult | None = None, error: BaseException | None = None,
           lateness: float = 0.0) -> SendReport:
    return SendReport(started=1000.5, rtt_sec=0.012, first_seq=100, count=5,
                      lateness_sec=lateness, result=result, error=error)


def test_answers_map_to_outcomes_with_the_refused_seqs() -> None:
    ok = classify(report(PushResult("b", accepted=5)))
    assert (ok.outcome, ok.rejected_seqs, ok.reason) == ("accepted", [], None)
    part = classify(report(PushResult("b", accepted=3, rejected=2, rejections=[
        Rejection(1, "parse_error", "x"), Rejection(4, "parse_error", "y")])))
    assert (part.outcome, part.rejected_seqs, part.reason) == ("partial", [101, 104],
                                                              "parse_error")
    every = classify(report(PushResult("b", rejected=5, rejections=[
        Rejection(i, "invalid_record", "x") for i in range(5)])))
    assert (every.outcome, every.rejected_seqs) == ("rejected", [100, 101, 102, 103, 104])
    assert classify(report(PushResult("b", spooled=True))).outcome == "spooled"
    assert classify(report(PushResult("b", duplicate=True))).outcome == "duplicate"


@pytest.mark.parametrize(
    ("error", "outcome", "reason", "rtt"),
    [
        (Unauthenticated("no", reason="bad_signature"), "rejected", "bad_signature", True),
        (RateLimited("slow down", retry_after=1.0), "rejected", "rate_limited", True),
        (Unavailable("no answer", reason="downstream_unavailable"), "failed",
         "downstream_unavailable", False),
        (ConnectionRefusedError(), "failed", "ConnectionRefusedError", False),
        (ValueError("a line break"), "rejected", "invalid_record", True),
    ],
)
def test_errors_are_refusals_when_the_far_end_answered(
    error: BaseException, outcome: str, reason: str, rtt: bool
) -> None:
    out = classify(report(error=error))
    assert (out.outcome, out.reason, out.rtt_known) == (outcome, reason, rtt)
    if outcome == "rejected":
        assert out.rejected_seqs == [100, 101, 102, 103, 104]


def test_the_account_writes_a_line_per_send_and_counts_by_second() -> None:
    lines: list[dict[str, Any]] = []
    seen: list[tuple[str, int]] = []
    acct = EmitterAccount("web", "web", 998.0, 0.010, lines.append,
                          lambda name, one: seen.append((name, one.sent)))
    acct(report(PushResult("b", accepted=4, rejected=1, rejections=[
        Rejection(2, "parse_error", "x")]), lateness=0.5))
    acct(report(error=Unavailable("gone", reason="downstream_unavailable")))
    assert lines[0] == {"t": 1000.5, "rtt_ms": 12.0, "emitter": "web", "stream": "web",
                        "first_seq": 100, "count": 5, "outcome": "partial",
                        "rejected_seqs": [102], "reason": "parse_error"}
    assert lines[1]["outcome"] == "failed" and lines[1]["rtt_ms"] is None
    total = acct.snapshot()
    assert (total.sent, total.accepted, total.rejected, total.failed, total.late) == (
        10, 4, 1, 5, 5)
    assert dict(total.rejected_by_reason) == {"parse_error": 1}
    assert acct.second(2).sent == 10 and acct.second(1).sent == 0
    assert seen == [("web", 5), ("web", 5)]


def test_percentiles_by_nearest_rank() -> None:
    assert percentiles([]) is None
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values) == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
