"""Prometheus metrics of the syslog listener, on the gateway's injected registry.

The batches it stores are counted by the core like any push (``front="syslog"`` in
``logops_ingest_requests_total`` and friends); these series add what only a listener
sees: messages received per transport, messages lost before the core and why,
connections, and the time spent not reading because the sink was behind.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

# Why a message never reached the core (all shown at zero from the start).
DROP_REASONS = ("oversized", "truncated", "unavailable", "internal")
CLOSE_REASONS = ("eof", "idle", "framing", "error", "over_cap", "shutdown")


class SyslogMetrics:
    """All ``logops_ingest_syslog_*`` series; implements the reader's ``ServerObserver``
    and the batcher's ``DropObserver``."""

    def __init__(self, registry: CollectorRegistry, pending: Callable[[], int]) -> None:
        self.messages = Counter(
            "logops_ingest_syslog_messages_total",
            "Syslog messages received (framed, not yet stored), by transport.",
            ["transport"],
            registry=registry,
        )
        self.drops = Counter(
            "logops_ingest_syslog_dropped_total",
            "Syslog messages lost before they were stored, by reason.",
            ["reason"],
            registry=registry,
        )
        self.open = Gauge(
            "logops_ingest_syslog_connections",
            "Syslog TCP connections open.",
            registry=registry,
        )
        self.closed = Counter(
            "logops_ingest_syslog_connections_closed_total",
            "Syslog TCP connections closed, by reason (over_cap: refused at the cap).",
            ["reason"],
            registry=registry,
        )
        self.paused_seconds = Counter(
            "logops_ingest_syslog_paused_seconds_total",
            "Time the listener stopped reading because batches waited to be stored.",
            registry=registry,
        )
        self.queued = Gauge(
            "logops_ingest_syslog_pending_messages",
            "Messages read and waiting to be stored.",
            registry=registry,
        )
        self.queued.set_function(lambda: float(pending()))
        for transport in ("tcp", "udp"):
            self.messages.labels(transport)
        for reason in DROP_REASONS:
            self.drops.labels(reason)
        for reason in CLOSE_REASONS:
            self.closed.labels(reason)

    def received(self, transport: str, count: int) -> None:
        self.messages.labels(transport).inc(count)

    def dropped(self, reason: str, count: int) -> None:
        self.drops.labels(reason).inc(count)

    def connection_opened(self) -> None:
        self.open.inc()

    def connection_closed(self, reason: str) -> None:
        if reason != "over_cap":
            self.open.dec()
        self.closed.labels(reason).inc()

    def paused(self, seconds: float) -> None:
        self.paused_seconds.inc(seconds)
