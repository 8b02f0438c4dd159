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
