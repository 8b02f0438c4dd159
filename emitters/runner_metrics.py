"""The scenario runner's own metrics (``--metrics-port P``): records sent, late, failed and
rejected by emitter, and each emitter's current target rate, on a registry of its own,
served over HTTP for Prometheus to scrape.

Emitter names come from the scenario file (a bounded set per run); rejection reasons from
the gateways' fixed set.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from emitters.run_account import Counts


class RunnerMetrics:
    """``self(emitter, counts)`` after each send; :meth:`set_target` as the schedule's rate
    changes (the runner calls it with 0 before the start and after the end)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, ("emitter", *labels), registry=registry)

        self.sent = counter("logops_emitter_sent_records_total", "Records handed to a transport")
        self.accepted = counter("logops_emitter_accepted_records_total",
                                "Records the far end acknowledged")
        self.late = counter("logops_emitter_late_records_total",
                            "Records sent behind their planned time")
        self.failed = counter("logops_emitter_failed_records_total",
                              "Records without an answer")
        self.rejected = counter("logops_emitter_rejected_records_total",
                                "Records the far end refused", "reason")
        self.target = Gauge("logops_emitter_target_records_per_second",
                            "The schedule's current target rate (0 before the start and "
                            "after the end)", ("emitter",), registry=registry)

    def __call__(self, emitter: str, one: Counts) -> None:
        self.sent.labels(emitter).inc(one.sent)
        self.accepted.labels(emitter).inc(one.accepted)
        self.late.labels(emitter).inc(one.late)
        self.failed.labels(emitter).inc(one.failed)
        for reason, n in one.rejected_by_reason.items():
            self.rejected.labels(emitter, reason).inc(n)

    def set_target(self, emitter: str, eps: float) -> None:
        self.target.labels(emitter).set(eps)


def serve_metrics(port: int, addr: str = "127.0.0.1") -> RunnerMetrics:
    """Start serving on ``port``; the metrics the runner updates (pass the object as
    ``RunOptions.on_send`` and its :meth:`~RunnerMetrics.set_target` as ``on_target``)."""
    registry = CollectorRegistry()
    metrics = RunnerMetrics(registry)
    start_http_server(port, addr=addr, registry=registry)
    return metrics
