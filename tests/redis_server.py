"""A real redis-server for tests: on a free loopback port, in a temporary folder, no disk.

``make test`` installs Debian's ``redis-server`` (``make system-deps``), so a missing binary
is a failure with the fix in its message, never a skip.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest
import redis

START_TIMEOUT_SEC = 10.0
_PORT_ATTEMPTS = 3


def _free_port() -> int:
    # redis-server has no "pick a port for me": take one the kernel hands out and release
    # it. Another process may take it first; start() then tries again with a new one.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process; ``with RedisServer(tmp) as srv: srv.client()``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._clients: list[redis.Redis] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A new client with its own connection pool, as a separate replica would have."""
        client = redis.Redis.from_url(self.url, socket_timeout=5.0)
        self._clients.append(client)
        return client

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server is not installed: run `make system-deps` "
                "(or `apt-get install redis-server`)",
                pytrace=False,
            )
        output = ""
        for _ in range(_PORT_ATTEMPTS):
            self.port = _free_port()
            self._proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
                 "--maxmemory-policy", "noeviction", "--loglevel", "warning"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )
            if self._wait_ready():
                return self
            output = self._exited_output()
        raise RuntimeError(f"redis-server did not start on a free port:\n{output}")

    def _exited_output(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        with self._proc.stdout:
            output = self._proc.stdout.read().decode(errors="replace")
        self._proc = None
        return output

    def _wait_ready(self) -> bool:
        """Poll PING until it answers (True) or the process exits, e.g. port taken (False)."""
        assert self._proc is not None
        probe = redis.Redis(port=self.port, socket_timeout=1.0, socket_connect_timeout=1.0)
        deadline = time.monotonic() + START_TIMEOUT_SEC
        try:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    return False
                try:
                    if probe.ping():
                        return True
                except redis.ConnectionError:
                    time.sleep(0.02)
        finally:
            probe.close()
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT_SEC} s")

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
