"""The "LogOps overview" dashboard: traffic, quality, gateways, SLO, the Auth hop, alerts, logs."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import units
from grafana_foundation_sdk.models.dashboard import Panel

from observability.grafana import slo
from observability.grafana.panels import (
    GREEN,
    RED,
    YELLOW,
    bar_gauge,
    dashed_series,
    label_variable,
    logops_dashboard,
    logs,
    loki,
    loki_timeseries,
    prom,
    section,
    state_timeline,
    table,
    table_query,
    timeseries,
)

UID = "logops-overview"
ACCEPTED = "logops_ingest_records_accepted_total"
SELECTED = 'emitter=~"$emitter", level=~"$level"'
# Loki streams carry exactly the labels job, emitter, level and format; job is "logops"
# (observability/alloy/config.alloy, promtail/promtail.yml). Matching it also keeps the
# selector valid when both variables are "All": Loki refuses one whose matchers all match
# the empty string.
LOG_STREAM = '{job="logops", emitter=~"$emitter", level=~"$level"}'


def traffic() -> list[Builder[Panel]]:
    eps = timeseries(
        "EPS by emitter and level",
        "Records stored per second by the Ingest Gateway, by emitter and canonical level.",
        units.RecordsPerSecond,
        prom(
            f"sum by (emitter, level) (rate({ACCEPTED}{{{SELECTED}}}[$__rate_interval]))",
            "{{emitter}} {{level}}",
        ),
    )
    accepted_rejected = timeseries(
        "Accepted vs rejected records",
        "Records stored (for the selected emitters and levels) against records refused "
        "by the Ingest Gateway (all emitters: rejections carry no emitter label).",
        units.RecordsPerSecond,
        prom(f"sum(rate({ACCEPTED}{{{SELECTED}}}[$__rate_interval]))", "accepted"),
        prom("sum(rate(logops_ingest_records_rejected_total[$__rate_interval]))", "rejected"),
    )
    top = bar_gauge(
        "Top emitters",
        "The ten emitters with the most records stored over the dashboard's time range.",
        units.Short,
        prom(
            f"topk(10, sum by (emitter) (increase({ACCEPTED}{{{SELECTED}}}[$__range])))",
            "{{emitter}}",
            instant=True,
        ),
    )
    pushes = timeseries(
        "Pushes by gateway, front and code",
        "Push requests answered per second; any code but OK is a refusal or a failure.",
        units.RequestsPerSecond,
        prom(
            "sum by (front, code) (rate(logops_ingest_requests_total[$__rate_interval]))",
            "ingest {{front}} {{code}}",
        ),
        prom(
            "sum by (front, code) (rate(logops_auth_requests_total[$__rate_interval]))",
            "auth {{front}} {{code}}",
        ),
    )
    return [eps, accepted_rejected, top, pushes]


def quality() -> list[Builder[Panel]]:
    ingest_rejections = timeseries(
        "Rejections by reason: Ingest records",
        "Records the Ingest Gateway refused, by reason (parse_error, invalid_record, ...).",
        units.RecordsPerSecond,
        prom(
            "sum by (reason) (rate(logops_ingest_records_rejected_total[$__rate_interval]))",
            "{{reason}}",
        ),
    )
    auth_rejections = timeseries(
        "Rejections by reason: Auth pushes",
        "Pushes refused by the Auth Gateway (signature, replay, rate limit, size, overload) "
        "and by the Ingest Gateway's own signature check.",
        units.RequestsPerSecond,
        prom(
            "sum by (reason) (rate(logops_auth_rejected_total[$__rate_interval])) > 0",
            "auth {{reason}}",
        ),
        prom(
            "sum by (reason) (rate(logops_ingest_auth_rejected_total[$__rate_interval])) > 0",
            "ingest {{reason}}",
        ),
    )
    missing = timeseries(
        "Missing ts / level ratio",
        "Share of stored records whose timestamp or level was absent or invalid (Ingest "
        "filled them in). Above 5% a source is likely misconfigured.",
        units.PercentUnit,
        prom(
            "sum by (field) (rate(logops_ingest_missing_fields_total[$__rate_interval]))"
            f" / ignoring (field) group_left () sum(rate({ACCEPTED}[$__rate_interval]))",
            "missing {{field}}",
        ),
        steps=[(None, GREEN), (0.01, YELLOW), (0.05, RED)],
    )
    return [ingest_rejections, auth_rejections, missing]


def gateways() -> list[Builder[Panel]]:
    inflight = timeseries(
        "In-flight requests per gateway",
        "Push requests being handled right now, by gateway and front. A level that "
        "never falls means requests are stuck.",
        units.Short,
        prom("sum by (front) (logops_ingest_inflight_requests)", "ingest {{front}}"),
        prom("sum by (front) (logops_auth_inflight_requests)", "auth {{front}}"),
    )
    latency = timeseries(
        "p95 latency per gateway and front",
        "95th percentile of the time to answer a push, from the latency histograms. "
        "The SLO wants 99% of batches under 500 ms.",
        units.Seconds,
        prom(
            "histogram_quantile(0.95, sum by (le, front) "
            "(rate(logops_ingest_request_duration_seconds_bucket[$__rate_interval])))",
            "ingest {{front}}",
        ),
        prom(
            "histogram_quantile(0.95, sum by (le, front) "
            "(rate(logops_auth_request_duration_seconds_bucket[$__rate_interval])))",
            "auth {{front}}",
        ),
        steps=[(None, GREEN), (0.25, YELLOW), (0.5, RED)],
    )
    return [inflight, latency]


def auth_hop() -> list[Builder[Panel]]:
    breaker = state_timeline(
        "Breaker state",
        "The Auth Gateway's circuit breaker on its hop to Ingest: open means pushes go "
        "to the spool instead of Ingest.",
        prom(
            'max(logops_auth_breaker_state{state="half_open"})'
            ' + 2 * max(logops_auth_breaker_state{state="open"})',
            "breaker",
        ),
        [(0, "closed", GREEN), (1, "half open", YELLOW), (2, "open", RED)],
    )
    attempts = timeseries(
        "Forward attempts by outcome",
        "Attempts to hand a push to the Ingest Gateway, by outcome.",
        units.RequestsPerSecond,
        prom(
            "sum by (outcome) (rate(logops_auth_forward_attempts_total[$__rate_interval]))",
            "{{outcome}}",
        ),
    )
    spool_batches = dashed_series(
        timeseries(
            "Spool depth: batches",
            "Batches waiting in the Auth Gateway's durable spool, against its bound.",
            units.Short,
            prom("sum(logops_auth_spool_batches)", "spooled"),
            prom("sum(logops_auth_spool_limit_batches)", "limit"),
            width=8,
        ),
        "limit",
    )
    spool_bytes = dashed_series(
        timeseries(
            "Spool depth: bytes",
            "Bytes waiting in the Auth Gateway's durable spool, against its bound.",
            units.BytesIEC,
            prom("sum(logops_auth_spool_bytes)", "spooled"),
            prom("sum(logops_auth_spool_limit_bytes)", "limit"),
            width=8,
        ),
        "limit",
    )
    spool_fill = timeseries(
        "Spool fill vs limit",
        "The spool's depth as a share of each of its two bounds (batches, bytes); once "
        "either is reached, a push Ingest cannot take is answered 503. The alert fires at 80%.",
        units.PercentUnit,
        prom("max(logops_auth_spool_batches / logops_auth_spool_limit_batches)", "batches"),
        prom("max(logops_auth_spool_bytes / logops_auth_spool_limit_bytes)", "bytes"),
        steps=[(None, GREEN), (0.5, YELLOW), (0.8, RED)],
        width=8,
    )
    return [breaker, attempts, spool_batches, spool_bytes, spool_fill]


def alerts() -> list[Builder[Panel]]:
    active = table(
        "Active alerts",
        "Alerts firing now, as Prometheus evaluates them (the ALERTS series); "
        "Alertmanager routes and silences them.",
        table_query('sort_desc(ALERTS{alertstate="firing"})'),
        hide=["Time", "Value", "__name__", "alertstate"],
        width=24,
    )
    return [active]


def log_panels() -> list[Builder[Panel]]:
    by_level = loki_timeseries(
        "Lines by level",
        "Log lines Loki received from the NDJSON sink, by level.",
        loki(f"sum by (level) (count_over_time({LOG_STREAM} [$__auto]))", "{{level}}"),
    )
    tail = logs(
        "Live tail",
        "The newest stored records from Loki for the selected emitters and levels, newest "
        "first, refreshed with the dashboard (Explore's Live mode streams them).",
        loki(LOG_STREAM),
    )
    return [by_level, tail]


def build() -> Dashboard:
    dashboard = (
        logops_dashboard(
            "LogOps overview",
            UID,
            "Traffic through both gateways, record quality, latency, SLOs and alerts.",
        )
        .refresh("30s")
        .time("now-1h", "now")
        .with_variable(
            label_variable("emitter", "Emitter", ACCEPTED, "Emitters seen by the Ingest Gateway.")
        )
        .with_variable(
            label_variable(
                "level", "Level", f'{ACCEPTED}{{emitter=~"$emitter"}}', "Canonical levels."
            )
        )
    )
    for title, panels in (
        ("Service level", slo.panels()),
        ("Traffic", traffic()),
        ("Quality", quality()),
        ("Gateways", gateways()),
        ("Auth hop", auth_hop()),
        ("Alerts", alerts()),
        ("Logs", log_panels()),
    ):
        dashboard = section(dashboard, title, panels)
    return dashboard
