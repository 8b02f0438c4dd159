"""Scenario alert expectations (``{alert, state, within_sec}``) checked against Alertmanager.

An :class:`AlertWatch` polls Alertmanager's API v2 (``GET /api/v2/alerts?filter=
alertname="X"``, one request per alert name) once a second from the run's start, on a
thread of its own, and writes down for each alert name:

- when it was first seen **firing**: an alert of that name with ``status.state ==
  "active"`` (suppressed ones, inhibited or silenced, notify nobody and do not count) whose
  ``startsAt`` is not before the run's start (an alert still firing from before the run
  says nothing about this one);
- when it was last seen active, and when it was first seen **no longer active** after
  that. Alertmanager drops an alert from its API once Prometheus resolves it, so "absent
  after firing" is "resolved".

The verdicts (docs/scenarios.md, "Alert expectations"):

- ``firing within N``: first seen firing at most N s after the run's start;
- ``resolved within N``: seen firing during the run (from its start to the emitters' end)
  and then seen no longer active at most N s after the run's end (the emitters' end, before
  the settle time). An alert that was already over when the run ended is resolved within
  0 s; the note says when it went.

After the emitters end, :meth:`AlertWatch.wait` keeps polling until every expectation is
decided or its deadline has passed. When Alertmanager never answered, nothing is waited
for: each expectation fails (an unchecked expectation is not a held one) with a note naming
the URL.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emitters.expect import AlertExpectation

DEFAULT_URL = "http://127.0.0.1:9093"
URL_ENV = "LOGOPS_ALERTMANAGER_URL"
POLL_SEC = 1.0
REQUEST_TIMEOUT_SEC = 2.0
# Alertmanager's startsAt comes from Prometheus's clock: allow for a small difference.
CLOCK_SLACK_SEC = 2.0

# (actual seconds or None, ok, note): one alert expectation's verdict.
Verdict = tuple[float | None, bool | None, str]
Fetch = Callable[[str], list[dict[str, Any]]]


class AlertmanagerError(OSError):
    """Alertmanager did not answer, or answered something that is not its API."""


def fetch_alerts(base_url: str, name: str, timeout: float = REQUEST_TIMEOUT_SEC) -> list[
    dict[str, Any]
]:
    """The alerts Alertmanager holds under ``alertname=name`` (API v2)."""
    query = urllib.parse.urlencode({"filter": f'alertname="{name}"'})
    url = f"{base_url.rstrip('/')}/api/v2/alerts?{query}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError) as exc:
        raise AlertmanagerError(f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(body, list):
        raise AlertmanagerError(f"GET {url} answered {type(body).__name__}, not a list")
    return [a for a in body if isinstance(a, dict)]


def _starts_at(alert: dict[str, Any]) -> float | None:
    raw = alert.get("startsAt")
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw).timestamp()
    except ValueError:
        return None


def _state(alert: dict[str, Any]) -> str:
    status = alert.get("status")
    return str(status.get("state", "")) if isinstance(status, dict) else ""


@dataclass(slots=True)
class Seen:
    """What the polls saw of one alert name; times in seconds after the run's start."""

    fired_at: float | None = None
    last_active_at: float | None = None
    gone_at: float | None = None  # first poll without it active after last_active_at
    suppressed_at: float | None = None
    stale_since: float | None = None  # wall time an alert active before the run began

    def update(self, t: float, alerts: Iterable[dict[str, Any]], start_wall: float) -> None:
        active = False
        for alert in alerts:
            state = _state(alert)
            if state == "suppressed" and self.suppressed_at is None:
                self.suppressed_at = t
            if state != "active":
                continue
            active = True
            began = _starts_at(alert)
            if began is not None and began < start_wall - CLOCK_SLACK_SEC:
                self.stale_since = began
            elif self.fired_at is None:
                self.fired_at = t
        if active:
            self.last_active_at, self.gone_at = t, None
        elif self.last_active_at is not None and self.gone_at is None:
            self.gone_at = t

    @property
    def active(self) -> bool:
        return self.last_active_at is not None and self.gone_at is None


class AlertWatch:
    """Polls Alertmanager for the alerts a scenario expects (see the module docstring)."""

    def __init__(self, url: str, expectations: Sequence[AlertExpectation],
                 poll_sec: float = POLL_SEC, fetch: Fetch | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url, self.expectations, self.poll_sec = url, tuple(expectations), poll_sec
        self._clock = clock
        self._fetch: Fetch = fetch or (lambda name: fetch_alerts(url, name))
        self.seen = {e.alert: Seen() for e in self.expectations}
        self.polls = self.failures = 0
        self.last_error = ""
        self.end: float | None = None
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = 0.0
        self._start_wall = 0.0
        self._last_poll = -1.0

    # -- running ------------------------------------------------------------------------

    def begin(self, start_mono: float, start_wall: float) -> None:
        """Count times from ``start_mono`` (the run's start, on ``clock``); ``start_wall``
        tells alerts that began before the run apart."""
        self._start, self._start_wall = start_mono, start_wall

    def start(self, start_mono: float, start_wall: float) -> None:
        """:meth:`begin`, then poll every ``poll_sec`` on a thread of its own."""
        self.begin(start_mono, start_wall)
        self._thread = threading.Thread(target=self._loop, name="alert-watch", daemon=True)
        self._thread.start()

    def end_of_run(self) -> None:
        """The emitters are done: ``resolved`` deadlines count from now."""
        with self._lock:
            self.end = self._clock() - self._start

    def wait(self, stop: threading.Event) -> None:
        """Until every expectation is decided, its deadline passed, or ``stop``; then the
        polling ends."""
        while not self._halt.is_set() and not stop.is_set():
            if self.decided() or self._clock() - self._start > self._horizon():
                break  # the horizon: should the polls stop, the wait still ends
            stop.wait(min(0.2, self.poll_sec))
        self.close()

    def _horizon(self) -> float:
        """The last deadline (seconds after the start), plus a poll's worth of slack."""
        end = self.end or 0.0
        last = max((e.within_sec if e.state == "firing" else end + e.within_sec)
                   for e in self.expectations)
        return last + self.poll_sec + REQUEST_TIMEOUT_SEC * (len(self.seen) + 1)

    def close(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=REQUEST_TIMEOUT_SEC * (len(self.seen) + 1))

    def _loop(self) -> None:
        next_at = self._start
        while not self._halt.wait(max(0.0, next_at - self._clock())):
            self.poll_once()
            behind = int((self._clock() - next_at) // self.poll_sec)
            next_at += self.poll_sec * max(1, behind + 1)

    def poll_once(self) -> None:
        """One look at every expected alert name (errors are counted, not raised)."""
        t = self._clock() - self._start
        answers: dict[str, list[dict[str, Any]]] = {}
        error = ""
        for name in self.seen:
            try:
                answers[name] = self._fetch(name)
            except AlertmanagerError as exc:
                error = str(exc)
                break
            except Exception as exc:  # a fetch that breaks is a failed poll, not a dead watch
                error = f"{type(exc).__name__}: {exc}"
                break
        with self._lock:
            self.polls += 1
            self._last_poll = t
            if error:
                self.failures += 1
                self.last_error = error
                return
            for name, alerts in answers.items():
                self.seen[name].update(t, alerts, self._start_wall)

    # -- deciding ------------------------------------------------------------------------

    def decided(self) -> bool:
        """Every expectation decided (or its deadline passed), as of the last poll."""
        with self._lock:
            if self.end is None:
                return False
            if self.failures == self.polls and self.polls > 0 and self._last_poll >= self.end:
                return True  # Alertmanager never answered: nothing to wait for
            return all(self._decided(e) for e in self.expectations)

    def _decided(self, e: AlertExpectation) -> bool:
        seen, t = self.seen[e.alert], self._last_poll
        if e.state == "firing":
            return seen.fired_at is not None or t > e.within_sec
        assert self.end is not None
        if t < self.end:
            return False
        if not _fired_in(seen, self.end):
            return True  # never fired during the run: fails, whatever comes later
        return not seen.active or t > self.end + e.within_sec

    def verdict(self, e: AlertExpectation) -> Verdict:
        """``(actual, ok, note)`` for summary.json's entry."""
        with self._lock:
            seen = self.seen[e.alert]
            if self.polls == 0 or self.failures == self.polls:
                why = self.last_error or "never asked (the run ended first)"
                return None, False, (f"not checked: Alertmanager at {self.url} did not "
                                     f"answer ({why})")
            verdict = self._firing(e, seen) if e.state == "firing" else self._resolved(e, seen)
            actual, ok, note = verdict
            if self.failures:
                note += (f"; {self.failures} of {self.polls} polls of {self.url} failed "
                         f"({self.last_error})")
            return actual, ok, note

    def _firing(self, e: AlertExpectation, seen: Seen) -> Verdict:
        if seen.fired_at is not None:
            ok = seen.fired_at <= e.within_sec
            note = f"first seen firing {seen.fired_at:.1f} s after the start"
            return round(seen.fired_at, 1), ok, note
        return None, False, "never seen firing" + _why_not(seen, self._last_poll)

    def _resolved(self, e: AlertExpectation, seen: Seen) -> Verdict:
        end = self.end if self.end is not None else self._last_poll
        if not _fired_in(seen, end):
            return None, False, "never seen firing during the run: nothing to resolve" + _why_not(
                seen, self._last_poll
            )
        if seen.active:
            return None, False, (f"still active {max(0.0, self._last_poll - end):.1f} s after "
                                 "the run's end")
        assert seen.gone_at is not None
        after = seen.gone_at - end
        if after <= 0:
            note = f"already resolved at the run's end (gone {seen.gone_at:.1f} s after the start)"
            return 0.0, True, note
        note = f"seen resolved {after:.1f} s after the run's end"
        return round(after, 1), after <= e.within_sec, note


def _fired_in(seen: Seen, end: float) -> bool:
    return seen.fired_at is not None and seen.fired_at <= end


def _why_not(seen: Seen, last_poll: float) -> str:
    parts = [f" (polled until {last_poll:.1f} s"]
    if seen.suppressed_at is not None:
        parts.append(f"; seen suppressed (inhibited or silenced) from {seen.suppressed_at:.1f} s")
    if seen.stale_since is not None:
        since = time.strftime("%H:%M:%S", time.gmtime(seen.stale_since))
        parts.append(f"; one was active since {since} UTC, before the run: not counted")
    return "".join(parts) + ")"
