"""The shipped Alertmanager config in a real Alertmanager (Debian's 0.25): a critical alert
reaches the Slack webhook named by the secret file, rendered by the LogOps template, and a
gateway that is down silences the traffic alerts of its own service only.

The Slack "API" is a local HTTP server that records what it is sent; Alertmanager runs from
a copy of observability/alertmanager (its working directory, as in both modes), whose
secrets/slack_webhook_url points at that server.
"""

from __future__ import annotations

import json
import queue
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
AM_DIR = ROOT / "observability" / "alertmanager"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        ALERTMANAGER is None, reason="Alertmanager is not installed (prometheus-alertmanager)"
    ),
]


class SlackHook:
    """An HTTP server on a free port that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.posts: queue.Queue[dict[str, Any]] = queue.Queue()
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                posts.put(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T0/B0/X"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    # Alertmanager does not say which port it bound for :0, so ask the kernel for one.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def hook() -> Iterator[SlackHook]:
    h = SlackHook()
    yield h
    h.close()


@pytest.fixture
def alertmanager(tmp_path: Path, hook: SlackHook) -> Iterator[str]:
    assert ALERTMANAGER is not None
    conf = tmp_path / "alertmanager"
    shutil.copytree(AM_DIR, conf, ignore=shutil.ignore_patterns("slack_webhook_url"))
    (conf / "secrets").mkdir(exist_ok=True)
    (conf / "secrets" / "slack_webhook_url").write_text(hook.url + "\n")
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            ALERTMANAGER,
            "--config.file=alertmanager.yml",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        cwd=conf,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, tmp_path / "alertmanager.log")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("Alertmanager not ready:\n" + log.read_text())


def post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    req = urllib.request.Request(
        url + "/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200


def get_alerts(url: str) -> dict[tuple[str, str], dict[str, Any]]:
    with urllib.request.urlopen(url + "/api/v2/alerts", timeout=5) as resp:
        alerts = json.loads(resp.read())
    return {(a["labels"]["alertname"], a["labels"]["service"]): a for a in alerts}


def alert(name: str, service: str, severity: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "service": service, "severity": severity},
        "annotations": {
            "summary": f"{name} on {service}",
            "description": "posted by the test",
            "runbook_url": f"docs/runbooks.md#{name.lower()}",
        },
    }


def test_gateway_down_pages_slack_and_silences_its_own_traffic_alerts(
    alertmanager: str, hook: SlackHook
) -> None:
    post_alerts(
        alertmanager,
        [
            alert("LogOpsGatewayDown", "ingest", "critical"),
            alert("LogOpsNoIngestTraffic", "ingest", "warning"),
            alert("LogOpsLatencyP95High", "ingest", "warning"),
            # Another service's latency is not explained by Ingest being down.
            alert("LogOpsLatencyP95High", "auth", "warning"),
            # Nor is auth abuse.
            alert("LogOpsAuthBadSignatureSpike", "ingest", "warning"),
        ],
    )
    deadline = time.monotonic() + 10
    while True:
        state = get_alerts(alertmanager)
        if state[("LogOpsNoIngestTraffic", "ingest")]["status"]["inhibitedBy"]:
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    for key in [("LogOpsNoIngestTraffic", "ingest"), ("LogOpsLatencyP95High", "ingest")]:
        assert state[key]["status"]["state"] == "suppressed", key
    for key in [
        ("LogOpsGatewayDown", "ingest"),
        ("LogOpsLatencyP95High", "auth"),
        ("LogOpsAuthBadSignatureSpike", "ingest"),
    ]:
        assert state[key]["status"]["state"] == "active", key
        assert state[key]["status"]["inhibitedBy"] == [], key

    # Critical: group_wait 10 s, then the webhook from the secret file gets the message.
    body = hook.posts.get(timeout=40)
    (attachment,) = body["attachments"]
    assert attachment["title"] == "[FIRING:1] LogOpsGatewayDown (ingest)"
    assert attachment["color"] == "danger"
    assert "*Summary:* LogOpsGatewayDown on ingest" in attachment["text"]
    assert "*Runbook:* `docs/runbooks.md#logopsgatewaydown`" in attachment["text"]
