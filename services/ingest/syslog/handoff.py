"""The bounded hand-off between the socket reader and the threads that store batches.

Counted in messages, not items: the reader checks :meth:`Handoff.has_room` before every
read and stops reading while it is full, so a fast sender is slowed by TCP flow control
(and excess UDP is dropped by the kernel, counted in ``/proc/net/udp``) instead of being
buffered without bound. Batchers take up to a batch at a time, waiting at most the batch
delay once the first message is in.
"""

from __future__ import annotations

import threading
import time
from collections import deque

# What the reader hands over: the peer's address (the host of records without one), the
# transport ("tcp" or "udp") and the messages, in arrival order.
Item = tuple[str, str, list[bytes]]


class Handoff:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[Item] = deque()
        self._count = 0
        self._closed = False
        self._cond = threading.Condition()

    @property
    def pending(self) -> int:
        """Messages handed over and not yet taken."""
        return self._count

    @property
    def closed(self) -> bool:
        return self._closed

    def has_room(self) -> bool:
        return self._count < self.capacity

    def put(self, host: str, transport: str, frames: list[bytes]) -> None:
        """Hand over ``frames``; never blocks (one read may go past the capacity)."""
        if not frames:
            return
        with self._cond:
            self._items.append((host, transport, frames))
            self._count += len(frames)
            self._cond.notify()

    def wait_room(self, timeout: float) -> bool:
        """Wait until there is room (or the hand-off is closed); True when there is."""
        with self._cond:
            self._cond.wait_for(lambda: self._count < self.capacity or self._closed, timeout)
            return self._count < self.capacity

    def close(self) -> None:
        """No more puts: batchers take what is left, then get an empty list."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self, size: int, delay: float, most: int = 0, poll: float = 0.5) -> list[Item]:
        """Messages as soon as ``size`` are in, or ``delay`` seconds after the first one
        was found: all that are waiting, up to ``most`` (default ``size``); an empty list
        after ``poll`` seconds with none, or once closed and empty."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._count or self._closed, poll):
                return []
            if self._count < size and not self._closed:
                deadline = time.monotonic() + delay
                self._cond.wait_for(
                    lambda: self._count >= size or self._closed,
                    max(0.0, deadline - time.monotonic()),
                )
            taken = self._pop(max(size, most))
            self._cond.notify_all()  # the reader may wait for room
            return taken

    def _pop(self, size: int) -> list[Item]:
        taken: list[Item] = []
        left = size
        items = self._items
        while items and left > 0:
            host, transport, frames = items[0]
            if len(frames) <= left:
                items.popleft()
                taken.append((host, transport, frames))
                left -= len(frames)
            else:
                taken.append((host, transport, frames[:left]))
                items[0] = (host, transport, frames[left:])
                left = 0
        self._count -= size - left
        return taken
