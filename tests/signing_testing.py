"""Test support for signed requests: a bounded in-memory nonce store and a test key ring.

The gateways get their real nonce store (in memory or Redis) from ``services/auth``; the
verifier takes any ``NonceStore``, so the tests use this small one.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from services.common.keys import ApiKey, KeyRing

SECRET = b"test-secret-0123456789abcdef"
OLD_SECRET = b"test-old-secret-0123456789abcdef"
KEY = ApiKey("test-key", "test-emitter", (SECRET, OLD_SECRET))


def make_keyring() -> KeyRing:
    return KeyRing([KEY, ApiKey("other-key", "other-emitter", (b"other-secret-0123456789",))])


class MemoryNonceStore:
    """Nonces per key until they expire, at most ``capacity`` (the oldest go first)."""

    def __init__(self, capacity: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self.capacity = capacity
        self.clock = clock
        self._expiry: OrderedDict[tuple[str, str], float] = OrderedDict()

    def remember(self, key_id: str, nonce: str, ttl_sec: float) -> bool:
        now = self.clock()
        while self._expiry and next(iter(self._expiry.values())) <= now:
            self._expiry.popitem(last=False)
        entry = (key_id, nonce)
        if entry in self._expiry:
            return False
        if len(self._expiry) >= self.capacity:
            self._expiry.popitem(last=False)
        self._expiry[entry] = now + ttl_sec
        return True

    def __len__(self) -> int:
        return len(self._expiry)
