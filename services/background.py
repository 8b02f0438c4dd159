"""``make up`` / ``make down``: ``logops up`` in the background, its pid and log in ``data/run/``.

``python -m services.background start [-- UP_FLAGS]`` starts ``logops up`` in a session of
its own (so its gateways share its process group), writes ``data/run/up.pid`` and
``data/run/up.log``, and returns once both gateways answer ``/readyz``; on failure it
prints the log's tail, stops what it started and exits 1. When it already runs, it says so
and checks readiness again. ``stop`` sends SIGTERM, waits, then SIGKILLs the whole group
(so no gateway outlives a ``logops up`` that was killed); it is fine when nothing runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RUN_DIR = Path("data/run")
START_TIMEOUT_SEC = 60.0
STOP_TIMEOUT_SEC = 30.0
POLL_SEC = 0.2


class StartFailed(RuntimeError):
    """``logops up`` did not get both gateways ready."""


def _paths(run_dir: Path) -> tuple[Path, Path]:
    return run_dir / "up.pid", run_dir / "up.log"


def running_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process is alive and is ``logops up`` (a pid the
    system has since given to another program is not ours to signal)."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if b"services.cli" in cmdline and b"up" in cmdline else None


def log_tail(log_file: Path, lines: int = 20) -> str:
    """The last ``lines`` of a background process's log, indented, for an error message."""
    try:
        text = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "  (no log)"
    return "\n".join(f"  {line}" for line in text[-lines:])


def up_event(log_file: Path) -> dict[str, Any] | None:
    """The ``"event": "up"`` line of ``logops up``: both gateways' addresses."""
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if '"event":"up"' in line:
            try:
                entry: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            return entry
    return None


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def wait_ready(pid: int, log_file: Path, timeout: float = START_TIMEOUT_SEC) -> dict[str, Any]:
    """Poll until both gateways answer ``/readyz`` with 200; their ``up`` line."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            raise StartFailed("logops up exited")
        event = up_event(log_file)
        if event and all(_ready(event[gw]["http"]) for gw in ("ingest", "auth")):
            return event
        time.sleep(POLL_SEC)
    raise StartFailed(f"both gateways were not ready within {timeout:.0f} s")


def _describe(pid: int, event: dict[str, Any], log_file: Path) -> str:
    auth, ingest = event["auth"], event["ingest"]
    return (
        f"  Auth Gateway   {auth['http']}  gRPC {auth['grpc']}\n"
        f"  Ingest Gateway {ingest['http']}  gRPC {ingest['grpc']}\n"
        f"  pid {pid}, log {log_file}; `make down` stops it"
    )


def start(run_dir: Path, up_args: Sequence[str]) -> int:
    pid_file, log_file = _paths(run_dir)
    pid = running_pid(pid_file)
    if pid is not None:
        print(f"LogOps is already running (pid {pid}); checking that it is ready ...")
    else:
        stop(run_dir, quiet=True)  # what a killed logops up may have left behind
        pid = _spawn(run_dir, up_args)
        print(f"Started logops up in the background (pid {pid}); waiting for /readyz ...")
    try:
        event = wait_ready(pid, log_file)
    except StartFailed as exc:
        print(f"make up: {exc}. The end of {log_file}:\n{log_tail(log_file)}", file=sys.stderr)
        stop(run_dir, quiet=True)
        return 1
    print("LogOps is up:\n" + _describe(pid, event, log_file))
    return 0


def _spawn(run_dir: Path, up_args: Sequence[str]) -> int:
    pid_file, log_file = _paths(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", *up_args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie child of ours counts as gone, and is reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A child of ours that exited stays a zombie until reaped: it is gone all the same.
    try:
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return True


def _recorded_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _ours_left(pgid: int) -> list[int]:
    """``logops up`` and its gateways still alive: the LogOps processes of the session it
    leads (its gateways stay in it after it was killed). Found by process group and
    command line, so a process that merely got a recycled pid is left alone."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # After "(comm)": state, ppid, pgrp, ...
            group = int(stat.read_text().rsplit(")", 1)[1].split()[2])
            cmdline = (stat.parent / "cmdline").read_bytes() if group == pgid else b""
        except (OSError, ValueError, IndexError):
            continue
        if b"services.cli" in cmdline:
            found.append(int(stat.parent.name))
    return found


def _signal(pids: Sequence[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pids: Sequence[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(POLL_SEC)
        left = [p for p in left if alive(p)]
    return left


def stop(run_dir: Path, quiet: bool = False, timeout: float = STOP_TIMEOUT_SEC) -> int:
    """SIGTERM to ``logops up`` (it stops its gateways), or to gateways it left behind
    when it was killed; SIGKILL to whatever still runs after ``timeout``."""
    pid_file, _ = _paths(run_dir)
    pid = _recorded_pid(pid_file)
    pids = _ours_left(pid) if pid is not None else []
    if pid is None or not pids:
        if not quiet:
            print("LogOps is not running (nothing to stop).")
        pid_file.unlink(missing_ok=True)
        return 0
    orphans = pid not in pids
    if orphans:
        print(f"logops up (pid {pid}) is gone but left gateways running: stopping them.")
    _signal([pid] if not orphans else pids, signal.SIGTERM)
    left = _wait_gone(pids, timeout)
    how = "stopped"
    if left:
        _signal(left, signal.SIGKILL)
        _wait_gone(left, 5.0)
        how = f"did not stop within {timeout:.0f} s: killed (SIGKILL)"
    pid_file.unlink(missing_ok=True)
    if not quiet or left:
        print(f"LogOps (pid {pid}) {how}.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.background", description=__doc__)
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("--run-dir", default=str(RUN_DIR), help="pid and log folder")
    parser.add_argument("up_args", nargs=argparse.REMAINDER,
                        help="after --: flags for logops up")
    args = parser.parse_args(argv)
    up_args = args.up_args[1:] if args.up_args[:1] == ["--"] else args.up_args
    if args.action == "start":
        return start(Path(args.run_dir), up_args)
    return stop(Path(args.run_dir))


if __name__ == "__main__":
    sys.exit(main())
