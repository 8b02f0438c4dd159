"""The SLO panels of the overview, per gateway (the `service` label): 99% of pushes answered
within 500 ms, 99% answered without a server fault, their burn rates and the error budget
left over the dashboard's time range.

The definitions are those of observability/prometheus/rules/slo.rules.yml: the syslog
listener's store batches are left out, and INTERNAL, UNAVAILABLE, UNKNOWN and DATA_LOSS are
the server's faults. Burn rates read the recording rules the burn-rate alerts fire on; the
recording rules have fixed windows (5m to 6h), so the figures over the dashboard's range
are computed from the counters themselves.
"""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import units
from grafana_foundation_sdk.models.dashboard import Panel

from observability.grafana.panels import GREEN, ORANGE, RED, YELLOW, prom, stat, timeseries

TARGET = 0.99
BUDGET = 1 - TARGET
FAULTS = 'code=~"INTERNAL|UNAVAILABLE|UNKNOWN|DATA_LOSS"'
UNDER_500MS = 'le="0.5"'
# Each gateway's metric prefix and the selector the SLO rules read it with.
GATEWAYS = (("logops_ingest", 'front!="syslog"'), ("logops_auth", ""))
# The windows of the recording rules; the alerts pair 1h with 5m (fast) and 6h with 30m.
BURN_WINDOWS = ("5m", "30m", "1h", "6h")
FAST_BURN, SLOW_BURN = 14.4, 6.0


def _selector(*matchers: str) -> str:
    present = [m for m in matchers if m]
    return "{" + ", ".join(present) + "}" if present else ""


def _per_gateway(parts: list[str]) -> str:
    # Each part is `sum by (service)` of one gateway's series: `or` puts them side by side.
    return " or ".join(f"({part})" for part in parts)


def latency_good_ratio(window: str) -> str:
    parts = []
    for prefix, base in GATEWAYS:
        histogram = f"{prefix}_request_duration_seconds"
        parts.append(
            f"sum by (service) (increase({histogram}_bucket"
            f"{_selector(base, UNDER_500MS)}[{window}]))"
            f" / sum by (service) (increase({histogram}_count{_selector(base)}[{window}]))"
        )
    return _per_gateway(parts)


def availability_ratio(window: str) -> str:
    parts = []
    for prefix, base in GATEWAYS:
        total = f"sum by (service) (increase({prefix}_requests_total{_selector(base)}[{window}]))"
        failed = (
            f"sum by (service) (increase({prefix}_requests_total"
            f"{_selector(base, FAULTS)}[{window}]))"
        )
        # A gateway that never failed has no failed series: count it as 0 failures.
        parts.append(f"1 - ({failed} or 0 * {total}) / {total}")
    return _per_gateway(parts)


def budget_left(good_ratio: str) -> str:
    return f"1 - (1 - ({good_ratio})) / {BUDGET:g}"


def burn_rate(slo: str, window: str) -> str:
    return f"service:logops_{slo}_slo_errors:ratio_rate{window} / {BUDGET:g}"


def _range_stats() -> list[Builder[Panel]]:
    objective = [(None, RED), (TARGET, GREEN)]
    budget = [(None, RED), (0.25, ORANGE), (0.5, GREEN)]
    return [
        stat(
            "Latency SLO: batches under 500 ms",
            "Share of pushes each gateway answered within 500 ms over the time range. "
            f"Objective: {TARGET:.0%}.",
            units.PercentUnit,
            prom(latency_good_ratio("$__range"), "{{service}}", instant=True),
            objective,
        ),
        stat(
            "Availability SLO",
            "Share of pushes each gateway answered without a server fault (INTERNAL, "
            f"UNAVAILABLE, UNKNOWN, DATA_LOSS) over the time range. Objective: {TARGET:.0%}.",
            units.PercentUnit,
            prom(availability_ratio("$__range"), "{{service}}", instant=True),
            objective,
        ),
        stat(
            "Error budget left: latency",
            f"The part of the latency error budget ({BUDGET:.0%} of pushes over 500 ms) not "
            "spent over the time range; below 0 the objective is missed.",
            units.PercentUnit,
            prom(budget_left(latency_good_ratio("$__range")), "{{service}}", instant=True),
            budget,
        ),
        stat(
            "Error budget left: availability",
            f"The part of the availability error budget ({BUDGET:.0%} of pushes failed by "
            "the server) not spent over the time range; below 0 the objective is missed.",
            units.PercentUnit,
            prom(budget_left(availability_ratio("$__range")), "{{service}}", instant=True),
            budget,
        ),
    ]


def _burn_rates() -> list[Builder[Panel]]:
    steps = [(None, GREEN), (1.0, YELLOW), (SLOW_BURN, ORANGE), (FAST_BURN, RED)]
    about = (
        "budget burns, per gateway and window (1 = spent exactly over the SLO period). "
        f"The fast-burn alert pages above {FAST_BURN:g} over 1h and 5m, the slow-burn one "
        f"warns above {SLOW_BURN:g} over 6h and 30m."
    )
    return [
        timeseries(
            f"Burn rate: {slo}",
            f"How fast the {slo} {about}",
            units.Short,
            *(prom(burn_rate(slo, w), f"{{{{service}}}} {w}") for w in BURN_WINDOWS),
            steps=steps,
        )
        for slo in ("latency", "availability")
    ]


def panels() -> list[Builder[Panel]]:
    return _range_stats() + _burn_rates()
