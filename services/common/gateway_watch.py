"""Keeps a running gateway honest about its state: readiness in gRPC health, a dead front
never left half alive, and free heap memory handed back after a burst."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from grpc_health.v1 import health, health_pb2

from services.common.process import MemoryReleaser

log = logging.getLogger(__name__)

INTERVAL_SEC = 1.0
# Free heap pages go back to the system every few ticks (well under a millisecond each).
RELEASE_MEMORY_TICKS = 5
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Watched(Protocol):
    def readiness(self) -> str | None: ...
    def fail(self, problem: str) -> None: ...


class GatewayWatch:
    """Mirrors ``core.readiness()`` into gRPC health for ``service`` (the server-wide entry
    ``""`` stays SERVING while the process is alive), and turns a front that stopped
    serving on its own into a failure: unready on both fronts, ``on_failure`` called once
    (whoever runs the gateway then stops it and exits non-zero)."""

    def __init__(
        self,
        core: Watched,
        service: str,
        stopping: threading.Event,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        self.failure: str | None = None
        self.on_failure = on_failure
        self._core = core
        self._service = service
        self._stopping = stopping
        self._health: health.HealthServicer | None = None
        self._thread = threading.Thread(target=self._run, name="readiness", daemon=True)

    def start(self, health_servicer: health.HealthServicer) -> None:
        self._health = health_servicer
        self._thread.start()

    def front_died(self, front: str, error: BaseException | None) -> None:
        if self._stopping.is_set() or self.failure is not None:
            return
        self.failure = f"the {front} front stopped serving"
        self._core.fail(self.failure)
        if self._health is not None:
            for name in ("", self._service):
                self._health.set(name, NOT_SERVING)
        if self.on_failure is not None:
            self.on_failure()

    def _run(self) -> None:
        serving, ticks = True, 0
        release_memory = MemoryReleaser()
        while not self._stopping.wait(INTERVAL_SEC):
            ticks += 1
            if ticks % RELEASE_MEMORY_TICKS == 0:
                release_memory()
            problem = self._core.readiness()
            if (problem is None) == serving or self._health is None:
                continue
            serving = problem is None
            self._health.set(self._service, SERVING if serving else NOT_SERVING)
            log.warning(
                "readiness changed",
                extra={"event": "readiness", "ready": serving, "problem": problem},
            )
