"""Replay protection: remember each signed request's nonce for as long as it could be replayed.

Both gateways check the nonce last (``services.common.signing.Verifier``), after the
signature, so only requests signed with a known key reach these stores; both stores implement
``signing.NonceStore``. ``remember`` answers True the first time a nonce is seen for a
key and False while it is remembered (a replay). One gateway keeps nonces in memory
(:class:`MemoryNonceStore`); several replicas behind a load balancer share them through
Redis (:class:`RedisNonceStore`), so a request replayed to another replica is refused too.

When a store cannot tell whether a nonce is new (memory full of live nonces, Redis
unreachable) it raises :class:`~services.common.errors.Unavailable` (``overloaded``, 503,
with a retry delay) instead of guessing: replay protection fails closed.
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from services.common.errors import Unavailable
from services.common.signing import NonceStore as NonceStore  # the one protocol, re-exported

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger(__name__)

NONCE_PREFIX = "logops:nonce:"

# Retry-After for a refusal caused by an unreachable Redis: long enough not to hammer it.
UNREACHABLE_RETRY_SEC = 1.0


class NonceStoreFull(Unavailable):
    """Every slot holds a nonce that could still be replayed; nothing new is accepted."""

    default_reason = "overloaded"


def _check_ttl(ttl_sec: float) -> None:
    if not (ttl_sec > 0 and math.isfinite(ttl_sec)):
        raise ValueError(f"nonce ttl must be a positive number of seconds, not {ttl_sec!r}")


class MemoryNonceStore:
    """Nonces of one gateway in memory, each forgotten when its ttl has passed.

    Memory is bounded by ``max_entries``. Expired nonces go first (a heap ordered by
    expiry, so each call evicts only what has expired). When every entry is still live,
    a new nonce is **refused** with :class:`NonceStoreFull` (503 ``overloaded``, Retry-After
    until the oldest entry expires) rather than making room by forgetting a live one:

    - Forgetting a live nonce silently re-opens the replay window for the request that
      carried it, and an attacker who can send valid traffic can force exactly that
      (flood, then replay a captured request). Nobody would notice.
    - Refusing is loud and safe: the client is told to retry, operators see 503s and the
      ``overloaded`` reason, and no replay is ever admitted.

    This is what replay caches built for attack traffic do: TLS 1.3's anti-replay rules
    (RFC 8446 section 8) reject 0-RTT data whenever the server cannot be sure it is fresh,
    QUIC's strike register rejects what falls before its horizon when full, and Redis is
    meant to run here with ``maxmemory-policy noeviction`` for the same reason. Sizing
    makes refusals rare: the rate limits bound the request rate, so ``max_entries`` of at
    least (global requests/s x ttl) never fills. The default of one million covers 1,600
    requests/s for the 600 s a nonce is kept, at about 270 bytes a nonce (270 MB when
    full; memory follows the traffic, not the cap).
    """

    def __init__(
        self, max_entries: int = 1_000_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, not {max_entries}")
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        # Each remembered (key_id, nonce) has exactly one heap entry with the same expiry.
        self._expiry: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def remember(self, key_id: str, nonce: str, ttl_sec: float) -> bool:
        _check_ttl(ttl_sec)
        entry = (key_id, nonce)
        with self._lock:
            now = self._clock()
            self._evict_expired(now)
            if entry in self._expiry:
                return False
            if len(self._expiry) >= self._max:
                oldest = self._heap[0][0]
                raise NonceStoreFull(
                    "too many recent requests to guard against replays; retry later",
                    retry_after=oldest - now,
                )
            expires = now + ttl_sec
            self._expiry[entry] = expires
            heapq.heappush(self._heap, (expires, entry))
            return True

    def _evict_expired(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, entry = heapq.heappop(heap)
            del self._expiry[entry]


class RedisNonceStore:
    """Nonces shared by every replica through one Redis: ``SET key 1 NX PX ttl``.

    One round trip decides and remembers at once, so two replicas handed the same request
    at the same moment cannot both accept it. Keys are ``logops:nonce:{key_id}:{nonce}``
    and expire with the nonce's ttl on Redis's clock. Nonces are base64url (no ``:``), so
    the last ``:`` separates the two parts. Run Redis with ``maxmemory-policy noeviction``:
    an evicting Redis forgets live nonces, the one thing this store must not do (see
    :class:`MemoryNonceStore`); with ``noeviction`` a full Redis refuses the write and the
    request is answered 503, as the memory store does.
    """

    def __init__(self, client: Redis, prefix: str = NONCE_PREFIX) -> None:
        # Imported here so the gateway's core, which only sees the NonceStore protocol,
        # does not load the Redis client when it runs without Redis.
        from redis.exceptions import RedisError

        self._client = client
        self._prefix = prefix
        self._errors: tuple[type[Exception], ...] = (RedisError,)

    def remember(self, key_id: str, nonce: str, ttl_sec: float) -> bool:
        _check_ttl(ttl_sec)
        ttl_ms = max(1, math.ceil(ttl_sec * 1000))
        try:
            stored = self._client.set(f"{self._prefix}{key_id}:{nonce}", 1, nx=True, px=ttl_ms)
        except self._errors as exc:
            log.warning(
                "replay protection state unreachable",
                extra={"event": "redis_unavailable", "error": type(exc).__name__},
            )
            raise Unavailable(
                "replay protection is unavailable; retry later",
                retry_after=UNREACHABLE_RETRY_SEC,
            ) from exc
        return bool(stored)
