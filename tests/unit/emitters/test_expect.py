"""Expectation expressions: parsing, refusing, and checking against measured values."""

from __future__ import annotations

import pytest

from emitters.expect import (
    AlertExpectation,
    Reading,
    evaluate,
    parse_alert,
    parse_expression,
)


@pytest.mark.parametrize(
    ("text", "metric", "op", "threshold", "emitter"),
    [
        ("lost == 0", "lost", "==", 0.0, None),
        ("  delivered_ratio>=0.999 ", "delivered_ratio", ">=", 0.999, None),
        ("emitter.web.p95_latency_ms < 500", "p95_latency_ms", "<", 500.0, "web"),
        ("emitter.a_b-c.rejected.replay > 1e2", "rejected.replay", ">", 100.0, "a_b-c"),
        ("rate_error_pct != -2.5", "rate_error_pct", "!=", -2.5, None),
        ("late <= .5", "late", "<=", 0.5, None),
    ],
)
def test_parse(text: str, metric: str, op: str, threshold: float, emitter: str | None) -> None:
    exp = parse_expression(text)
    assert (exp.metric, exp.op, exp.threshold, exp.emitter) == (metric, op, threshold, emitter)
    assert exp.expr == text.strip()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("lost = 0", "is not 'METRIC OP NUMBER'"),
        ("lost == zero", "is not 'METRIC OP NUMBER'"),
        ("lost ==", "is not 'METRIC OP NUMBER'"),
        ("speed > 3", "unknown metric 'speed'"),
        ("emitter..lost == 0", "is not 'METRIC OP NUMBER'"),
        ("rejected. > 0", "is not 'METRIC OP NUMBER'"),
    ],
)
def test_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_expression(text)


def test_alert_mapping() -> None:
    assert parse_alert({"alert": "A", "within_sec": 5}) == AlertExpectation("A", "firing", 5.0)
    for bad, why in [
        ({"alert": "A", "state": "up", "within_sec": 5}, "state must be"),
        ({"alert": "A"}, "within_sec"),
        ({"state": "firing", "within_sec": 5}, "alert: NAME"),
        ({"alert": "A", "within_sec": 5, "for": 1}, "unknown key"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_alert(bad)


def test_evaluate_compares_and_reports() -> None:
    seen: list[tuple[str | None, str]] = []

    def source(emitter: str | None, metric: str) -> Reading:
        seen.append((emitter, metric))
        return {"lost": (0.0, "verify"), "late": (3.0, "runner")}.get(metric, (None, "n/a"))

    ok = evaluate(parse_expression("lost == 0"), source)
    assert ok == {"expr": "lost == 0", "metric": "lost", "op": "==", "threshold": 0.0,
                  "actual": 0.0, "ok": True, "note": "verify"}
    assert evaluate(parse_expression("emitter.w.late < 3"), source)["ok"] is False
    assert seen[-1] == ("w", "late")
    assert evaluate(parse_expression("emitter.w.late < 3"), source)["metric"] == "emitter.w.late"
    unknown = evaluate(parse_expression("duplicates == 0"), source)
    assert (unknown["ok"], unknown["actual"], unknown["note"]) == (None, None, "n/a")
    alert = evaluate(AlertExpectation("X", "firing", 10.0), source)
    assert alert["ok"] is None and "not checked" in alert["note"]
