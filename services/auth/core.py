"""The Auth Gateway's core: every decision about a push, whichever front carried it.

A push is admitted (in-flight cap), authenticated cheapest first (signature headers and
clock skew, the size limit, then body hash, signature and nonce), read for its batch id,
emitter and record count, rate limited per key, given the key's emitter and a batch id
if it has none, and forwarded to the Ingest Gateway. When Ingest cannot take it (breaker
open, retries spent) it goes to the durable spool and the client hears ``spooled``; a
drainer thread delivers the spool, oldest first, once Ingest is back. Imports only the
standard library and the project's own model: the forwarder and spool come in as ports.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

import orjson

from services.auth.inspect import (
    WireFacts,
    json_facts,
    line_count,
    load_json,
    log_batch_facts,
    log_batch_names,
    push_request_facts,
    push_request_names,
    push_request_of,
)
from services.auth.model import AuthOutcome, AuthRequest, Payload, RateInfo
from services.auth.ratelimit import Decision, Rate, RateLimiter
from services.auth.spool import Spool, SpooledBatch
from services.common.admission import InflightSlots
from services.common.codecs import decode_body, decompress, media_kind
from services.common.config import AuthConfig
from services.common.errors import (
    LogOpsError,
    RateLimited,
    TooLarge,
    Unavailable,
)
from services.common.keys import ApiKey
from services.common.model import Batch, PushResult
from services.common.signing import Verifier

log = logging.getLogger(__name__)

# The batch headers a client may send with a body that has no envelope of its own.
META_HEADERS = {
    "batch_id": "x-logops-batch-id",
    "emitter": "x-logops-emitter",
    "scenario_id": "x-logops-scenario-id",
    "run_id": "x-logops-run-id",
    "format": "x-logops-format",
}
# Refusals counted in logops_auth_rejected_total (PRODUCT.md section 4).
AUTH_REASONS = frozenset(
    {
        "missing_auth", "unknown_key", "clock_skew", "bad_content_hash", "bad_signature",
        "replay", "rate_limited", "too_large", "too_many_records", "overloaded", "bad_request",
    }
)
ANONYMOUS = "anonymous"
DRAIN_BATCH = 64
DRAIN_IDLE_SEC = 0.5


class AuthObserver(Protocol):
    """What the core reports; implemented with prometheus_client in ``metrics.py``."""

    # seconds: None for a request refused before it was timed (no latency sample).
    def request_done(self, front: str, code: str, seconds: float | None, records: int) -> None: ...
    def inflight(self, front: str, delta: int) -> None: ...
    def rejected(self, reason: str) -> None: ...
    def spool_depth(self, batches: int, nbytes: int) -> None: ...


class Forwarding(Protocol):
    def forward(self, payload: Payload, deadline: float) -> PushResult: ...
    def close(self) -> None: ...


class AuthCore:
    """Owns admission, authentication, limits, forwarding and spooling for the Auth Gateway."""

    def __init__(
        self,
        cfg: AuthConfig,
        verifier: Verifier | None,
        limiter: RateLimiter,
        forwarder: Forwarding,
        spool: Spool,
        observer: AuthObserver,
        breaker_state: Callable[[], str],
        clock: Callable[[], float] = time.monotonic,
        wire_facts: Callable[[bytes], WireFacts] = push_request_facts,
    ) -> None:
        """``wire_facts`` reads a PushRequest's batch id, emitter and record count; the
        wiring gives a faster one than this module's pure-Python reference."""
        self.cfg = cfg
        self.limits = cfg.limits
        self._verifier = verifier
        self._limiter = limiter
        self._forwarder = forwarder
        self._spool = spool
        self._observer = observer
        self._breaker_state = breaker_state
        self._clock = clock
        self._wire_facts = wire_facts
        self._slots = InflightSlots(
            cfg.limits.max_inflight, cfg.limits.retry_after_sec, observer.inflight
        )
        rate = cfg.records_per_key
        self._default_rate = Rate(rate.per_sec, max(1, rate.burst)) if rate.per_sec > 0 else None
        self._failure: str | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._drainer = threading.Thread(target=self._drain_loop, name="spool-drain", daemon=True)

    # -- lifecycle and readiness -------------------------------------------------------

    def start(self) -> None:
        self._spool.open()
        self._report_depth()
        self._drainer.start()

    def close(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._drainer.is_alive():
            self._drainer.join(timeout=5)
        self._forwarder.close()
        self._spool.close()

    def readiness(self) -> str | None:
        """None when a push can be taken: Ingest reachable (breaker not open) or the
        spool usable; else why not."""
        if self._failure is not None:
            return self._failure
        if self._breaker_state() != "open":
            return None
        problem = self._spool.is_usable()
        return None if problem is None else f"ingest unreachable and spool unusable: {problem}"

    def check_ready(self) -> None:
        problem = self.readiness()
        if problem is not None:
            raise Unavailable(
                problem, reason="downstream_unavailable", retry_after=self.limits.retry_after_sec
            )

    def fail(self, problem: str) -> None:
        """Not ready for good (a front stopped serving): the process is about to stop."""
        self._failure = problem

    def refusal_counter(self, front: str) -> Callable[[LogOpsError], None]:
        """For refusals a front's server makes before the core sees the request."""

        def refused(exc: LogOpsError) -> None:
            self._count_refusal(exc)
            # Refused before it was timed: counted, but no latency sample (a request
            # ended for a late message waited its whole body timeout, not 0 s).
            self._observer.request_done(front, exc.code, None, 0)

        return refused

    # -- one push ----------------------------------------------------------------------

    def handle(self, req: AuthRequest) -> AuthOutcome:
        """Admit, authenticate, limit and forward (or spool) one push; every outcome is
        counted once here, by front and code."""
        started = time.perf_counter()
        code, records = "OK", 0
        try:
            with self._slots.admitted(req.front):
                outcome = self._push(req)
                records = outcome.result.accepted + outcome.result.rejected
                return outcome
        except LogOpsError as exc:
            code = exc.code
            self._count_refusal(exc)
            raise
        except Exception:
            code = "INTERNAL"
            raise
        finally:
            self._observer.request_done(req.front, code, time.perf_counter() - started, records)

    def _push(self, req: AuthRequest) -> AuthOutcome:
        key = self._authenticate(req)
        payload = self._payload(req, key)
        if payload.records > self.limits.max_records:
            raise TooLarge(
                f"batch of {payload.records} records exceeds the limit of "
                f"{self.limits.max_records}",
                reason="too_many_records",
            )
        rate = self._limit(key, payload.records)
        budget = self.cfg.forward.deadline_sec
        if req.timeout_sec is not None:
            budget = min(budget, req.timeout_sec)
        try:
            result = self._forwarder.forward(payload, self._clock() + budget)
        except Unavailable as exc:
            if exc.reason != "downstream_unavailable":
                raise
            result = self._spool_push(payload, exc)
        return AuthOutcome(replace(result, request_id=req.request_id), rate)

    def _authenticate(self, req: AuthRequest) -> ApiKey | None:
        if self._verifier is None:
            self._check_size(req.body)
            return None
        signed = self._verifier.check_headers(req.headers, req.media_type)
        self._check_size(req.body)
        return self._verifier.check_body(signed, req.body)

    def _check_size(self, body: bytes) -> None:
        if len(body) > self.limits.max_body_bytes:
            raise TooLarge(
                f"body of {len(body)} bytes exceeds the limit of {self.limits.max_body_bytes}"
            )

    def _limit(self, key: ApiKey | None, records: int) -> RateInfo | None:
        rate = self._rate_of(key)
        if rate is None:
            return None
        decision = self._limiter.check(
            key.key_id if key else ANONYMOUS, records, rate, _requests_rate(key)
        )
        info = RateInfo(
            decision.limit, decision.remaining, decision.reset_sec,
            decision.policy, decision.window_sec,
        )
        if decision.allowed:
            return info
        raise _refusal(decision, records, info)

    def _rate_of(self, key: ApiKey | None) -> Rate | None:
        if key is not None and key.records_per_sec:
            burst = key.burst or max(1, int(key.records_per_sec))
            return Rate(key.records_per_sec, max(burst, 1))
        return self._default_rate

    # -- what is forwarded -------------------------------------------------------------

    def _payload(self, req: AuthRequest, key: ApiKey | None) -> Payload:
        """The push as it goes to Ingest: the client's bytes, with the key's emitter and a
        batch id imposed (appended on the wire, or as headers); decoded only where the
        bytes cannot carry them or a gRPC hop needs the records."""
        if req.push_request:
            facts = self._wire_facts(req.body)
            batch_id = facts.batch_id or _new_batch_id()
            names = push_request_names(
                "" if facts.batch_id else batch_id, _imposed(key, facts.emitter)
            )
            return Payload.from_push_request(req.body + names, batch_id, facts.records)
        kind = media_kind(req.media_type)
        meta = {
            name: req.headers[header]
            for name, header in META_HEADERS.items()
            if req.headers.get(header)
        }
        if kind == "protobuf":
            return self._log_batch_payload(req, key, meta)
        return self._decoded_payload(req, key, kind, meta)

    def _log_batch_payload(
        self, req: AuthRequest, key: ApiKey | None, meta: dict[str, str]
    ) -> Payload:
        # Names can only be appended to the bytes undone of their compression. The batch
        # goes on inside a PushRequest, which both hops carry as it is (the HTTP hop takes
        # the batch out again); Ingest reads no batch headers beside a LogBatch.
        body = decompress(req.body, req.content_encoding or None, self.limits.max_body_bytes)
        facts = log_batch_facts(body)
        batch_id = facts.batch_id or meta.get("batch_id") or _new_batch_id()
        names = log_batch_names("" if facts.batch_id else batch_id, _imposed(key, facts.emitter))
        return Payload.from_push_request(push_request_of(body + names), batch_id, facts.records)

    def _decoded_payload(
        self, req: AuthRequest, key: ApiKey | None, kind: str, meta: dict[str, str]
    ) -> Payload:
        """A JSON, NDJSON, CSV or text body: read only as far as its names and record
        count (a gRPC hop decodes it fully later, through ``decoded``)."""
        plain = decompress(req.body, req.content_encoding or None, self.limits.max_body_bytes)
        facts = _text_facts(kind, plain, meta)
        body, encoding = req.body, req.content_encoding
        imposed = _imposed(key, facts.emitter or meta.get("emitter", ""))
        if imposed and facts.emitter:
            # The body names another emitter: only a re-encoded body can carry the key's.
            doc = load_json(plain)
            assert isinstance(doc, dict)  # a batch object: it names an emitter
            doc["emitter"] = imposed
            plain = orjson.dumps(doc)
            body, encoding = plain, ""
        meta = {**meta, "batch_id": facts.batch_id or meta.get("batch_id") or _new_batch_id()}
        if imposed:
            meta["emitter"] = imposed
        return Payload(
            body, req.media_type, content_encoding=encoding, meta=meta,
            batch_id=meta["batch_id"], records=facts.records,
            decoded=_decoder(kind, plain, meta),
        )

    # -- the spool ---------------------------------------------------------------------

    def _spool_push(self, payload: Payload, cause: Unavailable) -> PushResult:
        if not payload.push_request and media_kind(payload.media_type) == "json":
            # Its records were only skipped over (json_facts): before the client hears
            # "stored", make sure Ingest will read the body (orjson is the stricter reader,
            # of UTF-8 and numbers), so the spool never holds a batch Ingest must refuse.
            load_json(
                decompress(
                    payload.body, payload.content_encoding or None, self.limits.max_body_bytes
                )
            )
        meta = dict(payload.meta)
        if payload.push_request:
            meta["push_request"] = "1"
        self._spool.put(
            payload.batch_id, payload.media_type, payload.content_encoding, meta,
            payload.body, payload.records,
        )
        self._report_depth()
        self._wake.set()
        log.warning(
            "ingest unavailable; batch spooled for later delivery",
            extra={"event": "spooled", "batch_id": payload.batch_id, "cause": cause.message},
        )
        return PushResult(batch_id=payload.batch_id, spooled=True)

    def _drain_loop(self) -> None:
        """Deliver spooled batches, oldest first, while Ingest takes them."""
        while not self._stopping.is_set():
            try:
                delivered = self._drain_once()
            except Exception:
                log.exception("spool drain failed", extra={"event": "spool_drain_error"})
                delivered = 0
            if not delivered:
                self._wake.wait(DRAIN_IDLE_SEC)
                self._wake.clear()

    def _drain_once(self) -> int:
        delivered = 0
        for item in self._spool.peek(DRAIN_BATCH):
            if self._stopping.is_set():
                break
            deadline = self._clock() + self.cfg.forward.deadline_sec
            try:
                self._forwarder.forward(_payload_of(item, self.limits.max_body_bytes), deadline)
            except Unavailable as exc:
                if exc.reason == "downstream_unavailable":
                    break  # Ingest still away: try again later, in order
                self._refused_from_spool(item, exc)
            except LogOpsError as exc:
                self._refused_from_spool(item, exc)
            self._spool.ack(item.seq)
            delivered += 1
        if delivered:
            self._report_depth()
        return delivered

    def _refused_from_spool(self, item: SpooledBatch, exc: LogOpsError) -> None:
        # Ingest refused it for good (a client error): retrying cannot help; say so loudly.
        log.error(
            "spooled batch refused by ingest; dropped from the spool",
            extra={"event": "spool_refused", "batch_id": item.batch_id, "reason": exc.reason},
        )

    def _report_depth(self) -> None:
        self._observer.spool_depth(*self._spool.depth())

    # -- helpers -----------------------------------------------------------------------

    def _count_refusal(self, exc: LogOpsError) -> None:
        if exc.reason in AUTH_REASONS or exc.code == "UNAUTHENTICATED":
            self._observer.rejected(exc.reason)


def _refusal(decision: Decision, records: int, info: RateInfo) -> LogOpsError:
    if decision.exceeds_burst:
        exc: LogOpsError = TooLarge(
            f"a batch of {records} records is more than this key may send at once "
            f"({decision.limit}); split it",
            reason="too_many_records",
        )
    else:
        exc = RateLimited(
            f"rate limit reached; retry in {decision.retry_after_sec:.1f} s",
            retry_after=decision.retry_after_sec,
        )
    exc.rate = info  # type: ignore[attr-defined]  # read by both fronts for the RateLimit fields
    return exc


def _requests_rate(key: ApiKey | None) -> Rate | None:
    """The key's own requests/s limit, with one second's worth as its burst; ``None``
    leaves the gateway's ``requests_per_key``."""
    if key is None or not key.requests_per_sec:
        return None
    return Rate(key.requests_per_sec, max(1, math.ceil(key.requests_per_sec)))


def _imposed(key: ApiKey | None, claimed: str) -> str:
    """The emitter to append: the key's when it differs from what the body claims. A
    ``forwarder`` key (another gateway relaying other emitters' batches) keeps theirs."""
    if key is None or key.role == "forwarder" or claimed == key.emitter:
        return ""
    return key.emitter


def _new_batch_id() -> str:
    return "auth-" + uuid.uuid4().hex


def _text_facts(kind: str, plain: bytes, meta: Mapping[str, str]) -> WireFacts:
    if kind == "json":
        return json_facts(plain)
    if kind in ("ndjson", "text"):
        return WireFacts("", "", line_count(plain))
    return WireFacts("", "", decode_body(kind, plain, meta).count())  # csv: quoting


def _decoder(kind: str, plain: bytes, meta: Mapping[str, str]) -> Callable[[], Batch]:
    """Decodes the body as Ingest would, with the names the gateway imposed."""
    return lambda: decode_body(kind, plain, meta)


def _payload_of(item: SpooledBatch, limit: int) -> Payload:
    meta: Mapping[str, str] = item.meta
    if meta.get("push_request") == "1":
        return Payload.from_push_request(item.body, item.batch_id, item.records)
    kind = media_kind(item.media_type)
    plain = decompress(item.body, item.content_encoding or None, limit)
    if kind == "protobuf":  # a LogBatch spooled as it was before it went in a PushRequest
        return Payload.from_push_request(push_request_of(plain), item.batch_id, item.records)
    return Payload(
        item.body, item.media_type, content_encoding=item.content_encoding, meta=dict(meta),
        batch_id=item.batch_id, records=item.records, decoded=_decoder(kind, plain, meta),
    )

