"""The shipped Alertmanager config: amtool accepts it, each severity reaches its receiver,
the inhibition names alerts that exist, and the Slack message renders for a real alert.

amtool (Debian package prometheus-alertmanager, 0.25) runs offline here: check-config,
``config routes test --config.file`` and ``template render``; no Alertmanager is started
(tests/integration/test_alertmanager_slack.py does that).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
AM_DIR = ROOT / "observability" / "alertmanager"
CONFIG = AM_DIR / "alertmanager.yml"
TEMPLATES = AM_DIR / "templates"
RULES_DIR = ROOT / "observability" / "prometheus" / "rules"

# The alert names every part of the stack agrees on (the observability contract). The
# rules files are the source when present; this list guards the config without them.
CONTRACT_ALERTS = frozenset(
    {
        "LogOpsGatewayDown", "LogOpsNoIngestTraffic", "LogOpsIngestBurst",
        "LogOpsMissingTimestampRatioHigh", "LogOpsMissingLevelRatioHigh",
        "LogOpsParseErrorRatioHigh", "LogOpsRejectRatioHigh", "LogOpsErrorShareHigh",
        "LogOpsAuthBadSignatureSpike", "LogOpsAuthReplaySpike", "LogOpsAuthRateLimited",
        "LogOpsAuthBreakerOpen", "LogOpsAuthSpoolGrowing", "LogOpsAuthSpoolNearFull",
        "LogOpsInflightStuck", "LogOpsLatencyP95High", "LogOpsLatencySLOFastBurn",
        "LogOpsLatencySLOSlowBurn", "LogOpsAvailabilitySLOFastBurn",
        "LogOpsAvailabilitySLOSlowBurn",
    }
)  # fmt: skip

# What a gateway that is down explains: no traffic, odd ratios, SLO burns, a stuck
# in-flight gauge, latency. Not auth abuse, bursts or the spool: those need their own eyes.
TRAFFIC_ALERTS = frozenset(
    {
        "LogOpsNoIngestTraffic", "LogOpsMissingTimestampRatioHigh",
        "LogOpsMissingLevelRatioHigh", "LogOpsParseErrorRatioHigh", "LogOpsRejectRatioHigh",
        "LogOpsErrorShareHigh", "LogOpsInflightStuck", "LogOpsLatencyP95High",
        "LogOpsLatencySLOFastBurn", "LogOpsLatencySLOSlowBurn",
        "LogOpsAvailabilitySLOFastBurn", "LogOpsAvailabilitySLOSlowBurn",
    }
)  # fmt: skip

RECEIVERS = {"critical": "slack-critical", "warning": "slack-warning", "info": "slack-info"}


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("amtool")
    assert exe, "amtool is missing: the Debian package prometheus-alertmanager provides it"
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=60, check=False, cwd=AM_DIR
    )


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CONFIG.read_text())
    return loaded


def rule_alerts() -> set[str]:
    names: set[str] = set()
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text()).get("groups", []):
            names.update(r["alert"] for r in group.get("rules", []) if "alert" in r)
    return names


def known_alerts() -> set[str]:
    return rule_alerts() or set(CONTRACT_ALERTS)


def alertnames(matchers: list[str]) -> set[str]:
    """Alert names a list of matcher strings selects: ``alertname="X"`` or an anchored
    alternation ``alertname=~"A|B"``; anything else about alertname is refused."""
    names: set[str] = set()
    for m in matchers:
        found = re.fullmatch(r'\s*alertname\s*(=~|=)\s*"([^"]*)"\s*', m)
        if found is None:
            assert "alertname" not in m, f"unreadable alertname matcher {m!r}"
            continue
        op, value = found.groups()
        parts = value.split("|") if op == "=~" else [value]
        assert all(re.fullmatch(r"\w+", p) for p in parts), f"not a plain list of names: {m!r}"
        names.update(parts)
    return names


def test_amtool_accepts_the_config() -> None:
    done = amtool("check-config", str(CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical"], "slack-critical"),
        (["severity=warning"], "slack-warning"),
        (["severity=info"], "slack-info"),
        # A rule that forgot its severity still reaches a human.
        ([], "slack-warning"),
    ],
)
def test_each_severity_reaches_its_receiver(labels: list[str], receiver: str) -> None:
    done = amtool(
        "config", "routes", "test", f"--config.file={CONFIG}",
        "alertname=LogOpsGatewayDown", "service=ingest", *labels,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split() == [receiver]


def test_critical_pages_faster_and_reminds_more_often_than_warning_and_info(
    config: dict[str, Any],
) -> None:
    routes = {}
    for route in config["route"]["routes"]:
        (matcher,) = route["matchers"]
        severity = re.fullmatch(r'severity="(\w+)"', matcher)
        assert severity, matcher
        routes[severity.group(1)] = route
    assert {s: r["receiver"] for s, r in routes.items()} == RECEIVERS

    def seconds(text: str) -> int:
        value, unit = re.fullmatch(r"(\d+)([smh])", text).groups()  # type: ignore[union-attr]
        return int(value) * {"s": 1, "m": 60, "h": 3600}[unit]

    for key in ("group_wait", "group_interval", "repeat_interval"):
        c, w, i = (seconds(routes[s][key]) for s in ("critical", "warning", "info"))
        assert c < w < i, key
    assert seconds(routes["critical"]["group_wait"]) <= 10
    assert config["route"]["group_by"] == ["alertname", "service"]


def test_every_receiver_is_slack_from_the_secret_file_with_resolved_messages(
    config: dict[str, Any],
) -> None:
    assert {r["name"] for r in config["receivers"]} == set(RECEIVERS.values())
    for receiver in config["receivers"]:
        assert set(receiver) == {"name", "slack_configs"}, receiver["name"]
        (slack,) = receiver["slack_configs"]
        # Relative: the working directory (observability/alertmanager, or /etc/alertmanager
        # in compose) resolves it, so one config serves both modes.
        assert slack["api_url_file"] == "secrets/slack_webhook_url"
        assert "api_url" not in slack
        assert slack["send_resolved"] is True
        for field in ("title", "text", "color"):
            assert slack[field] == f'{{{{ template "logops.slack.{field}" . }}}}'
    assert (AM_DIR / "secrets" / "slack_webhook_url.example").read_text().startswith("https://")


def test_inhibition_names_only_alerts_that_exist(config: dict[str, Any]) -> None:
    known = known_alerts()
    for rule in config["inhibit_rules"]:
        named = alertnames(rule["source_matchers"]) | alertnames(rule["target_matchers"])
        assert named <= known, sorted(named - known)


def test_rules_define_every_alert_of_the_contract() -> None:
    found = rule_alerts()
    if not found:
        pytest.skip("no rules under observability/prometheus/rules yet")
    assert found >= CONTRACT_ALERTS, sorted(CONTRACT_ALERTS - found)


def test_gateway_down_silences_exactly_the_traffic_alerts_of_its_service(
    config: dict[str, Any],
) -> None:
    (rule,) = [
        r for r in config["inhibit_rules"]
        if alertnames(r["source_matchers"]) == {"LogOpsGatewayDown"}
    ]  # fmt: skip
    assert alertnames(rule["target_matchers"]) == TRAFFIC_ALERTS
    assert rule["equal"] == ["service"]


def test_critical_silences_warning_of_the_same_alert_and_service(
    config: dict[str, Any],
) -> None:
    assert {
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="warning"'],
        "equal": ["alertname", "service"],
    } in config["inhibit_rules"]


def render(template: str, data: dict[str, Any], tmp_path: Path) -> str:
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(data))
    done = amtool(
        "template", "render", f"--template.glob={TEMPLATES}/*.tmpl",
        f"--template.text={{{{ template {json.dumps(template)} . }}}}",
        f"--template.data={data_file}",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def group(status: str, runbook: str = "docs/runbooks.md#logopsgatewaydown") -> dict[str, Any]:
    """Notification data as Alertmanager builds it for one group of two alerts."""
    labels = {"alertname": "LogOpsGatewayDown", "service": "ingest", "severity": "critical"}
    alerts = [
        {
            "status": status,
            "labels": {**labels, "job": "logops-ingest", "instance": instance},
            "annotations": {
                "summary": f"Ingest Gateway {instance} is down",
                "description": "Prometheus has not scraped it for 1m.",
                "runbook_url": runbook,
            },
            "startsAt": "2026-12-01T10:00:00Z",
            "endsAt": "2026-12-01T10:05:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": instance,
        }
        for instance in ("host.docker.internal:8080", "10.0.0.2:8080")
    ]
    return {
        "receiver": "slack-critical",
        "status": status,
        "alerts": alerts,
        "groupLabels": {"alertname": "LogOpsGatewayDown", "service": "ingest"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
    }


def test_slack_title_names_status_count_alert_and_service(tmp_path: Path) -> None:
    assert render("logops.slack.title", group("firing"), tmp_path) == (
        "[FIRING:2] LogOpsGatewayDown (ingest)"
    )
    assert render("logops.slack.title", group("resolved"), tmp_path) == (
        "[RESOLVED] LogOpsGatewayDown (ingest)"
    )


def test_slack_text_has_summary_description_runbook_and_labels(tmp_path: Path) -> None:
    text = render("logops.slack.text", group("firing"), tmp_path)
    blocks = [b for b in text.strip().split("\n\n") if b]
    assert len(blocks) == 2
    first = blocks[0].splitlines()
    assert first[0] == "*FIRING* LogOpsGatewayDown (critical, service ingest)"
    assert "*Summary:* Ingest Gateway host.docker.internal:8080 is down" in first
    assert "*Description:* Prometheus has not scraped it for 1m." in first
    # A path in the repository is shown as text: Slack would make a broken link of it.
    assert "*Runbook:* `docs/runbooks.md#logopsgatewaydown`" in first
    assert (
        "*Labels:* `alertname=LogOpsGatewayDown` `instance=host.docker.internal:8080` "
        "`job=logops-ingest` `service=ingest` `severity=critical`"
    ) in first
    assert "*Since:* 2026-12-01 10:00:00 UTC" in first


def test_slack_text_links_an_absolute_runbook_and_says_when_resolved(tmp_path: Path) -> None:
    url = "https://git.example.com/logops/blob/main/docs/runbooks.md#logopsgatewaydown"
    text = render("logops.slack.text", group("resolved", runbook=url), tmp_path)
    assert f"*Runbook:* <{url}|LogOpsGatewayDown runbook>" in text
    assert "*RESOLVED* LogOpsGatewayDown" in text
    assert "*Since:* 2026-12-01 10:00:00 UTC, *resolved:* 2026-12-01 10:05:00 UTC" in text


@pytest.mark.parametrize(
    ("status", "severity", "color"),
    [
        ("firing", "critical", "danger"),
        ("firing", "warning", "warning"),
        ("firing", "info", "#439FE0"),
        ("resolved", "critical", "good"),
    ],
)
def test_slack_color_follows_status_and_severity(
    status: str, severity: str, color: str, tmp_path: Path
) -> None:
    data = group(status)
    data["commonLabels"]["severity"] = severity
    assert render("logops.slack.color", data, tmp_path) == color
