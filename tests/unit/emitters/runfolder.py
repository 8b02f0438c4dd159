"""Hand-made run folders and sink files, written the way the runner and the sink write them."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

# 2026-12-01 12:00:00 UTC: the sink files below are of that day.
T0 = 1_796_126_400.0
DAY = "20261201"


def ingest_ts(epoch: float) -> str:
    ms = int(epoch * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def stored_line(run_id: str, emitter: str, stream: str, seq: int, at: float) -> dict[str, Any]:
    """A line as the Ingest Gateway stores it (the keys in its order)."""
    return {
        "ts": ingest_ts(at),
        "level": "INFO",
        "msg": f"event {seq}",
        "emitter": emitter,
        "scenario_id": "hand-made",
        "run_id": run_id,
        "service": "web",
        "host": "h1",
        "format": "json",
        "stream": stream,
        "seq": seq,
        "batch_id": f"b-{stream}-{seq}",
        "ingest_ts": ingest_ts(at),
    }


@dataclass
class RunFolder:
    """A run folder under ``root/runs/<run_id>`` and a sink under ``root/sink``."""

    root: Path
    run_id: str = "20261201T120000Z-abc123"
    emitters: list[dict[str, Any]] = field(default_factory=list)
    sends: list[dict[str, Any]] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.root / "runs" / self.run_id

    @property
    def sink_dir(self) -> Path:
        return self.root / "sink"

    def emitter(self, name: str, stream: str | None = None) -> str:
        stream = stream or f"{name}#0"
        self.emitters.append(
            {
                "name": name,
                "format": "json",
                "transport": "http",
                "target": "x",
                "via": "ingest",
                "stream": stream,
            }
        )
        return stream

    def send(
        self,
        emitter: str,
        stream: str,
        first: int,
        count: int,
        outcome: str = "accepted",
        t: float = T0,
        rejected: Iterable[int] = (),
        reason: str | None = None,
    ) -> dict[str, Any]:
        send = {
            "t": t,
            "rtt_ms": 3.5,
            "emitter": emitter,
            "stream": stream,
            "first_seq": first,
            "count": count,
            "outcome": outcome,
            "rejected_seqs": list(rejected),
            "reason": reason,
        }
        self.sends.append(send)
        return send

    def write(self, sink_dir: str | None = "") -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.sink_dir.mkdir(parents=True, exist_ok=True)
        run = {
            "run_id": self.run_id,
            "scenario": "hand-made",
            "started_at": T0,
            "sink_dir": str(self.sink_dir) if sink_dir == "" else sink_dir,
            "emitters": self.emitters,
        }
        (self.run_dir / "run.json").write_text(json.dumps(run))
        with (self.run_dir / "sends.jsonl").open("w") as fh:
            for send in self.sends:
                fh.write(json.dumps(send) + "\n")
        return self.run_dir


def write_sink(path: Path, lines: Iterable[dict[str, Any]], *, gz: bool = False) -> None:
    """Append ``lines`` as NDJSON to ``path`` (gzipped when ``gz``)."""
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "ab") as fh:
            fh.write(data)
    else:
        with path.open("ab") as fh:
            fh.write(data)


def lines_for(
    rf: RunFolder,
    emitter: str,
    stream: str,
    seqs: Iterable[int],
    at: float = T0 + 0.05,
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    return [stored_line(run_id or rf.run_id, emitter, stream, s, at) for s in seqs]


HOSTILE = "<img src=x onerror=\"document.title='pwned'\"></script><!--\u2028&amp;"


def write_finished_run(run_dir: Path, emitters: Iterable[str], seconds: int = 30) -> None:
    """summary.json and timeline.jsonl of a finished run, with rejections and a verify
    account, as ``logops scenario run`` writes them."""
    names = list(emitters)
    rows = []
    for t in range(seconds):
        for i, name in enumerate(names):
            target = 100.0 * (i + 1) + (50.0 if 10 <= t < 20 else 0.0)
            rejected = {"rate_limited": 3, HOSTILE: 1} if t % 7 == 3 else {}
            rows.append(
                {
                    "t": t,
                    "emitter": name,
                    "target_eps": target,
                    "sent": target - (t % 3),
                    "accepted": target - 4,
                    "rejected": rejected,
                    "late": 0,
                    "failed": 0,
                    "rtt_ms": None if t == 5 else {"p50": 2.0 + i, "p95": 5.0 + t % 4, "p99": 9.5},
                }
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "timeline.jsonl").open("w") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in rows)
        fh.write('{"t": 31, "emitter": "torn", "sen')
    per = {
        name: {
            "sent": 3000,
            "accepted": 2990,
            "rejected": 10,
            "failed": 0,
            "late": 2,
            "rate_error_pct": 0.4,
            "target_eps": 100.0,
            "achieved_eps": 99.6,
            "rejected_by_reason": {"rate_limited": 8, HOSTILE: 2},
        }
        for name in names
    }
    summary = {
        "run_id": run_dir.name,
        "scenario": "spike" + HOSTILE,
        "started_at": T0,
        "duration_sec": float(seconds),
        "exit_code": 1,
        "totals": {
            "sent": 3000 * len(names),
            "accepted": 2990 * len(names),
            "rejected": 10,
            "failed": 0,
            "late": 2,
            "rate_error_pct": 0.4,
        },
        "emitters": per,
        "verify": {
            "run_id": run_dir.name,
            "sink_dir": "data/ingest",
            "ok": False,
            "exit_code": 1,
            "files_read": 2,
            "totals": {
                "acknowledged": 2990,
                "stored": 2989,
                "missing": 1,
                "duplicated": 0,
                "unexpected": 0,
                "out_of_order": 0,
                "delivered_ratio": 2989 / 2990,
                "latency_ms": {"count": 2989, "p50": 4, "p95": 9, "p99": 12, "max": 40},
            },
            "streams": [
                {
                    "emitter": name,
                    "stream": name + "#0",
                    "acknowledged": 2990,
                    "stored": 2989,
                    "missing": 1,
                    "duplicated": 0,
                    "unexpected": 0,
                    "out_of_order": 0,
                    "latency_ms": None,
                    "missing_ranges": [[17, 17]],
                }
                for name in names
            ],
        },
        "expectations": [
            {
                "expr": "lost == 0",
                "metric": "lost",
                "op": "==",
                "threshold": 0,
                "actual": 1,
                "ok": False,
                "note": "logops verify",
            },
            {
                "expr": "rate_error_pct < 2",
                "metric": "rate_error_pct",
                "op": "<",
                "threshold": 2,
                "actual": 0.4,
                "ok": True,
                "note": "",
            },
            {
                "expr": "delivered_ratio >= 0.999",
                "metric": "delivered_ratio",
                "op": ">=",
                "threshold": 0.999,
                "actual": 0.9985,
                "ok": False,
                "note": "",
            },
            {
                "expr": "sent > 1000",
                "metric": "sent",
                "op": ">",
                "threshold": 1000,
                "actual": 12345678.9,
                "ok": True,
                "note": "",
            },
            {
                "expr": "alert " + HOSTILE,
                "metric": "alert",
                "op": "",
                "threshold": 0,
                "actual": None,
                "ok": None,
                "note": "alerts are not checked yet " + HOSTILE,
            },
        ],
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
