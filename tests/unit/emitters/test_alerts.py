"""The alert watch's verdicts, against a real HTTP server on port 0 that answers as
Alertmanager's API v2 does (``GET /api/v2/alerts?filter=alertname="X"``) with canned
alerts the test changes between polls.

Time is a clock the test moves, so each verdict is exact. Alertmanager's own API is
exercised in tests/integration/test_obs_alerts_e2e.py, with real Prometheus rules firing.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from emitters.alerts import AlertWatch, fetch_alerts
from emitters.expect import AlertExpectation
from emitters.runner import RunOptions, ScenarioRunner
from emitters.scenario import load


class CannedAlertmanager(ThreadingHTTPServer):
    """Answers ``/api/v2/alerts`` with ``self.alerts[name]`` for the filter's alert name."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.alerts: dict[str, list[dict[str, Any]]] = {}
        self.filters: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: CannedAlertmanager

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        if parts.path != "/api/v2/alerts":
            self.send_error(404)
            return
        (flt,) = urllib.parse.parse_qs(parts.query)["filter"]
        self.server.filters.append(flt)
        name = flt.removeprefix('alertname="').removesuffix('"')
        body = json.dumps(self.server.alerts.get(name, [])).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def am() -> Iterator[CannedAlertmanager]:
    server = CannedAlertmanager()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def alert(name: str, state: str = "active", starts: float | None = None) -> dict[str, Any]:
    """An alert as API v2 lists it (the fields the watch reads, and a few it does not)."""
    began = datetime.fromtimestamp(time.time() if starts is None else starts, UTC)
    return {
        "labels": {"alertname": name, "severity": "critical", "service": "auth"},
        "annotations": {"summary": "s"},
        "startsAt": began.isoformat().replace("+00:00", "Z"),
        "endsAt": "2099-01-01T00:00:00Z",
        "status": {"state": state, "inhibitedBy": [], "silencedBy": []},
        "fingerprint": "abc",
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Driven:
    """A watch whose polls happen when the test says, at the times it says."""

    def __init__(self, am: CannedAlertmanager, *exps: AlertExpectation, url: str = "") -> None:
        self.clock = Clock()
        self.am = am
        self.watch = AlertWatch(url or am.url, exps, clock=self.clock)
        self.watch.begin(self.clock.now, time.time())

    def at(self, t: float, **alerts: list[dict[str, Any]]) -> None:
        self.am.alerts = dict(alerts)
        self.clock.now = 1000.0 + t
        self.watch.poll_once()

    def end(self, t: float) -> None:
        self.clock.now = 1000.0 + t
        self.watch.end_of_run()


FIRING = AlertExpectation("LogOpsAuthBreakerOpen", "firing", 5.0)
RESOLVED = AlertExpectation("LogOpsAuthBreakerOpen", "resolved", 10.0)
NAME = FIRING.alert


def test_each_poll_asks_for_one_alert_name_with_the_api_v2_filter(
    am: CannedAlertmanager,
) -> None:
    am.alerts = {NAME: [alert(NAME)], "Other": [alert("Other")]}
    assert [a["labels"]["alertname"] for a in fetch_alerts(am.url, NAME)] == [NAME]
    assert am.filters == [f'alertname="{NAME}"']


def test_firing_is_the_first_poll_that_sees_it_active(am: CannedAlertmanager) -> None:
    d = Driven(am, FIRING, AlertExpectation(NAME, "firing", 2.0))
    d.at(1.0)
    d.at(2.0, **{NAME: [alert(NAME, "unprocessed")]})
    assert not d.watch.decided()
    d.at(3.0, **{NAME: [alert(NAME)]})
    d.at(4.0, **{NAME: [alert(NAME)]})
    d.end(4.5)
    assert d.watch.decided()
    assert d.watch.verdict(FIRING) == (3.0, True, "first seen firing 3.0 s after the start")
    late = d.watch.verdict(AlertExpectation(NAME, "firing", 2.0))
    assert late[:2] == (3.0, False)


def test_firing_never_seen_is_decided_once_its_deadline_passed(am: CannedAlertmanager) -> None:
    d = Driven(am, FIRING)
    for t in (1.0, 2.0, 3.0):
        d.at(t)
    d.end(3.0)
    assert not d.watch.decided()  # 5 s are not over: it may still come
    d.at(5.5)
    assert d.watch.decided()
    actual, ok, note = d.watch.verdict(FIRING)
    assert (actual, ok) == (None, False) and note.startswith("never seen firing")


def test_an_alert_firing_since_before_the_run_does_not_count(am: CannedAlertmanager) -> None:
    d = Driven(am, FIRING)
    d.at(1.0, **{NAME: [alert(NAME, starts=time.time() - 3600)]})
    d.at(6.0, **{NAME: [alert(NAME, starts=time.time() - 3600)]})
    d.end(6.0)
    actual, ok, note = d.watch.verdict(FIRING)
    assert (actual, ok) == (None, False)
    assert "before the run: not counted" in note


def test_a_suppressed_alert_notifies_nobody_and_is_not_firing(am: CannedAlertmanager) -> None:
    d = Driven(am, FIRING)
    d.at(1.0, **{NAME: [alert(NAME, "suppressed")]})
    d.at(6.0, **{NAME: [alert(NAME, "suppressed")]})
    d.end(6.0)
    actual, ok, note = d.watch.verdict(FIRING)
    assert (actual, ok) == (None, False)
    assert "suppressed (inhibited or silenced) from 1.0 s" in note


def test_resolved_counts_from_the_runs_end(am: CannedAlertmanager) -> None:
    d = Driven(am, RESOLVED, AlertExpectation(NAME, "resolved", 2.0))
    d.at(1.0)
    d.at(2.0, **{NAME: [alert(NAME)]})
    d.end(5.0)
    d.at(5.0, **{NAME: [alert(NAME)]})
    assert not d.watch.decided()
    d.at(7.0, **{NAME: [alert(NAME)]})
    d.at(8.0)  # Alertmanager dropped it: Prometheus resolved it
    assert d.watch.decided()
    assert d.watch.verdict(RESOLVED) == (3.0, True, "seen resolved 3.0 s after the run's end")
    assert d.watch.verdict(AlertExpectation(NAME, "resolved", 2.0))[:2] == (3.0, False)


def test_resolved_before_the_end_is_resolved_within_zero(am: CannedAlertmanager) -> None:
    d = Driven(am, RESOLVED)
    d.at(1.0, **{NAME: [alert(NAME)]})
    d.at(2.0)
    d.at(3.0)
    d.end(3.5)
    d.at(4.0)
    assert d.watch.decided()
    actual, ok, note = d.watch.verdict(RESOLVED)
    assert (actual, ok) == (0.0, True)
    assert note == "already resolved at the run's end (gone 2.0 s after the start)"


def test_firing_again_before_the_end_must_resolve_again(am: CannedAlertmanager) -> None:
    d = Driven(am, RESOLVED)
    d.at(1.0, **{NAME: [alert(NAME)]})
    d.at(2.0)
    d.at(3.0, **{NAME: [alert(NAME)]})
    d.end(4.0)
    d.at(4.0, **{NAME: [alert(NAME)]})
    assert not d.watch.decided()
    d.at(6.0)
    assert d.watch.verdict(RESOLVED)[:2] == (2.0, True)


def test_resolved_fails_when_it_never_fired_or_stays_active(am: CannedAlertmanager) -> None:
    d = Driven(am, RESOLVED)
    d.at(1.0)
    d.end(2.0)
    d.at(2.0)
    assert d.watch.decided()
    actual, ok, note = d.watch.verdict(RESOLVED)
    assert (actual, ok) == (None, False) and "never seen firing during the run" in note

    d = Driven(am, RESOLVED)
    d.at(1.0, **{NAME: [alert(NAME)]})
    d.end(2.0)
    d.at(11.0, **{NAME: [alert(NAME)]})
    assert not d.watch.decided()
    d.at(12.5, **{NAME: [alert(NAME)]})
    assert d.watch.decided()
    assert d.watch.verdict(RESOLVED) == (None, False, "still active 10.5 s after the run's end")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_alertmanager_that_never_answers_fails_the_expectation_naming_it(
    am: CannedAlertmanager,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    d = Driven(am, FIRING, url=url)
    d.at(1.0)
    d.end(1.0)
    d.at(1.5)
    assert d.watch.decided()  # nothing to wait for
    actual, ok, note = d.watch.verdict(FIRING)
    assert (actual, ok) == (None, False)
    assert note.startswith(f"not checked: Alertmanager at {url} did not answer (")


def test_failed_polls_are_told_beside_the_verdict(am: CannedAlertmanager) -> None:
    d = Driven(am, FIRING)
    d.at(1.0, **{NAME: [alert(NAME)]})
    am.shutdown()
    am.server_close()
    d.at(2.0)
    d.end(2.0)
    actual, ok, note = d.watch.verdict(FIRING)
    assert (actual, ok) == (1.0, True)
    assert f"; 1 of 2 polls of {am.url} failed (URLError" in note


def test_the_wait_ends_at_the_last_deadline_even_when_no_poll_comes(
    am: CannedAlertmanager,
) -> None:
    def broken(name: str) -> list[dict[str, Any]]:
        raise KeyError(name)

    clock = Clock()
    watch = AlertWatch(am.url, [FIRING, RESOLVED], fetch=broken, clock=clock)
    watch.begin(clock.now, time.time())
    watch.poll_once()  # a fetch that breaks is counted, not raised
    assert (watch.polls, watch.failures) == (1, 1) and "KeyError" in watch.last_error
    clock.now += 2.0
    watch.end_of_run()
    clock.now += 60.0  # past 2 s + 10 s (resolved) and 5 s (firing), and their slack
    watch.wait(threading.Event())  # returns, though nothing decided it
    assert watch.verdict(FIRING)[1] is False


SCENARIO = """\
name: alert-check
duration_sec: 1.5
emitters:
  - name: file
    transport: file
    target: {target}
    eps: 20
expect:
  - sent > 0
  - {{alert: {alert}, state: firing, within_sec: 2}}
"""


def _runner(tmp_path: Path, alertmanager: str | None, name: str = NAME) -> ScenarioRunner:
    file = tmp_path / "scenario.yaml"
    file.write_text(SCENARIO.format(target=tmp_path / "out.log", alert=name))
    scenario, _ = load(file)
    opts = RunOptions(run_id=f"r-{len(list(tmp_path.glob('runs/*')))}",
                      runs_dir=tmp_path / "runs", alertmanager=alertmanager)
    return ScenarioRunner(scenario, opts)


def _alert_entry(summary: dict[str, Any]) -> dict[str, Any]:
    (entry,) = [e for e in summary["expectations"] if e["metric"].startswith("alert.")]
    return dict(entry)


def test_the_runner_checks_alert_expectations_and_fails_the_run_on_them(
    am: CannedAlertmanager, tmp_path: Path
) -> None:
    am.alerts = {NAME: [alert(NAME)]}
    summary = _runner(tmp_path, am.url).run().summary
    entry = _alert_entry(summary)
    assert entry["ok"] is True and entry["actual"] <= 2.0, entry
    assert entry["metric"] == f"alert.{NAME}" and entry["op"] == "firing"
    assert summary["exit_code"] == 0

    missing = _runner(tmp_path, am.url, "LogOpsGatewayDown").run().summary
    assert _alert_entry(missing)["ok"] is False and missing["exit_code"] == 1

    gone = f"http://127.0.0.1:{free_port()}"
    unreachable = _runner(tmp_path, gone).run().summary
    entry = _alert_entry(unreachable)
    assert entry["ok"] is False and gone in entry["note"]
    assert unreachable["exit_code"] == 1


def test_without_an_alertmanager_alert_expectations_are_not_checked(tmp_path: Path) -> None:
    summary = _runner(tmp_path, None).run().summary
    entry = _alert_entry(summary)
    assert entry["ok"] is None and "no Alertmanager" in entry["note"]
    assert summary["exit_code"] == 0
