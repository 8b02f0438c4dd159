"""``python -m services.obs_stack`` in local mode: Debian's Prometheus and Alertmanager
started in the background on free ports, found ready, not started twice, stopped; a start
that fails shows the log and leaves nothing running; a machine with neither Docker nor the
binaries is told how to install them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from services.background import alive, log_tail
from services.obs_stack import (
    compose,
    local_daemons,
    local_up,
    missing_secrets,
    running_pid,
    spawn,
    stop_daemon,
    wait_ready,
)
from tests.obs_support import WebhookReceiver

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus") is None
                       or shutil.which("prometheus-alertmanager") is None,
                       reason="Debian's prometheus and prometheus-alertmanager are not installed"),
]


FREE_PORTS = ("--mode", "local", "--prometheus-listen", "127.0.0.1:0",
              "--alertmanager-listen", "127.0.0.1:0")


def obs(run_dir: Path, action: str, *flags: str, path: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path} if path is not None else None
    return subprocess.run(
        [sys.executable, "-m", "services.obs_stack", action, "--run-dir", str(run_dir), *flags],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_up_status_down_in_local_mode(tmp_path: Path) -> None:
    daemons = local_daemons(tmp_path)
    try:
        up = obs(tmp_path, "up", *FREE_PORTS)
        assert up.returncode == 0, up.stdout + up.stderr
        pids = [running_pid(d) for d in daemons]
        assert all(pid is not None for pid in pids), up.stdout
        assert "alertmanager  http://127.0.0.1:" in up.stdout
        assert (tmp_path / "obs" / "prometheus").is_dir()  # its TSDB went where it was told

        again = obs(tmp_path, "up", *FREE_PORTS)
        assert again.returncode == 0, again.stderr
        assert again.stdout.count("not starting a second") == 2
        assert [running_pid(d) for d in daemons] == pids

        status = obs(tmp_path, "status", *FREE_PORTS)
        assert status.returncode == 0 and status.stdout.count(", ready") == 2, status.stdout
    finally:
        down = obs(tmp_path, "down", *FREE_PORTS)
    assert down.returncode == 0, down.stderr
    assert all(p is not None and not alive(p) for p in pids)
    assert [running_pid(d) for d in daemons] == [None, None]
    assert "prometheus is not running" in obs(tmp_path, "down", *FREE_PORTS).stdout
    assert obs(tmp_path, "status", *FREE_PORTS).returncode == 3


def test_a_start_that_fails_shows_the_log_and_leaves_nothing_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "prometheus.yml"
    bad.write_text("global:\n  scrape_interval: soon\n")
    shipped = ROOT / "observability/alertmanager/alertmanager.yml"
    daemons = local_daemons(tmp_path, prometheus_config=bad, alertmanager_config=shipped,
                            prometheus_listen="127.0.0.1:0", alertmanager_listen="127.0.0.1:0")
    assert local_up(daemons) == 1
    err = capsys.readouterr().err
    assert "prometheus exited" in err and "soon" in err  # the log's tail says what is wrong
    assert [running_pid(d) for d in daemons] == [None, None]


def test_without_docker_or_the_binaries_it_says_how_to_install(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    done = obs(tmp_path, "up", path=str(empty))
    assert done.returncode == 1
    assert "no docker command" in done.stderr
    assert "apt-get install prometheus prometheus-alertmanager" in done.stderr


def test_compose_mode_names_the_secret_files_it_needs_before_running_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compose_file = tmp_path / "docker-compose.yml"
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "present").write_text("x\n")
    compose_file.write_text(
        "services: {}\n"
        "secrets:\n"
        "  here: {file: ./secrets/present}\n"
        "  webhook: {file: ./alertmanager/secrets/slack_webhook_url}\n"
    )
    assert compose("up", compose_file) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "alertmanager/secrets/slack_webhook_url") in err
    assert "present" not in err
    # The shipped compose file names exactly the secrets observability/README.md makes.
    shipped = {str(p) for p in missing_secrets(ROOT / "observability/docker-compose.yml")}
    made = {"alertmanager/secrets/slack_webhook_url", "secrets/grafana_admin_password"}
    assert shipped <= made


def test_local_alertmanager_finds_the_slack_webhook_file_beside_its_config(
    tmp_path: Path,
) -> None:
    """Alertmanager reads ``api_url_file`` against its working directory; the local mode
    runs it in its config's folder, so the shipped ``secrets/slack_webhook_url`` is found.
    The shipped config (Slack receivers, templates) is copied with its grouping shortened;
    the webhook file names a local server that stands in for Slack."""
    shipped = ROOT / "observability" / "alertmanager"
    folder = tmp_path / "alertmanager"
    shutil.copytree(shipped / "templates", folder / "templates")
    config = yaml.safe_load((shipped / "alertmanager.yml").read_text())
    for route in [config["route"], *config["route"]["routes"]]:
        route["group_wait"] = "1s"
    (folder / "alertmanager.yml").write_text(yaml.safe_dump(config))
    slack = WebhookReceiver()
    (folder / "secrets").mkdir()
    (folder / "secrets" / "slack_webhook_url").write_text(slack.url + "\n")
    alertmanager, _ = local_daemons(tmp_path, alertmanager_config=folder / "alertmanager.yml",
                                    alertmanager_listen="127.0.0.1:0")
    try:
        url = wait_ready(alertmanager, spawn(alertmanager).pid)
        alert = [{"labels": {"alertname": "LogOpsGatewayDown", "severity": "critical",
                             "service": "ingest"},
                  "annotations": {"summary": "ingest is down"}}]
        request = urllib.request.Request(url + "/api/v2/alerts", json.dumps(alert).encode(),
                                         {"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).close()
        deadline = time.monotonic() + 20
        while not slack.notifications and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop_daemon(alertmanager)
        slack.close()
    assert slack.notifications, log_tail(alertmanager.log_file)
    # Slack's payload, rendered by the shipped templates.
    (message,) = slack.notifications[:1]
    assert "LogOpsGatewayDown" in json.dumps(message["attachments"])
