"""The syslog listener as the gateway runs it: reader, hand-off, batchers and metrics.

``bind()`` takes the ports (so a port in use fails the gateway's start before any other
front serves), ``start()`` starts the threads, ``stop(grace)`` stops accepting, reads what
the connections still hold, and stores every message read (within the grace period).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.common.config import SyslogConfig
from services.ingest.core import IngestCore
from services.ingest.syslog.batcher import Batcher, DiedCallback, RequestObserver
from services.ingest.syslog.handoff import Handoff
from services.ingest.syslog.metrics import SyslogMetrics
from services.ingest.syslog.server import SyslogAddresses, SyslogServer


class SyslogListener:
    def __init__(
        self,
        core: IngestCore,
        cfg: SyslogConfig,
        registry: CollectorRegistry,
        requests: RequestObserver,
        on_died: DiedCallback | None = None,
    ) -> None:
        self.cfg = cfg
        self.handoff = Handoff(cfg.max_pending)
        self.metrics = SyslogMetrics(registry, lambda: self.handoff.pending)
        self.server = SyslogServer(cfg, self.handoff, self.metrics, on_died)
        self.batcher = Batcher(core, self.handoff, cfg, requests, self.metrics, on_died)
        self.addresses: SyslogAddresses | None = None

    def bind(self) -> SyslogAddresses:
        self.addresses = self.server.bind()
        return self.addresses

    def start(self) -> None:
        self.batcher.start()
        self.server.start()

    def stop(self, grace: float) -> None:
        self.server.stop(grace)
        self.batcher.join(grace)
