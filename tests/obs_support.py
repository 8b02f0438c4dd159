"""Real Prometheus and Alertmanager for the end-to-end alert tests, on free ports.

- :func:`write_prometheus` writes a test overlay of the shipped ``prometheus.yml`` into a
  temporary folder: the shipped jobs, scrape and evaluation every second, the shipped rule
  files sped up by :data:`RULES_SCALE` (:func:`services.obs_rules.write_overlay`: every
  ``for:``, range window, subquery and offset divided by the factor, range windows at
  least 3 s so ``rate()`` has samples; names, thresholds and labels untouched), and
  ``targets/*.yml`` naming the test's gateways, the runner and Alertmanager.
- :func:`write_alertmanager` writes an overlay of the shipped ``alertmanager.yml``: the
  same routes and inhibitions, each receiver keeping its name with a webhook to the test's
  :class:`WebhookReceiver` instead of Slack, and the grouping waits in seconds.
- :class:`ObsStack` starts Debian's ``prometheus-alertmanager`` then ``prometheus`` on
  port 0 (each announces the address it bound), through the same code as ``make obs-up``
  (:mod:`services.obs_stack`), and stops them.
- :class:`WebhookReceiver` is a small HTTP server that records every notification
  Alertmanager POSTs: it stands in for Slack.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from services.background import log_tail
from services.obs_rules import write_overlay
from services.obs_stack import (
    Daemon,
    StartFailed,
    local_daemons,
    spawn,
    stop_daemon,
    wait_ready,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_PROMETHEUS = ROOT / "observability" / "prometheus"
SHIPPED_ALERTMANAGER = ROOT / "observability" / "alertmanager"
# The shipped rules, 30 times faster: for: 2m -> 4s, [5m] -> [10s], [1m] -> [3s] (the floor).
RULES_SCALE = 30.0
# Alertmanager's grouping in the overlay: the first notification of a group after 1 s,
# and changes to it (a resolved alert) a second later.
GROUP_WAIT, GROUP_INTERVAL = "1s", "1s"


class WebhookReceiver(ThreadingHTTPServer):
    """Stands in for Slack: keeps every JSON body POSTed to it (Alertmanager's webhook
    payload: ``status``, ``receiver``, ``alerts`` with their ``labels`` and ``status``)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Receive)
        self.notifications: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/alerts"

    def record(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.notifications.append(body)

    def seen(self, alertname: str, status: str) -> list[dict[str, Any]]:
        """Each alert of that name notified with that status (``firing``/``resolved``)."""
        with self._lock:
            bodies = list(self.notifications)
        return [a for n in bodies for a in n.get("alerts", [])
                if a.get("labels", {}).get("alertname") == alertname
                and a.get("status") == status]

    def wait_for(self, alertname: str, status: str, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while not (found := self.seen(alertname, status)) and time.monotonic() < deadline:
            time.sleep(0.2)
        return found

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Receive(BaseHTTPRequestHandler):
    server: WebhookReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.record(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def write_alertmanager(dest: Path, webhook_url: str) -> Path:
    """The shipped ``alertmanager.yml`` with every receiver a webhook to ``webhook_url``
    (``send_resolved``), grouping in seconds, templates from the shipped folder."""
    config = yaml.safe_load((SHIPPED_ALERTMANAGER / "alertmanager.yml").read_text())
    config["templates"] = [str(SHIPPED_ALERTMANAGER / t) for t in config.get("templates", [])]
    for receiver in config["receivers"]:
        for key in [k for k in receiver if k.endswith("_configs")]:
            del receiver[key]
        receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]
    routes = [config["route"], *config["route"].get("routes", [])]
    for route in routes:
        route["group_wait"], route["group_interval"] = GROUP_WAIT, GROUP_INTERVAL
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / "alertmanager.yml"
    out.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return out


def _targets(address: str, service: str) -> str:
    return yaml.safe_dump([{"targets": [address], "labels": {"service": service}}])


def write_prometheus(dest: Path, jobs: Mapping[str, tuple[str, str]]) -> Path:
    """The test overlay of ``prometheus.yml`` (see the module docstring); ``jobs`` maps a
    targets file's name (``logops-ingest``, ``logops-auth``, ``logops-scenario``,
    ``alertmanager``) to (``host:port``, the ``service`` label)."""
    targets = dest / "targets"
    targets.mkdir(parents=True, exist_ok=True)
    for name, (address, service) in jobs.items():
        (targets / f"{name}.yml").write_text(_targets(address, service), encoding="utf-8")
    return write_overlay(dest, RULES_SCALE, source_dir=SHIPPED_PROMETHEUS, targets_dir=targets)


class ObsStack:
    """Alertmanager and Prometheus from Debian's packages, on free ports, with the
    overlays above. ``start`` returns once both answer ``/-/ready``."""

    def __init__(self, folder: Path, receiver: WebhookReceiver) -> None:
        self.folder, self.receiver = folder, receiver
        self.prometheus_url = self.alertmanager_url = ""
        self._running: list[Daemon] = []

    def start(self, scrape: Mapping[str, tuple[str, str]]) -> ObsStack:
        am_config = write_alertmanager(self.folder / "alertmanager", self.receiver.url)
        alertmanager, _ = local_daemons(self.folder, alertmanager_config=am_config,
                                        alertmanager_listen="127.0.0.1:0")
        self.alertmanager_url = self._run(alertmanager)
        am_address = self.alertmanager_url.removeprefix("http://")
        prom_config = write_prometheus(self.folder / "prometheus",
                                       {**scrape, "alertmanager": (am_address, "alertmanager")})
        _, prometheus = local_daemons(self.folder, prometheus_config=prom_config,
                                      prometheus_listen="127.0.0.1:0")
        self.prometheus_url = self._run(prometheus)
        return self

    def _run(self, d: Daemon) -> str:
        pid = spawn(d).pid
        self._running.append(d)
        try:
            return wait_ready(d, pid, timeout=60)
        except StartFailed as exc:
            raise StartFailed(f"{exc}:\n{log_tail(d.log_file)}") from exc

    def stop(self) -> None:
        for d in reversed(self._running):
            stop_daemon(d, timeout=10)
        self._running.clear()

    def log(self, name: str) -> str:
        return log_tail(self.folder / "obs" / f"{name}.log", 40)

    # -- asking Prometheus ------------------------------------------------------------

    def query(self, expr: str) -> dict[str, Any]:
        """``/api/v1/query`` of ``expr`` now: Prometheus's whole answer (``status``,
        ``data`` or ``error``); an HTTP error's JSON body too."""
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                answer: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read())
        return answer

    def query_range(self, expr: str, start: float, end: float, step: float = 1.0
                    ) -> dict[str, Any]:
        """``/api/v1/query_range`` of ``expr`` from ``start`` to ``end`` (Unix seconds), as
        a dashboard panel asks it."""
        query = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        url = f"{self.prometheus_url}/api/v1/query_range?" + urllib.parse.urlencode(query)
        try:
            with urllib.request.urlopen(url, timeout=20) as resp:
                answer: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            answer = json.loads(exc.read())
        return answer

    def rules_health(self) -> list[tuple[str, str, str]]:
        """(rule name, health, last error) of every loaded rule."""
        with urllib.request.urlopen(f"{self.prometheus_url}/api/v1/rules", timeout=10) as resp:
            groups = json.loads(resp.read())["data"]["groups"]
        return [(r["name"], r["health"], r.get("lastError", "")) for g in groups
                for r in g["rules"]]

    def wait_scraped(self, jobs: Iterable[str], timeout: float = 30.0) -> None:
        """Until every target of ``jobs`` has been scraped successfully once."""
        deadline = time.monotonic() + timeout
        want = set(jobs)
        while time.monotonic() < deadline:
            result = self.query("up == 1").get("data", {}).get("result", [])
            if want <= {r["metric"].get("job") for r in result}:
                return
            time.sleep(0.3)
        raise AssertionError(f"not all of {sorted(want)} scraped within {timeout:g} s:\n"
                             f"{self.log('prometheus')}")
