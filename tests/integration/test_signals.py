"""A gateway stops on SIGTERM whichever of its threads the kernel hands the signal to.

CPython runs Python signal handlers in the main thread only; when the kernel delivers the
signal to another thread, a main thread asleep in an untimed wait would never run the
handler, and the gateway would ignore SIGTERM (a supervisor's stop, Ctrl-C) for good.
``tgkill`` sends the signal to one chosen thread, so the test does not depend on luck.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from pathlib import Path

import pytest

from clients.launcher import GatewayProcess

_SYS_TGKILL = 234  # x86-64


def _tgkill(pid: int, tid: int, sig: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(_SYS_TGKILL, pid, tid, sig) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="tgkill's number is x86-64's")
@pytest.mark.parametrize("gateway", ["ingest", "auth"])
def test_sigterm_to_any_thread_stops_the_gateway(tmp_path: Path, gateway: str) -> None:
    args = [gateway, "--http-port", "0", "--grpc-port", "0"]
    if gateway == "ingest":
        args += ["--syslog-port", "0", "--sink-dir", str(tmp_path / "sink")]
    else:
        args += ["--forward", "grpc://127.0.0.1:9", "--spool-dir", str(tmp_path / "spool")]
    env = {"LOGOPS_AUTH_MODE": "none"} if gateway == "auth" else {}
    gw = GatewayProcess(args, env=env).start()
    assert gw.proc is not None
    try:
        threads = [int(t) for t in os.listdir(f"/proc/{gw.pid}/task") if int(t) != gw.pid]
        assert threads
        _tgkill(gw.pid, threads[-1], signal.SIGTERM)
        assert gw.proc.wait(timeout=20) == 0
    except subprocess.TimeoutExpired:
        pytest.fail(f"{gateway} ignored a SIGTERM delivered to thread {threads[-1]}")
    finally:
        gw.kill()
