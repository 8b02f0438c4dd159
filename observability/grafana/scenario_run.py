"""The "LogOps scenario run" dashboard: what the scenario runner planned against what it
sent and what the gateways accepted, late, failed and rejected, per emitter."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import units
from grafana_foundation_sdk.models.dashboard import Panel

from observability.grafana.panels import (
    GREEN,
    ORANGE,
    RED,
    YELLOW,
    dashed_series,
    label_variable,
    logops_dashboard,
    prom,
    section,
    stat,
    timeseries,
)

UID = "logops-scenario-run"
SENT = "logops_emitter_sent_records_total"
ONE = '{emitter=~"$emitter"}'


def per_emitter_rate(counter: str, by: str = "emitter") -> str:
    return f"sum by ({by}) (rate({counter}{ONE}[$__rate_interval]))"


def run_total(counter: str) -> str:
    return f"sum(increase({counter}{ONE}[$__range]))"


def rates() -> list[Builder[Panel]]:
    target_vs_achieved = dashed_series(
        timeseries(
            "Target vs achieved EPS per emitter",
            "The rate each emitter is asked for (dashed) against the records it sent and "
            "the records the far end acknowledged.",
            units.RecordsPerSecond,
            prom(
                f"sum by (emitter) (logops_emitter_target_records_per_second{ONE})",
                "{{emitter}} target",
            ),
            prom(per_emitter_rate(SENT), "{{emitter}} sent"),
            prom(
                per_emitter_rate("logops_emitter_accepted_records_total"),
                "{{emitter}} accepted",
            ),
            width=24,
        ),
        ".* target$",
    )
    rate_error = timeseries(
        "Rate error per emitter",
        "Sent rate against the target, as a share of the target: 0 is on plan, -5% is 5% "
        "behind. The emitters hold it within 1% over every 10 s window.",
        units.PercentUnit,
        prom(
            f"{per_emitter_rate(SENT)}"
            f" / sum by (emitter) (logops_emitter_target_records_per_second{ONE} > 0) - 1",
            "{{emitter}}",
        ),
    )
    late = timeseries(
        "Late records per emitter",
        "Records sent behind their planned time: the far end or the machine could not "
        "keep up with the schedule.",
        units.RecordsPerSecond,
        prom(per_emitter_rate("logops_emitter_late_records_total"), "{{emitter}}"),
    )
    return [target_vs_achieved, rate_error, late]


def outcomes() -> list[Builder[Panel]]:
    failed = timeseries(
        "Failed records per emitter",
        "Records that got no answer (timeouts, refused connections): unknown fate.",
        units.RecordsPerSecond,
        prom(per_emitter_rate("logops_emitter_failed_records_total"), "{{emitter}}"),
    )
    rejected = timeseries(
        "Rejected records by reason",
        "Records the far end refused, by emitter and the gateway's reason.",
        units.RecordsPerSecond,
        prom(
            per_emitter_rate("logops_emitter_rejected_records_total", "emitter, reason"),
            "{{emitter}} {{reason}}",
        ),
    )
    return [failed, rejected]


def totals() -> list[Builder[Panel]]:
    share = [(None, GREEN), (0.001, YELLOW), (0.01, ORANGE), (0.05, RED)]
    return [
        stat(
            "Records sent",
            "Records the runner handed to its transports over the time range.",
            units.Short,
            prom(run_total(SENT), "sent", instant=True),
            [(None, "blue")],
        ),
        stat(
            "Accepted share",
            "Acknowledged records as a share of those sent over the time range.",
            units.PercentUnit,
            prom(
                f"{run_total('logops_emitter_accepted_records_total')} / {run_total(SENT)}",
                "accepted",
                instant=True,
            ),
            [(None, RED), (0.95, ORANGE), (0.99, YELLOW), (0.999, GREEN)],
        ),
        stat(
            "Late share",
            "Records sent behind schedule as a share of those sent over the time range.",
            units.PercentUnit,
            prom(
                f"{run_total('logops_emitter_late_records_total')} / {run_total(SENT)}",
                "late",
                instant=True,
            ),
            share,
        ),
        stat(
            "Failed or rejected share",
            "Records without an answer or refused, as a share of those sent over the time range.",
            units.PercentUnit,
            prom(
                # A run without rejections has no rejected series at all: count it as 0.
                f"({run_total('logops_emitter_failed_records_total')}"
                f" + ({run_total('logops_emitter_rejected_records_total')} or vector(0)))"
                f" / {run_total(SENT)}",
                "failed or rejected",
                instant=True,
            ),
            share,
        ),
    ]


def build() -> Dashboard:
    dashboard = (
        logops_dashboard(
            "LogOps scenario run",
            UID,
            "A scenario run from the runner's side: planned, sent, acknowledged, lost.",
        )
        .refresh("10s")
        .time("now-15m", "now")
        .with_variable(
            label_variable("emitter", "Emitter", SENT, "Emitters of the running scenario.")
        )
    )
    for title, panels in (
        ("Run totals", totals()),
        ("Rates", rates()),
        ("Outcomes", outcomes()),
    ):
        dashboard = section(dashboard, title, panels)
    return dashboard
