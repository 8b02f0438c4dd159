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

``--sdata`` gives every RFC 5424 message that structured data (``--sdata emitter``: the
element our emitters write, ``[logops@32473 run_id=".." stream=".." seq=".."]``, and
an ``origin`` one), which the listener reads on another path than loggen's ``-``; LF
framed, since loggen's octet count leaves the structured data out (so the listener alone:
syslog-ng's source here reads octet-counted frames). ``--bsd`` is loggen's BSD-style
stream, whose RFC 3339 times make it the lenient ``syslog`` format's; ``--rfc3164`` sends
real RFC 3164 lines instead (util-linux ``logger --rfc3164 --tcp``, one process per
connection, LF framed; the listener alone).

Run with ``python -m tests.bench.syslog_bench [--messages N] [--connections C]``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clients.launcher import GatewayProcess, GatewayStartError
from tests.bench.procstat import OthersWindow, cpu_seconds, memory_kib, stop_process
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
    # CPU that processes outside the benchmark used meanwhile: above ~0.15, disturbed.
    other_cores: float


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


# What the emitters write in every RFC 5424 line, and a registered element beside it.
EMITTER_SDATA = (
    '[logops@32473 run_id="bench-run" stream="loggen" seq="1042"]'
    '[origin ip="10.0.0.7" software="checkout" swVersion="2.14.1"]'
)


def run_loggen(
    port: int,
    messages: int,
    connections: int,
    size: int,
    log: Path,
    bsd: bool = False,
    sdata: str = "",
) -> Any:
    # --rate is per connection: far above what either receiver takes.
    cmd = [LOGGEN, "--inet", "--stream", "--rate", "1000000"]
    cmd += [] if bsd else ["--syslog-proto"]
    # loggen's octet count leaves the structured data out (3.38): LF framing then.
    cmd += [f"--sdata={sdata}", "--no-framing"] if sdata and not bsd else []
    # --interval too: loggen stops after 10 s by default, whatever --number says.
    cmd += [f"--active-connections={connections}", "--number", str(messages), "--interval", "3600"]
    cmd += ["--size", str(size), "127.0.0.1", str(port)]
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


class _Senders:
    """Several sender processes, done when all are (``poll`` as ``Popen.poll``)."""

    def __init__(self, procs: list[subprocess.Popen[bytes]]) -> None:
        self.procs = procs

    def poll(self) -> int | None:
        codes = [p.poll() for p in self.procs]
        return None if None in codes else max(c or 0 for c in codes)


# RFC 3164 message texts as sshd writes them (the emitters' syslog3164 sample).
_BSD_TEXT = "Accepted publickey for alice from 192.0.2.44 port 50022 ssh2: ED25519 SHA256:"


def run_logger(port: int, messages: int, connections: int, size: int, log: Path) -> _Senders:
    """util-linux ``logger --rfc3164 --tcp`` per connection, each sending ``messages``
    lines of a file: real RFC 3164 lines (``<38>Mar  2 04:05:06 host sshd[pid]: ...``),
    LF framed, about ``size`` bytes each."""
    body = log.with_suffix(".txt")
    text = (_BSD_TEXT + "x" * size)[: max(size - 40, 20)]
    with body.open("w") as f:
        for i in range(messages):
            f.write(f"{text} {i:010d}\n")
    cmd = ["logger", "--rfc3164", "--tcp", "-n", "127.0.0.1", "-P", str(port)]
    cmd += ["-t", "sshd", "--id=4412", "-p", "auth.info", "-f", str(body)]
    with log.open("wb") as out:
        procs = [
            subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT) for _ in range(connections)
        ]
    return _Senders(procs)


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
    others = OthersWindow()
    others.begin()
    cpu0, started = cpu_seconds(pid), time.monotonic()
    sdata = EMITTER_SDATA if args.sdata == "emitter" else args.sdata
    if args.rfc3164:
        loggen: Any = run_logger(port, args.messages, args.connections, args.size, log)
    else:
        loggen = run_loggen(port, args.messages, args.connections, args.size, log, args.bsd, sdata)
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
    others.end()
    # From loggen's start to the last line stored.
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
        other_cores=max(0.0, others.cores),
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
        f"{r.msgs_per_core:>9,.0f} msg/s/core  peak RSS {r.peak_rss_mib:,.0f} MiB  "
        f"(others used {r.other_cores:.2f} cores)",
        flush=True,
    )


def run_round(args: argparse.Namespace, workdir: Path, peer_first: bool) -> list[SideResult]:
    """One measurement of each receiver, in the order given (alternated between rounds so
    that neither always runs on a page cache the other has just filled)."""
    workdir.mkdir()
    sides = [run_logops]
    if not args.no_syslog_ng and not args.bsd:
        sides = [run_syslog_ng, run_logops] if peer_first else [run_logops, run_syslog_ng]
    out = []
    for side in sides:
        result = side(args, workdir)
        print_side(result)
        out.append(result)
    shutil.rmtree(workdir)  # about 1 GB a round with the defaults
    return out


def summarise(rounds: list[list[SideResult]]) -> dict[str, Any]:
    """Medians per receiver over the rounds, and the ratio of the per-core medians."""
    by_side: dict[str, list[SideResult]] = {}
    for results in rounds:
        for r in results:
            by_side.setdefault("logops" if r.receiver == "logops" else "syslog_ng", []).append(r)
    out: dict[str, Any] = {"rounds": [[asdict(r) for r in results] for results in rounds]}
    for side, results in by_side.items():
        out[side] = {
            "msgs_per_core": statistics.median(r.msgs_per_core for r in results),
            "msgs_per_sec": statistics.median(r.msgs_per_sec for r in results),
            "lost": sum(r.lost for r in results),
            "sent": sum(r.sent for r in results),
        }
    if "syslog_ng" in out and out["syslog_ng"]["msgs_per_core"]:
        out["ratio_per_core"] = out["logops"]["msgs_per_core"] / out["syslog_ng"]["msgs_per_core"]
    return out


def print_summary(summary: dict[str, Any], rounds: int) -> None:
    ours = summary["logops"]
    print(
        f"  median of {rounds}: LogOps {ours['msgs_per_core']:,.0f} msg/s/core, "
        f"lost {ours['lost']:,} of {ours['sent']:,}"
    )
    peer = summary.get("syslog_ng")
    if peer is not None:
        print(
            f"  median of {rounds}: syslog-ng {peer['msgs_per_core']:,.0f} msg/s/core, "
            f"lost {peer['lost']:,} of {peer['sent']:,}"
        )
        print(
            f"  ratio LogOps / syslog-ng, messages/s per core: {summary['ratio_per_core']:.2f}x "
            "(target >= 1.0x, nothing lost)"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=250_000, help="per connection")
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--size", type=int, default=256, help="bytes per message")
    p.add_argument("--rounds", type=int, default=3, help="measurements of each, medians")
    p.add_argument("--durability", choices=("batch", "interval", "none"), default="batch")
    p.add_argument(
        "--bsd", action="store_true", help="loggen's BSD-style lines, LF framed (no syslog-ng)"
    )
    p.add_argument(
        "--rfc3164",
        action="store_true",
        help="util-linux logger's RFC 3164 lines instead of loggen, LF framed (no syslog-ng)",
    )
    p.add_argument(
        "--sdata", default="", help='structured data for every message ("emitter": ours)'
    )
    p.add_argument("--no-syslog-ng", action="store_true")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    args = p.parse_args(argv)
    if args.sdata == "emitter":
        # loggen pads to --size and mangles lines shorter than its template with the SD.
        args.size = max(args.size, 400)
    # syslog-ng's syslog() source here takes octet counting only: the listener alone.
    args.no_syslog_ng = args.no_syslog_ng or bool(args.sdata and not args.bsd) or args.rfc3164
    missing = available()
    if missing:
        print(f"syslog bench skipped: {missing}")
        return 1
    proto = "BSD-style, LF framing" if args.bsd else "RFC 5424, octet counting"
    proto = "logger --rfc3164 instead: RFC 3164, LF framing" if args.rfc3164 else proto
    proto += f", LF framing, structured data {args.sdata}" if args.sdata and not args.bsd else ""
    print(
        f"syslog listener vs syslog-ng: loggen over TCP ({proto}), {args.connections} "
        f"connections x {args.messages:,} messages of {args.size} bytes, durability "
        f"{args.durability}, {args.rounds} round(s)",
        flush=True,
    )
    rounds = []
    with tempfile.TemporaryDirectory(prefix="logops-syslog-bench-") as tmp:
        for n in range(args.rounds):
            try:
                rounds.append(run_round(args, Path(tmp) / f"round{n}", peer_first=n % 2 == 1))
            except GatewayStartError as exc:
                print(f"cannot start the gateway: {exc}")
                return 1
    summary = summarise(rounds)
    print_summary(summary, args.rounds)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
