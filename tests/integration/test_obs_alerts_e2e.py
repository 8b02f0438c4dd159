"""From a misbehaving pipeline to a page and back: real gateways, real Prometheus running the
shipped rules (sped up), real Alertmanager with the shipped routes, a webhook for Slack.

Ingest and the Auth Gateway run as processes on free ports (tests/integration/
outage_support.py, the Auth Gateway's hop tuned to give up on Ingest within a second or
two). Prometheus scrapes them and the scenario runner every second and evaluates the
shipped rule files with every time divided by 30 (tests/obs_support.py); Alertmanager
routes as shipped, every receiver a webhook to a small HTTP server in this test that
stands in for Slack.

``logops scenario run`` itself drives the traffic, with ``--alertmanager`` pointed at the
test's Alertmanager: its ``stop_ingest``/``start_ingest`` steps freeze and resume this
Ingest (SIGSTOP/SIGCONT) the way they do with ``make up``, found through a ``data/run/
up.log`` in the runner's working folder. A run with forged signatures and an outage must
page (bad signatures, breaker open, gateway down), resolve, and be judged by the runner's
alert expectations; then every PromQL expression of the rules and of the dashboards is
evaluated on that Prometheus; then the shipped ``auth-abuse`` and ``outage`` scenarios'
alert expectations must hold (short versions).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.outage_support import CLIENT_KEY_ID, OutageKeys, Pipeline, write_keys
from tests.obs_support import ROOT, SHIPPED_PROMETHEUS, ObsStack, WebhookReceiver

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(not Path(f"/usr/bin/{b}").exists() for b in ("prometheus", "prometheus-alertmanager")),
        reason="Debian's prometheus and prometheus-alertmanager are not installed",
    ),
]

# The key of `logops up` allows 5000 records/s (burst 10000): auth-abuse's flood is over it.
CLIENT_RATE = {"records_per_sec": 5000, "burst": 10000}
RUN_TIMEOUT_SEC = 150


class FrozenIngestPipeline(Pipeline):
    """The outage test's two gateway processes, without Ingest's syslog listener (its
    default port may be taken by `make up`)."""

    def _ingest_args(self, http_port: int, grpc_port: int) -> list[str]:
        return [*super()._ingest_args(http_port, grpc_port), "--no-syslog"]


@dataclass
class World:
    folder: Path
    pipeline: FrozenIngestPipeline
    keys: OutageKeys
    secret_file: Path
    receiver: WebhookReceiver
    stack: ObsStack
    runner_port: int
    cwd: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _address(url: str) -> str:
    return url.removeprefix("http://")


def _client_keys(folder: Path) -> tuple[OutageKeys, Path]:
    keys = write_keys(folder)
    doc = yaml.safe_load(keys.auth_keys.read_text())
    doc["keys"][CLIENT_KEY_ID]["rate"] = CLIENT_RATE
    keys.auth_keys.write_text(json.dumps(doc))
    secret = folder / "client.secret"
    secret.write_text(keys.client_secret + "\n")
    secret.chmod(0o600)
    return keys, secret


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("obs-e2e")
    keys, secret = _client_keys(folder / "keys")
    pipeline = FrozenIngestPipeline(folder, keys)
    receiver = WebhookReceiver()
    stack = ObsStack(folder, receiver)
    try:
        pipeline.start()
        runner_port = _free_port()
        stack.start({
            "logops-ingest": (_address(pipeline.ingest.http_url), "ingest"),
            "logops-auth": (_address(pipeline.auth.http_url), "auth"),
            "logops-scenario": (f"127.0.0.1:{runner_port}", "scenario"),
        })
        stack.wait_scraped(["logops-ingest", "logops-auth"])
        # Where `make up` writes its pids: the runner's steps freeze this Ingest.
        cwd = folder / "cwd"
        (cwd / "data" / "run").mkdir(parents=True)
        up = {"event": "up", "pids": {"ingest": pipeline.ingest.pid}}
        (cwd / "data" / "run" / "up.log").write_text(json.dumps(up, separators=(",", ":")))
        yield World(folder, pipeline, keys, secret, receiver, stack, runner_port, cwd)
    finally:
        if pipeline.started:
            os.kill(pipeline.ingest.pid, signal.SIGCONT)  # a failed run may leave it frozen
        stack.stop()
        pipeline.stop()
        receiver.close()


def run_scenario(world: World, file: Path, run_id: str, *flags: str
                 ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """``logops scenario run`` against the test's gateways and Alertmanager."""
    p = world.pipeline
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "scenario", "run", str(file),
         "--ingest-http", p.ingest.http_url, "--ingest-grpc", p.ingest.grpc_target,
         "--syslog", "127.0.0.1:9", "--auth-http", p.auth.http_url,
         "--auth-grpc", p.auth.grpc_target, "--key-id", CLIENT_KEY_ID,
         "--secret-file", str(world.secret_file), "--runs-dir", str(world.folder / "runs"),
         "--run-id", run_id, "--sink-dir", str(p.sink),
         "--alertmanager", world.stack.alertmanager_url,
         "--metrics-port", str(world.runner_port), "--plain", *flags],
        cwd=world.cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT_SEC, check=False,
        env={**os.environ, "LOGOPS_SCENARIO_SCALE": ""},
    )
    summary_file = world.folder / "runs" / run_id / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    return done, summary


def alert_verdicts(summary: dict[str, Any]) -> dict[str, tuple[bool | None, str]]:
    return {e["expr"]: (e["ok"], e["note"]) for e in summary.get("expectations", [])
            if e["metric"].startswith("alert.")}


# Forged pushes for 10 s, Ingest frozen from 3 s to 17 s: the three pages of a bad day. The
# breaker opens a few seconds into the outage and its alert waits 4 s more (for: 2m / 30),
# so the outage must last long enough for the page to go out before it is over.
TROUBLE = """\
name: obs-e2e
description: Forged signatures and an Ingest outage, for the alert pipeline.
duration_sec: 24
emitters:
  - name: steady
    transport: grpc
    eps: 100
    batch_size: 20
    args: {seed: 1}
  - name: forged
    transport: http
    eps: 20
    batch_size: 2
    args: {seed: 2, signing: bad_secret}
    schedule: {stop_after_sec: 10}
steps:
  - {at_sec: 3, action: stop_ingest}
  - {at_sec: 17, action: start_ingest}
expect:
  - lost == 0
  - duplicates == 0
  - emitter.forged.rejected.bad_signature > 0
  - {alert: LogOpsAuthBadSignatureSpike, state: firing, within_sec: 20}
  - {alert: LogOpsAuthBadSignatureSpike, state: resolved, within_sec: 30}
  - {alert: LogOpsAuthBreakerOpen, state: firing, within_sec: 20}
  - {alert: LogOpsAuthBreakerOpen, state: resolved, within_sec: 30}
  - {alert: LogOpsGatewayDown, state: firing, within_sec: 20}
  - {alert: LogOpsGatewayDown, state: resolved, within_sec: 30}
"""
PAGES = {  # alert -> the receiver the shipped routes send it to (by severity)
    "LogOpsAuthBadSignatureSpike": "slack-warning",
    "LogOpsAuthBreakerOpen": "slack-warning",
    "LogOpsGatewayDown": "slack-critical",
}


@pytest.fixture(scope="module")
def trouble(world: World) -> dict[str, Any]:
    file = world.folder / "trouble.yaml"
    file.write_text(TROUBLE)
    done, summary = run_scenario(world, file, "trouble")
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:],
                                  alert_verdicts(summary))
    return summary


def test_forged_pushes_and_an_outage_page_resolve_and_hold_as_expected(
    world: World, trouble: dict[str, Any]
) -> None:
    verdicts = alert_verdicts(trouble)
    assert len(verdicts) == 6 and all(ok for ok, _ in verdicts.values()), verdicts
    # The steps really froze and resumed this Ingest.
    assert [s["ok"] for s in trouble["steps"]] == [True, True], trouble["steps"]
    assert all("frozen" in s["result"] or "resumed" in s["result"] for s in trouble["steps"])
    for alert, receiver in PAGES.items():
        fired = world.receiver.wait_for(alert, "firing", timeout=5)
        assert fired, f"no firing notification of {alert}: {world.receiver.notifications}"
        resolved = world.receiver.wait_for(alert, "resolved", timeout=30)
        assert resolved, f"no resolved notification of {alert}:\n{world.stack.log('alertmanager')}"
        # Routed by severity, with the shipped labels and annotations.
        labels, notes = resolved[-1]["labels"], resolved[-1]["annotations"]
        assert labels["severity"] in ("warning", "critical") and labels["service"]
        assert notes["runbook_url"] == f"docs/runbooks.md#{alert.lower()}"
        bodies = [n for n in world.receiver.notifications
                  if any(a["labels"]["alertname"] == alert for a in n["alerts"])]
        assert {n["receiver"] for n in bodies} == {receiver}
    down = world.receiver.seen("LogOpsGatewayDown", "firing")
    assert {a["labels"]["service"] for a in down} == {"ingest"}


def _rule_expressions() -> list[tuple[str, str]]:
    out = []
    for path in sorted((SHIPPED_PROMETHEUS / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out.append((rule.get("alert") or rule["record"], str(rule["expr"])))
    return out


def _dashboard_expressions() -> list[tuple[str, str]]:
    sys.path.insert(0, str(ROOT))
    try:
        from observability.grafana.build import promql_expressions
    except ImportError:
        return []
    # The test's Prometheus scrapes every second; an hour covers the whole run.
    return promql_expressions(scrape_interval="1s", time_range="1h")


def _empty(answer: dict[str, Any]) -> bool:
    return not answer["data"]["result"]


def _evaluate(world: World, exprs: list[tuple[str, str]], window: tuple[float, float]
              ) -> tuple[list[tuple[str, str, str]], set[str]]:
    """Each expression over the run's window, as a panel would ask it: the errors, and the
    names (a rule, a panel) whose every expression gave no series at any step."""
    errors, fed, names = [], set(), set()
    for name, expr in exprs:
        names.add(name)
        answer = world.stack.query_range(expr, *window)
        if answer["status"] != "success":
            errors.append((name, expr, str(answer.get("error"))))
        elif not _empty(answer):
            fed.add(name)
    return errors, names - fed


# Rules the run above cannot feed, and why. Every other rule must give a value at some
# second of the run.
RULES_WITHOUT_DATA = {
    # Nothing in the run makes them true (an alert's expression drops what does not hold).
    "LogOpsInflightStuck": "requests complete",
    "LogOpsMissingTimestampRatioHigh": "every record has its ts",
    "LogOpsMissingLevelRatioHigh": "every record has its level",
    "LogOpsParseErrorRatioHigh": "no unparseable record",
    "LogOpsRejectRatioHigh": "Ingest refuses nothing (the Auth Gateway refuses the forgeries)",
    "LogOpsErrorShareHigh": "5% errors, under the 20% threshold",
    "LogOpsAuthReplaySpike": "no replay in this run (auth-abuse has them)",
    "LogOpsAuthRateLimited": "no key over its limit in this run (auth-abuse has it)",
    "LogOpsAuthSpoolNearFull": "the spool stays far from its bounds",
    "LogOpsLatencySLOFastBurn": "the slow pushes of the outage are too few for a burn rate",
    "LogOpsLatencySLOSlowBurn": "as the fast burn",
    "LogOpsAvailabilitySLOFastBurn": "no server faults: a frozen Ingest makes the Auth Gateway "
    "spool (202), not fail",
    "LogOpsAvailabilitySLOSlowBurn": "as the fast burn",
    # Series that exist only once such a thing happened.
    "service:logops_ingest_parse_errors:ratio_rate5m": "no parse_error rejection",
    "service:logops_ingest_records_rejected:ratio_rate5m": "Ingest has rejected nothing",
    "service:logops_requests_failed:rate5m": "no INTERNAL/UNAVAILABLE answer",
    "service:logops_requests_failed:rate30m": "as rate5m",
    "service:logops_requests_failed:rate1h": "as rate5m",
    "service:logops_requests_failed:rate6h": "as rate5m",
    # True for a moment or not, depending on how the seconds fall: not asserted either way.
    "LogOpsNoIngestTraffic": "the seconds after Ingest resumes may show no stored records",
    "LogOpsIngestBurst": "the drained spool may look like a burst against a short history",
    "LogOpsLatencyP95High": "pushes held up by the outage may push p95 over 500 ms",
    "LogOpsAuthSpoolGrowing": "the spool fills for a few seconds only",
}
# Dashboard panels the run cannot feed, and why.
PANELS_WITHOUT_DATA = {
    "Rejections by reason: Ingest records": "Ingest rejects nothing in this run",
}


def test_every_rule_and_dashboard_expression_evaluates_on_the_real_prometheus(
    world: World, trouble: dict[str, Any]
) -> None:
    window = (trouble["started_at"], trouble["started_at"] + trouble["duration_sec"] + 5)
    rules = _rule_expressions()
    assert len(rules) > 20
    errors, empty = _evaluate(world, rules, window)
    assert not errors, errors
    assert not [r for r in world.stack.rules_health() if r[1] == "err"]
    assert empty <= set(RULES_WITHOUT_DATA), sorted(empty - set(RULES_WITHOUT_DATA))

    panels = _dashboard_expressions()
    assert panels, "observability/grafana/build.py lists no PromQL"
    errors, empty = _evaluate(world, panels, window)
    assert not errors, errors
    assert empty <= set(PANELS_WITHOUT_DATA), sorted(empty - set(PANELS_WITHOUT_DATA))


SHIPPED = ROOT / "scenarios"


@pytest.mark.parametrize("name", ["auth-abuse", "outage"])
def test_the_shipped_scenarios_alert_expectations_hold(
    world: World, trouble: dict[str, Any], name: str
) -> None:
    done, summary = run_scenario(world, SHIPPED / f"{name}.yaml", f"shipped-{name}", "--short")
    verdicts = alert_verdicts(summary)
    assert verdicts and all(ok for ok, _ in verdicts.values()), verdicts
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
