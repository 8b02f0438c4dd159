"""Prometheus metrics of the Auth Gateway, created on an injected registry.

Implements the core's ``AuthObserver`` and the forwarder's ``ForwardObserver``. Every
label value comes from a closed set (fronts, the error table's codes and reasons, the
forwarder's outcomes, the breaker's states); anything else is counted as ``other``, so
no client input can add a series. The rejection reasons of the signature scheme and
the limits exist at 0 from the start, so an alert on their rate sees them at once.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.auth.breaker import STATES
from services.auth.forwarder import OUTCOMES
from services.common.errors import REASONS

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FRONTS = ("grpc", "http")
# The reasons an Auth Gateway refuses a push with (PRODUCT.md section 4), pre-created.
REJECT_REASONS = (
    "missing_auth",
    "unknown_key",
    "clock_skew",
    "bad_content_hash",
    "bad_signature",
    "replay",
    "rate_limited",
    "too_large",
    "too_many_records",
    "overloaded",
    "bad_request",
)
BREAKER_STATES = tuple(STATES.values())
_CODES = frozenset({"OK"} | {m.code for m in REASONS.values()})
_REASON_NAMES = frozenset(REASONS)
OTHER = "other"


def _bounded(value: str, known: frozenset[str] | tuple[str, ...]) -> str:
    return value if value in known else OTHER


class AuthMetrics:
    """All ``logops_auth_*`` series; one instance per process (or per test)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "logops_auth_requests_total",
            "Push requests by front and outcome code.",
            ["front", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "logops_auth_request_duration_seconds",
            "Time to answer a push, from admission to response (forwarding included).",
            ["front"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "logops_auth_inflight_requests",
            "Push requests being handled.",
            ["front"],
            registry=registry,
        )
        self.rejections = Counter(
            "logops_auth_rejected_total",
            "Pushes refused by the Auth Gateway itself, by reason.",
            ["reason"],
            registry=registry,
        )
        self._forward_metrics(registry)
        self._spool_metrics(registry)
        for reason in REJECT_REASONS:
            self.rejections.labels(reason)
        for front in FRONTS:
            self.in_flight.labels(front)

    def _forward_metrics(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "logops_auth_forward_attempts_total",
            "Attempts to hand a push to the Ingest Gateway, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "logops_auth_forward_attempt_seconds",
            "Duration of each attempt to hand a push to the Ingest Gateway.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.breaker = Gauge(
            "logops_auth_breaker_state",
            "State of the circuit breaker on the hop to Ingest: 1 for the current state.",
            ["state"],
            registry=registry,
        )
        self.breaker_is_open = Gauge(
            "logops_auth_breaker_open",
            "1 while the circuit breaker on the hop to Ingest is open, else 0.",
            registry=registry,
        )
        for outcome in OUTCOMES:
            self.attempts.labels(outcome)
        self.breaker_state("closed")

    def _spool_metrics(self, registry: CollectorRegistry) -> None:
        self.spool_batches = Gauge(
            "logops_auth_spool_batches",
            "Batches in the durable spool, waiting for delivery to Ingest.",
            registry=registry,
        )
        self.spool_bytes = Gauge(
            "logops_auth_spool_bytes",
            "Bytes of the batches in the durable spool.",
            registry=registry,
        )
        # The bounds beside the depth, so "near full" is a ratio of two series.
        self.spool_limit_batches = Gauge(
            "logops_auth_spool_limit_batches",
            "Configured bound on the batches the durable spool holds (a full spool answers 503).",
            registry=registry,
        )
        self.spool_limit_bytes = Gauge(
            "logops_auth_spool_limit_bytes",
            "Configured bound on the bytes the durable spool holds (a full spool answers 503).",
            registry=registry,
        )

    # AuthObserver
    def request_done(self, front: str, code: str, seconds: float | None, records: int) -> None:
        front = _bounded(front, FRONTS)
        self.requests.labels(front, _bounded(code, _CODES)).inc()
        if seconds is not None:
            self.latency.labels(front).observe(seconds)

    def inflight(self, front: str, delta: int) -> None:
        self.in_flight.labels(_bounded(front, FRONTS)).inc(delta)

    def rejected(self, reason: str) -> None:
        self.rejections.labels(_bounded(reason, _REASON_NAMES)).inc()

    def spool_depth(self, batches: int, nbytes: int) -> None:
        self.spool_batches.set(batches)
        self.spool_bytes.set(nbytes)

    def spool_limits(self, batches: int, nbytes: int) -> None:
        """The spool's configured bounds, set once at start-up."""
        self.spool_limit_batches.set(batches)
        self.spool_limit_bytes.set(nbytes)

    # ForwardObserver
    def attempt(self, outcome: str, seconds: float) -> None:
        self.attempts.labels(_bounded(outcome, OUTCOMES)).inc()
        self.attempt_seconds.observe(seconds)

    def breaker_state(self, state: str) -> None:
        """Runs under the breaker's lock: only sets gauges."""
        for name in BREAKER_STATES:
            self.breaker.labels(name).set(1 if name == state else 0)
        self.breaker_is_open.set(1 if state == "open" else 0)
