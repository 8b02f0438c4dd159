"""The Ingest Gateway's core: every decision about a push, whichever front carried it.

The fronts describe a request as an :class:`IncomingPush` (how to read its body, how to
decode it, what its signature covers) and call :meth:`IngestCore.handle`; the core admits
it (in-flight cap), verifies its signature when it has keys, validates it (limits, names),
normalises it, stores it in the NDJSON sink exactly once, and reports the outcome. Imports
only the standard library and the project's own model: no gRPC, Falcon or Prometheus here.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from services.common.admission import InflightSlots
from services.common.config import IngestConfig
from services.common.errors import (
    BadRequest,
    LogOpsError,
    TooLarge,
    Unauthenticated,
    Unavailable,
)
from services.common.keys import ApiKey
from services.common.model import Batch, MissingCounts, PushResult
from services.common.signing import Headers, Verifier
from services.ingest.native import make_normaliser
from services.ingest.normalize import NormalisedBatch
from services.ingest.sink import NdjsonSink, SinkError, StoredBatch

log = logging.getLogger(__name__)

MAX_ID_LEN = 128
MAX_NAME_LEN = 64


class IngestObserver(Protocol):
    """What the core reports; implemented with prometheus_client in ``metrics.py``."""

    # seconds: None for a request refused before it was timed (no latency sample).
    def request_done(self, front: str, code: str, seconds: float | None, records: int) -> None: ...
    def inflight(self, front: str, delta: int) -> None: ...
    def batch_stored(self, emitter: str, nb: NormalisedBatch) -> None: ...
    def duplicate(self) -> None: ...
    def auth_rejected(self, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class IncomingPush:
    """A push as a front received it; the core decides what happens in which order.

    ``read`` returns the body exactly as it arrived, within the size limit (HTTP: still
    compressed; gRPC: the raw request message); ``decode`` turns those bytes into a batch.
    ``headers`` (lowercase names; HTTP headers or gRPC metadata) and ``media_type`` (lowercase,
    no parameters) are what a signature covers.
    """

    read: Callable[[], bytes]
    decode: Callable[[bytes], Batch]
    headers: Headers = ()
    media_type: str = ""


class IngestCore:
    """Owns admission, verification, validation, normalisation and storage for the Ingest
    Gateway. Without a ``verifier`` every push is taken unsigned (loopback use)."""

    def __init__(
        self,
        cfg: IngestConfig,
        sink: NdjsonSink,
        observer: IngestObserver,
        clock: Callable[[], float] = time.time,
        verifier: Verifier | None = None,
    ) -> None:
        self.cfg = cfg
        self.verifier = verifier
        self.limits = cfg.limits
        self._sink = sink
        self._observer = observer
        self._clock = clock
        self._normaliser = make_normaliser(cfg.pii, cfg.limits.max_record_bytes)
        self._slots = InflightSlots(
            cfg.limits.max_inflight, cfg.limits.retry_after_sec, observer.inflight
        )
        self._failure: str | None = None

    def start(self) -> None:
        self._sink.open()

    def close(self) -> None:
        self._sink.close()

    def readiness(self) -> str | None:
        """None when ready to accept pushes, else why not."""
        return self._failure or self._sink.check_writable()

    def fail(self, problem: str) -> None:
        """Not ready for good (a front stopped serving): the process is about to stop."""
        self._failure = problem

    def refusal_counter(self, front: str) -> Callable[[LogOpsError], None]:
        """For refusals a front's server makes before the core sees the request (over
        its in-flight cap, a deadline missed, bad framing): counted as ``handle`` counts."""

        def refused(exc: LogOpsError) -> None:
            # Refused before it was timed: counted, but no latency sample (a request
            # ended for a late message waited its whole body timeout, not 0 s).
            self._observer.request_done(front, exc.code, None, 0)

        return refused

    def check_ready(self) -> None:
        """Raise the same 503 a push would get while the sink cannot be written."""
        problem = self.readiness()
        if problem is not None:
            raise Unavailable(
                problem, reason="sink_unavailable", retry_after=self.limits.retry_after_sec
            )

    def check_body_size(self, nbytes: int | None) -> None:
        """Refuse a declared body size over the cap before anything is read."""
        if nbytes is not None and nbytes > self.limits.max_body_bytes:
            raise TooLarge(
                f"body of {nbytes} bytes exceeds the limit of {self.limits.max_body_bytes}"
            )

    @property
    def native(self) -> bool:
        """Whether records go through the C hot path."""
        return self._normaliser.native

    def wire_batch(self, body: bytes, request: bool) -> Batch | None:
        """A protobuf body as a batch left serialized for the C path, or None: decode it."""
        return self._normaliser.wire_batch(body, request)

    def json_batch(self, body: bytes) -> Batch | None:
        """A JSON body as a batch left undecoded for the C path, or None: decode it."""
        return self._normaliser.json_batch(body)

    def handle(self, front: str, request_id: str, incoming: IncomingPush) -> PushResult:
        """Admit, verify, read and decode (front-specific), and store one push.

        Every outcome, success or error, is counted once here, by front and code.
        """
        started = time.perf_counter()
        code, records = "OK", 0
        try:
            with self._slots.admitted(front):
                batch = self._receive(incoming)
                records = batch.count()
                return self.push(batch, request_id)
        except LogOpsError as exc:
            code = exc.code
            raise
        except Exception:
            code = "INTERNAL"
            raise
        finally:
            self._observer.request_done(front, code, time.perf_counter() - started, records)

    def _receive(self, incoming: IncomingPush) -> Batch:
        if self.verifier is None:
            return incoming.decode(incoming.read())
        key, body = self._verified_body(self.verifier, incoming)
        batch = incoming.decode(body)
        if not key.forwarder:
            # A client key speaks for its own emitter, whatever the body claims; a
            # forwarder (the Auth Gateway's hop) carries other emitters' batches.
            batch.emitter = key.emitter
        return batch

    def _verified_body(self, verifier: Verifier, incoming: IncomingPush) -> tuple[ApiKey, bytes]:
        """Cheapest first: headers, key and clock (nothing read yet), the size limit (in
        ``read``), then hash, signature and nonce over the exact bytes received."""
        try:
            signed = verifier.check_headers(incoming.headers, incoming.media_type)
            body = incoming.read()
            key = verifier.check_body(signed, body)
        except Unauthenticated as exc:
            self._observer.auth_rejected(exc.reason)
            raise
        return key, body

    def push(self, batch: Batch, request_id: str = "") -> PushResult:
        self._validate(batch)
        stored = self._sink.lookup(batch.batch_id)
        if stored is not None:
            return self._duplicate(batch, stored, request_id)
        nb = self._normaliser.normalise_batch(batch, int(self._clock() * 1000))
        m = nb.missing
        summary = StoredBatch(
            nb.accepted,
            len(nb.rejections),
            (m.ts_absent, m.ts_invalid, m.level_absent, m.level_invalid),
        )
        try:
            earlier = self._sink.append(batch.batch_id, nb.data, summary)
        except SinkError as exc:
            log.error(
                "sink write failed; batch not acknowledged",
                extra={"event": "sink_error", "error": str(exc)},
            )
            raise Unavailable(
                "the log sink cannot be written; nothing was stored, retry later",
                reason="sink_unavailable",
                retry_after=self.limits.retry_after_sec,
            ) from exc
        if earlier is not None:
            return self._duplicate(batch, earlier, request_id)
        self._observer.batch_stored(batch.emitter, nb)
        return PushResult(
            batch_id=batch.batch_id,
            accepted=nb.accepted,
            rejected=len(nb.rejections),
            rejections=nb.rejections,
            missing=nb.missing,
            request_id=request_id,
        )

    def _duplicate(self, batch: Batch, stored: StoredBatch, request_id: str) -> PushResult:
        """The original answer again, without the per-record rejection details (not kept)."""
        self._observer.duplicate()
        return PushResult(
            batch_id=batch.batch_id,
            accepted=stored.accepted,
            rejected=stored.rejected,
            duplicate=True,
            missing=MissingCounts(*stored.missing),
            request_id=request_id,
        )

    def _validate(self, batch: Batch) -> None:
        if batch.count() > self.limits.max_records:
            raise TooLarge(
                f"batch of {batch.count()} records exceeds the limit of "
                f"{self.limits.max_records}",
                reason="too_many_records",
            )
        if not batch.batch_id:
            # Without a client id there is no idempotency; the id still names the batch.
            batch.batch_id = "gw-" + uuid.uuid4().hex
        _check_name("batch_id", batch.batch_id, MAX_ID_LEN)
        _check_name("emitter", batch.emitter, MAX_NAME_LEN)
        _check_name("scenario_id", batch.scenario_id, MAX_ID_LEN)
        _check_name("run_id", batch.run_id, MAX_ID_LEN)


def _check_name(key: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise BadRequest(f"{key} is longer than {limit} characters")
    if value and not (value.isascii() and value.isprintable()):
        raise BadRequest(f"{key} must be printable ASCII")
