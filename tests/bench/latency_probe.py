"""Where a push's latency goes: Ingest alone and Auth -> Ingest at one open-loop rate,
timed from inside both gateways.

Each pass starts fresh gateways whose PYTHONPATH holds ``probe_site/`` (its
``sitecustomize`` records garbage collections and times ``AuthCore.handle``, the hop,
``IngestCore.handle`` and the sink's ``append``), drives them with the benchmark's
clients (signed pushes of 1000 JSON records, open loop), and prints the clients' latency
beside each timed call's percentiles, and the Auth Gateway's own time (handle minus hop)
per request. Modes: ``alone`` (Ingest's HTTP front), ``http`` and ``grpc`` (the client on
Auth's HTTP front, the hop over HTTP or gRPC). ``MODE+KNOB=V`` sets a probe knob for the
Auth Gateway, ``MODE+I.KNOB=V`` for Ingest (see ``probe_site/sitecustomize.py``); modes
alternate, so an A/B shares the machine's load::

    .venv/bin/python -m tests.bench.latency_probe --rate 80 --modes alone,http --repeat 3
    .venv/bin/python -m tests.bench.latency_probe --rate 40 --modes grpc+NONATIVE=1,grpc
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from clients.launcher import GatewayProcess
from tests.bench.auth_bench import BenchKeys, auth_args, make_keys
from tests.bench.loadgen import ClientPool, LoadSpec
from tests.bench.procstat import CpuWindow, OthersWindow, wait_until

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(__file__).resolve().parent / "probe_site"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3 if ordered else 0.0


def _events(path: Path) -> list[list[Any]]:
    """(kind, start, seconds, thread) of every probed call and collection."""
    try:
        events: list[list[Any]] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return events


def _own(events: list[list[Any]], t0: float, t1: float) -> list[float]:
    """handle minus the hop calls made inside it, on the same thread."""
    hops: dict[int, list[list[Any]]] = {}
    for e in events:
        if e[0] == "hop":
            hops.setdefault(e[3], []).append(e)
    out = []
    for h in (e for e in events if e[0] == "handle" and t0 <= e[1] <= t1):
        inner = sum(x[2] for x in hops.get(h[3], []) if h[1] <= x[1] <= h[1] + h[2])
        if inner:
            out.append(h[2] - inner)
    return out


def summary(path: Path, t0: float, t1: float) -> dict[str, str]:
    events = _events(path)
    out = {}
    for kind in sorted({e[0] for e in events}):
        d = [e[2] for e in events if e[0] == kind and t0 <= e[1] <= t1]
        if d:
            out[kind] = (
                f"n={len(d)} p50={_pct(d, 0.5):.1f} p99={_pct(d, 0.99):.1f} "
                f"max={max(d) * 1e3:.1f} ms"
            )
    own = _own(events, t0, t1)
    if own:
        out["own (handle - hop)"] = f"p50={_pct(own, 0.5):.1f} p99={_pct(own, 0.99):.1f} ms"
    return out


def _env(role: str, out: Path, knobs: dict[str, str]) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH", "")) if p)
    env = {"PYTHONPATH": path, "LOGOPS_PROBE_OUT": str(out), "LOGOPS_PROBE_ROLE": role}
    return env | {f"LOGOPS_PROBE_{k}": v for k, v in knobs.items()}


def run_pass(
    pool: ClientPool, tmp: Path, keys: BenchKeys, spec: str, rate: float, seconds: float
) -> None:
    mode, *settings = spec.split("+")
    knobs = dict(s.partition("=")[::2] for s in settings)
    auth_knobs = {k: v or "1" for k, v in knobs.items() if not k.startswith("I.")}
    ingest_knobs = {k[2:]: v or "1" for k, v in knobs.items() if k.startswith("I.")}
    tag = uuid.uuid4().hex[:8]
    files = {"auth": tmp / f"auth-{tag}.json", "ingest": tmp / f"ingest-{tag}.json"}
    args = ["ingest", "--http-port", "0", "--grpc-port", "0", "--no-syslog",
            "--sink-dir", str(tmp / f"sink-{tag}"), "--durability", "batch"]  # fmt: skip
    if mode != "alone":
        args += ["--keys-file", str(keys.ingest_keys)]
    os.sync()
    env = _env("ingest", files["ingest"], ingest_knobs)
    with GatewayProcess(args, env=env, cwd=str(ROOT)) as ingest:
        pids, auth = [ingest.pid], None
        target, client_keys = ingest.http_url, keys.clients if mode != "alone" else ()
        if mode != "alone":
            hop = ingest.http_url if mode == "http" else f"grpc://{ingest.grpc_target}"
            auth_env = _env("auth", files["auth"], auth_knobs)
            auth = GatewayProcess(
                auth_args(keys, hop, tmp / f"spool-{tag}"), env=auth_env, cwd=str(ROOT)
            ).start()
            target, pids = auth.http_url, [auth.pid, ingest.pid]
        try:
            pool.prepare(LoadSpec("http", target, 1000, 4, tag, rate, client_keys))
            start = time.monotonic() + 0.2
            measure, end = start + 2, start + 2 + seconds
            cpus, others = [CpuWindow((p,)) for p in pids], OthersWindow()
            windows: list[CpuWindow | OthersWindow] = [*cpus, others]
            pool.go(start, measure, end)
            wait_until(measure)
            for w in windows:
                w.begin()
            # perf_counter is CLOCK_MONOTONIC here, the clock the probes read too.
            t0 = time.perf_counter()
            wait_until(end)
            t1 = time.perf_counter()
            for w in windows:
                w.end()
            stats, _ = pool.finish(90)
            time.sleep(1.2)  # the probes' last dump
        finally:
            if auth is not None:
                auth.stop()
    lat = list(stats.latencies)
    print(
        f"{spec}: {len(lat)} pushes at {rate:g}/s, client p50 {_pct(lat, 0.5):.1f} "
        f"p99 {_pct(lat, 0.99):.1f} max {max(lat, default=0) * 1e3:.1f} ms, late sends "
        f"{stats.late}, errors {dict(stats.errors)}, cores "
        f"{' + '.join(f'{w.cores:.2f}' for w in cpus)}, other processes {others.cores:.2f}",
        flush=True,
    )
    for role, path in files.items():
        for kind, text in summary(path, t0, t1).items():
            print(f"    {role:6} {kind:20} {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=64, help="pushes/s (1000 records each)")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--modes", default="alone,http", help="comma-separated MODE[+KNOB=V...]")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args(argv)
    pool = ClientPool(2)
    try:
        with tempfile.TemporaryDirectory(prefix="logops-probe-") as folder:
            tmp = Path(folder)
            keys = make_keys(tmp, 2, 4)
            for _ in range(args.repeat):
                for spec in args.modes.split(","):
                    run_pass(pool, tmp, keys, spec, args.rate, args.seconds)
    finally:
        pool.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
