"""Builds the Auth Gateway from its config: replay and rate state, verifier, forwarder, spool,
core, metrics and both fronts.

The one place where the pieces meet. ``AuthGateway.start()`` opens the spool, binds both
fronts and announces the addresses in a JSON log line; ``stop()`` drains the fronts
within the grace period, then closes the core (its drainer, the forwarder and the spool)
and the Redis client.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from services.auth.breaker import ForwardBreaker
from services.auth.core import AuthCore
from services.auth.forwarder import Forwarder, Signer
from services.auth.grpc_front import create_grpc_server
from services.auth.http_front import create_http_app
from services.auth.metrics import AuthMetrics
from services.auth.pb_facts import push_request_facts as pb_push_request_facts
from services.auth.ratelimit import MemoryRateLimiter, Rate, RateLimiter, RedisRateLimiter
from services.auth.spool import Spool
from services.common.config import AuthConfig, ConfigError, RateConfig
from services.common.fronts import SERVICE_NAME, BoundAddresses
from services.common.gateway_watch import GatewayWatch
from services.common.http_server import HttpServer
from services.common.keys import MIN_SECRET_BYTES, KeyRing
from services.common.nonces import MemoryNonceStore, RedisNonceStore
from services.common.signing import NonceStore, Verifier, sign_headers

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["AuthGateway", "BoundAddresses"]

log = logging.getLogger(__name__)

# A Redis that does not answer within this fails the request (503), not the thread.
REDIS_TIMEOUT_SEC = 2.0


def rate_of(cfg: RateConfig, where: str) -> Rate | None:
    """A configured rate; 0 per second is no limit, a burst of 0 one second's worth."""
    if cfg.per_sec <= 0:
        return None
    try:
        return Rate(cfg.per_sec, cfg.burst or max(1, math.ceil(cfg.per_sec)))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _spool(cfg: AuthConfig) -> Spool:
    spool = cfg.spool
    try:
        return Spool(spool.dir, spool.max_bytes, spool.max_batches, spool.durability)
    except ValueError as exc:
        raise ConfigError(f"auth.spool: {exc}") from None


def hop_signer(key_id: str, secret_file: str) -> Signer | None:
    """Signs the hop to Ingest with the gateway's own key; None when no key is set."""
    if not key_id:
        return None
    if not secret_file:
        raise ConfigError("auth.forward.secret_file: required when auth.forward.key_id is set")
    try:
        # The file's text without its final line break, as `logops sign` reads it.
        secret = Path(secret_file).read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError(f"auth.forward.secret_file: cannot read {secret_file}: {exc}") from exc
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"auth.forward.secret_file: the secret is shorter than {MIN_SECRET_BYTES} bytes"
        )
    try:
        sign_headers((key_id, secret), b"", "application/json")
    except ValueError as exc:
        raise ConfigError(f"auth.forward.key_id: {exc}") from None

    def sign(body: bytes, media_type: str) -> Mapping[str, str]:
        return sign_headers((key_id, secret), body, media_type)

    return sign


class AuthGateway:
    """``keys`` is required in mode ``hmac``. ``on_failure`` is called (once) when a front
    stops serving on its own: the gateway is then not ready on either front, and whoever
    runs it should stop it."""

    def __init__(
        self,
        cfg: AuthConfig,
        keys: KeyRing | None,
        registry: CollectorRegistry | None = None,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        if cfg.mode == "hmac" and not keys:
            raise ConfigError(
                "auth.mode is hmac but no keys were given: use --keys-file F, "
                "LOGOPS_AUTH_KEYS_FILE or LOGOPS_AUTH_KEYS (or --mode none for local use)"
            )
        self.cfg = cfg
        self.registry = registry or CollectorRegistry()
        self.metrics = AuthMetrics(self.registry)
        self._redis = _redis_client(cfg.redis) if cfg.redis else None
        self.breaker = ForwardBreaker(cfg.forward.breaker_fail_max, cfg.forward.breaker_reset_sec)
        self.forwarder = self._forwarder()
        self.spool = _spool(cfg)
        self.metrics.spool_limits(cfg.spool.max_batches, cfg.spool.max_bytes)
        self.core = AuthCore(
            cfg,
            self._verifier(keys),
            self._limiter(),
            self.forwarder,
            self.spool,
            self.metrics,
            breaker_state=lambda: self.breaker.state,
            wire_facts=pb_push_request_facts,
        )
        self._grpc_bound = False
        self._stopping = threading.Event()
        self._watch = GatewayWatch(self.core, SERVICE_NAME, self._stopping, on_failure)
        self.addresses: BoundAddresses | None = None

    def _forwarder(self) -> Forwarder:
        fwd = self.cfg.forward
        try:
            return Forwarder(
                fwd.target,
                hop_signer(fwd.key_id, fwd.secret_file),
                fwd.attempt_timeout_sec,
                fwd.max_attempts,
                fwd.backoff_base_sec,
                fwd.backoff_max_sec,
                self.breaker,
                observer=self.metrics,
            )
        except ValueError as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"auth.forward: {exc}") from None

    def _verifier(self, keys: KeyRing | None) -> Verifier | None:
        if self.cfg.mode == "none" or keys is None:
            return None
        nonces: NonceStore = (
            RedisNonceStore(self._redis) if self._redis is not None else MemoryNonceStore()
        )
        try:
            return Verifier(
                keys,
                nonces,
                max_skew_sec=self.cfg.max_clock_skew_sec,
                nonce_ttl_sec=self.cfg.nonce_ttl_sec,
            )
        except ValueError as exc:
            raise ConfigError(f"auth.nonce_ttl_sec: {exc}") from None

    def _limiter(self) -> RateLimiter:
        requests = rate_of(self.cfg.requests_per_key, "auth.requests_per_key")
        global_records = rate_of(self.cfg.global_records, "auth.global_records")
        if self._redis is not None:
            return RedisRateLimiter(self._redis, requests=requests, global_records=global_records)
        return MemoryRateLimiter(requests=requests, global_records=global_records)

    @property
    def failure(self) -> str | None:
        """Why the gateway failed (a front stopped serving), or None."""
        return self._watch.failure

    def start(self) -> BoundAddresses:
        self.core.start()
        try:
            self._grpc, grpc_port, self._health = create_grpc_server(self.core, self.cfg)
            self._grpc_bound = True
            self.http_app = create_http_app(self.core, self.registry, self.cfg.mode)
            self._http = HttpServer(
                self.http_app,
                self.cfg.http,
                self.cfg.http_threads,
                self.cfg.limits,
                self.cfg.connections,
                on_died=self._watch.front_died,
                on_refused=self.core.refusal_counter("http"),
            )
        except BaseException:
            if self._grpc_bound:
                self._grpc.stop(None)
            self._close_backends()
            raise
        self._grpc.start()
        self._http.start()
        self._watch.start(self._health)
        self.addresses = BoundAddresses(
            self._http.host, self._http.port, self.cfg.grpc.host, grpc_port
        )
        self._announce(self.addresses)
        return self.addresses

    def _announce(self, addresses: BoundAddresses) -> None:
        # The warning comes first: whoever waits for the listening line has seen it too.
        if self.cfg.mode == "none":
            log.warning(
                "AUTH MODE NONE: every push is accepted UNSIGNED and forwarded, with no "
                "signature or replay check and one rate limit for all. For local use only.",
                extra={"event": "auth_disabled", "mode": "none"},
            )
        log.info(
            "auth gateway listening",
            extra={
                "event": "listening",
                "service": "auth",
                "http": addresses.http_url,
                "grpc": addresses.grpc_target,
                "forward": self.cfg.forward.target,
                "mode": self.cfg.mode,
                "redis": self._redis is not None,
                "spool_dir": self.cfg.spool.dir,
                "hop_signed": bool(self.cfg.forward.key_id),
            },
        )

    def stop(self, grace: float | None = None) -> None:
        if self._stopping.is_set():
            return
        grace = self.cfg.shutdown_grace_sec if grace is None else grace
        log.info("auth gateway stopping", extra={"event": "stopping", "grace_sec": grace})
        self._stopping.set()
        self._health.enter_graceful_shutdown()
        grpc_done = self._grpc.stop(grace)
        self._http.stop(grace)
        grpc_done.wait(grace + 1)
        self._close_backends()
        log.info("auth gateway stopped", extra={"event": "stopped"})

    def _close_backends(self) -> None:
        self.core.close()  # its drainer, the forwarder and the spool
        if self._redis is not None:
            self._redis.close()


def _redis_client(url: str) -> Redis:
    """One client (a connection pool) for nonces and rate limits; connects lazily, so a
    Redis still starting makes requests 503, not the gateway fail to start."""
    import redis

    options: dict[str, Any] = {
        "socket_timeout": REDIS_TIMEOUT_SEC,
        "socket_connect_timeout": REDIS_TIMEOUT_SEC,
    }
    try:
        return redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise ConfigError(f"auth.redis: {exc}") from None
