"""SIGUSR1 makes a gateway print every thread's stack and go on serving."""

from __future__ import annotations

import signal
import time
import urllib.request
from pathlib import Path

from clients.launcher import GatewayProcess


def test_sigusr1_prints_every_threads_stack_and_the_gateway_goes_on(tmp_path: Path) -> None:
    args = ["ingest", "--http-port", "0", "--grpc-port", "0", "--no-syslog"]
    with GatewayProcess([*args, "--sink-dir", str(tmp_path)]) as gw:
        gw.proc.send_signal(signal.SIGUSR1)  # type: ignore[union-attr]
        deadline = time.monotonic() + 10
        while not any("Current thread" in str(e.get("msg")) for e in gw.logs):
            assert time.monotonic() < deadline, "no stack dump on stderr"
            time.sleep(0.05)
        time.sleep(0.2)
        heads = ("Thread 0x", "Current thread")
        threads = [e for e in gw.logs if str(e.get("msg", "")).startswith(heads)]
        assert len(threads) > 1  # every thread, not only the one the signal landed on
        with urllib.request.urlopen(gw.http_url + "/healthz", timeout=5) as resp:
            assert resp.status == 200
    assert gw.proc is not None and gw.proc.returncode == 0
