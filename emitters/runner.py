"""The scenario runner: every emitter of a scenario on its own thread and schedule, steps at
their offsets, the run folder written, the expectations checked.

:class:`ScenarioRunner` builds one :class:`~emitters.emit.EmitLoop` per emitter (format,
transport, content knobs, :class:`~emitters.rate.Schedule`), checks that every target
answers (:class:`BadInput` otherwise: nothing is sent), then runs them together. An
:class:`~emitters.run_account.EmitterAccount` observes each loop's sends and writes
``sends.jsonl``; once a second the runner hands a :class:`Snapshot` to the progress view.
After the emitters end it lets in-flight records land (the Auth Gateway's spool drains),
reconciles the run with the sink when the sink is local (``logops verify``), and writes
``timeline.jsonl`` and ``summary.json`` (:mod:`emitters.run_summary`). When the scenario
expects alerts and ``RunOptions.alertmanager`` names one, an
:class:`~emitters.alerts.AlertWatch` polls it from the start and, after the emitters end,
until every alert expectation is decided (docs/scenarios.md).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from clients.signed import Signer
from clients.targets import TransportSpec, host_port, open_transport
from clients.transports import Transport
from emitters.alerts import AlertWatch
from emitters.content import ContentOptions
from emitters.emit import EmitLoop, EmitOptions, RetryCounter
from emitters.expect import NOT_ASKED, AlertExpectation, AlertVerdict
from emitters.formats import get_format
from emitters.mangle import FixedNonceSigner, Mangler
from emitters.run_account import Counts, EmitterAccount
from emitters.run_summary import build_summary, timeline_lines
from emitters.runfolder import RunFolder
from emitters.scenario import EmitterSpec, Scenario, Step
from emitters.source import Accounting, EventSource
from emitters.spool_watch import wait_spool_empty

GATEWAY_LINGER_SEC = 0.2
LINE_LINGER_SEC = 0.005
CONNECT_TIMEOUT_SEC = 2.0
# When records were spooled, wait this long at least for the spool to drain.
SPOOL_DRAIN_MIN_SEC = 30.0
# Syslog and HTTP text have no acknowledgement after the sink write: a moment to land.
LINE_GRACE_SEC = 1.0
WRONG_SECRET = "not-the-secret-of-this-key-0123456789"


class BadInput(ValueError):
    """The scenario cannot run as given: a target that does not answer, a bad flag (exit 2)."""


class StepDriver(Protocol):
    """Carries out a scenario step's built-in action (``stop_ingest``, ``start_ingest``)
    and says what it did."""

    def perform(self, action: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Targets:
    """Where the gateways are (PRODUCT.md section 1 defaults)."""

    ingest_http: str = "http://127.0.0.1:8080"
    ingest_grpc: str = "127.0.0.1:50051"
    syslog: str = "127.0.0.1:5514"
    auth_http: str = "http://127.0.0.1:8081"
    auth_grpc: str = "127.0.0.1:50052"
    # Ingest's syslog UDP port when it is not the TCP one (port 0 binds each apart).
    syslog_udp: str | None = None


@dataclass(slots=True)
class RunOptions:
    run_id: str
    targets: Targets = field(default_factory=Targets)
    # The client key grpc/http pushes are signed with: (key id, secret).
    key: tuple[str, bytes] | None = None
    runs_dir: Path = Path("data/runs")
    # Ingest's sink, when it is on this machine: the run is verified against it.
    sink_dir: Path | None = None
    steps: StepDriver | None = None
    on_tick: Callable[[Snapshot], None] | None = None
    on_send: Callable[[str, Counts], None] | None = None
    # Each emitter's target rate as the schedule changes it (0 before the start, after the end).
    on_target: Callable[[str, float], None] | None = None
    # Alertmanager's base URL, to check alert expectations (None: they are not checked).
    alertmanager: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True, slots=True)
class Row:
    """One emitter's line of the live view."""

    name: str
    transport: str
    target_eps: float
    window_eps: float
    counts: Counts


@dataclass(frozen=True, slots=True)
class Snapshot:
    elapsed_sec: float
    duration_sec: float
    rows: list[Row]
    events: list[str]


@dataclass(slots=True)
class Planned:
    """One emitter, ready to run."""

    spec: EmitterSpec
    target: str
    via: str | None
    loop: EmitLoop
    account: EmitterAccount
    thread: threading.Thread | None = None
    last_sent: int = 0


@dataclass(slots=True)
class RunResult:
    path: Path
    summary: dict[str, Any]
    report: Path | None = None

    @property
    def exit_code(self) -> int:
        return int(self.summary["exit_code"])


class ScenarioRunner:
    def __init__(self, scenario: Scenario, opts: RunOptions) -> None:
        self.scenario, self.opts = scenario, opts
        self.folder = RunFolder(opts.runs_dir, opts.run_id)
        self.start_wall = 0.0
        self.events: list[str] = []
        self.step_log: list[dict[str, Any]] = []
        self.planned: list[Planned] = []
        self.alerts: AlertWatch | None = None

    # -- building ---------------------------------------------------------------------

    def prepare(self) -> None:
        """Build every emitter and check its target answers; ``BadInput`` otherwise."""
        if self.folder.path.exists():
            raise BadInput(f"{self.folder.path} already exists: choose another --run-id")
        self.planned = [self._plan(spec) for spec in self.scenario.emitters]
        self._check_reachable()

    def _plan(self, spec: EmitterSpec) -> Planned:
        target, via = self._target_of(spec)
        a = spec.args
        tspec = TransportSpec(
            spec.transport, target, http_body=a.http_body, framing=a.framing,
            compress=a.gzip, max_attempts=5 if a.retries else 1,
        )
        retries = RetryCounter()
        transport: Transport = open_transport(tspec, self._signer(spec), retry_sleep=retries)
        fmt = get_format(spec.format)
        content = ContentOptions(error_ratio=a.error_ratio, missing_ts_ratio=a.missing_ts_ratio,
                                 missing_level_ratio=a.missing_level_ratio)
        source = EventSource(fmt, content, Accounting(self.opts.run_id, spec.name),
                             seed=a.seed, line_keys=tspec.line_keys)
        if a.partial_ratio or a.chaos:
            noise = EventSource(get_format("noise"), content, Accounting("", ""), seed=a.seed,
                                line_keys=()) if a.chaos else None
            transport = Mangler(transport, partial_ratio=a.partial_ratio, chaos=a.chaos,
                                noise=noise, seed=a.seed)
        linger = a.linger_ms / 1000.0 if a.linger_ms is not None else (
            GATEWAY_LINGER_SEC if tspec.batched else LINE_LINGER_SEC)
        emit_opts = EmitOptions(
            spec.name, batch_size=spec.batch_size, linger_sec=linger,
            late_after_sec=a.late_ms / 1000.0, batched=tspec.batched,
            structured=a.structured and fmt.name == "json", scenario_id=self.scenario.name,
        )
        account = EmitterAccount(spec.name, spec.name, 0.0, emit_opts.late_after_sec,
                                 self.folder.append_send, self.opts.on_send)
        loop = EmitLoop(source, spec.schedule(self.scenario.duration_sec), transport, emit_opts,
                        transport_name=tspec.name, retries=retries, observer=account)
        return Planned(spec, tspec.address, via, loop, account)

    def _target_of(self, spec: EmitterSpec) -> tuple[str, str | None]:
        t = self.opts.targets
        if spec.target:
            return spec.target, spec.via
        if spec.transport in ("grpc", "http"):
            via = spec.via or "auth"
            table = {("grpc", "auth"): t.auth_grpc, ("http", "auth"): t.auth_http,
                     ("grpc", "ingest"): t.ingest_grpc, ("http", "ingest"): t.ingest_http}
            return table[(spec.transport, via)], via
        if spec.transport == "syslog+udp":
            return t.syslog_udp or t.syslog, None
        if spec.transport == "syslog+tcp":
            return t.syslog, None
        return "", None

    def _signer(self, spec: EmitterSpec) -> Signer | None:
        key = self.opts.key
        mode = spec.args.signing
        if spec.transport not in ("grpc", "http") or mode == "none":
            return None
        if key is None:
            if mode == "valid":
                return None
            raise BadInput(f"emitter {spec.name!r} (signing: {mode}) needs a key: "
                           "give --key-id and --secret-file")
        if mode == "bad_secret":
            return Signer(key[0], WRONG_SECRET)
        if mode == "fixed_nonce":
            return FixedNonceSigner(*key)
        return Signer(*key)

    def _check_reachable(self) -> None:
        seen: set[str] = set()
        for p in self.planned:
            if p.spec.transport not in ("grpc", "http", "syslog+tcp") or p.target in seen:
                continue
            seen.add(p.target)
            host, port = host_port(p.target, 0)
            try:
                with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SEC):
                    pass
            except OSError as exc:
                raise BadInput(f"emitter {p.spec.name!r}: {p.spec.transport} target "
                               f"{p.target} does not answer ({exc})") from exc

    # -- running ----------------------------------------------------------------------

    def run(self) -> RunResult:
        """Run the prepared scenario to its end (or ``opts.stop``), then account."""
        if not self.planned:
            self.prepare()
        self.folder.create()
        self.start_wall = time.time()
        self.folder.write_scenario(self.scenario.to_dict())
        self.folder.write_json("run.json", self._run_json())
        self._set_targets(None)
        self.alerts = self._alert_watch()
        start = time.monotonic()
        if self.alerts is not None:
            self.alerts.start(start, self.start_wall)
        try:
            for p in self.planned:
                p.account.start_wall = self.start_wall
                p.thread = threading.Thread(target=p.loop.run, args=(self.opts.stop,),
                                            name=f"emit-{p.spec.name}", daemon=True)
                p.thread.start()
            steps = threading.Thread(target=self._steps, args=(start,), daemon=True)
            steps.start()
            self._watch(start)
            if self.alerts is not None:
                self.alerts.end_of_run()
            steps.join(timeout=0.1)
            self._settle()
        except BaseException:
            if self.alerts is not None:
                self.alerts.close()  # no verdicts after a failed run: stop polling
            raise
        finally:
            self._set_targets(None)
            for p in self.planned:
                p.loop.transport.close()
            self.folder.close_sends()
        interrupted = self.opts.stop.is_set()
        verify = self._verify()
        if self.alerts is not None:
            self._wait_alerts(self.alerts)
        summary = build_summary(self, verify, interrupted)
        self.folder.write_timeline(timeline_lines(self))
        self.folder.write_json("summary.json", summary)
        return RunResult(self.folder.path, summary, self._report())

    def _alert_watch(self) -> AlertWatch | None:
        wanted = [e for e in self.scenario.expect if isinstance(e, AlertExpectation)]
        if not wanted or self.opts.alertmanager is None:
            return None
        self.events.append(f"watching Alertmanager at {self.opts.alertmanager} for "
                           f"{', '.join(sorted({e.alert for e in wanted}))}")
        return AlertWatch(self.opts.alertmanager, wanted)

    def _wait_alerts(self, watch: AlertWatch) -> None:
        if not watch.decided():
            self.events.append("waiting for the alert expectations to be decided")
            began = time.monotonic()
            watch.wait(self.opts.stop)
            self.events.append(f"alert watch ended {time.monotonic() - began:.1f} s later")
        watch.close()

    def alert_verdict(self, exp: AlertExpectation) -> AlertVerdict:
        """An alert expectation's verdict (not checked when no Alertmanager was given)."""
        return NOT_ASKED if self.alerts is None else self.alerts.verdict(exp)

    def _set_targets(self, elapsed: float | None) -> None:
        """Tell ``on_target`` each emitter's target rate at ``elapsed`` (None: 0, the run
        has not started or is over; an emitter whose loop ended is at 0 too)."""
        if self.opts.on_target is None:
            return
        for p in self.planned:
            running = elapsed is not None and p.thread is not None and p.thread.is_alive()
            eps = p.loop.schedule.rate_at(elapsed) if running and elapsed is not None else 0.0
            self.opts.on_target(p.spec.name, eps)

    def _report(self) -> Path | None:
        """``report.html`` from the folder just written (None when it cannot be made)."""
        try:
            from emitters.report import write_report
        except ImportError:
            return None
        try:
            return write_report(self.folder.path)
        except Exception as exc:  # the report is a view: the run's account stands without it
            self.events.append(f"report: {exc}")
            return None

    def _run_json(self) -> dict[str, Any]:
        sink = self.opts.sink_dir
        return {
            "run_id": self.opts.run_id,
            "scenario": self.scenario.name,
            "started_at": self.start_wall,
            "sink_dir": str(sink) if sink is not None else None,
            "emitters": [
                {"name": p.spec.name, "format": p.spec.format, "transport": p.spec.transport,
                 "target": p.target, "via": p.via, "stream": p.account.stream}
                for p in self.planned
            ],
        }

    def _watch(self, start: float) -> None:
        """Until every emitter is done: a snapshot for the live view once a tick."""
        tick = self.scenario.tick_sec
        next_at = start + tick
        while any(p.thread is not None and p.thread.is_alive() for p in self.planned):
            time.sleep(max(0.0, min(0.2, next_at - time.monotonic())))
            now = time.monotonic()
            self._set_targets(now - start)
            if now >= next_at:
                self._tick(now - start, tick + (now - next_at))
                next_at += tick * max(1, int((now - next_at) // tick) + 1)
        for p in self.planned:
            if p.thread is not None:
                p.thread.join()
        self._tick(time.monotonic() - start, None)

    def _tick(self, elapsed: float, span: float | None) -> None:
        rows = []
        for p in self.planned:
            counts = p.account.snapshot()
            if span is None:
                window = counts.sent / elapsed if elapsed > 0 else 0.0
            else:
                window = (counts.sent - p.last_sent) / span if span > 0 else 0.0
            p.last_sent = counts.sent
            target = p.loop.schedule.rate_at(elapsed) if span is not None else (
                p.loop.result.target_eps)
            rows.append(Row(p.spec.name, p.spec.transport, target, window, counts))
        if self.opts.on_tick is not None:
            self.opts.on_tick(Snapshot(elapsed, self.scenario.duration_sec, rows,
                                       list(self.events)))

    def _steps(self, start: float) -> None:
        for step in sorted(self.scenario.steps, key=lambda s: s.at_sec):
            if self.opts.stop.wait(max(0.0, start + step.at_sec - time.monotonic())):
                return
            self._perform(step, time.monotonic() - start)

    def _perform(self, step: Step, at: float) -> None:
        try:
            if step.run is not None:
                said = _shell(step.run, self.folder.path, self.opts.run_id)
            elif self.opts.steps is None:
                raise RuntimeError("no way to carry out this action here")
            else:
                said = self.opts.steps.perform(step.action or "")
            ok = True
        except Exception as exc:  # a failed step is reported, the run goes on
            said, ok = f"failed: {exc}", False
        self.events.append(f"{at:6.1f}s {step.label}: {said}")
        self.step_log.append({"at_sec": step.at_sec, "done_at_sec": round(at, 3),
                              "step": step.label, "ok": ok, "result": said})

    def _settle(self) -> None:
        """Let what is in flight land: the spool drained, syslog lines written."""
        if self.opts.stop.is_set():
            return
        spooled = sum(p.account.total.spooled for p in self.planned)
        if spooled:
            wait = max(self.scenario.settle_sec, SPOOL_DRAIN_MIN_SEC)
            self.events.append(f"waiting up to {wait:g} s for the Auth Gateway's spool to drain")
            drained = wait_spool_empty(self.opts.targets.auth_http, wait, self.opts.stop)
            self.events.append("spool drained" if drained else "spool NOT drained in time")
        elif self.scenario.settle_sec:
            self.opts.stop.wait(self.scenario.settle_sec)
        if any(not p.loop.opts.batched for p in self.planned):
            self.opts.stop.wait(LINE_GRACE_SEC)

    def _verify(self) -> dict[str, Any] | None:
        if self.opts.sink_dir is None:
            return None
        try:
            from emitters.verify import VerifyInputError, verify_run
        except ImportError:
            return None
        try:
            return verify_run(self.folder.path, self.opts.sink_dir).to_dict()
        except VerifyInputError as exc:
            self.events.append(f"verify: {exc}")
            return None


def _shell(command: str, run_dir: Path, run_id: str) -> str:
    import os
    import subprocess

    env = {**os.environ, "LOGOPS_RUN_DIR": str(run_dir), "LOGOPS_RUN_ID": run_id}
    done = subprocess.run(command, shell=True, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip()[-200:]}")
    return (done.stdout.strip().splitlines() or ["done"])[-1][:200]
