"""What the dashboards' PromQL computes, on known series: `promtool test rules` evaluates the
expressions (Grafana's variables substituted) with Prometheus's own engine, beside the
recording rules the SLO panels read."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from observability.grafana import build

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "observability" / "prometheus" / "rules"
# Samples one minute apart; the dashboards' $__range is the ten minutes they cover.
SCRAPE, RANGE, AT = "1m", "10m", "10m"

INGEST = 'job="logops-ingest", instance="ingest:8080", service="ingest"'
AUTH = 'job="logops-auth", instance="auth:8081", service="auth"'
RUNNER = 'job="logops-scenario", instance="runner:9108", service="scenario"'
LATENCY = "logops_{}_request_duration_seconds"

SERIES = {
    # Ingest: 9 of every 10 gRPC pushes within 500 ms, 2% of pushes failed by the server.
    f'{LATENCY.format("ingest")}_bucket{{{INGEST}, front="grpc", le="0.5"}}': "0+9x10",
    f'{LATENCY.format("ingest")}_bucket{{{INGEST}, front="grpc", le="+Inf"}}': "0+10x10",
    f'{LATENCY.format("ingest")}_count{{{INGEST}, front="grpc"}}': "0+10x10",
    f'logops_ingest_requests_total{{{INGEST}, front="grpc", code="OK"}}': "0+98x10",
    f'logops_ingest_requests_total{{{INGEST}, front="grpc", code="UNAVAILABLE"}}': "0+2x10",
    f'logops_ingest_requests_total{{{INGEST}, front="http", code="INVALID_ARGUMENT"}}': "0+5x10",
    # The syslog listener's store batches: slow and failing, and left out of the SLOs.
    f'{LATENCY.format("ingest")}_bucket{{{INGEST}, front="syslog", le="0.5"}}': "0x10",
    f'{LATENCY.format("ingest")}_bucket{{{INGEST}, front="syslog", le="+Inf"}}': "0+100x10",
    f'{LATENCY.format("ingest")}_count{{{INGEST}, front="syslog"}}': "0+100x10",
    f'logops_ingest_requests_total{{{INGEST}, front="syslog", code="INTERNAL"}}': "0+50x10",
    # Auth: every push fast, none failed (so it has no failed series at all).
    f'{LATENCY.format("auth")}_bucket{{{AUTH}, front="http", le="0.5"}}': "0+4x10",
    f'{LATENCY.format("auth")}_bucket{{{AUTH}, front="http", le="+Inf"}}': "0+4x10",
    f'{LATENCY.format("auth")}_count{{{AUTH}, front="http"}}': "0+4x10",
    f'logops_auth_requests_total{{{AUTH}, front="http", code="OK"}}': "0+4x10",
    # Records: 10% of the stored ones lacked a timestamp, 5% a level.
    f'logops_ingest_records_accepted_total{{{INGEST}, emitter="web", level="INFO"}}': "0+600x10",
    f'logops_ingest_missing_fields_total{{{INGEST}, field="ts", reason="absent"}}': "0+60x10",
    f'logops_ingest_missing_fields_total{{{INGEST}, field="level", reason="invalid"}}': "0+30x10",
    # The breaker went open; the spool holds 30 of 100 batches and 512 of 1024 bytes.
    f'logops_auth_breaker_state{{{AUTH}, state="closed"}}': "1x5 0x5",
    f'logops_auth_breaker_state{{{AUTH}, state="half_open"}}': "0x10",
    f'logops_auth_breaker_state{{{AUTH}, state="open"}}': "0x5 1x5",
    f"logops_auth_spool_batches{{{AUTH}}}": "30x10",
    f"logops_auth_spool_limit_batches{{{AUTH}}}": "100x10",
    f"logops_auth_spool_bytes{{{AUTH}}}": "512x10",
    f"logops_auth_spool_limit_bytes{{{AUTH}}}": "1024x10",
    # The runner: asked for 10 records/s, sent 9/s, 1/s of them rejected.
    f'logops_emitter_target_records_per_second{{{RUNNER}, emitter="web"}}': "10x10",
    f'logops_emitter_sent_records_total{{{RUNNER}, emitter="web"}}': "0+540x10",
    f'logops_emitter_accepted_records_total{{{RUNNER}, emitter="web"}}': "0+480x10",
    f'logops_emitter_late_records_total{{{RUNNER}, emitter="web"}}': "0x10",
    f'logops_emitter_failed_records_total{{{RUNNER}, emitter="web"}}': "0x10",
    f'logops_emitter_rejected_records_total{{{RUNNER}, emitter="web", reason="replay"}}': (
        "0+60x10"
    ),
}

# (panel title, which of its queries) -> the samples it must give at AT, to 3 decimals
# (promtool compares floats exactly, and 1% budgets are not exact in binary).
EXPECTED: dict[tuple[str, int], list[tuple[str, float]]] = {
    ("Latency SLO: batches under 500 ms", 0): [
        ('{service="ingest"}', 0.9),
        ('{service="auth"}', 1),
    ],
    # 2 failed of 105 counted pushes: a refusal of bad input is served, not failed.
    ("Availability SLO", 0): [('{service="ingest"}', 0.981), ('{service="auth"}', 1)],
    ("Error budget left: latency", 0): [('{service="ingest"}', -9), ('{service="auth"}', 1)],
    ("Error budget left: availability", 0): [
        ('{service="ingest"}', -0.905),
        ('{service="auth"}', 1),
    ],
    # The recording rules' 5m error ratios over the 1% budget.
    ("Burn rate: latency", 0): [('{service="ingest"}', 10), ('{service="auth"}', 0)],
    ("Burn rate: availability", 0): [('{service="ingest"}', 1.905), ('{service="auth"}', 0)],
    ("Missing ts / level ratio", 0): [('{field="ts"}', 0.1), ('{field="level"}', 0.05)],
    ("Breaker state", 0): [("{}", 2)],
    ("Spool fill vs limit", 0): [("{}", 0.3)],
    ("Spool fill vs limit", 1): [("{}", 0.5)],
    ("Target vs achieved EPS per emitter", 0): [('{emitter="web"}', 10)],
    ("Target vs achieved EPS per emitter", 1): [('{emitter="web"}', 9)],
    ("Target vs achieved EPS per emitter", 2): [('{emitter="web"}', 8)],
    ("Rate error per emitter", 0): [('{emitter="web"}', -0.1)],
    ("Accepted share", 0): [("{}", 0.889)],
    ("Failed or rejected share", 0): [("{}", 0.111)],
    ("Top emitters", 0): [('{emitter="web"}', 6000)],
}


def expressions() -> dict[tuple[str, int], str]:
    seen: dict[str, int] = {}
    found = {}
    for title, expr in build.promql_expressions(SCRAPE, RANGE):
        index = seen.get(title, 0)
        seen[title] = index + 1
        found[(title, index)] = expr
    return found


def promtool_test(tmp_path: Path, tests: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    spec = {
        "rule_files": [str(p) for p in sorted(RULES.glob("*.yml"))],
        "evaluation_interval": SCRAPE,
        "tests": [
            {
                "interval": SCRAPE,
                "input_series": [{"series": s, "values": v} for s, v in SERIES.items()],
                "promql_expr_test": tests,
            }
        ],
    }
    path = tmp_path / "dashboards.test.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )


def test_panels_compute_what_they_say(tmp_path: Path) -> None:
    exprs = expressions()
    tests = [
        {
            "expr": f"round({exprs[key]}, 0.001)",
            "eval_time": AT,
            "exp_samples": [{"labels": labels, "value": value} for labels, value in samples],
        }
        for key, samples in EXPECTED.items()
    ]
    result = promtool_test(tmp_path, tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    # promtool must really compare: the same harness with a wrong value is refused.
    expr = expressions()[("Availability SLO", 0)]
    wrong = [
        {"labels": '{service="ingest"}', "value": 0.5},
        {"labels": '{service="auth"}', "value": 1},
    ]
    result = promtool_test(tmp_path, [{"expr": expr, "eval_time": AT, "exp_samples": wrong}])
    assert result.returncode != 0
    assert 'got: {service="auth"} 1E+00, {service="ingest"} 9.8' in result.stderr
