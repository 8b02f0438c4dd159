"""A scenario's expectations: ``METRIC OP NUMBER`` strings and alert mappings, parsed and checked.

``lost == 0``, ``delivered_ratio >= 0.999``, ``emitter.web.p95_latency_ms < 500``,
``rejected.bad_signature > 0``: a metric of the whole run or of one emitter
(``emitter.NAME.METRIC``), a comparison, a number. The metrics are listed in
:data:`METRICS`; ``rejected.REASON`` is the count rejected for one reason. Alert mappings
(``{alert: NAME, state: firing|resolved, within_sec: N}``) are judged by the runner's
watch on Alertmanager (:mod:`emitters.alerts`), which hands :func:`evaluate` each one's
verdict.

Evaluation takes a function that returns a metric's value and a note on where it came
from, or None with a note saying why it could not be measured: such an expectation is not
checked (``ok: null``), never silently passed.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# What each metric means (docs/scenarios.md repeats this table).
METRICS: Mapping[str, str] = {
    "sent": "records handed to the transport",
    "accepted": "records the far end acknowledged (stored, spooled or already stored)",
    "rejected": "records the far end refused",
    "failed": "records without an answer (maybe stored, maybe not)",
    "spooled": "records the Auth Gateway took into its spool",
    "late": "records sent more than the late threshold behind their planned time",
    "delivered_ratio": "accepted / sent",
    "rejected_ratio": "rejected / sent",
    "rate_error_pct": "|sent - due by the schedule| / due, in percent",
    "lost": "acknowledged records missing from the sink (logops verify)",
    "duplicates": "records stored more than once (logops verify)",
    "p50_latency_ms": "end-to-end latency (logops verify; else the send round trip)",
    "p95_latency_ms": "end-to-end latency (logops verify; else the send round trip)",
    "p99_latency_ms": "end-to-end latency (logops verify; else the send round trip)",
}
REASON_PREFIX = "rejected."
OPS: Mapping[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
ALERT_STATES = ("firing", "resolved")

_EXPR = re.compile(
    r"^\s*(?:emitter\.(?P<emitter>[A-Za-z0-9_-]+)\.)?(?P<metric>[a-z0-9_]+(?:\.[a-z0-9_]+)?)"
    r"\s*(?P<op>==|!=|<=|>=|<|>)\s*(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True, slots=True)
class Expectation:
    """``metric op threshold``, of the whole run (``emitter`` None) or of one emitter."""

    expr: str
    metric: str
    op: str
    threshold: float
    emitter: str | None = None

    @property
    def name(self) -> str:
        return self.metric if self.emitter is None else f"emitter.{self.emitter}.{self.metric}"


@dataclass(frozen=True, slots=True)
class AlertExpectation:
    alert: str
    state: str
    within_sec: float

    @property
    def expr(self) -> str:
        return f"alert {self.alert} {self.state} within {self.within_sec:g} s"


def parse_expression(text: str) -> Expectation:
    """An expectation from ``METRIC OP NUMBER``; ``ValueError`` saying what is wrong."""
    m = _EXPR.match(text)
    if m is None:
        raise ValueError(
            f"{text!r} is not 'METRIC OP NUMBER' (e.g. 'lost == 0', "
            "'emitter.web.p95_latency_ms < 500'); OP is one of == != < <= > >="
        )
    metric = m["metric"]
    if metric not in METRICS and not (
        metric.startswith(REASON_PREFIX) and len(metric) > len(REASON_PREFIX)
    ):
        raise ValueError(
            f"unknown metric {metric!r}; use one of {', '.join(METRICS)} or rejected.REASON"
        )
    return Expectation(text.strip(), metric, m["op"], float(m["num"]), m["emitter"])


def parse_alert(item: Mapping[str, Any]) -> AlertExpectation:
    """An alert expectation from its mapping; ``ValueError`` naming the bad key."""
    unknown = sorted(set(item) - {"alert", "state", "within_sec"})
    if unknown:
        raise ValueError(f"unknown key(s) in an alert expectation: {', '.join(unknown)}")
    alert, state, within = item.get("alert"), item.get("state", "firing"), item.get("within_sec")
    if not isinstance(alert, str) or not alert:
        raise ValueError("an alert expectation needs 'alert: NAME'")
    if state not in ALERT_STATES:
        raise ValueError(f"state must be one of {', '.join(ALERT_STATES)}, not {state!r}")
    if isinstance(within, bool) or not isinstance(within, int | float) or within <= 0:
        raise ValueError("an alert expectation needs 'within_sec', a number above 0")
    return AlertExpectation(alert, str(state), float(within))


# A metric's value and a note on where it came from; the value None when not measured.
Reading = tuple[float | None, str]
MetricSource = Callable[[str | None, str], Reading]
# An alert expectation's verdict: the seconds it took (or None), ok, and a note.
AlertVerdict = tuple[float | None, bool | None, str]
AlertSource = Callable[[AlertExpectation], AlertVerdict]
NOT_ASKED: AlertVerdict = (None, None, "not checked: the run was given no Alertmanager to ask")


def evaluate(
    exp: Expectation | AlertExpectation, source: MetricSource,
    alerts: AlertSource | None = None,
) -> dict[str, Any]:
    """One expectation checked: the ``expectations`` entry of summary.json. Alert
    expectations take their verdict from ``alerts`` (not checked without it)."""
    if isinstance(exp, AlertExpectation):
        actual_s, held, said = alerts(exp) if alerts is not None else NOT_ASKED
        return {
            "expr": exp.expr,
            "metric": f"alert.{exp.alert}",
            "op": exp.state,
            "threshold": exp.within_sec,
            "actual": actual_s,
            "ok": held,
            "note": said,
        }
    actual, note = source(exp.emitter, exp.metric)
    ok: bool | None = None
    if actual is not None and math.isfinite(actual):
        ok = OPS[exp.op](actual, exp.threshold)
    return {
        "expr": exp.expr,
        "metric": exp.name,
        "op": exp.op,
        "threshold": exp.threshold,
        "actual": actual,
        "ok": ok,
        "note": note,
    }
