"""``make demo``: start the Ingest Gateway on its defaults, push a mixed batch over gRPC and
HTTP, show what the gateway answered and what it stored, then stop it."""

from __future__ import annotations

import json
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from clients.launcher import GatewayProcess, GatewayStartError
from clients.transports import GrpcTransport, HttpTransport
from services.common.config import load_config
from services.common.errors import LogOpsError
from services.common.model import Batch, PushResult

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

METRICS_SHOWN = (
    "logops_ingest_requests_total",
    "logops_ingest_records_accepted_total",
    "logops_ingest_records_rejected_total",
    "logops_ingest_missing_fields_total",
    "logops_ingest_duplicate_batches_total",
)

CSV_BODY = (
    b"ts,level,msg\n"
    b'2026-03-12T14:05:14Z,INFO,"csv row, with a comma"\n'
    b"2026-03-12T14:05:15Z,FATAL,disk full\n"
    b"only,two\n"
)


def _say(text: str = "") -> None:
    print(text, flush=True)


def _show(label: str, result: PushResult) -> None:
    m = result.missing
    _say(
        f"  {label:<22} accepted={result.accepted} rejected={result.rejected} "
        f"duplicate={result.duplicate} missing ts={m.ts_absent}+{m.ts_invalid} "
        f"level={m.level_absent}+{m.level_invalid}"
    )
    for r in result.rejections:
        _say(f"  {'':<22} record {r.index}: {r.reason}: {r.message}")


def _push_all(gw: GatewayProcess, run_id: str) -> dict[str, str]:
    """Push the demo batches; returns which front carried each batch id."""
    fronts: dict[str, str] = {}
    grpc_client = GrpcTransport(gw.grpc_target)
    http_client = HttpTransport(gw.http_url)
    try:
        for label, client in (("gRPC Push", grpc_client), ("HTTP JSON", http_client)):
            batch = Batch(records=[dict(r) for r in RECORDS], batch_id=uuid.uuid4().hex,
                          emitter="demo", scenario_id="demo", run_id=run_id)
            fronts[batch.batch_id] = label.split()[0]
            _show(label, client.send(batch))
        _show("gRPC retry (same id)", grpc_client.send(batch))
        csv_id = uuid.uuid4().hex
        fronts[csv_id] = "HTTP"
        status, headers, data = http_client.post(
            CSV_BODY,
            {"Content-Type": "text/csv", "X-LogOps-Emitter": "demo",
             "X-LogOps-Run-Id": run_id, "X-LogOps-Batch-Id": csv_id},
        )
        _show("HTTP CSV", HttpTransport.result(status, headers, data))
        status, headers, data = http_client.post(b"{not json", {"Content-Type": "application/json"})
        err = json.loads(data)["error"]
        _say(f"  {'HTTP malformed JSON':<22} HTTP {status} {err['code']} {err['reason']}: "
             f"{err['message'][:60]}")
    finally:
        grpc_client.close()
        http_client.close()
    return fronts


def _show_metrics(gw: GatewayProcess) -> None:
    _say(f"\nA few of the metrics at {gw.http_url}/metrics:")
    with urllib.request.urlopen(gw.http_url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith(METRICS_SHOWN) and not line.endswith(" 0.0"):
            _say(f"  {line}")


def _show_stored(sink_dir: Path, run_id: str, fronts: dict[str, str]) -> None:
    _say(f"\nStored for this run (NDJSON in {sink_dir}/):")
    for path in sorted(sink_dir.glob("*.ndjson")):
        for line in path.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            if rec.get("run_id") == run_id:
                flags = "".join(
                    f" [{k}]" for k in ("ts_missing", "level_missing") if rec.get(k)
                )
                front = fronts.get(rec["batch_id"], "?")
                _say(f"  {front:<4} {rec['ts']} {rec['level']:<5} {rec['format']:<10} "
                     f"{rec['msg']}{flags}")


def run_demo() -> int:
    cfg = load_config().ingest
    sink_dir = Path(cfg.sink.dir)
    run_id = "demo-" + uuid.uuid4().hex[:8]
    _say("Starting the Ingest Gateway on its defaults "
         f"(HTTP {cfg.http.port}, gRPC {cfg.grpc.port}, sink {sink_dir}/) ...")
    gw = GatewayProcess(["ingest"])
    try:
        gw.start()
    except GatewayStartError as exc:
        _say(f"The default ports are not free ({exc.args[0].splitlines()[-1][:120]});"
             " using free ones instead.")
        gw = GatewayProcess(["ingest", "--http-port", "0", "--grpc-port", "0"]).start()
    _say(f"Listening: HTTP {gw.http_url}, gRPC {gw.grpc_target}\n")
    try:
        _say(f"Pushing {len(RECORDS)} mixed records (run {run_id}):")
        fronts = _push_all(gw, run_id)
        _show_stored(sink_dir, run_id, fronts)
        _show_metrics(gw)
    except (LogOpsError, OSError) as exc:
        _say(f"demo failed: {exc}")
        return 1
    finally:
        code = gw.stop()
        _say(f"\nIngest Gateway stopped (exit {code}).")
    return 0


if __name__ == "__main__":
    sys.exit(run_demo())
