"""Builds the Ingest Gateway from its config: core, sink, metrics, both fronts and the
syslog listener.

The one place where the pieces meet. ``IngestGateway.start()`` binds the fronts (and the
syslog listener's TCP and UDP ports, unless ``syslog.enabled`` is false) and announces
the addresses (and whether pushes are verified) in a JSON log line; ``stop()``
drains them within the grace period and closes the sink. With keys (``keys``, or the file
``cfg.keys_file``) every push must carry a LOGOPS1-HMAC-SHA256 signature of one of them.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from services.common.config import IngestConfig
from services.common.fronts import SERVICE_NAME, BoundAddresses
from services.common.gateway_watch import GatewayWatch
from services.common.http_server import HttpServer
from services.common.keys import KeyRing, load_keys_file
from services.common.nonces import MemoryNonceStore
from services.common.signing import Verifier
from services.ingest.core import IngestCore
from services.ingest.grpc_front import create_grpc_server
from services.ingest.housekeeping import HousekeepingScheduler
from services.ingest.http_front import create_http_app
from services.ingest.metrics import IngestMetrics
from services.ingest.sink import NdjsonSink
from services.ingest.syslog.listener import SyslogListener
from services.ingest.syslog.server import SyslogAddresses

log = logging.getLogger(__name__)



def build_verifier(cfg: IngestConfig, keys: KeyRing | None) -> Verifier | None:
    """The signature check for ``keys``, else for ``cfg.keys_file``; None when neither: open.

    A keys file that cannot be read or is invalid raises ``ConfigError`` naming it.
    """
    if keys is None and cfg.keys_file:
        keys = load_keys_file(cfg.keys_file)
    if keys is None:
        return None
    return Verifier(keys, MemoryNonceStore())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name that may resolve anywhere, or "" (every address)


class IngestGateway:
    """``on_failure`` is called (once) when a front stops serving on its own: the gateway
    is then not ready on either front, and whoever runs it should stop it. ``keys``, when
    given, are the keys whose signatures it accepts (instead of ``cfg.keys_file``)."""

    def __init__(
        self,
        cfg: IngestConfig,
        registry: CollectorRegistry | None = None,
        on_failure: Callable[[], None] | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        self.cfg = cfg
        self.registry = registry or CollectorRegistry()
        self.metrics = IngestMetrics(self.registry)
        self.sink = NdjsonSink(cfg.sink, observer=self.metrics)
        self.core = IngestCore(
            cfg, self.sink, self.metrics, verifier=build_verifier(cfg, keys)
        )
        self._housekeeping: HousekeepingScheduler | None = None
        self._stopping = threading.Event()
        self._watch = GatewayWatch(self.core, SERVICE_NAME, self._stopping, on_failure)
        self.addresses: BoundAddresses | None = None
        self.syslog: SyslogListener | None = None
        # The syslog listener's TCP and UDP ports; None when it is turned off.
        self.syslog_addresses: SyslogAddresses | None = None

    @property
    def failure(self) -> str | None:
        """Why the gateway failed (a front stopped serving), or None."""
        return self._watch.failure

    def start(self) -> BoundAddresses:
        self.core.start()
        if self.cfg.syslog.enabled:
            # Bound first: a syslog port in use fails the start before any front serves.
            self.syslog = SyslogListener(
                self.core, self.cfg.syslog, self.registry, self.metrics, self._watch.front_died
            )
            self.syslog_addresses = self.syslog.bind()
        self._grpc, grpc_port, self._health = create_grpc_server(self.core, self.cfg)
        self.http_app = create_http_app(self.core, self.registry)
        self._http = HttpServer(
            self.http_app,
            self.cfg.http,
            self.cfg.http_threads,
            self.cfg.limits,
            self.cfg.connections,
            on_died=self._watch.front_died,
            on_refused=self.core.refusal_counter("http"),
        )
        self._grpc.start()
        self._http.start()
        if self.syslog is not None:
            self.syslog.start()
        self._watch.start(self._health)
        hk = self.cfg.housekeeping
        if hk.interval_sec > 0:
            self._housekeeping = HousekeepingScheduler(
                self.cfg.sink.dir, hk.retention_days, hk.action, hk.interval_sec
            )
            self._housekeeping.start()
        self.addresses = BoundAddresses(
            self._http.host, self._http.port, self.cfg.grpc.host, grpc_port
        )
        self._announce(self.addresses)
        return self.addresses

    def _announce(self, addresses: BoundAddresses) -> None:
        verify = self.core.verifier is not None
        exposed = [h for h in (addresses.http_host, addresses.grpc_host) if not is_loopback(h)]
        syslog = self.syslog_addresses
        if syslog is not None and not is_loopback(syslog.host):
            log.warning(
                "syslog listener listens beyond loopback: syslog carries no signature, so "
                "anyone who reaches it can store records",
                extra={"event": "unverified_exposed", "hosts": [syslog.host]},
            )
        if exposed and not verify:
            # Before the listening line, so whoever waits for that has seen this too.
            log.warning(
                "ingest gateway listens beyond loopback without keys: anyone who reaches "
                "it can push; give it the Auth Gateway's hop key (--keys-file)",
                extra={"event": "unverified_exposed", "hosts": sorted(set(exposed))},
            )
        log.info(
            "ingest gateway listening",
            extra={
                "event": "listening",
                "service": "ingest",
                "http": addresses.http_url,
                "grpc": addresses.grpc_target,
                # host:port of each, or None when the listener is off (--no-syslog).
                "syslog_tcp": syslog.tcp_target if syslog else None,
                "syslog_udp": syslog.udp_target if syslog else None,
                "sink_dir": self.cfg.sink.dir,
                "durability": self.cfg.sink.durability,
                # False: the C hot path was not built; the Python one is slower.
                "native": self.core.native,
                # False: unsigned pushes are stored (no keys); fine on loopback only.
                "verify": verify,
            },
        )

    def stop(self, grace: float | None = None) -> None:
        if self._stopping.is_set():
            return
        grace = self.cfg.shutdown_grace_sec if grace is None else grace
        log.info("ingest gateway stopping", extra={"event": "stopping", "grace_sec": grace})
        self._stopping.set()
        self._health.enter_graceful_shutdown()
        grpc_done = self._grpc.stop(grace)
        if self.syslog is not None:
            # Stops accepting and reading, then stores every message read before the sink closes.
            self.syslog.stop(grace)
        self._http.stop(grace)
        grpc_done.wait(grace + 1)
        if self._housekeeping is not None:
            self._housekeeping.stop()
        self.core.close()
        log.info("ingest gateway stopped", extra={"event": "stopped"})
