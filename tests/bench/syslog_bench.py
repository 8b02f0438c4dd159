"""The syslog listener beside syslog-ng: the same ``loggen`` stream into each, in one run.

``loggen`` sends the same messages (RFC 5424, octet-counted over TCP, 256 bytes, as fast
as the receiver takes them: both apply flow control) first to ``logops ingest
--syslog-port 0`` and then to syslog-ng writing ``$(format-json --scope rfc5424 ...)`` to
a file (the config of ``syslog_peer``). One receiver at a time, so neither steals the
other's cores. For each: messages sent (loggen's own count), lines stored (counted in
the NDJSON sink, or syslog-ng's output file), lost = sent - stored, the wall time from the
first message to the last line stored, the receiver's CPU time over it (from /proc), and
messages/s per core = lines / CPU seconds. Then the ratio LogOps / syslog-ng per core
(PRODUCT.md's target: at least 1.0, nothing lost). Prints numbers, asserts nothing; the
exit code is non-zero only when a receiver or loggen could not be run.

Run with ``python -m tests.bench.syslog_bench [--messages N] [--connections C]``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clients.launcher import GatewayProcess, GatewayStartError
from tests.bench.procstat import cpu_seconds, memory_kib, stop_process
from tests.bench.syslog_peer import (
    LOGGEN,
    LineCounter,
    _start_syslog_ng,
    _wait_for_port,
    available,
    free_port,
    version,
)

ROOT = Path(__file__).resolve().parents[2]
# The receiver is done when its line count has not moved for this long.
SETTLE_SEC = 3.0
POLL_SEC = 0.25


@dataclass
class SideResult:
    receiver: str
    sent: int
    stored: int
    lost: int
    seconds: float
    cpu_seconds: float
    msgs_per_sec: float
    cores: float
    msgs_per_core: float
    loggen_rate: float | None
    peak_rss_mib: float


class SinkCounter:
    """Lines in every NDJSON file of a sink folder (rotated files included), reading only
    what was appended since the last call."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: dict[Path, LineCounter] = {}

    def count(self) -> int:
        for path in self.folder.glob("*.ndjson*"):
            if path not in self._files:
                self._files[path] = LineCounter(path)
        return sum(c.count() for c in self._files.values())


def run_loggen(
    port: int, messages: int, connections: int, size: int, log: Path, bsd: bool = False
) -> Any:
    # --rate is per connection: far above what either receiver takes.
    cmd = [LOGGEN, "--inet", "--stream", "--rate", "1000000"]
    cmd += [] if bsd else ["--syslog-proto"]
    # --interval too: loggen stops after 10 s by default, whatever --number says.
    cmd += [f"--active-connections={connections}", "--number", str(messages), "--interval", "3600"]
    cmd += ["--size", str(size), "127.0.0.1", str(port)]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def loggen_counts(text: str) -> tuple[int | None, float | None]:
    """(messages sent, average rate) from loggen's final line."""
    match = re.search(r"average rate = ([\d.]+) msg/sec, count=(\d+)", text)
    return (int(match.group(2)), float(match.group(1))) if match else (None, None)


def measure(
    name: str, pid: int, port: int, count: Any, args: argparse.Namespace, workdir: Path
) -> SideResult:
    """Drive the receiver ``pid`` (listening on ``port``) with loggen; ``count()`` gives
    the lines it has stored so far."""
    log = workdir / f"loggen-{name}.log"
    cpu0, started = cpu_seconds(pid), time.monotonic()
    loggen = run_loggen(port, args.messages, args.connections, args.size, log, args.bsd)
    expected = args.messages * args.connections
    last, last_change = count(), time.monotonic()
    while True:
        time.sleep(POLL_SEC)
        now_count = count()
        now = time.monotonic()
        if now_count != last:
            last, last_change = now_count, now
        done = loggen.poll() is not None
        if done and (last >= expected or now - last_change > SETTLE_SEC):
            break
    cpu = cpu_seconds(pid) - cpu0
    seconds = (last_change if last < expected else now) - started
    if last >= expected:
        seconds = last_change - started
    sent, rate = loggen_counts(log.read_text(errors="replace"))
    sent = expected if sent is None else sent
    return SideResult(
        receiver=name,
        sent=sent,
        stored=last,
        lost=sent - last,
        seconds=seconds,
        cpu_seconds=cpu,
        msgs_per_sec=last / seconds if seconds > 0 else 0.0,
        cores=cpu / seconds if seconds > 0 else 0.0,
        msgs_per_core=last / cpu if cpu > 0 else 0.0,
        loggen_rate=rate,
        peak_rss_mib=memory_kib(pid).get("VmHWM", 0) / 1024,
    )


def run_logops(args: argparse.Namespace, workdir: Path) -> SideResult:
    sink = workdir / "sink"
    gw_args = ["ingest", "--http-port", "0", "--grpc-port", "0", "--syslog-port", "0"]
    gw_args += ["--sink-dir", str(sink), "--durability", args.durability]
    with GatewayProcess(gw_args, cwd=str(ROOT)) as gw:
        port = int(str(gw.listening["syslog_tcp"]).rsplit(":", 1)[1])
        return measure("logops", gw.pid, port, SinkCounter(sink).count, args, workdir)


def run_syslog_ng(args: argparse.Namespace, workdir: Path) -> SideResult:
    port, out = free_port(), workdir / "syslog-ng.json"
    sng = _start_syslog_ng(workdir, port, out)
    try:
        _wait_for_port(port, sng)
        return measure(
            f"syslog-ng {version()}", sng.pid, port, LineCounter(out).count, args, workdir
        )
    finally:
        stop_process(sng, grace=5)


def print_side(r: SideResult) -> None:
    print(
        f"  {r.receiver:18} sent {r.sent:>10,}  stored {r.stored:>10,}  lost {r.lost:>6,}  "
        f"{r.msgs_per_sec:>9,.0f} msg/s  {r.cores:4.2f} cores  "
        f"{r.msgs_per_core:>9,.0f} msg/s/core  peak RSS {r.peak_rss_mib:,.0f} MiB",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=250_000, help="per connection")
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--size", type=int, default=256, help="bytes per message")
    p.add_argument("--durability", choices=("batch", "interval", "none"), default="batch")
    p.add_argument(
        "--bsd", action="store_true", help="loggen's BSD-style lines, LF framed (no syslog-ng)"
    )
    p.add_argument("--no-syslog-ng", action="store_true")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    args = p.parse_args(argv)
    missing = available()
    if missing:
        print(f"syslog bench skipped: {missing}")
        return 1
    print(
        f"syslog listener vs syslog-ng: loggen -P (RFC 5424, octet counting), "
        f"{args.connections} connections x {args.messages:,} messages of {args.size} bytes, "
        f"durability {args.durability}",
        flush=True,
    )
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="logops-syslog-bench-") as tmp:
        try:
            ours = run_logops(args, Path(tmp))
        except GatewayStartError as exc:
            print(f"cannot start the gateway: {exc}")
            return 1
        print_side(ours)
        results["logops"] = asdict(ours)
        if not args.no_syslog_ng and not args.bsd:
            peer = run_syslog_ng(args, Path(tmp))
            print_side(peer)
            results["syslog_ng"] = asdict(peer)
            ratio = ours.msgs_per_core / peer.msgs_per_core if peer.msgs_per_core else 0.0
            results["ratio_per_core"] = ratio
            print(
                f"  ratio LogOps / syslog-ng, messages/s per core: {ratio:.2f}x "
                f"(target >= 1.0x, nothing lost: lost {ours.lost:,} vs {peer.lost:,})"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
