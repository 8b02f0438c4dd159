"""``make demo``: the whole pipeline: both gateways, a scenario, its account and report.

Starts the Ingest Gateway and the Auth Gateway in front of it (``services.up.Stack``) on
free ports, with throwaway keys, sink and spool in a temporary folder. Then: signed
pushes of a mixed batch on gRPC and HTTP (stored under the key's emitter, whatever the
batch claims), a retry, a CSV body, a malformed body, a bad signature; the ``default``
scenario (about 30 s; ``LOGOPS_SCENARIO_SCALE`` shortens it) with live progress, checked
against the sink (``logops verify``), its run folder and ``report.html`` kept in
``data/runs/``; Ingest stopped, a batch spooled (202), Ingest restarted on the same ports and
the batch delivered once. It prints what it sent, what came back and what was stored, then
stops both.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clients.launcher import GatewayStartError
from clients.signed import Signer, secret_file
from clients.transports import GrpcTransport, HttpTransport, Prepared
from services.common.errors import LogOpsError
from services.common.model import Batch, PushResult
from services.devkeys import CLIENT_KEY_ID, ensure_keys
from services.up import Stack, StackOptions

RECORDS: list[dict[str, Any]] = [
    {"ts": "2026-03-12T14:05:09.482Z", "level": "info", "msg": "order 42 placed",
     "service": "checkout", "host": "web01", "stream": "demo", "seq": 1},
    {"ts": "2026-03-12T16:05:10+02:00", "level": "err",
     "msg": "payment declined for jane.doe@example.com from 83.11.45.6",
     "service": "payments", "stream": "demo", "seq": 2},
    {"level": "warn", "msg": "a record without a timestamp", "stream": "demo", "seq": 3},
    {"timestamp": 1773324311, "lvl": "warning", "message": "alias keys and epoch seconds",
     "stream": "demo", "seq": 4},
    {"raw": "2026-03-12T14:05:12.001Z web02 nginx[311]: ERROR upstream timed out",
     "format": "syslog", "stream": "demo", "seq": 5},
    {"raw": 'ts=2026-03-12T14:05:13Z level=debug msg="cache warm" hits=981', "format": "logfmt",
     "stream": "demo", "seq": 6},
    {"raw": "this line is not syslog", "format": "syslog", "stream": "demo", "seq": 7},
]

OUTAGE_RECORDS: list[dict[str, Any]] = [
    {"level": "error", "msg": f"sent while Ingest was down ({i} of 3)", "stream": "outage",
     "seq": i} for i in (1, 2, 3)
]

METRICS_SHOWN = (
    "logops_ingest_records_accepted_total",
    "logops_ingest_records_rejected_total",
    "logops_ingest_missing_fields_total",
    "logops_ingest_duplicate_batches_total",
    "logops_auth_requests_total",
    "logops_auth_rejected_total",
    "logops_auth_forward_attempts_total",
    "logops_auth_spool_batches",
)

CSV_BODY = (
    b"ts,level,msg\n"
    b'2026-03-12T14:05:14Z,INFO,"csv row, with a comma"\n'
    b"2026-03-12T14:05:15Z,FATAL,disk full\n"
    b"only,two\n"
)

# The spooled batch is delivered once Ingest answers again and the breaker lets a trial
# through: a short reset keeps the demo quick (the default is 10 s).
DEMO_ENV = {"LOGOPS_AUTH_FORWARD_BREAKER_RESET_SEC": "1"}
DELIVERY_TIMEOUT_SEC = 30.0
SCENARIO_FILE = Path(__file__).resolve().parents[1] / "scenarios" / "default.yaml"
# Scenario runs are kept (the temporary folder is not): the report stays to be read.
RUNS_DIR = Path("data/runs")


def _say(text: str = "") -> None:
    print(text, flush=True)


def _show(label: str, result: PushResult) -> None:
    m = result.missing
    if result.spooled:
        _say(f"  {label:<24} spooled={result.spooled} (202: kept in the Auth Gateway's spool)")
        return
    _say(
        f"  {label:<24} accepted={result.accepted} rejected={result.rejected} "
        f"duplicate={result.duplicate} missing ts={m.ts_absent}+{m.ts_invalid} "
        f"level={m.level_absent}+{m.level_invalid}"
    )
    for r in result.rejections:
        _say(f"  {'':<24} record {r.index}: {r.reason}: {r.message}")


def _refusal(label: str, exc: LogOpsError) -> None:
    _say(f"  {label:<24} HTTP {exc.http_status} {exc.code} {exc.reason}: {str(exc)[:70]}")


class Demo:
    def __init__(self, stack: Stack, signer: Signer, run_id: str) -> None:
        self.stack, self.signer, self.run_id = stack, signer, run_id
        # The client key's secret, for the scenario runner's signers.
        self.secret = b""
        assert stack.auth is not None
        self.auth = stack.auth
        self.fronts: dict[str, str] = {}

    def batch(self, records: list[dict[str, Any]], front: str) -> Batch:
        batch = Batch(records=[dict(r) for r in records], batch_id=uuid.uuid4().hex,
                      emitter="someone-else", scenario_id="demo", run_id=self.run_id)
        self.fronts[batch.batch_id] = front
        return batch

    def push_signed(self) -> None:
        _say(f"Signed pushes of {len(RECORDS)} mixed records through the Auth Gateway "
             f"(key {self.signer.key_id!r}; the batch says emitter 'someone-else'):")
        grpc_client = GrpcTransport(self.auth.grpc_target, signer=self.signer)
        http_client = HttpTransport(self.auth.http_url, signer=self.signer)
        try:
            for label, client in (("gRPC Push", grpc_client), ("HTTP JSON", http_client)):
                batch = self.batch(RECORDS, label.split()[0])
                _show(label, client.send(batch))
            _show("HTTP retry (same id)", http_client.send(batch))
            self._push_csv(http_client)
            try:
                http_client.send_prepared(_malformed())
            except LogOpsError as exc:
                _refusal("HTTP malformed JSON", exc)
        finally:
            grpc_client.close()
            http_client.close()

    def _push_csv(self, client: HttpTransport) -> None:
        csv_id = uuid.uuid4().hex
        self.fronts[csv_id] = "HTTP"
        headers = {"Content-Type": "text/csv", "X-LogOps-Run-Id": self.run_id,
                   "X-LogOps-Batch-Id": csv_id, **self.signer.sign(CSV_BODY, "text/csv")}
        _show("HTTP CSV", HttpTransport.result(*client.post(CSV_BODY, headers)))

    def bad_signature(self) -> None:
        forged = Signer(self.signer.key_id, "not-the-secret-of-this-key")
        client = HttpTransport(self.auth.http_url, signer=forged)
        try:
            client.send(self.batch(RECORDS[:1], "HTTP"))
            _say("  bad signature            ACCEPTED: that should not happen")
        except LogOpsError as exc:
            _refusal("bad signature", exc)
        finally:
            client.close()

    def outage(self, sink_dir: Path) -> bool:
        """Ingest stopped, a batch spooled, Ingest back: the batch stored exactly once."""
        assert self.stack.ingest is not None
        _say(f"\nStopping the Ingest Gateway (exit {self.stack.ingest.stop()}); pushing "
             f"{len(OUTAGE_RECORDS)} records to the Auth Gateway meanwhile:")
        client = HttpTransport(self.auth.http_url, signer=self.signer)
        batch = self.batch(OUTAGE_RECORDS, "HTTP")
        try:
            result = client.send(batch)
        finally:
            client.close()
        _show("HTTP during the outage", result)
        self.stack.restart_ingest()
        _say(f"Ingest Gateway restarted on the same ports (pid {self.stack.ingest.pid}); "
             "waiting for the spool to drain ...")
        stored = _wait_stored(sink_dir, batch.batch_id, len(OUTAGE_RECORDS))
        once = result.spooled and stored == len(OUTAGE_RECORDS)
        verdict = "delivered once" if once else "NOT delivered once"
        _say(f"  spooled batch {batch.batch_id[:8]}: {verdict} ({stored} of "
             f"{len(OUTAGE_RECORDS)} records in the sink, each once)")
        return once


    def scenario(self, sink_dir: Path, scale: float) -> bool:
        """The ``default`` scenario through the stack; True when ``logops verify`` finds
        nothing lost or doubled. Its other expectations (latency, rate) are shown, not
        required: how fast a demo goes depends on the machine it runs on."""
        from emitters.cli import new_run_id
        from emitters.progress import LiveView, print_summary
        from emitters.runner import RunOptions, ScenarioRunner, Targets
        from emitters.scenario import load

        ingest = self.stack.ingest
        assert ingest is not None
        scenario = load(SCENARIO_FILE)[0].scaled(scale)
        _say(f"\nThe {scenario.name!r} scenario ({scenario.duration_sec:g} s, "
             f"{len(scenario.emitters)} emitters: "
             + ", ".join(f"{e.name} {e.format} over {e.transport}" for e in scenario.emitters)
             + "):")
        targets = Targets(ingest.http_url, ingest.grpc_target, ingest.listening["syslog_tcp"],
                          self.auth.http_url, self.auth.grpc_target,
                          syslog_udp=ingest.listening["syslog_udp"])
        opts = RunOptions(run_id=new_run_id(), targets=targets,
                          key=(self.signer.key_id, self.secret), runs_dir=RUNS_DIR,
                          sink_dir=sink_dir)
        runner = ScenarioRunner(scenario, opts)
        with LiveView(scenario.name, sys.stdout) as view:
            opts.on_tick = view.update
            result = runner.run()
        print_summary(result.summary, str(result.path), sys.stdout, view.plain)
        _say(f"Report: {result.report}")
        verify = result.summary["verify"]
        return verify is not None and bool(verify["ok"])


def _malformed() -> Prepared:
    return Prepared(b"{not json", "application/json", {"Content-Type": "application/json"})


def stored_lines(sink_dir: Path) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for path in sorted(sink_dir.glob("*.ndjson")):
        lines += [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]
    return lines


def _wait_stored(sink_dir: Path, batch_id: str, want: int) -> int:
    """How many lines of ``batch_id`` are stored, once ``want`` are (or time is up); then a
    moment more, so a second delivery would show."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_SEC
    count = 0
    while time.monotonic() < deadline:
        count = sum(1 for x in stored_lines(sink_dir) if x.get("batch_id") == batch_id)
        if count >= want:
            time.sleep(1.0)
            return sum(1 for x in stored_lines(sink_dir) if x.get("batch_id") == batch_id)
        time.sleep(0.2)
    return count


def _show_stored(sink_dir: Path, run_id: str, fronts: dict[str, str]) -> None:
    _say(f"\nStored for this run (NDJSON in {sink_dir}/): front, emitter, ts, level, format, msg")
    for rec in stored_lines(sink_dir):
        if rec.get("run_id") != run_id and rec.get("batch_id") not in fronts:
            continue
        flags = "".join(f" [{k}]" for k in ("ts_missing", "level_missing") if rec.get(k))
        front = fronts.get(rec["batch_id"], "?")
        _say(f"  {front:<4} {rec['emitter']:<5} {rec['ts']} {rec['level']:<5} "
             f"{rec['format']:<10} {rec['msg']}{flags}")


def _show_metrics(stack: Stack) -> None:
    shown = (
        ("Auth Gateway", stack.auth, ""),
        ("Ingest Gateway", stack.ingest, " (since its restart)"),
    )
    for name, gw, note in shown:
        assert gw is not None
        _say(f"\nA few of the {name}'s metrics at {gw.http_url}/metrics{note}:")
        with urllib.request.urlopen(gw.http_url + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        for line in text.splitlines():
            if line.startswith(METRICS_SHOWN) and not line.endswith(" 0.0"):
                _say(f"  {line}")


def _start(tmp: Path) -> tuple[Stack, Signer]:
    keys, _ = ensure_keys(tmp / "keys")
    assert keys.auth_keys is not None and keys.client_secret is not None
    opts = StackOptions(
        keys, str(keys.auth_keys), 0, 0, ingest_syslog_port=0, auth_http_port=0, auth_grpc_port=0,
        sink_dir=str(tmp / "ingest"), spool_dir=str(tmp / "spool"), env=DEMO_ENV,
    )
    _say(f"Starting the Ingest Gateway and the Auth Gateway in front of it (free ports; "
         f"throwaway keys, sink and spool in {tmp}/) ...")
    stack = Stack(opts).start()
    assert stack.auth is not None and stack.ingest is not None
    _say(f"  Auth Gateway   {stack.auth.http_url}  gRPC {stack.auth.grpc_target}\n"
         f"  Ingest Gateway {stack.ingest.http_url}  gRPC {stack.ingest.grpc_target} "
         "(verifies the Auth Gateway's hop key)\n")
    return stack, Signer.from_file(CLIENT_KEY_ID, keys.client_secret)


def run_demo(scale: float = 1.0) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="logops-demo-"))
    try:
        stack, signer = _start(tmp)
    except GatewayStartError as exc:
        _say(f"demo failed: {exc}")
        shutil.rmtree(tmp, ignore_errors=True)
        return 1
    demo = Demo(stack, signer, "demo-" + uuid.uuid4().hex[:8])
    demo.secret = secret_file(tmp / "keys" / f"{CLIENT_KEY_ID}.secret")
    ok = held = False
    try:
        demo.push_signed()
        demo.bad_signature()
        held = demo.scenario(tmp / "ingest", scale)
        ok = demo.outage(tmp / "ingest")
        _show_stored(tmp / "ingest", demo.run_id, demo.fronts)
        _show_metrics(stack)
    except (LogOpsError, OSError, GatewayStartError) as exc:
        _say(f"demo failed: {exc}")
    finally:
        code = stack.stop()
        _say(f"\nBoth gateways stopped (exit {code}); {tmp}/ removed.")
        shutil.rmtree(tmp, ignore_errors=True)
    if not held:
        _say("The scenario's records were not all stored exactly once (see verify above).")
    return 0 if ok and held else 1


def scenario_scale(env: Mapping[str, str]) -> float:
    """``LOGOPS_SCENARIO_SCALE`` shortens the demo's scenario (the tests run it at 0.1)."""
    from emitters.scenario_cli import SCALE_ENV

    raw = env.get(SCALE_ENV, "")
    return float(raw) if raw else 1.0


if __name__ == "__main__":
    sys.exit(run_demo(scenario_scale(os.environ)))
