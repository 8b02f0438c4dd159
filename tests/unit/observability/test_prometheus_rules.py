"""The shipped Prometheus configuration and rules: promtool accepts them and their unit tests
pass, every alert is labelled, annotated, documented and tested both ways, and every metric
a rule reads is one the code exports.

The promtool checks skip when ``promtool`` is not installed (Debian's ``prometheus``
package has it; ``make system-deps`` installs it); the structural checks always run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from services.ingest.levels import LEVELS

ROOT = Path(__file__).resolve().parents[3]
PROM = ROOT / "observability" / "prometheus"
RULE_FILES = sorted((PROM / "rules").glob("*.yml"))
TEST_FILES = sorted((PROM / "tests").glob("*.test.yml"))
RUNBOOKS = ROOT / "docs" / "runbooks.md"

# The names every part of the observability work uses (alert routing, scenarios, runbooks).
ALERTS = frozenset(
    {
        "LogOpsGatewayDown",
        "LogOpsNoIngestTraffic",
        "LogOpsIngestBurst",
        "LogOpsMissingTimestampRatioHigh",
        "LogOpsMissingLevelRatioHigh",
        "LogOpsParseErrorRatioHigh",
        "LogOpsRejectRatioHigh",
        "LogOpsErrorShareHigh",
        "LogOpsAuthBadSignatureSpike",
        "LogOpsAuthReplaySpike",
        "LogOpsAuthRateLimited",
        "LogOpsAuthBreakerOpen",
        "LogOpsAuthSpoolGrowing",
        "LogOpsAuthSpoolNearFull",
        "LogOpsInflightStuck",
        "LogOpsLatencyP95High",
        "LogOpsLatencySLOFastBurn",
        "LogOpsLatencySLOSlowBurn",
        "LogOpsAvailabilitySLOFastBurn",
        "LogOpsAvailabilitySLOSlowBurn",
    }
)
JOBS = {
    "logops-ingest": ("ingest", 8080),
    "logops-auth": ("auth", 8081),
    "logops-scenario": ("scenario", 9108),
}
SEVERITIES = {"critical", "warning", "info"}
# A literal service, or the one the series carry from their target.
SERVICES = {"ingest", "auth", "logops", "{{ $labels.service }}"}

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (Debian package prometheus; make system-deps)",
)


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@cache
def _rules() -> tuple[dict[str, Any], ...]:
    return tuple(
        rule for path in RULE_FILES for group in _load(path)["groups"] for rule in group["rules"]
    )


def _alerts() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for r in _rules() if "alert" in r}


def _alert_cases() -> Iterator[tuple[str, bool]]:
    """(alert name, whether it is expected to fire) for every alert_rule_test case."""
    for path in TEST_FILES:
        for test in _load(path)["tests"]:
            for case in test.get("alert_rule_test") or []:
                yield case["alertname"], bool(case.get("exp_alerts"))


def _promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


# --- promtool ----------------------------------------------------------------------------


@needs_promtool
def test_promtool_accepts_the_config_with_local_targets() -> None:
    done = _promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
@pytest.mark.parametrize("folder", ["targets-compose", "targets-compose-gateways"])
def test_promtool_accepts_the_config_with_compose_targets(tmp_path: Path, folder: str) -> None:
    # As compose mounts it (LOGOPS_PROM_TARGETS): the folder in place of targets/.
    shutil.copy(PROM / "prometheus.yml", tmp_path)
    shutil.copytree(PROM / "rules", tmp_path / "rules")
    shutil.copytree(PROM / folder, tmp_path / "targets")
    done = _promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    done = _promtool("check", "rules", *(str(p) for p in RULE_FILES))
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_rule_tests_pass(test_file: Path) -> None:
    done = _promtool("test", "rules", str(test_file))
    assert done.returncode == 0, done.stdout + done.stderr


# --- configuration -----------------------------------------------------------------------


def test_config_loads_rules_and_targets_from_files() -> None:
    cfg = _load(PROM / "prometheus.yml")
    assert cfg["global"]["scrape_interval"] == cfg["global"]["evaluation_interval"] == "15s"
    assert cfg["rule_files"] == ["rules/*.yml"]
    jobs = {job["job_name"]: job for job in cfg["scrape_configs"]}
    assert set(jobs) == set(JOBS)
    for name, job in jobs.items():
        assert job["file_sd_configs"] == [{"files": [f"targets/{name}.yml"]}]
    (manager,) = cfg["alerting"]["alertmanagers"]
    assert manager["file_sd_configs"] == [{"files": ["targets/alertmanager.yml"]}]


@pytest.mark.parametrize(
    ("folder", "host", "alertmanager"),
    [
        ("targets", "127.0.0.1", "127.0.0.1:9093"),
        ("targets-compose", "host.docker.internal", "alertmanager:9093"),
    ],
)
def test_target_files_name_each_service(folder: str, host: str, alertmanager: str) -> None:
    for job, (service, port) in JOBS.items():
        (group,) = _load(PROM / folder / f"{job}.yml")
        assert group["targets"] == [f"{host}:{port}"]
        assert group["labels"] == {"service": service}
    (group,) = _load(PROM / folder / "alertmanager.yml")
    assert group["targets"] == [alertmanager]
    assert "service" in group["labels"]


def test_compose_gateways_targets_name_the_containers() -> None:
    """With compose's gateways profile, Prometheus scrapes the containers by service name
    on their own ports; the scenario runner stays on the host."""
    folder = PROM / "targets-compose-gateways"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{name}.yml" for name in (*JOBS, "alertmanager")
    )
    for job, (service, port) in JOBS.items():
        (group,) = _load(folder / f"{job}.yml")
        host = "host.docker.internal" if service == "scenario" else service
        assert group["targets"] == [f"{host}:{port}"]
        assert group["labels"] == {"service": service}
    compose = _load(ROOT / "observability" / "docker-compose.yml")
    for service in ("ingest", "auth"):
        published = [str(p).rsplit(":", 2)[-1] for p in compose["services"][service]["ports"]]
        assert str(JOBS[f"logops-{service}"][1]) in published


# --- alerts ------------------------------------------------------------------------------


def test_every_named_alert_exists_once() -> None:
    names = [r["alert"] for r in _rules() if "alert" in r]
    assert sorted(names) == sorted(ALERTS)


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_is_labelled_and_annotated(name: str) -> None:
    rule = _alerts()[name]
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["labels"]["service"] in SERVICES
    notes = rule["annotations"]
    assert notes["summary"].strip()
    assert "$value" in notes["description"], "the description should say the value"
    assert notes["runbook_url"] == f"docs/runbooks.md#{name.lower()}"


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    found = set()
    for line in markdown.splitlines():
        if m := re.match(r"#{1,6}\s+(.*)", line):
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            found.add(slug)
    return found


def test_every_runbook_url_has_its_section() -> None:
    anchors = _anchors(RUNBOOKS.read_text())
    missing = [
        name
        for name, rule in _alerts().items()
        if rule["annotations"]["runbook_url"].split("#", 1)[1] not in anchors
    ]
    assert not missing, f"docs/runbooks.md has no section for {missing}"


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    cases = set(_alert_cases())
    no_fire = sorted(a for a in ALERTS if (a, True) not in cases)
    no_silence = sorted(a for a in ALERTS if (a, False) not in cases)
    assert not no_fire, f"no promtool case fires {no_fire}"
    assert not no_silence, f"no promtool case keeps silent {no_silence}"
    unknown = {name for name, _ in cases} - ALERTS
    assert not unknown, f"tests for alerts that do not exist: {unknown}"


# --- what the expressions read -----------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_RECORDED = re.compile(r"\b[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]*")
_METRIC = re.compile(r"\blogops_[a-z0-9_]+\b")
_MATCHER = re.compile(r'\b(\w+)\s*(=~|!~|=|!=)\s*"([^"]*)"')
_RANGE = re.compile(r"\[(\d+)([smhd])\]")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _exprs() -> list[str]:
    return [str(r["expr"]) for r in _rules()]


@cache
def _code_text() -> str:
    files = [*(ROOT / "services").rglob("*.py"), *(ROOT / "emitters").rglob("*.py")]
    return "\n".join(p.read_text() for p in files)


def test_every_metric_read_is_exported_by_the_code() -> None:
    # A rename in services/ or emitters/ breaks this test rather than silently the alert.
    code = _code_text()
    used = {
        name
        for expr in _exprs()
        for name in _METRIC.findall(_RECORDED.sub(" ", _STRING.sub(" ", expr)))
    }
    assert used, "no metric names found: the pattern is wrong"

    def exported(name: str) -> bool:
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        return f'"{name}"' in code or f'"{base}"' in code

    missing = sorted(n for n in used if not exported(n))
    assert not missing, f"rules read metrics no code exports: {missing}"


def test_every_recorded_series_read_is_recorded() -> None:
    recorded = {r["record"] for r in _rules() if "record" in r}
    read = {name for expr in _exprs() for name in _RECORDED.findall(_STRING.sub(" ", expr))}
    assert read <= recorded, f"read but never recorded: {sorted(read - recorded)}"


def test_recorded_series_are_read_after_their_rule_in_the_same_group() -> None:
    # Rules of a group run in order at one timestamp; groups run independently. A rule that
    # reads another group's series sees it one evaluation late (and promtool's order of
    # groups varies, so its tests would flicker).
    for path in RULE_FILES:
        for group in _load(path)["groups"]:
            recorded: set[str] = set()
            for rule in group["rules"]:
                read = set(_RECORDED.findall(_STRING.sub(" ", str(rule["expr"]))))
                name = rule.get("alert") or rule["record"]
                assert read <= recorded, f"{path.name} {name} reads {sorted(read - recorded)}"
                if "record" in rule:
                    recorded.add(rule["record"])


def test_label_values_matched_are_values_the_code_uses() -> None:
    codes = {c.name for c in grpc.StatusCode}
    code = _code_text()
    for expr in _exprs():
        for label, _, value in _MATCHER.findall(expr):
            values = [v for v in value.split("|") if v]
            if label == "code":
                assert set(values) <= codes, f"not gRPC status names: {values}"
            elif label == "level":
                assert set(values) <= set(LEVELS), f"not canonical levels: {values}"
            elif label in ("reason", "front", "field"):
                unknown = [v for v in values if f'"{v}"' not in code]
                assert not unknown, f"{label} values no code uses: {unknown}"


def test_range_windows_hold_enough_scrapes() -> None:
    # rate() needs two samples in its window, and a missed scrape must not empty it: every
    # window spans at least four scrape intervals.
    interval = _RANGE.fullmatch(f"[{_load(PROM / 'prometheus.yml')['global']['scrape_interval']}]")
    assert interval is not None
    scrape = int(interval.group(1)) * _SECONDS[interval.group(2)]
    for expr in _exprs():
        for amount, unit in _RANGE.findall(expr):
            assert int(amount) * _SECONDS[unit] >= 4 * scrape, expr
