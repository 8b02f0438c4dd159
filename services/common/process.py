"""Process-wide resources of a gateway: the file-descriptor limit, free heap memory, the
garbage collector's view of start-up objects, and a way to see what every thread is doing.

A gateway holds one descriptor per client connection; the soft limit many systems
start processes with (1024) is far below what a busy gateway, or a hostile client,
opens. It is raised to the hard limit once, by the entry point.

``kill -USR1 PID`` makes a gateway print every thread's stack to its stderr and go on:
what an operator (or a test whose gateway would not stop) needs to see where it waits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import faulthandler
import gc
import logging
import resource
import signal
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        log.warning(
            "cannot raise the file-descriptor limit",
            extra={"event": "nofile", "soft": soft, "hard": hard, "error": str(exc)},
        )
        return soft
    return hard


# CPython runs Python signal handlers in the main thread only. When the kernel hands
# SIGTERM to one of a gateway's other threads (any of them may get it), a main thread asleep
# in an untimed wait is never woken to run the handler, and the signal is ignored for good.
SIGNAL_POLL_SEC = 0.5


def wait_for_stop(stop: threading.Event) -> None:
    """Wait until ``stop`` is set, waking twice a second so that signal handlers run."""
    while not stop.wait(SIGNAL_POLL_SEC):
        pass


def freeze_start_up_objects() -> None:
    """Collect start-up garbage, then put what is left out of the collector's sight.

    A started gateway holds some 45,000 objects that live as long as it does (modules,
    classes, descriptors, servers). Every full collection scanned them all: a pause of
    13-20 ms in which no request moved. Frozen, a full collection scans only what the
    gateway made since. Call once, when the gateway has started.
    """
    gc.collect()
    gc.freeze()


def enable_stack_dumps() -> None:
    """``SIGUSR1`` prints every thread's stack to stderr (faulthandler, async-signal safe)."""
    faulthandler.register(signal.SIGUSR1, all_threads=True, chain=False)


def _libc_trim() -> Callable[[], None] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def release() -> None:
        trim(0)

    return release


class MemoryReleaser:
    """Hands the C heap's free pages back to the system once load has passed.

    glibc keeps freed memory in its arenas: after a burst of large bodies a gateway
    would keep its peak RSS for good (measured: 56 MiB before a flood of 300 concurrent
    pushes, 127 MiB for good after it; 63 MiB with this). ``malloc_trim(0)`` returns the
    free pages; it takes well under a millisecond, so it simply runs every few seconds.
    """

    def __init__(self) -> None:
        self._release = _libc_trim()

    def __call__(self) -> None:
        if self._release is not None:
            self._release()
