"""Replicas sharing replay protection and rate limits through a real redis-server.

Each replica is a store or limiter with its own Redis client (its own connections), as two
Auth Gateway processes behind a load balancer would have.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.auth.ratelimit import REDIS_EPOCH, Rate, RedisRateLimiter
from services.common.errors import Unavailable
from services.common.nonces import RedisNonceStore
from tests.redis_server import RedisServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as srv:
        yield srv


@pytest.fixture
def fresh(server: RedisServer) -> RedisServer:
    server.client().flushdb()
    return server


def test_a_nonce_seen_by_one_replica_is_a_replay_on_the_other(fresh: RedisServer) -> None:
    one, two = RedisNonceStore(fresh.client()), RedisNonceStore(fresh.client())
    assert one.remember("k1", "bm9uY2Utb25l", 600) is True
    assert two.remember("k1", "bm9uY2Utb25l", 600) is False
    assert two.remember("k2", "bm9uY2Utb25l", 600) is True
    ttl_ms = fresh.client().pttl("logops:nonce:k1:bm9uY2Utb25l")
    assert 599_000 < ttl_ms <= 600_000


def test_a_nonce_is_forgotten_when_its_ttl_has_passed(fresh: RedisServer) -> None:
    one, two = RedisNonceStore(fresh.client()), RedisNonceStore(fresh.client())
    assert one.remember("k", "short", 0.05)
    deadline = time.monotonic() + 5
    while not two.remember("k", "short", 0.05):
        assert time.monotonic() < deadline, "the nonce never expired"
        time.sleep(0.01)


def test_one_keys_limit_is_shared_by_both_replicas(fresh: RedisServer) -> None:
    one, two = RedisRateLimiter(fresh.client()), RedisRateLimiter(fresh.client())
    rate = Rate(per_sec=0.01, burst=5)  # 100 s a cell: nothing refills during the test
    first = one.check("k", 3, rate)
    assert (first.allowed, first.limit, first.remaining) == (True, 5, 2)
    assert first.reset_sec == pytest.approx(300, abs=1)
    denied = two.check("k", 3, rate)
    assert (denied.allowed, denied.remaining) == (False, 2)
    assert denied.retry_after_sec == pytest.approx(100, abs=1)
    assert two.check("k", 2, rate).allowed
    assert not one.check("k", 1, rate).allowed
    assert one.check("other", 5, rate).allowed


def test_a_keys_own_requests_limit_is_shared_by_both_replicas(fresh: RedisServer) -> None:
    one = RedisRateLimiter(fresh.client(), requests=Rate(100.0, 100))
    two = RedisRateLimiter(fresh.client(), requests=Rate(100.0, 100))
    records, own = Rate(1000.0, 1000), Rate(per_sec=0.01, burst=1)
    assert one.check("slow", 1, records, own).allowed
    denied = two.check("slow", 1, records, own)
    assert (denied.allowed, denied.policy) == (False, "requests")
    assert two.check("other", 1, records).allowed


def test_requests_and_global_limits_are_shared_and_all_or_nothing(fresh: RedisServer) -> None:
    def replica() -> RedisRateLimiter:
        return RedisRateLimiter(
            fresh.client(),
            requests=Rate(per_sec=0.01, burst=2),
            global_records=Rate(per_sec=0.01, burst=10),
        )

    one, two = replica(), replica()
    own = Rate(per_sec=0.01, burst=100)
    assert one.check("a", 4, own).allowed
    assert two.check("a", 4, own).allowed
    by_requests = one.check("a", 1, own)
    assert (by_requests.allowed, by_requests.limit) == (False, 2)
    by_global = two.check("b", 3, own)  # 8 of the 10 global cells are taken
    assert (by_global.allowed, by_global.limit, by_global.remaining) == (False, 10, 2)
    client = fresh.client()
    assert client.exists("logops:rl:records:b", "logops:rl:requests:b") == 0
    assert float(client.get("logops:rl:records:a") or 0) > 0
    assert one.check("b", 2, own).allowed


def test_a_batch_over_the_burst_is_refused_for_good_and_counts_nothing(
    fresh: RedisServer,
) -> None:
    limiter = RedisRateLimiter(fresh.client())
    decision = limiter.check("k", 11, Rate(per_sec=1000.0, burst=10))
    assert decision.exceeds_burst and math.isinf(decision.retry_after_sec)
    assert fresh.client().exists("logops:rl:records:k") == 0


def test_a_fresh_key_has_its_whole_burst_whatever_the_rate(fresh: RedisServer) -> None:
    # For some clock readings the new arrival time minus now exceeds 3 x 1/7 s by a
    # rounding error: the script's tolerance is what lets every fresh key take its burst.
    limiter = RedisRateLimiter(fresh.client())
    rate = Rate(per_sec=7.0, burst=3)
    refused = [k for k in range(200) if not limiter.check(f"k{k}", 3, rate).allowed]
    assert refused == []


def test_replica_clocks_play_no_part_only_redis_time_does(
    fresh: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = RedisRateLimiter(fresh.client()), RedisRateLimiter(fresh.client())
    rate = Rate(per_sec=0.01, burst=4)
    assert one.check("k", 2, rate).allowed
    real_time, real_monotonic = time.time, time.monotonic
    # The second replica's clock is an hour ahead: had it used its own time, the
    # key's cells would all look refilled to it.
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + 3600)
    skewed = two.check("k", 2, rate)
    assert (skewed.allowed, skewed.remaining) == (True, 0)
    assert not two.check("k", 1, rate).allowed
    monkeypatch.undo()
    assert not one.check("k", 1, rate).allowed
    # What is stored is on Redis's clock: the key's tat is 400 s after Redis's now.
    client = fresh.client()
    seconds, micros = client.time()
    redis_now = (seconds - REDIS_EPOCH) + micros / 1e6
    tat = float(client.get("logops:rl:records:k") or 0) / 1e6
    assert tat - redis_now == pytest.approx(400, abs=2)


def test_the_script_is_loaded_again_when_redis_has_lost_it(fresh: RedisServer) -> None:
    limiter = RedisRateLimiter(fresh.client())
    rate = Rate(per_sec=0.01, burst=3)
    assert limiter.check("k", 1, rate).allowed
    fresh.client().script_flush()
    assert limiter.check("k", 1, rate).remaining == 1


def test_an_unreachable_redis_is_a_retryable_refusal(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as srv:
        client = srv.client()
        limiter, nonces = RedisRateLimiter(client), RedisNonceStore(client)
        assert limiter.check("k", 1, Rate(1.0, 5)).allowed
    # The server is gone now.
    with pytest.raises(Unavailable) as by_limiter:
        limiter.check("k", 1, Rate(1.0, 5))
    with pytest.raises(Unavailable) as by_nonces:
        nonces.remember("k", "n", 600)
    for refused in (by_limiter.value, by_nonces.value):
        assert (refused.reason, refused.http_status) == ("overloaded", 503)
        assert refused.retry_after_seconds == 1
        assert isinstance(refused.__cause__, redis.RedisError)


def test_an_unreachable_redis_is_logged_and_answered_as_such(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with RedisServer(tmp_path) as srv:
        client = srv.client()
        limiter, nonces = RedisRateLimiter(client), RedisNonceStore(client)
    with caplog.at_level(logging.WARNING):
        with pytest.raises(Unavailable) as by_limiter:
            limiter.check("k", 1, Rate(1.0, 5))
        with pytest.raises(Unavailable) as by_nonces:
            nonces.remember("k", "n", 600)
    assert by_limiter.value.message == "rate limits are unavailable; retry later"
    assert by_nonces.value.message == "replay protection is unavailable; retry later"
    events = [(r.name, r.__dict__.get("event"), r.__dict__.get("error")) for r in caplog.records]
    assert events == [
        ("services.auth.ratelimit", "redis_unavailable", "ConnectionError"),
        ("services.common.nonces", "redis_unavailable", "ConnectionError"),
    ]
