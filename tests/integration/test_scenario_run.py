"""Shipped scenarios, shortened, against a real Auth Gateway and Ingest Gateway on free ports.

Both gateways run in this process; the runner drives the scenario as ``logops scenario
run`` would and writes the run folder, which is checked against its contract
(docs/scenarios.md) and against the sink: every seq the gateways acknowledged is stored.
The CLI's exit codes (0, 1, 2) are checked by running ``logops scenario run`` itself.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from emitters.runner import RunOptions, RunResult, ScenarioRunner, Targets
from emitters.scenario import Scenario, load
from services.auth.wiring import AuthGateway
from services.common.keys import ApiKey, KeyRing
from services.ingest.wiring import IngestGateway
from tests.conftest import AuthFactory, GatewayFactory, stored_lines

ROOT = Path(__file__).resolve().parents[2]
SECRET = b"the scenario runner's test secret"
# The rates of the throwaway key of `logops up` (services/devkeys.py).
KEY = ApiKey("scenario-key", "scenario-e", (SECRET,), records_per_sec=5000.0, burst=10000)
# The hop gives up on a missing Ingest quickly and tries it again soon (outage).
FAST_HOP = {
    "forward.attempt_timeout_sec": 1.0,
    "forward.deadline_sec": 2.0,
    "forward.max_attempts": 2,
    "forward.breaker_fail_max": 2,
    "forward.breaker_reset_sec": 0.5,
}

RUN_KEYS = {"run_id", "scenario", "started_at", "sink_dir", "emitters"}
RUN_EMITTER_KEYS = {"name", "format", "transport", "target", "via", "stream"}
SEND_KEYS = {"t", "rtt_ms", "emitter", "stream", "first_seq", "count", "outcome",
             "rejected_seqs", "reason"}
OUTCOMES = {"accepted", "partial", "rejected", "failed", "spooled", "duplicate"}
TIMELINE_KEYS = {"t", "emitter", "target_eps", "sent", "accepted", "rejected", "late",
                 "failed", "rtt_ms"}
TOTAL_KEYS = {"sent", "accepted", "rejected", "failed", "late", "rate_error_pct"}
EXPECT_KEYS = {"expr", "metric", "op", "threshold", "actual", "ok", "note"}


class Stack:
    """Ingest and the Auth Gateway in this process; Ingest can be stopped and restarted."""

    def __init__(self, start_gateway: GatewayFactory, auth_gateway: AuthFactory,
                 sink: Path, **auth_overrides: Any) -> None:
        self.start_gateway, self.sink = start_gateway, sink
        self.ingest: IngestGateway | None = start_gateway(sink_dir=sink)
        addr = self.ingest.addresses
        assert addr is not None and self.ingest.syslog_addresses is not None
        self.ingest_http, self.ingest_grpc = addr.http_url, addr.grpc_target
        self.syslog = self.ingest.syslog_addresses
        self.auth: AuthGateway = auth_gateway(f"grpc://{addr.grpc_target}", KeyRing([KEY]),
                                              **auth_overrides)

    def targets(self) -> Targets:
        a = self.auth.addresses
        assert a is not None
        return Targets(self.ingest_http, self.ingest_grpc, self.syslog.tcp_target,
                       a.http_url, a.grpc_target, syslog_udp=self.syslog.udp_target)

    def perform(self, action: str) -> str:
        """The outage steps: Ingest really stopped, then started on the same ports."""
        if action == "stop_ingest":
            assert self.ingest is not None
            self.ingest.stop(grace=0.5)
            self.ingest = None
            return "Ingest stopped"
        http_port = int(self.ingest_http.rsplit(":", 1)[1])
        grpc_port = int(self.ingest_grpc.rsplit(":", 1)[1])
        self.ingest = self.start_gateway(sink_dir=self.sink, **{
            "http.port": http_port, "grpc.port": grpc_port, "syslog.enabled": False})
        return "Ingest started"


@pytest.fixture
def stack(start_gateway: GatewayFactory, auth_gateway: AuthFactory, tmp_path: Path) -> Stack:
    return Stack(start_gateway, auth_gateway, tmp_path / "sink", **FAST_HOP)


def shipped(name: str, scale: float) -> Scenario:
    scenario, _ = load(ROOT / "scenarios" / f"{name}.yaml")
    return scenario.scaled(scale)


def run(stack: Stack, scenario: Scenario, tmp_path: Path, run_id: str) -> RunResult:
    opts = RunOptions(run_id=run_id, targets=stack.targets(), key=(KEY.key_id, SECRET),
                      runs_dir=tmp_path / "runs", sink_dir=stack.sink, steps=stack)
    return ScenarioRunner(scenario, opts).run()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def check_folder(result: RunResult, scenario: Scenario) -> list[dict[str, Any]]:
    """The run folder holds what docs/scenarios.md promises; returns sends.jsonl."""
    folder = result.path
    assert {p.name for p in folder.iterdir()} == {
        "scenario.yaml", "run.json", "sends.jsonl", "timeline.jsonl", "summary.json",
        "report.html"}
    assert result.report == folder / "report.html"
    again, _ = load(folder / "scenario.yaml")
    assert again == scenario
    run_json = json.loads((folder / "run.json").read_text())
    assert set(run_json) == RUN_KEYS
    assert [e["name"] for e in run_json["emitters"]] == [e.name for e in scenario.emitters]
    assert all(set(e) == RUN_EMITTER_KEYS for e in run_json["emitters"])
    sends = read_jsonl(folder / "sends.jsonl")
    assert sends and all(set(s) == SEND_KEYS and s["outcome"] in OUTCOMES for s in sends)
    timeline = read_jsonl(folder / "timeline.jsonl")
    assert timeline and all(set(t) == TIMELINE_KEYS for t in timeline)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary == result.summary
    assert set(summary["totals"]) >= TOTAL_KEYS
    assert set(summary["emitters"]) == {e.name for e in scenario.emitters}
    assert all(set(e) == EXPECT_KEYS for e in summary["expectations"])
    # The account adds up: per emitter, sends.jsonl, the timeline and the totals agree.
    for name, account in summary["emitters"].items():
        mine = [s for s in sends if s["emitter"] == name]
        assert account["sent"] == sum(s["count"] for s in mine)
        assert account["sent"] == sum(t["sent"] for t in timeline if t["emitter"] == name)
        assert account["sent"] == (account["accepted"] + account["rejected"]
                                   + account["failed"])
    assert summary["totals"]["sent"] == sum(e["sent"] for e in summary["emitters"].values())
    return sends


def acknowledged(sends: list[dict[str, Any]]) -> Counter[tuple[str, int]]:
    acked: Counter[tuple[str, int]] = Counter()
    for s in sends:
        if s["outcome"] in ("accepted", "partial", "spooled", "duplicate"):
            refused = set(s["rejected_seqs"])
            for seq in range(s["first_seq"], s["first_seq"] + s["count"]):
                if seq not in refused:
                    acked[(s["stream"], seq)] += 1
    return acked


def stored(sink: Path, run_id: str) -> Counter[tuple[str, int]]:
    return Counter((x["stream"], x["seq"]) for x in stored_lines(sink)
                   if x.get("run_id") == run_id and "seq" in x)


# Expectations on how fast things went depend on how busy the machine is: a test checks
# that they were measured, not that they held (speed belongs to the benchmarks).
TIMING = frozenset({"late", "p50_latency_ms", "p95_latency_ms", "p99_latency_ms",
                    "rate_error_pct"})


def holds(summary: dict[str, Any]) -> None:
    """Every expectation but the timing ones holds; those were measured; the exit code
    says whether all held."""
    for e in summary["expectations"]:
        if e["metric"].startswith("alert."):
            assert e["ok"] is None
        elif e["metric"].rsplit(".", 1)[-1] in TIMING:
            assert isinstance(e["actual"], float) and e["ok"] is not None, e
        else:
            assert e["ok"] is True, e
    failed = any(e["ok"] is False for e in summary["expectations"])
    assert summary["exit_code"] == (1 if failed else 0)


def verdicts(summary: dict[str, Any]) -> dict[str, bool | None]:
    return {e["expr"]: e["ok"] for e in summary["expectations"]}


def test_default_runs_every_transport_and_every_acknowledged_record_is_stored_once(
    stack: Stack, tmp_path: Path
) -> None:
    scenario = shipped("default", 0.1)
    result = run(stack, scenario, tmp_path, "run-default")
    sends = check_folder(result, scenario)
    summary = result.summary
    holds(summary)
    assert {s["emitter"] for s in sends} == {"web", "api", "syslog"}
    acked = acknowledged(sends)
    assert sum(acked.values()) == summary["totals"]["sent"] > 0
    assert stored(stack.sink, "run-default") == acked
    ok = verdicts(summary)
    assert ok["delivered_ratio >= 0.999"] is True
    assert ok["rejected == 0"] is True
    assert summary["verify"] is not None
    assert ok["lost == 0"] is True and ok["duplicates == 0"] is True
    run_json = json.loads((result.path / "run.json").read_text())
    vias = {e["name"]: e["via"] for e in run_json["emitters"]}
    assert vias == {"web": "auth", "api": "auth", "syslog": None}


def test_auth_abuse_is_refused_for_each_reason(stack: Stack, tmp_path: Path) -> None:
    scenario = shipped("auth-abuse", 0.25)
    result = run(stack, scenario, tmp_path, "run-abuse")
    sends = check_folder(result, scenario)
    summary = result.summary
    holds(summary)
    by = summary["emitters"]
    assert by["forged"]["accepted"] == 0
    assert set(by["forged"]["rejected_by_reason"]) == {"bad_signature"}
    # One nonce for every push: the first passes, every later one is a replay.
    replays = [(s["outcome"], s["reason"]) for s in sends if s["emitter"] == "replayer"]
    assert replays[0] == ("accepted", None)
    assert set(replays[1:]) == {("rejected", "replay")}
    assert by["flood"]["rejected_by_reason"]["rate_limited"] > 0
    # A refused batch's records are all in its rejected_seqs; none of them is stored.
    refused = {(s["stream"], q) for s in sends if s["outcome"] == "rejected"
               for q in s["rejected_seqs"]}
    assert refused and not refused & set(stored(stack.sink, "run-abuse"))


def test_partial_and_chaos_records_are_refused_alone(stack: Stack, tmp_path: Path) -> None:
    scenario = shipped("high-errors", 0.1)
    result = run(stack, scenario, tmp_path, "run-errors")
    sends = check_folder(result, scenario)
    holds(result.summary)
    partial = [s for s in sends if s["outcome"] == "partial"]
    assert partial and all(s["reason"] == "parse_error" for s in partial)
    assert stored(stack.sink, "run-errors") == acknowledged(sends)


def test_outage_ingest_stopped_and_restarted_mid_run_loses_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    scenario = shipped("outage", 0.25)
    result = run(stack, scenario, tmp_path, "run-outage")
    sends = check_folder(result, scenario)
    summary = result.summary
    assert [s["ok"] for s in summary["steps"]] == [True, True]
    assert summary["totals"]["spooled"] > 0
    assert Counter(s["outcome"] for s in sends)["spooled"] > 0
    holds(summary)
    ok = verdicts(summary)
    assert ok["lost == 0"] is True and ok["duplicates == 0"] is True
    assert stored(stack.sink, "run-outage") == acknowledged(sends)


@pytest.mark.parametrize(
    "name",
    ["quiet", "spike", "burst", "ramp-up", "ramp-down", "burst-then-ramp", "chaos",
     "all-formats"],
)
def test_shipped_scenario_short_version_holds_its_expectations(
    stack: Stack, tmp_path: Path, name: str
) -> None:
    scenario = shipped(name, 0.1)
    result = run(stack, scenario, tmp_path, f"run-{name}")
    sends = check_folder(result, scenario)
    holds(result.summary)
    # Every acknowledged record that carries its seq is stored once (csv and the web
    # formats over syslog would not; the shipped files send those in batches).
    assert stored(stack.sink, f"run-{name}") == acknowledged(sends)


# -- the command and its exit codes ------------------------------------------------------

SMALL = """\
name: small
duration_sec: 1.5
emitters:
  - {name: one, format: json, transport: grpc, eps: 40, batch_size: 10, via: ingest}
expect:
  - delivered_ratio >= 0.999
  - EXTRA
"""


def cli(stack: Stack, tmp_path: Path, scenario: str, *extra: str) -> subprocess.CompletedProcess[
        str]:
    path = tmp_path / "small.yaml"
    path.write_text(scenario)
    t = stack.targets()
    args = ["scenario", "run", str(path), "--ingest-http", t.ingest_http, "--ingest-grpc",
            t.ingest_grpc, "--auth-http", t.auth_http, "--auth-grpc", t.auth_grpc,
            "--syslog", t.syslog, "--runs-dir", str(tmp_path / "runs"),
            "--sink-dir", str(stack.sink), *extra]
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def test_exit_codes_of_logops_scenario_run(stack: Stack, tmp_path: Path) -> None:
    port, scraped, stop = free_port(), [], threading.Event()
    thread = threading.Thread(target=scrape, args=(port, scraped, stop), daemon=True)
    thread.start()
    held = cli(stack, tmp_path, SMALL.replace("EXTRA", "sent >= 50"), "--run-id", "r0",
               "--metrics-port", str(port))
    stop.set()
    thread.join()
    assert held.returncode == 0, held.stdout + held.stderr
    # --metrics-port served the runner's own counts while it ran.
    assert any('logops_emitter_sent_records_total{emitter="one"}' in text for text in scraped)
    assert "every expectation holds" in held.stdout
    # Not a terminal: plain progress lines.
    assert "scenario " in held.stdout and " one " in held.stdout
    summary = json.loads((tmp_path / "runs" / "r0" / "summary.json").read_text())
    assert summary["exit_code"] == 0 and summary["verify"]["totals"]["missing"] == 0
    failed = cli(stack, tmp_path, SMALL.replace("EXTRA", "sent > 1000000"), "--run-id", "r1")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    summary = json.loads((tmp_path / "runs" / "r1" / "summary.json").read_text())
    assert [e["ok"] for e in summary["expectations"]] == [True, False]
    # Bad input: a bad file, a target that does not answer, a reused run id.
    bad = cli(stack, tmp_path, SMALL.replace("EXTRA", "sent >> 1"), "--run-id", "r2")
    assert bad.returncode == 2 and "small.yaml:7:5:" in bad.stderr
    down = cli(stack, tmp_path, SMALL.replace("EXTRA", "sent > 1"), "--run-id", "r3",
               "--ingest-grpc", "127.0.0.1:1")
    assert down.returncode == 2 and "does not answer" in down.stderr
    assert not (tmp_path / "runs" / "r3").exists()
    again = cli(stack, tmp_path, SMALL.replace("EXTRA", "sent > 1"), "--run-id", "r0")
    assert again.returncode == 2 and "already exists" in again.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int, into: list[str], stop: threading.Event) -> None:
    while not stop.wait(0.1):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as r:
                into.append(r.read().decode())
        except OSError:
            continue


def test_ctrl_c_ends_the_run_cleanly_with_its_account_and_exit_1(tmp_path: Path) -> None:
    import signal

    path = tmp_path / "long.yaml"
    path.write_text("name: long\nduration_sec: 600\nemitters:\n"
                    "  - {name: out, format: logfmt, transport: stdout, eps: 50}\n"
                    "expect: [sent > 0]\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "scenario", "run", str(path), "--plain",
         "--runs-dir", str(tmp_path / "runs"), "--run-id", "cut"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    # The progress goes to stderr (stdout is the emitter's); wait for the first line.
    first = proc.stderr.readline()
    assert first.startswith("scenario ") and " out " in first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert "interrupted; run folder" in err
    summary = json.loads((tmp_path / "runs" / "cut" / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["exit_code"] == 1
    sent = summary["totals"]["sent"]
    assert 0 < sent < 50 * 600
    # Every record the summary counts went out on stdout, with its seq.
    lines = [x for x in out.splitlines() if "seq=" in x]
    assert len(lines) == sent


@pytest.mark.slow
def test_demo_runs_the_default_scenario_with_its_account_and_report(tmp_path: Path) -> None:
    import os
    import re

    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGOPS_")}
    env["LOGOPS_SCENARIO_SCALE"] = "0.1"
    done = subprocess.run([sys.executable, "-m", "services.demo"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "The 'default' scenario (3 s, 3 emitters" in out
    assert re.search(r"verify: acknowledged [\d,]+, stored [\d,]+, missing 0, duplicated 0", out)
    assert re.search(r"PASS lost == 0 .*\n.*PASS duplicates == 0", out)
    report = re.search(r"Report: (\S+)", out)
    assert report is not None and (tmp_path / report[1]).is_file()
    # The demo's own checks still run after it.
    assert "401 UNAUTHENTICATED bad_signature" in out
    assert re.search(r"spooled batch \w+: delivered once \(3 of 3 records", out)
