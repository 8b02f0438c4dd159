"""Process-wide resources: the descriptor limit and memory handed back after a burst."""

from __future__ import annotations

import gc
import platform
import resource
import weakref

import pytest

from services.common.process import MemoryReleaser, freeze_start_up_objects, raise_fd_limit


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        assert raise_fd_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, raise_fd_limit()), hard))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_free_heap_memory_goes_back_to_the_system() -> None:
    """After a burst of buffers, most freed but a few kept (so the heap's top cannot
    shrink by itself), RSS stays high until the releaser runs."""
    burst = [bytes(2000) for _ in range(100_000)]  # about 200 MB from malloc, not pymalloc
    kept = burst[::500]
    del burst
    before = _rss_kib()
    MemoryReleaser()()
    after = _rss_kib()
    assert before - after > 100 * 1024, (before, after)
    assert len(kept) == 200


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_start_up_garbage_is_collected_and_the_rest_frozen() -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a cycle: only the collector frees it
    gone = weakref.ref(a)
    kept = _Node()
    del a, b
    try:
        freeze_start_up_objects()
        # Garbage of start-up is freed, not kept for the life of the process...
        assert gone() is None
        # ...and what is left no longer weighs on each full collection.
        assert gc.get_freeze_count() > 0
        assert not any(o is kept for o in gc.get_objects())
    finally:
        gc.unfreeze()
