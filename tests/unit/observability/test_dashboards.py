"""The generated Grafana dashboards: committed JSON matches its Python source, every PromQL
query parses (promtool) and names only metrics that exist, LogQL selectors use only the
labels the log pipeline sets, and every panel PRODUCT.md section 8 asks for is there."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from observability.grafana import build
from tests.unit.observability.logs_pipeline_labels import loki_labels

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "observability" / "grafana" / "dashboards"
RULES_DIR = ROOT / "observability" / "prometheus" / "rules"
# Series Prometheus makes itself rather than scraping them.
PROMETHEUS_OWN = {"ALERTS", "ALERTS_FOR_STATE", "up"}
# Metric names a counter/histogram exposes beyond the name it is created with.
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# PRODUCT.md section 8, "observability/grafana/": each item and the panels that show it.
PRODUCT_PANELS = {
    "EPS by emitter and level": ["EPS by emitter and level"],
    "accepted vs rejected": ["Accepted vs rejected records"],
    "missing-field ratios": ["Missing ts / level ratio"],
    "in-flight": ["In-flight requests per gateway"],
    "p95 latency": ["p95 latency per gateway and front"],
    "SLO": [
        "Latency SLO: batches under 500 ms",
        "Availability SLO",
        "Burn rate: latency",
        "Burn rate: availability",
        "Error budget left: latency",
        "Error budget left: availability",
    ],
    "rejections by reason": [
        "Rejections by reason: Ingest records",
        "Rejections by reason: Auth pushes",
    ],
    "breaker state": ["Breaker state"],
    "spool depth": ["Spool depth: batches", "Spool depth: bytes", "Spool fill vs limit"],
    "active alerts": ["Active alerts"],
    "top emitters": ["Top emitters"],
    "live tail from Loki": ["Live tail", "Lines by level"],
}
SCENARIO_PANELS = [
    "Target vs achieved EPS per emitter",
    "Rate error per emitter",
    "Late records per emitter",
    "Failed records per emitter",
    "Rejected records by reason",
]


def committed(name: str) -> Any:
    return json.loads((COMMITTED / name).read_text(encoding="utf-8"))


def all_panels(board: Any) -> list[Any]:
    panels = []
    for panel in board["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def titles(name: str) -> dict[str, Any]:
    return {p["title"]: p for p in all_panels(committed(name))}


# --- (a) the committed JSON is what the Python source generates ---------------------------


def test_committed_json_matches_the_builders(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "observability.grafana.build", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stderr == ""
    fresh = sorted(p.name for p in tmp_path.iterdir())
    assert fresh == sorted(p.name for p in COMMITTED.glob("*.json"))
    for name in fresh:
        assert (tmp_path / name).read_bytes() == (COMMITTED / name).read_bytes(), (
            f"{name} is stale: run python -m observability.grafana.build"
        )


def test_json_is_sorted_two_space_indented_with_a_final_newline() -> None:
    for path in COMMITTED.glob("*.json"):
        text = path.read_text(encoding="utf-8")
        assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n", path


def test_check_mode_fails_on_a_hand_edit_and_passes_on_fresh_output(tmp_path: Path) -> None:
    build.write(tmp_path)
    assert build.main(["--check", "--out", str(tmp_path)]) == 0
    path = tmp_path / "logops-overview.json"
    path.write_text(path.read_text().replace("LogOps overview", "Edited by hand"))
    (tmp_path / "old-dashboard.json").write_text("{}\n")
    report = build.differences(tmp_path)
    assert any(line.startswith("+") and "LogOps overview" in line for line in report)
    assert any("old-dashboard.json" in line and "stale" in line for line in report)
    assert build.main(["--check", "--out", str(tmp_path)]) == 1


def test_uids_are_stable_and_panel_ids_unique() -> None:
    assert sorted(build.DASHBOARDS) == ["logops-overview.json", "logops-scenario-run.json"]
    for name in build.DASHBOARDS:
        board = committed(name)
        assert board["uid"] == name.removesuffix(".json")
        ids = [p["id"] for p in all_panels(board)]
        assert len(ids) == len(set(ids)) and 0 not in ids


# --- (b) every PromQL expression parses ---------------------------------------------------


def promtool_check(tmp_path: Path, exprs: list[str]) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    rules = [{"record": f"dashboard:query_{i}:check", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard-queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    return subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )


def variable_selectors() -> list[str]:
    """The series each ``label_values(series, label)`` variable lists, as a selector."""
    selectors = []
    for name in build.DASHBOARDS:
        for variable in committed(name)["templating"]["list"]:
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"])
            assert match, variable["query"]
            selectors.append(match.group(1))
    return selectors


def all_promql() -> list[str]:
    exprs = [expr for _, expr in build.promql_expressions()]
    return exprs + [build.substitute(s) for s in variable_selectors()]


def test_every_promql_expression_parses(tmp_path: Path) -> None:
    exprs = all_promql()
    assert len(exprs) > 40
    result = promtool_check(tmp_path, exprs)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_promtool_check_refuses_a_broken_expression(tmp_path: Path) -> None:
    # The check above would pass vacuously if promtool accepted anything.
    result = promtool_check(tmp_path, ["sum by (emitter) (rate(x[5m])"])
    assert result.returncode != 0


def test_grafana_variables_are_substituted_as_grafana_does() -> None:
    assert build.substitute("rate(x[$__rate_interval])", "15s") == "rate(x[60s])"
    assert build.substitute("rate(x[$__rate_interval])", "2.5s") == "rate(x[10s])"
    assert build.substitute("rate(x[$__rate_interval])", "300ms") == "rate(x[1200ms])"
    assert (
        build.substitute('increase(x{emitter=~"$emitter",level=~"$level"}[$__range])', "15s", "5m")
        == 'increase(x{emitter=~".*",level=~".*"}[5m])'
    )
    with pytest.raises(ValueError, match="unsubstituted"):
        build.substitute("rate(x[$__interval])")
    assert all("$" not in expr for _, expr in build.promql_expressions())


def test_rates_follow_the_scrape_interval() -> None:
    """Range panels use $__rate_interval (never a window shorter than four scrapes), totals
    the dashboard's range; fixed windows belong to the recording rules the SLO panels read."""
    windows = {
        window
        for _, expr in build.prometheus_queries()
        for window in re.findall(r"\[([^\]]+)\]", expr)
    }
    assert windows == {"$__rate_interval", "$__range"}


# --- (c) every metric exists --------------------------------------------------------------

PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers left once strings, label
    matchers, ranges and grouping lists are removed, and that are not called."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = GROUPING.sub(" ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)\s*(\(?)", expr):
        word, call = match.groups()
        if not call and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (le, front) (rate(a_bucket{le="0.5", x=~"b|c"}[5m])) / on (x) group_left () '
        "b:rule:rate5m > bool 2 * max(vector(0)) or c offset 5m"
    )
    assert metric_names(expr) == {"a_bucket", "b:rule:rate5m", "c"}


def defined_metrics() -> set[str]:
    found: set[str] = set()
    for folder in ("services", "emitters"):
        for path in (ROOT / folder).rglob("*.py"):
            found.update(re.findall(r"""["'](logops_[a-z0-9_]+)["']""", path.read_text()))
    return found


def recording_rules() -> set[str]:
    names = set()
    for path in sorted(RULES_DIR.glob("*.y*ml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(r["record"] for r in group["rules"] if "record" in r)
    return names


def exists(name: str, defined: set[str]) -> bool:
    base = next((name.removesuffix(s) for s in HISTOGRAM_SUFFIXES if name.endswith(s)), name)
    return name in defined or base in defined


def test_every_metric_exists_in_the_code_or_the_rules() -> None:
    defined = defined_metrics() | recording_rules() | PROMETHEUS_OWN
    assert "logops_ingest_records_accepted_total" in defined
    used = {name for expr in all_promql() for name in metric_names(expr)}
    assert len(used) > 20
    assert sorted(n for n in used if not exists(n, defined)) == []


# --- (d) LogQL selectors use only the pipeline's labels -----------------------------------

MATCHER = re.compile(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def stream_selectors(expr: str) -> list[list[tuple[str, str, str]]]:
    """The matchers of each ``{...}`` stream selector in a LogQL expression."""
    selectors = []
    for body in re.findall(r"\{([^}]*)\}", expr):
        matchers = MATCHER.findall(body)
        assert matchers and "".join(m.group(0) for m in MATCHER.finditer(body)) == body, body
        selectors.append(matchers)
    return selectors


def test_logql_selectors_use_only_the_pipeline_labels() -> None:
    # The stream labels Alloy and Promtail set, read from their configs: job, emitter,
    # level, format (PRODUCT.md section 8); scenario_id, run_id, batch_id are metadata.
    allowed = loki_labels()
    assert allowed == {"job", "emitter", "level", "format"}
    queries = build.logql_queries()
    assert {title for title, _ in queries} == {"Live tail", "Lines by level"}
    for title, expr in queries:
        selectors = stream_selectors(expr)
        assert selectors, (title, expr)
        for matchers in selectors:
            assert {label for label, _, _ in matchers} <= allowed, (title, expr)
            # Loki refuses a selector whose matchers all match the empty string.
            assert any(
                (op == "=~" and value == ".+") or (op == "=" and value) for _, op, value in matchers
            ), (title, expr)


def shipped_jobs() -> set[str]:
    """The ``job`` label the log shippers put on the sink's streams."""
    promtail = yaml.safe_load((ROOT / "observability" / "promtail" / "promtail.yml").read_text())
    jobs = {
        group["labels"]["job"]
        for scrape in promtail["scrape_configs"]
        for group in scrape["static_configs"]
    }
    alloy = (ROOT / "observability" / "alloy" / "config.alloy").read_text()
    return jobs | set(re.findall(r'"job"\s*=\s*"([^"]+)"', alloy))


def test_logql_selects_the_job_the_shippers_set() -> None:
    jobs = shipped_jobs()
    assert len(jobs) == 1, jobs
    for title, expr in build.logql_queries():
        for matchers in stream_selectors(expr):
            assert ("job", "=", next(iter(jobs))) in matchers, (title, expr)


# --- (e) the panels PRODUCT.md section 8 asks for -----------------------------------------


@pytest.mark.parametrize("item", sorted(PRODUCT_PANELS))
def test_overview_has_the_product_panels(item: str) -> None:
    panels = titles("logops-overview.json")
    for title in PRODUCT_PANELS[item]:
        assert title in panels, f"{item}: no panel {title!r}"
        panel = panels[title]
        assert panel["description"] and panel["targets"], title


def test_live_tail_and_lines_by_level_read_loki() -> None:
    panels = titles("logops-overview.json")
    assert panels["Live tail"]["type"] == "logs"
    for title in ("Live tail", "Lines by level"):
        assert panels[title]["datasource"] == {"type": "loki", "uid": "loki"}


def test_scenario_run_has_target_achieved_and_outcome_panels() -> None:
    panels = titles("logops-scenario-run.json")
    assert [t for t in SCENARIO_PANELS if t not in panels] == []
    exprs = " ".join(t["expr"] for t in panels["Target vs achieved EPS per emitter"]["targets"])
    for metric in ("target_records_per_second", "sent_records_total", "accepted_records_total"):
        assert f"logops_emitter_{metric}" in exprs


def test_every_panel_says_what_it_shows_and_in_what_unit() -> None:
    for name in build.DASHBOARDS:
        for panel in all_panels(committed(name)):
            if panel["type"] == "row":
                continue
            assert panel.get("description"), (name, panel["title"])
            if panel["type"] in ("timeseries", "stat", "bargauge"):
                assert panel["fieldConfig"]["defaults"].get("unit"), (name, panel["title"])


def test_variables_list_emitters_and_levels_from_the_accepted_counter() -> None:
    variables = {v["name"]: v for v in committed("logops-overview.json")["templating"]["list"]}
    assert sorted(variables) == ["emitter", "level"]
    for name, variable in variables.items():
        assert variable["query"].startswith("label_values(logops_ingest_records_accepted_total")
        assert variable["query"].endswith(f", {name})")
        assert variable["includeAll"] and variable["allValue"] == ".*"
