"""Per-key rate limits of the Auth Gateway (GCRA), in memory or shared through Redis.

Every request passes up to three limits at once, all or nothing:

- the key's **records/s** (``rate`` of :meth:`RateLimiter.check`, from the keys file): a
  batch of N records costs N cells;
- the key's **requests/s** (``requests`` of :meth:`RateLimiter.check` when the keys file
  gives the key its own, else the limiter's ``requests``, the same for every key): 1 cell;
- the gateway's **global records/s** (``global_records``), shared by all keys: N cells.

Each limit is a GCRA (generic cell rate algorithm, as in redis-cell and Stripe's and
Brandur's descriptions): with emission interval ``T = 1/per_sec`` and tolerance
``tau = burst * T``, one stored number per limit, the theoretical arrival time ``tat``.
A request of ``cost`` cells at time ``now`` is admitted when
``max(tat, now) + cost*T - now <= tau``, and ``tat`` then moves to ``max(tat, now) +
cost*T``. So a fresh or rested key may send ``burst`` cells at once, then ``per_sec`` a
second; over any window of ``w`` seconds at most ``burst + per_sec*w`` cells pass. A key
whose ``tat`` is in the past is in the same state as one never seen, which is what lets
both stores forget idle keys.

A denied request consumes nothing, in any limit. A request costing more than a limit's
burst can never pass: its :class:`Decision` has ``exceeds_burst`` (``retry_after_sec`` is
infinite). The caller answers it **413 ``too_many_records``** (not retryable) with a
message naming the burst, not 429: a 429 with Retry-After tells a client that waiting
helps, and here it never does; the client must split the batch.

:class:`Decision` carries what both header styles need. The older drafts' fields are
``RateLimit-Limit: limit``, ``RateLimit-Remaining: remaining``, ``RateLimit-Reset:
ceil(reset_sec)``. The current draft-ietf-httpapi-ratelimit-headers (-10 on) replaces them
with ``RateLimit-Policy: "records";q=<limit>;w=<limit/per_sec>`` and ``RateLimit:
"records";r=<remaining>;t=<ceil(reset_sec)>``. A 429 adds ``Retry-After`` (HTTP) and
``RetryInfo`` (gRPC) with ``retry_after_sec`` rounded up, through ``RateLimited``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from services.common.errors import Unavailable

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger(__name__)

# A request this early is still admitted: float sums of intervals drift by ulps, and a
# request due at exactly its time must not be refused for that. 1 microsecond.
TOLERANCE_SEC = 1e-6

RATE_PREFIX = "logops:rl:"

# Redis's clock counts microseconds from here (2025-01-01 UTC): numbers stay near 1e14,
# where a double still resolves fractions of a microsecond.
REDIS_EPOCH = 1_735_689_600

UNREACHABLE_RETRY_SEC = 1.0


@dataclass(frozen=True, slots=True)
class Rate:
    """``per_sec`` cells a second on average, up to ``burst`` cells at once."""

    per_sec: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.per_sec > 0 and math.isfinite(self.per_sec)):
            raise ValueError(f"rate per_sec must be a positive number, not {self.per_sec!r}")
        if self.burst < 1:
            raise ValueError(f"rate burst must be at least 1, not {self.burst!r}")


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one request, with the numbers of its most constraining limit.

    Allowed: the limit with the smallest share left after this request. Denied: the limit
    that makes the client wait longest (a limit the request can never pass comes first).
    ``remaining`` is the largest cost that would pass now, ``reset_sec`` the time until
    that limit is back to its full burst, ``retry_after_sec`` the time until this same
    request would pass (0 when allowed, infinite when it never can).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_sec: float
    retry_after_sec: float
    # Which limit the numbers are of ("records", "requests" or "global") and the window
    # over which its burst refills (burst / per_sec), for RateLimit-Policy.
    policy: str = ""
    window_sec: float = 0.0

    @property
    def exceeds_burst(self) -> bool:
        """The request costs more than a burst: 413 ``too_many_records``, never 429."""
        return not self.allowed and math.isinf(self.retry_after_sec)


class RateLimiter(Protocol):
    def check(
        self, key_id: str, records: int, rate: Rate, requests: Rate | None = None
    ) -> Decision:
        """Admit (and count) a request of ``records`` records for ``key_id`` whose own
        records limit is ``rate`` (and requests limit ``requests``, when the key has its
        own), or deny it and count nothing."""
        ...


class _Limit(NamedTuple):
    name: str
    rate: Rate
    cost: int


def _limits(
    key_id: str, records: int, rate: Rate, requests: Rate | None, global_records: Rate | None
) -> list[_Limit]:
    if records < 0:
        raise ValueError(f"records must not be negative, not {records}")
    limits = [_Limit(f"records:{key_id}", rate, records)]
    if requests is not None:
        limits.append(_Limit(f"requests:{key_id}", requests, 1))
    if global_records is not None:
        limits.append(_Limit("global", global_records, records))
    return limits


def _fits(now: float, tat: float, limit: _Limit) -> bool:
    """GCRA's test; ``tat`` is already ``max(stored tat, now)``."""
    rate = limit.rate
    return (
        limit.cost <= rate.burst
        and tat + limit.cost / rate.per_sec - now <= rate.burst / rate.per_sec + TOLERANCE_SEC
    )


def _view(now: float, tat: float, limit: _Limit, allowed: bool) -> Decision:
    """One limit's numbers once the request was admitted (and counted) or denied."""
    rate, cost = limit.rate, limit.cost
    after = tat + cost / rate.per_sec if allowed else tat
    left = math.floor(rate.burst - (after - now - TOLERANCE_SEC) * rate.per_sec)
    remaining = min(rate.burst, max(0, left))
    if allowed:
        retry = 0.0
    elif cost > rate.burst:
        retry = math.inf
    else:
        retry = max(0.0, tat + (cost - rate.burst) / rate.per_sec - now)
    policy = limit.name.partition(":")[0]
    return Decision(
        allowed, rate.burst, remaining, max(0.0, after - now), retry,
        policy, rate.burst / rate.per_sec,
    )


def _decide(now: float, tats: Sequence[float], limits: Sequence[_Limit], allowed: bool) -> Decision:
    views = [_view(now, tat, lim, allowed) for tat, lim in zip(tats, limits, strict=True)]
    if allowed:
        return min(views, key=lambda v: v.remaining / v.limit)
    return max(views, key=lambda v: v.retry_after_sec)


class MemoryRateLimiter:
    """The limits of one gateway, in memory; thread-safe.

    Only limits whose ``tat`` lies ahead of the clock are kept: a sweep, at most every
    ``sweep_interval_sec``, forgets every limit idle past its full reset (it would behave
    exactly as a fresh one). Keys are authenticated before they are counted, so what is
    held is bounded by the keys file and by how many were busy in the last burst period.
    ``clock`` is monotonic seconds; tests pass a settable one.
    """

    def __init__(
        self,
        *,
        requests: Rate | None = None,
        global_records: Rate | None = None,
        clock: Callable[[], float] = time.monotonic,
        sweep_interval_sec: float = 10.0,
    ) -> None:
        self._requests = requests
        self._global = global_records
        self._clock = clock
        self._sweep_every = sweep_interval_sec
        self._lock = threading.Lock()
        self._tat: dict[str, float] = {}
        self._next_sweep = -math.inf

    def __len__(self) -> int:
        """How many limits are held (records, requests per key, and the global one)."""
        with self._lock:
            return len(self._tat)

    def check(
        self, key_id: str, records: int, rate: Rate, requests: Rate | None = None
    ) -> Decision:
        limits = _limits(key_id, records, rate, requests or self._requests, self._global)
        with self._lock:
            now = self._clock()
            self._sweep(now)
            tats = [max(self._tat.get(lim.name, now), now) for lim in limits]
            allowed = all(_fits(now, tat, lim) for tat, lim in zip(tats, limits, strict=True))
            if allowed:
                for tat, lim in zip(tats, limits, strict=True):
                    self._tat[lim.name] = tat + lim.cost / lim.rate.per_sec
        return _decide(now, tats, limits, allowed)

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._sweep_every
        idle = [name for name, tat in self._tat.items() if tat <= now]
        for name in idle:
            del self._tat[name]


# Checks and counts every limit of one request at once, on Redis's clock.
# KEYS[i]: limit i's tat, microseconds since ARGV[1] (Unix seconds) on Redis's clock.
# ARGV[2]: tolerance in microseconds; ARGV[3i..3i+2]: limit i's per_sec, burst, cost.
# Replies {allowed, now, tat_1 .. tat_n} (each tat already max(stored, now)); the times go
# as strings because Redis truncates a Lua number reply to an integer.
_GCRA_LUA = """
local clock = redis.call('TIME')
local now = (tonumber(clock[1]) - tonumber(ARGV[1])) * 1000000 + tonumber(clock[2])
local tolerance = tonumber(ARGV[2])
local tats, fresh, allowed = {}, {}, 1
for i = 1, #KEYS do
  local per_sec = tonumber(ARGV[3 * i])
  local burst = tonumber(ARGV[3 * i + 1])
  local cost = tonumber(ARGV[3 * i + 2])
  local interval = 1000000 / per_sec
  local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or now), now)
  tats[i] = tat
  fresh[i] = tat + cost * interval
  if cost > burst or fresh[i] - now > burst * interval + tolerance then
    allowed = 0
  end
end
if allowed == 1 then
  for i = 1, #KEYS do
    local ttl_ms = math.ceil((fresh[i] - now) / 1000)
    if ttl_ms > 0 then
      redis.call('SET', KEYS[i], string.format('%.17g', fresh[i]), 'PX', ttl_ms)
    end
  end
end
local reply = {allowed, string.format('%.17g', now)}
for i = 1, #KEYS do
  reply[#reply + 1] = string.format('%.17g', tats[i])
end
return reply
"""


class RedisRateLimiter:
    """The limits shared by every replica through one Redis.

    One Lua script (EVALSHA, loaded again when Redis has lost it, through redis-py's
    ``Script``) reads every limit of the request, decides, and writes them all or none,
    atomically: two replicas counting the same key at once cannot both take its last
    cell. The time is Redis's own (``TIME``), so replicas whose clocks disagree still
    agree on every limit; no replica clock is read. Keys are ``logops:rl:records:{key_id}``,
    ``logops:rl:requests:{key_id}`` and ``logops:rl:global``, each expiring at its full
    reset. A script touching the global key with a key's own is one Redis (or a primary),
    not a Redis Cluster, which is what ``--redis redis://HOST:PORT/DB`` names.

    The script only decides and counts; the numbers of the :class:`Decision` are worked
    out here from the times it returns, by the same code as the memory limiter's.
    """

    def __init__(
        self,
        client: Redis,
        *,
        requests: Rate | None = None,
        global_records: Rate | None = None,
        prefix: str = RATE_PREFIX,
    ) -> None:
        # Imported here so the gateway's core does not load the Redis client without Redis.
        from redis.exceptions import RedisError

        self._script: Callable[..., Any] = client.register_script(_GCRA_LUA)
        self._requests = requests
        self._global = global_records
        self._prefix = prefix
        self._errors: tuple[type[Exception], ...] = (RedisError,)

    def check(
        self, key_id: str, records: int, rate: Rate, requests: Rate | None = None
    ) -> Decision:
        limits = _limits(key_id, records, rate, requests or self._requests, self._global)
        keys = [self._prefix + lim.name for lim in limits]
        args: list[float | int] = [REDIS_EPOCH, TOLERANCE_SEC * 1e6]
        for lim in limits:
            args += [lim.rate.per_sec, lim.rate.burst, lim.cost]
        try:
            reply = self._script(keys=keys, args=args)
        except self._errors as exc:
            log.warning(
                "rate limit state unreachable",
                extra={"event": "redis_unavailable", "error": type(exc).__name__},
            )
            raise Unavailable(
                "rate limits are unavailable; retry later", retry_after=UNREACHABLE_RETRY_SEC
            ) from exc
        now = float(reply[1]) / 1e6
        tats = [float(t) / 1e6 for t in reply[2:]]
        return _decide(now, tats, limits, int(reply[0]) == 1)
