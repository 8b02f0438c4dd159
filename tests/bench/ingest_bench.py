"""Ingest Gateway throughput and latency on both fronts, measured beside syslog-ng.

Run ``.venv/bin/python -m tests.bench.ingest_bench [--quick] [--seconds N]`` (``make bench``).
Each pass starts a fresh gateway process (own sink folder), drives it from separate client
processes and prints records/s, latency, errors, the gateway's CPU and peak RSS. Then an
open-loop pass at half the maximum rate, then syslog-ng fed by loggen. With ``--soak N``
one more gateway runs N seconds at a constant rate while its RSS is sampled (see
:mod:`tests.bench.soak`; ``--soak-only`` skips everything else). Last (``--no-hostile`` leaves
it out) comes the attack-then-idle phase of :mod:`tests.bench.hostile`: a good client on each
front while one gateway is attacked five ways in turn. After syslog-ng (``--no-auth`` leaves
it out) comes Auth -> Ingest end to end with signed pushes (:mod:`tests.bench.auth_bench`);
``--auth-only`` runs just that and the Ingest-alone passes it is compared with. The numbers
are printed and saved to ``data/bench/ingest-<timestamp>.json``; nothing here is a pass/fail
check: the exit code is 0 unless something could not be started.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clients.launcher import GatewayProcess, GatewayStartError
from services.ingest import native
from tests.bench import hostile, profiling, report, soak
from tests.bench.loadgen import ClientPool, LoadSpec, SenderStats
from tests.bench.procstat import CpuWindow, OthersWindow, memory_kib, wait_until
from tests.bench.syslog_peer import available, run_syslog_ng

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "data" / "bench"
HALF_LOAD_BATCH = 1000
# Called in place of waiting out a pass's window: (gateway pid, window start, window end).
During = Callable[[int, float, float], None]
SOAK_RATE_HELP = "default: 50 %% of the best max rate measured, 20000 with --soak-only"
# client front:hop. gRPC -> gRPC moves the client's bytes through; HTTP JSON -> gRPC makes
# Auth decode the JSON and encode protobuf for the hop; HTTP -> HTTP moves the JSON through.
AUTH_PATHS = "grpc:grpc,http:grpc,http:http"
AUTH_PAIRS = {(f, h) for f in ("grpc", "http") for h in ("grpc", "http")}


@dataclass
class PassResult:
    front: str
    batch: int
    mode: str  # "max" (closed loop), "half" (open loop at half the max rate) or "soak"
    seconds: float
    target_records_per_sec: float = 0.0
    records_per_sec: float = 0.0
    requests_per_sec: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    late_sends: int = 0
    gw_cores: float = 0.0
    records_per_core: float = 0.0
    peak_rss_mib: float = 0.0
    client_cores: float = 0.0
    # Processes outside the benchmark busy during the window: their work disturbs the numbers.
    other_cores: float = 0.0
    acked_records: int = 0
    stored_lines: int = 0
    gateway_exit: int | None = None
    gateway_log: dict[str, int] = field(default_factory=dict)
    failure: str = ""
    profile_file: str = ""
    profile: list[tuple[str, float, float]] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="ingest_bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="3 s passes, to try it out")
    p.add_argument("--seconds", type=float, help="measured seconds per pass (default 10)")
    p.add_argument("--warmup", type=float, help="unmeasured seconds before each pass (default 2)")
    p.add_argument("--clients", type=int, default=2, help="client processes (default 2)")
    p.add_argument("--senders", type=int, default=4, help="sender threads per client process")
    p.add_argument("--fronts", default="grpc,http", help="fronts to measure (default grpc,http)")
    p.add_argument("--batches", default="1000,100", help="batch sizes (default 1000,100)")
    p.add_argument("--durability", default="batch", choices=("batch", "interval", "none"))
    p.add_argument("--config", help="gateway YAML config (passed to logops ingest --config)")
    p.add_argument("--no-syslog-ng", action="store_true", help="skip the syslog-ng peer")
    p.add_argument(
        "--profile", action="store_true", help="sample the gateway with py-spy in each pass"
    )
    soak = p.add_argument_group("memory soak (tests/bench/soak.py)")
    soak.add_argument("--soak", type=float, default=0.0, metavar="SECONDS", help="0: off")
    soak.add_argument("--soak-only", action="store_true", help="skip the other passes")
    soak.add_argument("--soak-rate", type=float, metavar="RECORDS_PER_SEC", help=SOAK_RATE_HELP)
    soak.add_argument("--soak-front", default="grpc", choices=("grpc", "http"))
    bad = p.add_argument_group("attack-then-idle phase (tests/bench/hostile.py)")
    bad.add_argument(
        "--hostile", action=argparse.BooleanOptionalAction, default=True, help="default: on"
    )
    bad.add_argument("--hostile-window", type=float, metavar="S", help="per attack (default 15)")
    bad.add_argument("--hostile-idle", type=float, metavar="S", help="after each (default 15)")
    auth = p.add_argument_group("Auth -> Ingest end to end (tests/bench/auth_bench.py)")
    auth.add_argument(
        "--auth", action=argparse.BooleanOptionalAction, default=True, help="default: on"
    )
    auth.add_argument("--auth-only", action="store_true", help="auth passes and Ingest alone")
    auth.add_argument("--auth-paths", default=AUTH_PATHS, help=f"FRONT:HOP,... ({AUTH_PATHS})")
    args = p.parse_args(argv)
    if args.soak_only and args.soak <= 0:
        p.error("--soak-only needs --soak SECONDS")
    args.auth_paths = [tuple(x.strip().split(":")) for x in args.auth_paths.split(",")]
    if any(x not in AUTH_PAIRS for x in args.auth_paths):
        p.error("--auth-paths: FRONT:HOP pairs of grpc and http, e.g. grpc:grpc,http:http")
    if args.auth_only:
        # The Ingest-alone max passes with batches of 1000 stay: the ratios need them.
        args.auth, args.batches, args.no_syslog_ng, args.hostile = True, "1000", True, False
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.hostile_window = args.hostile_window or (5.0 if args.quick else 15.0)
    idle = args.hostile_idle
    args.hostile_idle = idle if idle is not None else (5.0 if args.quick else 15.0)
    args.fronts = [f.strip() for f in args.fronts.split(",") if f.strip()]
    args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    args.stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return args


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, int(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def count_sink_lines(sink: Path) -> int:
    lines = 0
    for path in sink.glob("*.ndjson"):
        with path.open("rb") as f:
            while chunk := f.read(8 * 1024 * 1024):
                lines += chunk.count(b"\n")
    return lines


def log_problems(logs: list[dict[str, Any]]) -> dict[str, int]:
    """Warnings and errors the gateway logged, counted by level and event (or message)."""
    found: Counter[str] = Counter()
    for entry in logs:
        level = str(entry.get("level", "")).upper()
        if level in ("WARNING", "ERROR", "CRITICAL") or "level" not in entry:
            what = entry.get("event") or str(entry.get("msg", ""))[:80]
            found[f"{level or 'RAW'} {what}"] += 1
    return dict(found)


def gateway_args(args: argparse.Namespace, sink: Path) -> list[str]:
    out = ["ingest", "--http-port", "0", "--grpc-port", "0", "--no-syslog", "--sink-dir", str(sink)]
    out += ["--durability", args.durability]
    return out + (["--config", args.config] if args.config else [])


def fill_stats(res: PassResult, stats: SenderStats) -> None:
    lat = sorted(stats.latencies)
    res.records_per_sec = stats.ok_records / res.seconds
    res.requests_per_sec = len(lat) / res.seconds
    res.p50_ms, res.p99_ms = percentile(lat, 0.50) * 1e3, percentile(lat, 0.99) * 1e3
    res.max_ms = (lat[-1] if lat else 0.0) * 1e3
    res.errors = dict(stats.errors)
    res.late_sends = stats.late
    res.acked_records = stats.all_ok_records


def _window(
    pool: ClientPool, args: argparse.Namespace, gw_pid: int, res: PassResult, during: During | None
) -> tuple[CpuWindow, CpuWindow]:
    """Start the clients, and measure CPU (and optionally a profile) over the timed window."""
    start = time.monotonic() + 0.2
    measure, end = start + args.warmup, start + args.warmup + args.seconds
    gw_cpu, client_cpu, others = CpuWindow((gw_pid,)), CpuWindow(pool.pids), OthersWindow()
    pool.go(start, measure, end)
    wait_until(measure)
    for w in (gw_cpu, client_cpu, others):
        w.begin()
    spy = None
    if args.profile:
        raw = OUT_DIR / f"profile-{args.stamp}-{res.front}-{res.batch}-{res.mode}.txt"
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        spy = profiling.start(gw_pid, args.seconds, raw)
        res.profile_file = str(raw.relative_to(ROOT)) if spy is not None else ""
    if during is not None:
        during(gw_pid, measure, end)
    wait_until(end)
    for w in (gw_cpu, client_cpu, others):
        w.end()
    profiling.finish(spy)
    res.other_cores = max(0.0, others.cores)
    return gw_cpu, client_cpu


def run_pass(
    pool: ClientPool,
    args: argparse.Namespace,
    tmp: Path,
    res: PassResult,
    rate: float = 0.0,
    during: During | None = None,
) -> PassResult:
    """One gateway process, one load pass; fills ``res`` in place and returns it."""
    sink = tmp / f"sink-{res.front}-{res.batch}-{res.mode}"
    # Write back what earlier passes left dirty, so it does not slow this pass's fsyncs.
    os.sync()
    gw = GatewayProcess(gateway_args(args, sink), cwd=str(ROOT))
    with gw:
        target = gw.grpc_target if res.front == "grpc" else gw.http_url
        tag = uuid.uuid4().hex[:8]
        pool.prepare(LoadSpec(res.front, target, res.batch, args.senders, tag, rate))
        gw_cpu, client_cpu = _window(pool, args, gw.pid, res, during)
        stats, failures = pool.finish(timeout=90)
        res.peak_rss_mib = memory_kib(gw.pid).get("VmHWM", 0) / 1024
    fill_stats(res, stats)
    res.failure = "; ".join(sorted(set(failures)))
    res.gw_cores, res.client_cores = gw_cpu.cores, client_cpu.cores
    res.records_per_core = res.records_per_sec / res.gw_cores if res.gw_cores else 0.0
    res.gateway_exit = gw.proc.returncode if gw.proc is not None else None
    res.gateway_log = log_problems(gw.logs)
    res.stored_lines = count_sink_lines(sink)
    if res.profile_file:
        res.profile = profiling.top_frames(ROOT / res.profile_file)
    _remove_tree(sink)
    return res


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def guarded_pass(
    pool: ClientPool,
    args: argparse.Namespace,
    tmp: Path,
    res: PassResult,
    rate: float = 0.0,
    during: During | None = None,
) -> PassResult:
    """Like :func:`run_pass`, but a gateway or client that fails to start is reported."""
    what = f"{res.front} batch {res.batch} {res.mode}"
    if args.start_failed:
        res.failure = "did not start: skipped, the gateway failed to start before"
        return res
    print(f"  {what} ...", end="" if during is None else "\n", flush=True)
    try:
        run_pass(pool, args, tmp, res, rate, during)
    except (GatewayStartError, RuntimeError) as exc:
        res.failure = f"did not start: {exc}"
        args.start_failed = isinstance(exc, GatewayStartError)
        print(f" FAILED TO START\n{exc}", flush=True)
        return res
    done = " " if during is None else f"  {what}: "
    print(f"{done}{res.records_per_sec:,.0f} records/s, p99 {res.p99_ms:.1f} ms", flush=True)
    return res


def run_gateway_passes(
    pool: ClientPool, args: argparse.Namespace, tmp: Path
) -> tuple[list[PassResult], list[PassResult]]:
    args.start_failed = False
    passes = [
        guarded_pass(pool, args, tmp, PassResult(front, batch, "max", args.seconds))
        for batch in args.batches
        for front in args.fronts
    ]
    half: list[PassResult] = []
    for front in args.fronts if not args.auth_only else ():
        best = next((r for r in passes if r.front == front and r.batch == HALF_LOAD_BATCH), None)
        if best is None or best.records_per_sec <= 0:
            continue
        res = PassResult(front, HALF_LOAD_BATCH, "half", args.seconds)
        res.target_records_per_sec = best.records_per_sec / 2
        half.append(guarded_pass(pool, args, tmp, res, best.requests_per_sec / 2))
    return passes, half


def run_soak(
    pool: ClientPool, args: argparse.Namespace, tmp: Path, passes: list[PassResult]
) -> dict[str, Any] | None:
    """The memory soak (``--soak``): one gateway, a constant open-loop rate, RSS sampled."""
    if args.soak <= 0:
        return None
    rate, basis = soak.choose_rate(args.soak_rate, args.soak_only, [asdict(p) for p in passes])
    res = PassResult(args.soak_front, soak.BATCH, "soak", args.soak, target_records_per_sec=rate)
    # The whole run is measured (no unmeasured warm-up): the memory warm-up is part of it.
    soak_args = argparse.Namespace(**{**vars(args), "seconds": args.soak, "warmup": 0.0})
    soak_args.profile = False
    sampler = soak.RssSampler(args.soak)
    guarded_pass(pool, soak_args, tmp, res, rate / soak.BATCH, sampler)
    return soak.summarise(asdict(res), sampler.samples, basis)


def run_peer(args: argparse.Namespace, tmp: Path) -> dict[str, Any] | None:
    if args.no_syslog_ng:
        return None
    missing = available()
    if missing:
        print(f"  syslog-ng skipped: {missing}", flush=True)
        return {"failure": missing}
    print("  syslog-ng + loggen ...", end="", flush=True)
    workdir = tmp / "syslog-ng"
    workdir.mkdir()
    os.sync()
    try:
        result = run_syslog_ng(workdir, args.seconds, args.warmup).to_dict()
    except (RuntimeError, OSError) as exc:
        print(f" FAILED TO START\n{exc}", flush=True)
        return {"failure": str(exc)}
    finally:
        _remove_tree(workdir)
    print(f" {result['msgs_per_sec']:,.0f} msgs/s", flush=True)
    return result


def run_hostile(args: argparse.Namespace, tmp: Path) -> dict[str, Any] | None:
    """The attack-then-idle phase on a gateway of its own (``--no-hostile``: skipped)."""
    if not args.hostile or args.soak_only:
        return None
    extra = hostile.gateway_extra(args.durability, args.config)
    return hostile.run(tmp, args.hostile_window, args.hostile_idle, [], extra, hostile.GOOD_RATE)


def environment(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "seconds": args.seconds,
        "warmup": args.warmup,
        "client_processes": args.clients,
        "senders_per_process": args.senders,
        "durability": args.durability,
        # The C hot path (services/ingest/_native.c) is built; the gateway uses it.
        "native": native.AVAILABLE,
        "config": args.config,
        "sink_filesystem": report.filesystem(tmp),
        "stamp": args.stamp,
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "soak_seconds": args.soak,
        "soak_only": args.soak_only,
        "hostile": args.hostile and not args.soak_only,
        "auth": args.auth and not args.soak_only,
    }


def save(doc: dict[str, Any]) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"ingest-{doc['environment']['stamp']}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM both unwind through the cleanup below, even when started with
    # SIGINT ignored (as a background job of a script is).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="logops-bench-")))
        env = environment(args, tmp)
        report.print_header(env)
        pool = ClientPool(args.clients)
        stack.callback(pool.close)
        passes: list[PassResult] = []
        half: list[PassResult] = []
        peer = None
        args.start_failed = False
        if not args.soak_only:
            passes, half = run_gateway_passes(pool, args, tmp)
            peer = run_peer(args, tmp)
        # Imported here: auth_bench builds on this module's pass helpers.
        from tests.bench import auth_bench

        auth_doc = auth_bench.run(pool, args, tmp, passes)
        soaked = run_soak(pool, args, tmp, passes)
        hostile_doc = run_hostile(args, tmp)
    doc = report.summary(started, env, [asdict(r) for r in passes], [asdict(r) for r in half], peer)
    doc["soak"], doc["hostile"], doc["auth"] = soaked, hostile_doc, auth_doc
    if not args.soak_only:
        report.print_tables(doc)
    if auth_doc is not None:
        auth_bench.print_auth(auth_doc)
    if soaked is not None:
        soak.print_soak(soaked)
        report.print_checks([soaked], "soak checks")
    if hostile_doc is not None:
        report.print_hostile(hostile_doc)
    print(f"\nsaved {save(doc).relative_to(ROOT)}")
    failed = [r.failure for r in passes + half] + [(soaked or {}).get("failure", "")]
    failed.append((hostile_doc or {}).get("failure", ""))
    failed += [p["failure"] for p in (auth_doc or {}).get("passes", [])]
    started_ok = not any(f.startswith("did not start") for f in failed)
    return 0 if started_ok and not (peer or {}).get("failure") else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; processes stopped and temporary files removed", file=sys.stderr)
        sys.exit(130)
