"""Replay protection in memory: a nonce passes once per ttl, and a full store fails closed."""

from __future__ import annotations

import threading

import pytest

from services.common.errors import Unavailable
from services.common.nonces import MemoryNonceStore, NonceStoreFull


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_nonce_passes_once_per_key_within_its_ttl() -> None:
    clock = Clock()
    store = MemoryNonceStore(clock=clock)
    assert store.remember("k1", "n1", 600) is True
    assert store.remember("k1", "n1", 600) is False
    assert store.remember("k2", "n1", 600) is True  # another key's nonce space
    clock.now += 599.9
    assert store.remember("k1", "n1", 600) is False
    clock.now += 0.1
    assert store.remember("k1", "n1", 600) is True  # forgotten at its ttl


def test_expired_nonces_make_room_before_anything_is_refused() -> None:
    clock = Clock()
    store = MemoryNonceStore(max_entries=3, clock=clock)
    for n in ("a", "b", "c"):
        assert store.remember("k", n, 10)
    clock.now += 10
    for n in ("d", "e", "f"):
        assert store.remember("k", n, 10)
    assert len(store) == 3


def test_a_store_full_of_live_nonces_refuses_new_ones_and_forgets_none() -> None:
    clock = Clock()
    store = MemoryNonceStore(max_entries=3, clock=clock)
    store.remember("k", "a", 10)
    clock.now += 4
    store.remember("k", "b", 10)
    store.remember("k", "c", 10)
    with pytest.raises(NonceStoreFull) as refused:
        store.remember("k", "d", 10)
    assert isinstance(refused.value, Unavailable)
    assert (refused.value.reason, refused.value.http_status) == ("overloaded", 503)
    assert refused.value.retry_after == pytest.approx(6.0)  # when "a" expires
    # Every live nonce is still a replay: nothing was forgotten to make room.
    assert [store.remember("k", n, 10) for n in ("a", "b", "c")] == [False] * 3
    clock.now += 6
    assert store.remember("k", "d", 10) is True  # "a" expired and made room


def test_nonces_with_different_ttls_expire_each_at_its_own_time() -> None:
    clock = Clock()
    store = MemoryNonceStore(clock=clock)
    store.remember("k", "long", 100)
    store.remember("k", "short", 1)
    clock.now += 1
    assert store.remember("k", "short", 1) is True
    assert store.remember("k", "long", 100) is False


def test_concurrent_replays_of_one_nonce_pass_exactly_once() -> None:
    store = MemoryNonceStore()
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def replay() -> None:
        barrier.wait()
        results.extend(store.remember("k", "same", 600) for _ in range(50))

    threads = [threading.Thread(target=replay) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1


@pytest.mark.parametrize("ttl", [0.0, -1.0, float("inf"), float("nan")])
def test_a_ttl_that_makes_no_sense_is_refused(ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl"):
        MemoryNonceStore().remember("k", "n", ttl)


def test_max_entries_must_hold_at_least_one_nonce() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryNonceStore(max_entries=0)


def test_a_full_store_tells_the_client_why_and_to_retry() -> None:
    store = MemoryNonceStore(max_entries=1, clock=Clock())
    store.remember("k", "a", 10)
    with pytest.raises(NonceStoreFull) as refused:
        store.remember("k", "b", 10)
    assert refused.value.message == (
        "too many recent requests to guard against replays; retry later"
    )
