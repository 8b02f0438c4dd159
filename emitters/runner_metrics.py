"""The scenario runner's own metrics (``--metrics-port P``): records sent, late, failed and
rejected by emitter, on a registry of its own, served over HTTP for Prometheus to scrape.

Emitter names come from the scenario file (a bounded set per run); rejection reasons from
the gateways' fixed set.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, start_http_server

from emitters.run_account import Counts


class RunnerMetrics:
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

    def __call__(self, emitter: str, one: Counts) -> None:
        self.sent.labels(emitter).inc(one.sent)
        self.accepted.labels(emitter).inc(one.accepted)
        self.late.labels(emitter).inc(one.late)
        self.failed.labels(emitter).inc(one.failed)
        for reason, n in one.rejected_by_reason.items():
            self.rejected.labels(emitter, reason).inc(n)


def serve_metrics(port: int, addr: str = "127.0.0.1") -> Callable[[str, Counts], None]:
    """Start serving on ``port``; the callback the runner calls after each send."""
    registry = CollectorRegistry()
    metrics = RunnerMetrics(registry)
    start_http_server(port, addr=addr, registry=registry)
    return metrics
