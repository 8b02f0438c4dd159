"""Prometheus metrics of the Ingest Gateway, created on an injected registry.

Implements the core's ``IngestObserver`` and the sink's ``SinkObserver``. Every label
value comes from a bounded set: emitter names are admitted up to a cap and the rest
are counted as ``other``, so a client cannot blow up the series count.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.ingest.normalize import NormalisedBatch

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
FSYNC_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
# The reasons a signature check refuses with (docs/signing.md), shown at zero from the start.
AUTH_REASONS = (
    "missing_auth", "unknown_key", "clock_skew", "bad_content_hash", "bad_signature", "replay",
)


class BoundedLabel:
    """Admits up to ``limit`` distinct values; later newcomers become ``other``."""

    def __init__(self, limit: int, empty: str = "unknown") -> None:
        self._limit = limit
        self._empty = empty
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: str) -> str:
        if not value:
            return self._empty
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return "other"


class IngestMetrics:
    """All ``logops_ingest_*`` series; one instance per process (or per test)."""

    def __init__(self, registry: CollectorRegistry, max_emitters: int = 200) -> None:
        self.emitter_label = BoundedLabel(max_emitters)
        self.requests = Counter(
            "logops_ingest_requests_total",
            "Push requests by front and outcome code.",
            ["front", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "logops_ingest_request_duration_seconds",
            "Time to answer a push, from admission to response.",
            ["front"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "logops_ingest_batch_records",
            "Records per pushed batch.",
            ["front"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "logops_ingest_inflight_requests",
            "Push requests being handled.",
            ["front"],
            registry=registry,
        )
        self.accepted = Counter(
            "logops_ingest_records_accepted_total",
            "Records stored, by emitter and canonical level.",
            ["emitter", "level"],
            registry=registry,
        )
        self.rejected = Counter(
            "logops_ingest_records_rejected_total",
            "Records refused, by reason.",
            ["reason"],
            registry=registry,
        )
        self.missing = Counter(
            "logops_ingest_missing_fields_total",
            "Stored records whose ts or level was absent or invalid.",
            ["field", "reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            "logops_ingest_duplicate_batches_total",
            "Batches acknowledged as already stored; nothing written again.",
            registry=registry,
        )
        self.sink_bytes = Counter(
            "logops_ingest_sink_bytes_total",
            "Bytes appended to the NDJSON sink.",
            registry=registry,
        )
        self.sink_errors = Counter(
            "logops_ingest_sink_errors_total",
            "Failed sink writes (nothing acknowledged).",
            registry=registry,
        )
        self.fsync_seconds = Histogram(
            "logops_ingest_sink_fsync_seconds",
            "Duration of each fsync of the NDJSON sink.",
            buckets=FSYNC_BUCKETS,
            registry=registry,
        )
        self.auth_rejections = Counter(
            "logops_ingest_auth_rejected_total",
            "Pushes refused by the signature check (only with keys), by reason.",
            ["reason"],
            registry=registry,
        )
        for field in ("ts", "level"):
            for reason in ("absent", "invalid"):
                self.missing.labels(field, reason)
        for reason in AUTH_REASONS:
            self.auth_rejections.labels(reason)

    # IngestObserver
    def request_done(self, front: str, code: str, seconds: float | None, records: int) -> None:
        self.requests.labels(front, code).inc()
        if seconds is not None:
            self.latency.labels(front).observe(seconds)
        if code == "OK":
            self.batch_size.labels(front).observe(records)

    def inflight(self, front: str, delta: int) -> None:
        self.in_flight.labels(front).inc(delta)

    def batch_stored(self, emitter: str, nb: NormalisedBatch) -> None:
        label = self.emitter_label(emitter)
        for level, count in nb.level_counts.items():
            self.accepted.labels(label, level).inc(count)
        for rejection in nb.rejections:
            self.rejected.labels(rejection.reason).inc()
        m = nb.missing
        for field, reason, count in (
            ("ts", "absent", m.ts_absent),
            ("ts", "invalid", m.ts_invalid),
            ("level", "absent", m.level_absent),
            ("level", "invalid", m.level_invalid),
        ):
            if count:
                self.missing.labels(field, reason).inc(count)

    def duplicate(self) -> None:
        self.duplicates.inc()

    def auth_rejected(self, reason: str) -> None:
        # Reasons come from the errors table, a fixed set: no client text becomes a label.
        self.auth_rejections.labels(reason).inc()

    # SinkObserver
    def sink_written(self, nbytes: int) -> None:
        self.sink_bytes.inc(nbytes)

    def sink_error(self) -> None:
        self.sink_errors.inc()

    def sink_fsync(self, seconds: float) -> None:
        self.fsync_seconds.observe(seconds)
