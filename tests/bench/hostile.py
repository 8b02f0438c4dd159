"""Attack-then-idle phase: does the Ingest Gateway keep serving a good client under hostile traffic?

Run ``.venv/bin/python -m tests.bench.hostile [--window S] [--idle S] [--only NAME]`` (also
part of ``make bench``, see ``ingest_bench --hostile``). One gateway process (fresh sink
folder) is attacked five ways in turn (:mod:`tests.bench.attacks`), each for ``--window``
seconds from client processes of their own. Meanwhile one good client per front pushes
batches of 100 records at a steady pace and counts successes, failures by reason and latency.
The gateway's RSS, threads and open fds are read from /proc at baseline, at their peak during
the attack and after ``--idle`` seconds of quiet; then both fronts are asked whether they
still answer (health and a push). A gateway that is gone or does not answer is replaced by a
fresh one for the next attack, and the table says so. Numbers only: nothing here fails a run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import orjson
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients.launcher import GatewayProcess, GatewayStartError
from tests.bench import report
from tests.bench.attacks import ATTACKS, PUSH_METHOD, Target, failure_reason, run_attackers
from tests.bench.payloads import batch_ids, body_templates
from tests.bench.procstat import cpu_seconds, wait_until

ROOT = Path(__file__).resolve().parents[2]
OUT_DIR = ROOT / "data" / "bench"
GOOD_BATCH = 100
GOOD_RATE = 10.0  # requests/s per front
GOOD_TIMEOUT = 5.0
CHECK_TIMEOUT = 3.0
BASELINE_SEC = report.BASELINE_S
SAMPLE_EVERY = 0.5
CHECKS = ("http_healthz", "http_push", "grpc_health", "grpc_push")


@dataclass
class Usage:
    rss_mib: float
    threads: int
    fds: int


def usage(pid: int) -> Usage | None:
    """The process's RSS, thread count and open fds; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    if "VmRSS" not in status:  # a zombie: gone, not yet reaped
        return None
    return Usage(int(status["VmRSS"].split()[0]) / 1024, int(status["Threads"]), fds)


def fd_soft_limit(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/limits", encoding="ascii") as f:
            line = next(ln for ln in f if ln.startswith("Max open files"))
    except (OSError, StopIteration):
        return "unknown"
    return line.split()[3]


def target_of(gw: GatewayProcess) -> Target:
    url = urllib.parse.urlsplit(gw.http_url)
    host, _, port = gw.grpc_target.rpartition(":")
    return Target(url.hostname or "127.0.0.1", url.port or 80, host.strip("[]"), int(port))


# --- the good client: one process per front, one request at a time at a steady pace ---

Push = Callable[[bytes], str]  # body -> "" on success, else the failure's reason


def _http(t: Target, path: str, body: bytes | None, timeout: float) -> tuple[int, bytes] | str:
    """One request on a connection of its own (as a newly arriving client): (status, body),
    or the reason it failed."""
    conn = http.client.HTTPConnection(t.http_host, t.http_port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body else {}
        conn.request("POST" if body else "GET", path, body, headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return failure_reason(exc)
    finally:
        conn.close()


def _http_push(t: Target, timeout: float) -> Push:
    def push(body: bytes) -> str:
        answer = _http(t, "/v1/logs", body, timeout)
        if isinstance(answer, str):
            return answer
        if answer[0] != 200:
            return f"http {answer[0]}"
        return "" if orjson.loads(answer[1]).get("accepted") == GOOD_BATCH else "partial"

    return push


def _grpc_push(t: Target, timeout: float) -> tuple[Push, Callable[[], None]]:
    channel = grpc.insecure_channel(t.grpc, options=[("grpc.use_local_subchannel_pool", 1)])
    call = channel.unary_unary(PUSH_METHOD, request_serializer=None, response_deserializer=None)

    def push(body: bytes) -> str:
        try:
            call(body, timeout=timeout)
        except grpc.RpcError as err:
            return f"grpc {err.code().name}"
        return ""

    return push, channel.close


def _push_until(front: str, t: Target, rate: float, stop: Any) -> list[tuple[float, float, str]]:
    close: Callable[[], None] | None = None
    if front == "grpc":
        push, close = _grpc_push(t, GOOD_TIMEOUT)
    else:
        push = _http_push(t, GOOD_TIMEOUT)
    bodies = body_templates(front, GOOD_BATCH, 4, f"good-{front}", 42)
    ids = batch_ids(f"good-{front}-{time.time_ns()}-")
    samples, planned, n = [], time.monotonic(), 0
    while not stop.is_set():
        began = time.monotonic()
        outcome = push(bodies[n % len(bodies)].body(next(ids)))
        samples.append((began, time.monotonic() - began, outcome))
        n += 1
        # The next send keeps the pace, but a slow answer does not make a burst after it.
        planned = max(planned + 1 / rate, time.monotonic())
        stop.wait(max(0.0, planned - time.monotonic()))
    if close is not None:
        close()
    return samples


def good_client_main(front: str, rate: float, commands: Any, stop: Any, results: Any) -> None:
    """Entry point of one good-client process: one run per target it is sent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent cleans up on Ctrl-C
    while (t := commands.get()) is not None:
        try:
            results.put((front, _push_until(front, t, rate, stop), ""))
        except Exception as exc:  # reported to the parent
            results.put((front, [], repr(exc)))


class GoodClients:
    """One long-lived good-client process per front."""

    def __init__(self, rate: float, fronts: tuple[str, ...] = ("grpc", "http")) -> None:
        ctx = mp.get_context("spawn")
        self.fronts, self._stop, self._results = fronts, ctx.Event(), ctx.Queue()
        self._commands = {f: ctx.Queue() for f in fronts}
        self.procs = [
            ctx.Process(
                target=good_client_main,
                args=(f, rate, self._commands[f], self._stop, self._results),
                name=f"good-{f}",
                daemon=True,
            )
            for f in fronts
        ]
        for p in self.procs:
            p.start()

    def start(self, t: Target) -> None:
        self._stop.clear()
        for q in self._commands.values():
            q.put(t)

    def stop(self) -> dict[str, tuple[list[tuple[float, float, str]], str]]:
        self._stop.set()
        out = {}
        for _ in self.fronts:
            front, samples, failure = self._results.get(timeout=GOOD_TIMEOUT + 30)
            out[front] = (samples, failure)
        return out

    def close(self) -> None:
        self._stop.set()
        for q in self._commands.values():
            q.put(None)
        for p in self.procs:
            p.join(timeout=GOOD_TIMEOUT + 2)
            if p.is_alive():
                p.terminate()


# --- is it still answering? ---


def _check_http(t: Target, path: str, body: bytes | None) -> str:
    answer = _http(t, path, body, CHECK_TIMEOUT)
    if isinstance(answer, str):
        return answer
    return "ok" if answer[0] == 200 else f"http {answer[0]}"


def _check_grpc(t: Target, body: bytes | None) -> str:
    with grpc.insecure_channel(t.grpc, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
        try:
            if body is None:
                resp = health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=CHECK_TIMEOUT
                )
                return "ok" if resp.status == health_pb2.HealthCheckResponse.SERVING else "down"
            ch.unary_unary(PUSH_METHOD, request_serializer=None)(body, timeout=CHECK_TIMEOUT)
        except grpc.RpcError as err:
            return f"grpc {err.code().name}"
    return "ok"


def answering(t: Target) -> dict[str, str]:
    """Health and one push on each front, side by side (a dead front costs one timeout)."""
    ids = batch_ids(f"check-{time.time_ns()}-")
    http_body = body_templates("http", GOOD_BATCH, 1, "check", 1)[0].body(next(ids))
    grpc_body = body_templates("grpc", GOOD_BATCH, 1, "check", 2)[0].body(next(ids))
    checks: dict[str, Callable[[], str]] = {
        "http_healthz": lambda: _check_http(t, "/healthz", None),
        "http_push": lambda: _check_http(t, "/v1/logs", http_body),
        "grpc_health": lambda: _check_grpc(t, None),
        "grpc_push": lambda: _check_grpc(t, grpc_body),
    }
    with ThreadPoolExecutor(len(checks)) as pool:
        running = {k: pool.submit(f) for k, f in checks.items()}
        return {k: f.result() for k, f in running.items()}


# --- one attack ---


class Sampler:
    """Reads the gateway's usage every ``SAMPLE_EVERY`` seconds until told to stop."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, Usage]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            if (u := usage(self.pid)) is not None:
                self.samples.append((time.monotonic(), u))
            self._stop.wait(SAMPLE_EVERY)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, t0: float, t1: float) -> Usage | None:
        inside = [u for t, u in self.samples if t0 <= t <= t1]
        if not inside:
            return None
        return Usage(
            max(u.rss_mib for u in inside), max(u.threads for u in inside),
            max(u.fds for u in inside),
        )  # fmt: skip


def _gateway_after(gw: GatewayProcess, t: Target, first_log: int) -> dict[str, Any]:
    """Alive, answering on both fronts, and what it logged since ``first_log``."""
    alive = gw.proc is not None and gw.proc.poll() is None
    return {
        "pid": gw.pid,
        "alive": alive,
        "exit_code": None if alive or gw.proc is None else gw.proc.returncode,
        "answering": answering(t) if alive else dict.fromkeys(CHECKS, "gateway gone"),
        "log": report.gateway_log_problems(gw.logs[first_log:]),
    }


def run_attack(
    name: str, gw: GatewayProcess, good: GoodClients, window: float, idle: float
) -> dict[str, Any]:
    """Baseline, attack, idle, checks: one attack against the running gateway."""
    t, pid, first_log = target_of(gw), gw.pid, len(gw.logs)
    print(f"  {name}: {ATTACKS[name].what} ...", end="", flush=True)
    good.start(t)
    with Sampler(pid) as sampler:
        b0 = time.monotonic()
        wait_until(b0 + BASELINE_SEC)
        baseline, cpu0 = usage(pid), cpu_seconds(pid)
        start, end, attacker = run_attackers(name, t, window)
        cores = (cpu_seconds(pid) - cpu0) / (end - start) if end > start else 0.0
        stopped = time.monotonic()
        wait_until(stopped + idle)
        after = usage(pid)
    samples = good.stop()
    phases = {"baseline": (b0, start), "attack": (start, end), "idle": (stopped, stopped + idle)}
    gateway = _gateway_after(gw, t, first_log)
    peak = sampler.peak(start, stopped)
    gateway.update(
        baseline=asdict(baseline) if baseline else None,
        peak=asdict(peak) if peak else None,
        after_idle=asdict(after) if after else None,
        cores_during=cores,
    )
    good_stats = {
        front: {k: report.front_stats(s, *span) for k, span in phases.items()} | {"failure": why}
        for front, (s, why) in samples.items()
    }
    ok = gateway["alive"] and all(v == "ok" for v in gateway["answering"].values())
    print(" answering" if ok else " NOT answering" if gateway["alive"] else " GONE", flush=True)
    return {
        "attack": name, "what": ATTACKS[name].what, "window_s": round(end - start, 1),
        "idle_s": idle, "good": good_stats, "gateway": gateway, "attacker": attacker,
        "restarted_after": False,
    }  # fmt: skip


# --- the phase ---


def _fresh_gateway(stack: ExitStack, tmp: Path, n: int, extra: list[str]) -> GatewayProcess:
    sink = tmp / f"sink-hostile-{n}"
    args = ["ingest", "--http-port", "0", "--grpc-port", "0", "--no-syslog"]
    args += ["--sink-dir", str(sink), *extra]
    gw = GatewayProcess(args, cwd=str(ROOT)).start()
    stack.callback(gw.stop, 10.0)
    return gw


def run(
    tmp: Path, window: float, idle: float, only: list[str], extra: list[str], rate: float
) -> dict[str, Any]:
    """The whole phase; ``failure`` says when a gateway could not be started."""
    names = only or list(ATTACKS)
    doc: dict[str, Any] = {
        "window_s": window, "idle_s": idle, "good_rate_per_front": rate,
        "good_batch": GOOD_BATCH, "attacks": [], "failure": "",
    }  # fmt: skip
    print(
        f"\nhostile phase: {len(names)} attacks, {window:g} s each, then {idle:g} s idle; "
        f"good client {rate:g} requests/s of {GOOD_BATCH} records per front",
        flush=True,
    )
    with ExitStack() as stack:
        good = GoodClients(rate)
        stack.callback(good.close)
        gw: GatewayProcess | None = None
        for n, name in enumerate(names):
            try:
                gw = gw or _fresh_gateway(stack, tmp, n, extra)
            except GatewayStartError as exc:
                doc["failure"] = f"did not start: {exc}"
                print(f"  gateway FAILED TO START\n{exc}", flush=True)
                break
            doc.setdefault("native", gw.listening.get("native"))
            doc.setdefault("gateway_fd_limit", fd_soft_limit(gw.pid))
            res = run_attack(name, gw, good, window, idle)
            doc["attacks"].append(res)
            g = res["gateway"]
            if not (g["alive"] and all(v == "ok" for v in g["answering"].values())):
                # Later attacks would only measure a broken gateway: start a fresh one.
                gw.stop(10.0)
                g["exit_code"] = gw.proc.returncode if gw.proc is not None else None
                res["restarted_after"] = n + 1 < len(names)
                gw = None
    return doc


def save(doc: dict[str, Any], stamp: str) -> Path:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"hostile-{stamp}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="hostile", description=__doc__.splitlines()[0])
    p.add_argument("--window", type=float, default=15.0, help="seconds per attack (default 15)")
    p.add_argument("--idle", type=float, default=15.0, help="quiet seconds after (default 15)")
    p.add_argument("--only", default="", help=f"comma-separated, of: {', '.join(ATTACKS)}")
    p.add_argument("--rate", type=float, default=GOOD_RATE, help="good requests/s per front")
    p.add_argument("--durability", default="batch", choices=("batch", "interval", "none"))
    p.add_argument("--config", help="gateway YAML config (passed to logops ingest --config)")
    args = p.parse_args(argv)
    args.only = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in args.only if n not in ATTACKS]
    if unknown:
        p.error(f"unknown attack {', '.join(unknown)}; known: {', '.join(ATTACKS)}")
    return args


def gateway_extra(durability: str, config: str | None) -> list[str]:
    return ["--durability", durability, *(["--config", config] if config else [])]


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    load = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="logops-hostile-") as tmp:
        extra = gateway_extra(args.durability, args.config)
        doc = run(Path(tmp), args.window, args.idle, args.only, extra, args.rate)
    doc["stamp"], doc["load_average_at_start"] = stamp, load
    report.print_hostile(doc)
    print(f"\nsaved {save(doc, stamp).relative_to(ROOT)}")
    return 1 if doc["failure"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; processes stopped and temporary files removed", file=sys.stderr)
        sys.exit(130)
