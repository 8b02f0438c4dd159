"""Process-wide set-up for a gateway: the file-descriptor limit.

A gateway holds one descriptor per client connection; the soft limit many systems
start processes with (1024) is far below what a busy gateway, or a hostile client,
opens. It is raised to the hard limit once, by the entry point.
"""

from __future__ import annotations

import logging
import resource

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
