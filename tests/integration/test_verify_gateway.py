"""logops verify against a real Ingest Gateway's sink: records emitted by the emit loop over
gRPC and HTTP, the sink rotated and archived, and verify's account checked against an
independent count of the NDJSON lines.

Each send is recorded in sends.jsonl as ``logops scenario run`` records it (one line per
batch, with the gateway's answer), by a transport wrapper around the real client.
"""

from __future__ import annotations

import calendar
import gzip
import json
import math
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from clients.transports import Transport
from emitters.content import ContentOptions
from emitters.emit import EmitLoop, EmitOptions
from emitters.formats import get_format
from emitters.rate import Schedule
from emitters.source import Accounting, EventSource
from emitters.verify import verify_run
from services.common.errors import LogOpsError
from services.common.model import Batch, PushResult
from services.ingest.housekeeping import run_housekeeping
from services.ingest.wiring import IngestGateway
from tests.conftest import GatewayFactory, make_transport

ROOT = Path(__file__).resolve().parents[2]
RUN_ID = "20261201T120000Z-5eed01"


class RecordingTransport:
    """A real transport that appends each send's outcome to sends.jsonl."""

    def __init__(self, inner: Transport, sends: Path, emitter: str) -> None:
        self.inner, self.sends, self.emitter = inner, sends, emitter
        self.last: Batch | None = None

    def send(self, batch: Batch) -> PushResult:
        records = [r for r in batch.records if r is not None]
        first, stream = int(records[0]["seq"]), str(records[0]["stream"])
        t = time.time()
        line: dict[str, Any] = {
            "t": t,
            "emitter": self.emitter,
            "stream": stream,
            "first_seq": first,
            "count": len(records),
            "rejected_seqs": [],
            "reason": None,
        }
        try:
            result = self.inner.send(batch)
        except LogOpsError as exc:
            outcome = "failed" if exc.mapping.retryable else "rejected"
            self._write({**line, "rtt_ms": None, "outcome": outcome, "reason": exc.reason})
            raise
        outcome = (
            "duplicate"
            if result.duplicate
            else "spooled"
            if result.spooled
            else "partial"
            if result.rejected
            else "accepted"
        )
        rejected = [first + r.index for r in result.rejections]
        rtt = (time.time() - t) * 1000.0
        self._write({**line, "rtt_ms": rtt, "outcome": outcome, "rejected_seqs": rejected})
        self.last = batch
        return result

    def _write(self, line: dict[str, Any]) -> None:
        with self.sends.open("a") as fh:
            fh.write(json.dumps(line) + "\n")

    def close(self) -> None:
        self.inner.close()


def _emit(
    gw: IngestGateway, front: str, run_dir: Path, run_id: str, name: str, count: int
) -> RecordingTransport:
    transport = RecordingTransport(make_transport(gw, front), run_dir / "sends.jsonl", name)
    source = EventSource(
        get_format("json"), ContentOptions(), Accounting(run_id, f"{name}#0"), seed=3
    )
    loop = EmitLoop(
        source,
        Schedule.constant(20_000.0, count=count),
        transport,
        EmitOptions(name, batch_size=100, structured=True),
        transport_name=front,
    )
    result = loop.run()
    assert result.accepted == count and result.failed == result.rejected == 0
    return transport


def _write_run(run_dir: Path, sink_dir: Path, emitters: list[str]) -> None:
    run = {
        "run_id": run_dir.name,
        "scenario": "verify-test",
        "started_at": time.time() - 60,
        "sink_dir": str(sink_dir),
        "emitters": [
            {
                "name": n,
                "format": "json",
                "transport": n,
                "target": "",
                "via": "ingest",
                "stream": f"{n}#0",
            }
            for n in emitters
        ],
    }
    (run_dir / "run.json").write_text(json.dumps(run))


def _independent_count(sink_dir: Path, run_id: str) -> dict[str, Counter[int]]:
    """Copies of each seq per stream, from every data file read whole."""
    copies: dict[str, Counter[int]] = {}
    for path in sorted(sink_dir.iterdir()):
        if path.name.endswith(".ndjson.gz"):
            data = gzip.decompress(path.read_bytes())
        elif path.name.endswith(".ndjson"):
            data = path.read_bytes()
        else:
            continue
        for raw in data.splitlines():
            line = orjson.loads(raw)
            if line["run_id"] == run_id:
                copies.setdefault(line["stream"], Counter())[line["seq"]] += 1
    return copies


def _latencies(run_dir: Path, sink_dir: Path, run_id: str) -> list[int]:
    """ingest_ts minus the send's t, per stored line, computed the plain way."""
    sent_at: dict[tuple[str, int], float] = {}
    for text in (run_dir / "sends.jsonl").read_text().splitlines():
        send = json.loads(text)
        for seq in range(send["first_seq"], send["first_seq"] + send["count"]):
            sent_at.setdefault((send["stream"], seq), send["t"])
    out = []
    for path in sorted(sink_dir.glob("*.ndjson.gz")):
        for raw in gzip.decompress(path.read_bytes()).splitlines():
            line = orjson.loads(raw)
            if line["run_id"] == run_id:
                stamp = time.strptime(line["ingest_ts"][:19], "%Y-%m-%dT%H:%M:%S")
                ms = calendar.timegm(stamp) * 1000 + int(line["ingest_ts"][20:23])
                out.append(round(ms - sent_at[(line["stream"], line["seq"])] * 1000.0))
    return sorted(out)


def test_verify_agrees_with_the_sink_of_a_real_gateway(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gw = start_gateway(**{"sink.max_file_bytes": 200_000})
    sink_dir = Path(gw.cfg.sink.dir)
    run_dir = tmp_path / "runs" / RUN_ID
    run_dir.mkdir(parents=True)
    _write_run(run_dir, sink_dir, ["grpc", "http"])
    other = tmp_path / "runs" / "other-run"
    other.mkdir()
    # Another run's records before, between and after ours.
    _emit(gw, "http", other, "other-run", "http", 700).close()
    grpc = _emit(gw, "grpc", run_dir, RUN_ID, "grpc", 3000)
    _emit(gw, "grpc", other, "other-run", "grpc", 500).close()
    http = _emit(gw, "http", run_dir, RUN_ID, "http", 2000)
    # A batch sent again with its batch_id: acknowledged as a duplicate, not stored twice.
    assert http.last is not None
    assert http.send(http.last).duplicate
    http.close()
    grpc.close()
    _emit(gw, "http", other, "other-run", "http", 300).close()
    gw.stop(grace=0.5)
    assert len(list(sink_dir.glob("*.ndjson"))) > 3  # rotated
    # Housekeeping as if two days had passed: every data file archived as .gz.
    archived = run_housekeeping(sink_dir, 0, "archive", False, now=time.time() + 3 * 86_400)
    assert archived and not list(sink_dir.glob("*.ndjson"))

    report = verify_run(run_dir, sink_dir)
    copies = _independent_count(sink_dir, RUN_ID)
    assert set(copies) == {"grpc#0", "http#0"}
    for acc, count in zip(report.streams, (3000, 2000), strict=True):
        seen = copies[acc.stream]
        assert (acc.sent, acc.acknowledged) == (count, count)
        assert acc.stored == sum(seen.values())
        assert acc.delivered == len(set(seen) & set(range(count))) == count
        assert acc.duplicated == sum(n - 1 for n in seen.values()) == 0
        assert (acc.missing, acc.unexpected, acc.out_of_order) == (0, 0, 0)
    assert report.ok and report.totals.delivered_ratio == 1.0
    assert report.files_read == sum(1 for a in archived if a.action == "archive")
    plain = _latencies(run_dir, sink_dir, RUN_ID)
    lat = report.totals.latency_ms
    assert lat is not None and lat.count == len(plain) == 5000
    assert (lat.p50, lat.max) == (plain[math.ceil(0.5 * len(plain)) - 1], plain[-1])
    assert lat.p99 == plain[math.ceil(0.99 * len(plain)) - 1]


def test_logops_verify_finds_what_was_taken_from_the_sink(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gw = start_gateway()
    sink_dir = Path(gw.cfg.sink.dir)
    runs = tmp_path / "runs"
    run_dir = runs / RUN_ID
    run_dir.mkdir(parents=True)
    _write_run(run_dir, sink_dir, ["http"])
    _emit(gw, "http", run_dir, RUN_ID, "http", 600).close()
    gw.stop(grace=0.5)
    (path,) = sink_dir.glob("*.ndjson")
    lines = path.read_bytes().splitlines(keepends=True)
    # Lose seqs 100-104 and 450, store 7 and 8 a second time at the end.
    by_seq = {orjson.loads(raw)["seq"]: raw for raw in lines}
    lost = {100, 101, 102, 103, 104, 450}
    path.write_bytes(
        b"".join(raw for raw in lines if orjson.loads(raw)["seq"] not in lost)
        + by_seq[7]
        + by_seq[8]
    )
    cmd = [sys.executable, "-m", "services.cli", "verify", RUN_ID, "--runs-dir", str(runs)]
    done = subprocess.run([*cmd, "--json"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    (stream,) = report["streams"]
    assert (stream["missing"], stream["duplicated"]) == (6, 2)
    assert stream["missing_ranges"] == [[100, 104], [450, 450]]
    assert report["totals"]["delivered_ratio"] == pytest.approx(594 / 600)
    human = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert human.returncode == 1
    assert "missing in http#0: seq 100-104, 450" in human.stdout
    assert human.stdout.splitlines()[-1].startswith("FAILED: 6 missing, 2 duplicated of 600")
    unknown = subprocess.run(
        [*cmd[:4], "no-such-run", *cmd[5:]], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert unknown.returncode == 2 and "no run no-such-run" in unknown.stderr
