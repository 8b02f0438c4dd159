"""The live view: a rich table on a terminal, plain lines otherwise; the end-of-run screen."""

from __future__ import annotations

import io
from collections import Counter
from typing import Any

from emitters.progress import LiveView, print_summary
from emitters.run_account import Counts
from emitters.runner import Row, Snapshot


def snap() -> Snapshot:
    counts = Counts(sent=1200, accepted=1100, rejected=100, late=7, failed=0,
                    rejected_by_reason=Counter({"bad_signature": 100}))
    rows = [Row("web", "grpc", 200.0, 198.0, counts), Row("api", "http", 100.0, 0.0, Counts())]
    return Snapshot(6.0, 30.0, rows, ["  8.0s stop_ingest: Ingest stopped"])


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    with LiveView("default", out) as view:
        assert view.plain
        view.update(snap())
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].split() == [
        "scenario", "6.0s", "web", "target", "200", "eps", "achieved", "198", "eps", "sent",
        "1200", "accepted", "1100", "rejected", "100", "(bad_signature", "100)", "late", "7",
        "failed", "0"]


def test_a_live_table_on_a_terminal() -> None:
    out = io.StringIO()
    with LiveView("default", out, plain=False) as view:
        view.update(snap())
    text = out.getvalue()
    for cell in ("scenario default:", "actual", "web", "1,200", "1,100",
                 "web rejected: 100 (bad_signature 100)",
                 "stop_ingest: Ingest stopped"):
        assert cell in text


def summary(exit_code: int, verify: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "run_id": "r1", "scenario": "default", "duration_sec": 6.0, "exit_code": exit_code,
        "totals": {"sent": 10, "accepted": 9, "rejected": 1, "failed": 0, "late": 0,
                   "rate_error_pct": 0.1},
        "emitters": {"web": {"transport": "grpc", "target_eps": 2.0, "achieved_eps": 2.0,
                             "sent": 10, "accepted": 9, "rejected": 1, "late": 0, "failed": 0,
                             "rejected_by_reason": {"replay": 1}}},
        "verify": verify,
        "expectations": [
            {"expr": "rejected == 0", "ok": exit_code == 0, "actual": 1.0, "note": "runner"},
            {"expr": "lost == 0", "ok": None, "actual": None, "note": "not measured"},
        ],
    }


def test_the_summary_screen_says_each_verdict_and_where_the_run_is() -> None:
    out = io.StringIO()
    print_summary(summary(1, None), "data/runs/r1", out, plain=True)
    text = out.getvalue()
    assert "FAIL rejected == 0" in text and "---- lost == 0" in text
    assert "web rejected: replay 1" in text
    assert "verify: not run" in text
    assert text.rstrip().endswith("an expectation failed; run folder data/runs/r1/ (exit 1)")
    verify = {"totals": {"acknowledged": 9, "stored": 9, "missing": 0, "duplicated": 0,
                         "unexpected": 0, "latency_ms": {"p50": 3, "p95": 9, "p99": 12}}}
    out = io.StringIO()
    print_summary(summary(0, verify), "data/runs/r1", out, plain=True)
    assert "missing 0, duplicated 0" in out.getvalue()
    assert "latency p50/p95/p99 3/9/12 ms" in out.getvalue()
    assert "every expectation holds" in out.getvalue()
