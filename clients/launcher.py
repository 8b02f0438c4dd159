"""Starts a gateway (``logops ingest ...``) as a child process and learns where it listens.

Used by ``make demo``, the scenario runner and the integration tests: the child
announces its bound addresses in a JSON log line (``"event": "listening"``), so port 0
works and nobody polls a fixed port. Everything the child logs is kept for inspection.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any


class GatewayStartError(RuntimeError):
    """The child exited or stayed silent before announcing its addresses."""


class GatewayProcess:
    def __init__(
        self,
        args: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.args = [sys.executable, "-m", "services.cli", *args]
        self._env = {**os.environ, **(env or {})}
        self._cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[dict[str, Any]] = []
        self.listening: dict[str, Any] = {}
        self._announced = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def http_url(self) -> str:
        return str(self.listening["http"])

    @property
    def grpc_target(self) -> str:
        return str(self.listening["grpc"])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        if self.proc is not None and self.proc.poll() is None:
            # A second child would orphan the first: stop() only knows the newest.
            raise RuntimeError(f"{' '.join(self.args[2:4])} is already running (pid {self.pid})")
        self._announced.clear()
        self.listening = {}
        self.proc = subprocess.Popen(
            self.args,
            env=self._env,
            cwd=self._cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._reader = threading.Thread(target=self._read_logs, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._announced.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                tail = "\n".join(json.dumps(e) for e in self.logs[-5:])
                raise GatewayStartError(f"{' '.join(self.args[2:])} did not start:\n{tail}")
        return self

    def _read_logs(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            try:
                entry = json.loads(raw)
            except ValueError:
                entry = {"msg": raw.decode(errors="replace").rstrip()}
            self.logs.append(entry)
            if isinstance(entry, dict) and entry.get("event") == "listening":
                self.listening = entry
                self._announced.set()

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait for a graceful exit; SIGKILL if it does not come."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._report_stuck(timeout)
            self.kill()
            return -9

    def _report_stuck(self, waited: float) -> None:
        """Before the SIGKILL: ask for every thread's stack (SIGUSR1) and print it with the
        last log lines on this process's stderr, so whoever waited can see where it hung."""
        assert self.proc is not None
        seen = len(self.logs)
        self.proc.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        shown = self.logs[max(0, seen - 10) :]
        lines = [e.get("msg", e) if isinstance(e, dict) else e for e in shown]
        tail = "\n".join(str(line) for line in lines)
        print(
            f"{' '.join(self.args[2:4])} (pid {self.proc.pid}) still running {waited:g} s after "
            f"SIGTERM; stacks ({len(self.logs) - seen} lines) and its last log lines:\n{tail}",
            file=sys.stderr,
        )

    def kill(self) -> None:
        """SIGKILL: the crash case, nothing gets to clean up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=2)

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
