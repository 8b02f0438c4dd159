"""Auth Gateway -> Ingest Gateway end to end, every push signed: the auth pass of ingest_bench.

Both gateways run as separate processes: ``logops ingest --keys-file`` holding only the Auth
Gateway's hop key (``role: forwarder``), and ``logops auth`` forwarding to it with the hop
signed, over gRPC or HTTP. Every client sender signs each request with a key of its own and
a fresh nonce (see :mod:`tests.bench.loadgen`); keys, secrets and the spool live in the
benchmark's temporary folder. For each path (client front -> hop) a closed-loop max pass,
then an open-loop pass at half that rate. The Ingest-alone passes of the same run give the
ratios. ``.venv/bin/python -m tests.bench.ingest_bench --auth-only --quick`` runs just this.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clients.launcher import GatewayProcess, GatewayStartError
from tests.bench import profiling, report
from tests.bench.ingest_bench import (
    HALF_LOAD_BATCH,
    OUT_DIR,
    ROOT,
    PassResult,
    count_sink_lines,
    fill_stats,
    gateway_args,
    log_problems,
)
from tests.bench.loadgen import ClientPool, LoadSpec
from tests.bench.procstat import CpuWindow, OthersWindow, memory_kib, wait_until

HOP_KEY_ID = "bench-auth-hop"
# Limits far above any rate reached here: the limiter still does its work on every push.
NO_LIMIT = 100_000_000
TARGET_END_TO_END = 150_000  # records/s, Auth -> Ingest, 2 cores (PRODUCT.md section 9)


@dataclass
class AuthPassResult(PassResult):
    hop: str = "grpc"
    path: str = ""
    auth_cores: float = 0.0
    ingest_cores: float = 0.0
    auth_peak_rss_mib: float = 0.0
    ingest_peak_rss_mib: float = 0.0
    # The Ingest-alone max pass of this run on the client's front (batches of 1000).
    alone_records_per_sec: float = 0.0
    alone_gw_cores: float = 0.0
    # End-to-end records/s over alone's; gateway CPU per record end to end over alone's.
    throughput_ratio: float = 0.0
    cpu_cost_ratio: float = 0.0


@dataclass(frozen=True)
class BenchKeys:
    """Throwaway keys: one per client sender (id = its emitter), and the hop key."""

    auth_keys: Path
    ingest_keys: Path
    auth_config: Path
    clients: tuple[tuple[str, str], ...]


def _write_private(path: Path, doc: Any) -> Path:
    # JSON is YAML. 0600, or the gateways warn that others may read the keys.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(doc if isinstance(doc, str) else json.dumps(doc, indent=1))
    return path


def make_keys(tmp: Path, clients: int, senders: int) -> BenchKeys:
    folder = tmp / "auth-keys"
    folder.mkdir(mode=0o700)
    pairs = tuple(
        (f"bench-w{w}-t{i}", secrets.token_hex(32)) for w in range(clients) for i in range(senders)
    )
    rate = {"records_per_sec": NO_LIMIT, "burst": NO_LIMIT}
    auth_keys = {"keys": {k: {"emitter": k, "secrets": [s], "rate": rate} for k, s in pairs}}
    hop_secret = secrets.token_hex(32)
    hop = {"emitter": "auth-gateway", "role": "forwarder", "secrets": [hop_secret]}
    secret_file = _write_private(folder / "hop.secret", hop_secret + "\n")
    config = {
        "auth": {
            "requests_per_key": {"per_sec": NO_LIMIT, "burst": NO_LIMIT},
            "forward": {"key_id": HOP_KEY_ID, "secret_file": str(secret_file)},
        }
    }
    return BenchKeys(
        auth_keys=_write_private(folder / "auth-keys.yaml", auth_keys),
        ingest_keys=_write_private(folder / "ingest-keys.yaml", {"keys": {HOP_KEY_ID: hop}}),
        auth_config=_write_private(folder / "auth.yaml", config),
        clients=pairs,
    )


def auth_args(keys: BenchKeys, forward: str, spool: Path) -> list[str]:
    return [
        "auth", "--http-port", "0", "--grpc-port", "0", "--keys-file", str(keys.auth_keys),
        "--forward", forward, "--spool-dir", str(spool), "--config", str(keys.auth_config),
    ]  # fmt: skip


def _window(
    pool: ClientPool, args: argparse.Namespace, pids: tuple[int, int], res: AuthPassResult
) -> tuple[CpuWindow, CpuWindow, CpuWindow]:
    """Start the clients; CPU of Auth, Ingest and the clients over the timed window."""
    start = time.monotonic() + 0.2
    measure, end = start + args.warmup, start + args.warmup + args.seconds
    windows = (CpuWindow((pids[0],)), CpuWindow((pids[1],)), CpuWindow(pool.pids))
    others = OthersWindow()
    pool.go(start, measure, end)
    wait_until(measure)
    for w in (*windows, others):
        w.begin()
    spy = None
    if args.profile:
        raw = OUT_DIR / f"profile-{args.stamp}-auth-{res.front}-{res.hop}-{res.mode}.txt"
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        spy = profiling.start(pids[0], args.seconds, raw)
        res.profile_file = str(raw.relative_to(ROOT)) if spy is not None else ""
    wait_until(end)
    for w in (*windows, others):
        w.end()
    profiling.finish(spy)
    res.other_cores = max(0.0, others.cores)
    return windows


def run_pass(
    pool: ClientPool,
    args: argparse.Namespace,
    tmp: Path,
    keys: BenchKeys,
    res: AuthPassResult,
    rate: float = 0.0,
) -> AuthPassResult:
    """A fresh Ingest, a fresh Auth in front of it, one load pass; fills ``res``."""
    name = f"{res.front}-{res.hop}-{res.mode}"
    sink, spool = tmp / f"sink-auth-{name}", tmp / f"spool-{name}"
    os.sync()
    ingest = GatewayProcess(
        [*gateway_args(args, sink), "--keys-file", str(keys.ingest_keys)], cwd=str(ROOT)
    )
    with ingest:
        hop = f"grpc://{ingest.grpc_target}" if res.hop == "grpc" else ingest.http_url
        auth = GatewayProcess(auth_args(keys, hop, spool), cwd=str(ROOT))
        with auth:
            target = auth.grpc_target if res.front == "grpc" else auth.http_url
            tag = uuid.uuid4().hex[:8]
            spec = LoadSpec(res.front, target, res.batch, args.senders, tag, rate, keys.clients)
            pool.prepare(spec)
            cpu = _window(pool, args, (auth.pid, ingest.pid), res)
            stats, failures = pool.finish(timeout=90)
            res.auth_peak_rss_mib = memory_kib(auth.pid).get("VmHWM", 0) / 1024
            res.ingest_peak_rss_mib = memory_kib(ingest.pid).get("VmHWM", 0) / 1024
    fill_stats(res, stats)
    res.failure = "; ".join(sorted(set(failures)))
    res.auth_cores, res.ingest_cores, res.client_cores = (w.cores for w in cpu)
    res.gw_cores = res.auth_cores + res.ingest_cores
    res.records_per_core = res.records_per_sec / res.gw_cores if res.gw_cores else 0.0
    res.peak_rss_mib = res.auth_peak_rss_mib + res.ingest_peak_rss_mib
    codes = [g.proc.returncode for g in (auth, ingest) if g.proc is not None]
    res.gateway_exit = next((c for c in codes if c != 0), 0 if codes else None)
    res.gateway_log = {f"auth: {k}": n for k, n in log_problems(auth.logs).items()}
    res.gateway_log |= {f"ingest: {k}": n for k, n in log_problems(ingest.logs).items()}
    res.stored_lines = count_sink_lines(sink)
    if res.profile_file:
        res.profile = profiling.top_frames(ROOT / res.profile_file)
    return res


def guarded_pass(
    pool: ClientPool,
    args: argparse.Namespace,
    tmp: Path,
    keys: BenchKeys,
    res: AuthPassResult,
    rate: float = 0.0,
) -> AuthPassResult:
    """Like :func:`run_pass`; a gateway or client that fails to start is reported."""
    print(f"  auth {res.path} batch {res.batch} {res.mode} ...", end="", flush=True)
    try:
        run_pass(pool, args, tmp, keys, res, rate)
    except (GatewayStartError, RuntimeError) as exc:
        res.failure = f"did not start: {exc}"
        print(f" FAILED TO START\n{exc}", flush=True)
        return res
    print(f" {res.records_per_sec:,.0f} records/s, p99 {res.p99_ms:.1f} ms", flush=True)
    return res


def _compare(res: AuthPassResult, alone: list[PassResult]) -> None:
    """Fill the Ingest-alone figures and the ratios from this run's alone max pass."""
    same = next(
        (p for p in alone if p.front == res.front and p.batch == res.batch and p.mode == "max"),
        None,
    )
    if same is None or same.records_per_sec <= 0:
        return
    res.alone_records_per_sec, res.alone_gw_cores = same.records_per_sec, same.gw_cores
    res.throughput_ratio = res.records_per_sec / same.records_per_sec
    if res.records_per_sec > 0 and same.gw_cores > 0:
        per_record = res.gw_cores / res.records_per_sec
        res.cpu_cost_ratio = per_record / (same.gw_cores / same.records_per_sec)


def run(
    pool: ClientPool, args: argparse.Namespace, tmp: Path, alone: list[PassResult]
) -> dict[str, Any] | None:
    """Max and half-load passes for every path; None when ``--no-auth``."""
    if not args.auth or args.soak_only:
        return None
    keys = make_keys(tmp, args.clients, args.senders)
    passes = []
    for front, hop in args.auth_paths:
        res = AuthPassResult(front, HALF_LOAD_BATCH, "max", args.seconds, hop=hop)
        res.path = f"{front}->auth->{hop}"
        passes.append(guarded_pass(pool, args, tmp, keys, res))
        _compare(res, alone)
    half = []
    for best in passes:
        if best.records_per_sec <= 0:
            continue
        res = AuthPassResult(best.front, best.batch, "half", args.seconds, hop=best.hop)
        res.path, res.target_records_per_sec = best.path, best.records_per_sec / 2
        half.append(guarded_pass(pool, args, tmp, keys, res, best.requests_per_sec / 2))
    return {
        "passes": [asdict(p) for p in passes],
        "half_load": [asdict(p) for p in half],
        "signing": "each request signed in the sender loop (fresh nonce), before its clock starts",
        "keys": f"{len(keys.clients)} client keys, one per sender; hop key role forwarder",
        "target_records_per_sec_end_to_end": TARGET_END_TO_END,
        "target_half_load_p99_ms": report.TARGET_HALF_LOAD_P99_MS,
    }


def _x(value: float) -> str:
    return f"{value:.2f}" if value else "-"


def print_auth(doc: dict[str, Any]) -> None:
    passes, half = doc["passes"], doc["half_load"]
    print(
        "\nAuth -> Ingest end to end: signed pushes (HMAC verified by Auth, hop signed and "
        f"verified by Ingest), batches of {HALF_LOAD_BATCH}, closed loop; Ingest alone = this "
        "run's max pass on the client's front"
    )
    head = ["path", "records/s", "p50 ms", "p99 ms", "errors", "auth cores", "ingest cores",
            "client cores", "rec/s/gw core", "alone rec/s", "e2e/alone",
            "CPU/record x"]  # fmt: skip
    rows = [[
        p["path"], f"{p['records_per_sec']:,.0f}", f"{p['p50_ms']:.1f}", f"{p['p99_ms']:.1f}",
        report._errors(p), f"{p['auth_cores']:.2f}", f"{p['ingest_cores']:.2f}",
        f"{p['client_cores']:.2f}", f"{p['records_per_core']:,.0f}",
        f"{p['alone_records_per_sec']:,.0f}", _x(p["throughput_ratio"]), _x(p["cpu_cost_ratio"]),
    ] for p in passes]  # fmt: skip
    report._table(head, rows)
    if half:
        print("\nAuth -> Ingest at half load: open loop at 50 % of each path's max rate")
        head = ["path", "target rec/s", "records/s", "p50 ms", "p99 ms", "max ms",
                "late sends", "errors", "auth cores", "ingest cores"]  # fmt: skip
        rows = [[
            p["path"], f"{p['target_records_per_sec']:,.0f}", f"{p['records_per_sec']:,.0f}",
            f"{p['p50_ms']:.1f}", f"{p['p99_ms']:.1f}", f"{p['max_ms']:.1f}",
            str(p["late_sends"]), report._errors(p), f"{p['auth_cores']:.2f}",
            f"{p['ingest_cores']:.2f}",
        ] for p in half]  # fmt: skip
        report._table(head, rows)
    print(
        f"target: >= {TARGET_END_TO_END:,} records/s Auth -> Ingest on 2 cores; p99 < "
        f"{report.TARGET_HALF_LOAD_P99_MS:g} ms at half load. Clients sign in their loop and "
        "share the cores with both gateways."
    )
    report.print_checks(passes + half, "auth checks")
    report.print_profiles(passes + half)
