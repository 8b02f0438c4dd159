"""Rate accuracy on the receiving side: what the Ingest Gateway stored per 10 s window, per
transport, from 1 to 50,000 events per second.

Run with ``python -m tests.bench.rate_bench [--seconds S] [--rates 1,10,...] [--transports
grpc,http,syslog+tcp] [--window S]``. Prints numbers only; it asserts nothing.

An Ingest Gateway starts on free ports with a sink in a temporary folder. For each
transport, ``logops emit json`` runs at each rate for ``--seconds`` (the low rates, which
cost little, side by side in one phase; 1,000 EPS and up one at a time). Afterwards the
sink's lines of each run are bucketed by their ``ingest_ts`` (when Ingest stored them,
millisecond resolution) into windows of ``--window`` seconds. Lines arrive a batch at a
time, so the first window opens half a batch spacing (a batch fills or its linger runs out,
never sooner than one event interval) before the first stored line: a window then holds
``rate x window`` events when batches arrive on time, and a window edge never splits a
batch that arrived on time. Only whole windows count (the last one closes half a spacing
after the last stored line). Printed per run: the sender's own account (sent, late,
failed), the stored count, and per window the achieved rate and its error against the
target; ``worst`` is the window furthest from the target.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from clients.launcher import GatewayProcess
from emitters.sink_reader import ReadStats, run_lines, sink_files


def _ms(ts: str) -> int:
    """``ingest_ts`` (``YYYY-MM-DDTHH:MM:SS.mmmZ``) to Unix milliseconds."""
    return round(datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000)


RATES = (1, 10, 100, 1_000, 10_000, 50_000)
# Rates up to this one run side by side: together they cost the gateway little.
SIDE_BY_SIDE_UP_TO = 100
TRANSPORTS = ("grpc", "http", "syslog+tcp")


@dataclass
class Run:
    transport: str
    rate: int
    run_id: str
    proc: subprocess.Popen[bytes] | None = None
    account: dict[str, Any] = field(default_factory=dict)
    windows: list[float] = field(default_factory=list)
    stored: int = 0
    window_sec: float = 10.0

    @property
    def batch_size(self) -> int:
        # Big batches at high rates: a batch of 100 every 2 ms is more than a sender keeps up.
        return 1000 if self.rate >= 10_000 else 100

    @property
    def linger_ms(self) -> int:
        # 50 ms rather than the 200 ms default of grpc/http: a window's count moves by whole
        # batches, and at 100 EPS a 200 ms batch is 2 % of a 10 s window.
        return 50 if self.transport in ("grpc", "http") else 5

    @property
    def spacing_ms(self) -> float:
        """Time between two stored batches: a batch fills or its linger runs out, and no
        sooner than the next event is due."""
        return max(min(1000.0 * self.batch_size / self.rate, self.linger_ms), 1000.0 / self.rate)


def _target(gw: GatewayProcess, transport: str) -> str:
    if transport == "grpc":
        return gw.grpc_target
    if transport == "http":
        return gw.http_url
    return str(gw.listening["syslog_tcp"])


def _start(run: Run, gw: GatewayProcess, seconds: float) -> None:
    args = [
        sys.executable,
        "-m",
        "services.cli",
        "emit",
        "json",
        "--transport",
        run.transport,
        "--target",
        _target(gw, run.transport),
        "--rate",
        str(run.rate),
        "--duration",
        str(seconds),
        "--run-id",
        run.run_id,
        "--seed",
        "7",
        "--quiet",
        "--json",
    ]
    args += ["--batch-size", str(run.batch_size), "--linger-ms", str(run.linger_ms)]
    run.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(run: Run) -> None:
    assert run.proc is not None
    out, err = run.proc.communicate(timeout=600)
    if run.proc.returncode not in (0, 1):
        raise RuntimeError(f"logops emit failed ({run.proc.returncode}): {err.decode()[-2000:]}")
    run.account = json.loads(out.decode().strip().splitlines()[-1])


def _windows(stored_ms: list[int], spacing_ms: float, window: float) -> list[float]:
    """Achieved events/s in each whole window of ``window`` seconds."""
    if not stored_ms:
        return []
    half = spacing_ms / 2
    origin = stored_ms[0] - half
    last = stored_ms[-1] + half
    width = window * 1000.0
    whole = int((last - origin) // width)
    counts = [0] * whole
    for t in stored_ms:
        k = int((t - origin) // width)
        if k < whole:
            counts[k] += 1
    return [c / window for c in counts]


def _measure(run: Run, sink: Path, window: float) -> None:
    stats = ReadStats()
    stored = sorted(
        _ms(line["ingest_ts"]) for line in run_lines(sink_files(sink), run.run_id, stats)
    )
    run.stored = len(stored)
    run.window_sec = window
    run.windows = _windows(stored, run.spacing_ms, window)


def _print(run: Run) -> None:
    acc = run.account
    errors = [100.0 * (w - run.rate) / run.rate for w in run.windows]
    worst = max(errors, key=abs) if errors else float("nan")
    shown = " ".join(f"{e:+.2f}" for e in errors)
    # A window's count moves by whole batches: one batch in % of a window's target.
    quantum = 100.0 * run.spacing_ms / 1000.0 / run.window_sec
    print(
        f"{run.transport:<11} {run.rate:>6} EPS  sent {acc.get('sent', 0):>8}  "
        f"late {acc.get('late', 0):>6}  failed {acc.get('failed', 0):>4}  stored {run.stored:>8}  "
        f"windows {len(run.windows)}  one batch {quantum:.2f} %  worst {worst:+.2f} %  [{shown}]"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="run length per rate (30)")
    parser.add_argument("--window", type=float, default=10.0, help="window width in s (10)")
    parser.add_argument("--rates", default=",".join(map(str, RATES)))
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    transports = args.transports.split(",")
    print(
        f"rate accuracy on the receiving side: {args.seconds:g} s per rate, "
        f"{args.window:g} s windows, error in % of the target per window"
    )
    with tempfile.TemporaryDirectory(prefix="logops-rate-") as tmp:
        sink = Path(tmp) / "sink"
        gw = GatewayProcess(
            [
                "ingest",
                "--http-port",
                "0",
                "--grpc-port",
                "0",
                "--syslog-port",
                "0",
                "--sink-dir",
                str(sink),
            ]
        )
        gw.start()
        try:
            stamp = time.strftime("%H%M%S")
            for transport in transports:
                runs = [Run(transport, r, f"rate-{stamp}-{transport}-{r}") for r in rates]
                low = [r for r in runs if r.rate <= SIDE_BY_SIDE_UP_TO]
                phases = ([low] if low else []) + [[r] for r in runs if r.rate > SIDE_BY_SIDE_UP_TO]
                for phase in phases:
                    for run in phase:
                        _start(run, gw, args.seconds)
                    for run in phase:
                        _finish(run)
                time.sleep(1.0)  # the last batches reach the sink
                for run in runs:
                    _measure(run, sink, args.window)
                    _print(run)
        finally:
            gw.stop()


if __name__ == "__main__":
    main()
