"""The SLO panels of the overview: 99% of batches answered under 500 ms, availability,
burn rates and the error budget left over the dashboard's time range.

Computed from the Ingest Gateway's raw series (its latency histogram and request codes).
"""

from __future__ import annotations

from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import units
from grafana_foundation_sdk.models.dashboard import Panel

from observability.grafana.panels import GREEN, ORANGE, RED, YELLOW, prom, stat, timeseries

TARGET = 0.99
LATENCY = "logops_ingest_request_duration_seconds"
REQUESTS = "logops_ingest_requests_total"
# Codes that are the service's fault; refusals of bad input count as served.
SERVER_ERRORS = 'code=~"UNAVAILABLE|INTERNAL"'
# The fast and slow windows of the multi-window burn-rate alerts (Google SRE workbook).
BURN_WINDOWS = ("5m", "1h", "6h")
FAST_BURN, SLOW_BURN = 14.4, 6.0


def latency_good_ratio(window: str) -> str:
    return (
        f'sum(rate({LATENCY}_bucket{{le="0.5"}}[{window}])) / sum(rate({LATENCY}_count[{window}]))'
    )


def availability_ratio(window: str) -> str:
    return (
        f"1 - sum(rate({REQUESTS}{{{SERVER_ERRORS}}}[{window}])) / sum(rate({REQUESTS}[{window}]))"
    )


def budget_left(good_ratio: str) -> str:
    return f"1 - (1 - ({good_ratio})) / {1 - TARGET:g}"


def burn_rate(good_ratio: str) -> str:
    return f"(1 - ({good_ratio})) / {1 - TARGET:g}"


def panels() -> list[Builder[Panel]]:
    objective = [(None, RED), (TARGET, GREEN)]
    budget = [(None, RED), (0.25, ORANGE), (0.5, GREEN)]
    burn = [(None, GREEN), (1.0, YELLOW), (SLOW_BURN, ORANGE), (FAST_BURN, RED)]
    return [
        stat(
            "Latency SLO: batches under 500 ms",
            f"Share of pushes the Ingest Gateway answered within 500 ms over the time "
            f"range. Objective: {TARGET:.0%}.",
            units.PercentUnit,
            prom(latency_good_ratio("$__range"), "under 500 ms", instant=True),
            objective,
        ),
        stat(
            "Availability SLO",
            "Share of pushes not failed by the service (UNAVAILABLE or INTERNAL) over the "
            f"time range. Objective: {TARGET:.0%}.",
            units.PercentUnit,
            prom(availability_ratio("$__range"), "available", instant=True),
            objective,
        ),
        stat(
            "Error budget left: latency",
            "The part of the latency error budget (1% of pushes over 500 ms) not yet spent "
            "over the time range; below 0 the objective is missed.",
            units.PercentUnit,
            prom(budget_left(latency_good_ratio("$__range")), "left", instant=True),
            budget,
        ),
        stat(
            "Error budget left: availability",
            "The part of the availability error budget (1% of pushes failed) not yet spent "
            "over the time range; below 0 the objective is missed.",
            units.PercentUnit,
            prom(budget_left(availability_ratio("$__range")), "left", instant=True),
            budget,
        ),
        timeseries(
            "Burn rate: latency",
            f"How fast the latency budget burns (1 = exactly on budget). The fast-burn "
            f"alert pages at {FAST_BURN:g}, the slow-burn one at {SLOW_BURN:g}.",
            units.Short,
            *(prom(burn_rate(latency_good_ratio(w)), w) for w in BURN_WINDOWS),
            steps=burn,
        ),
        timeseries(
            "Burn rate: availability",
            f"How fast the availability budget burns (1 = exactly on budget). The fast-burn "
            f"alert pages at {FAST_BURN:g}, the slow-burn one at {SLOW_BURN:g}.",
            units.Short,
            *(prom(burn_rate(availability_ratio(w)), w) for w in BURN_WINDOWS),
            steps=burn,
        ),
    ]
