"""The in-flight cap both gateway cores admit requests through, without ever waiting."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from services.common.errors import Unavailable


class InflightSlots:
    """At most ``limit`` requests in flight; one more is refused at once (503 / UNAVAILABLE
    ``overloaded`` with ``retry_after``), never queued. ``inflight(front, +1/-1)`` hears of
    every admission and release (the in-flight gauge)."""

    def __init__(
        self, limit: int, retry_after: float, inflight: Callable[[str, int], None]
    ) -> None:
        self.limit = limit
        self._retry_after = retry_after
        self._inflight = inflight
        self._slots = threading.BoundedSemaphore(limit)

    @contextmanager
    def admitted(self, front: str) -> Iterator[None]:
        if not self._slots.acquire(blocking=False):
            raise Unavailable(
                f"more than {self.limit} requests in flight",
                reason="overloaded",
                retry_after=self._retry_after,
            )
        self._inflight(front, 1)
        try:
            yield
        finally:
            self._inflight(front, -1)
            self._slots.release()
