"""Groups received syslog messages into batches and stores them through the Ingest core.

Two threads in a pipeline: one takes ``batch_records`` messages from the :class:`Handoff`
(or what arrived within ``batch_delay_ms`` of the first; when more are waiting, all of
them up to the gateway's ``max_records``, so a backlog costs fewer fsyncs) and turns them
into records (:mod:`records`); the other stores each batch with :meth:`IngestCore.push`,
like any push: the same normalisation, PII masking, sink and metrics (``front="syslog"``).
So the next batch is parsed while the last one waits for its fsync, and batches are
stored in the order their messages were read (a sender's messages keep their order).
Idempotency does not apply: every batch gets a fresh id (``syslog-<random>-<n>``) that no
client can have used. While the sink cannot be written, the batch is retried (the reader
meanwhile stops reading, see ``handoff``); what is still unstored when the grace period of
a stop is over is counted as lost (``logops_ingest_syslog_dropped_total{reason=
"unavailable"}``).
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from services.common.config import SyslogConfig
from services.common.errors import LogOpsError, Unavailable
from services.common.model import Batch
from services.ingest.core import IngestCore
from services.ingest.syslog.handoff import Handoff, Item
from services.ingest.syslog.records import RecordBuilder

log = logging.getLogger(__name__)

FRONT = "syslog"
EMITTER = "syslog"
# How long to wait before storing a refused batch again, at most.
MAX_RETRY_SEC = 1.0
# Batches parsed ahead of the one being stored.
READY_BATCHES = 2

DiedCallback = Callable[[str, BaseException | None], None]


class DropObserver(Protocol):
    def dropped(self, reason: str, count: int) -> None: ...


class RequestObserver(Protocol):
    # seconds: None for a request refused before it was timed (no latency sample).
    def request_done(self, front: str, code: str, seconds: float | None, records: int) -> None: ...


class Batcher:
    """The parse and store threads over one hand-off; :meth:`join` after it is closed."""

    def __init__(
        self,
        core: IngestCore,
        handoff: Handoff,
        cfg: SyslogConfig,
        requests: RequestObserver,
        drops: DropObserver,
        on_died: DiedCallback | None = None,
    ) -> None:
        self._core = core
        self._handoff = handoff
        self._most = core.limits.max_records
        self._size = min(cfg.batch_records, self._most)
        self._delay = cfg.batch_delay_ms / 1000
        self._requests = requests
        self._drops = drops
        self._on_died = on_died
        self._builder = RecordBuilder()
        self._prefix = f"{FRONT}-{uuid.uuid4().hex[:16]}-"
        self._ids = itertools.count(1)
        self._give_up_at: float | None = None
        self._ready: queue.Queue[Batch | None] = queue.Queue(READY_BATCHES)
        self._threads = [
            threading.Thread(target=self._guarded(self._build), name="syslog-parse", daemon=True),
            threading.Thread(target=self._guarded(self._stores), name="syslog-store", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, grace: float) -> None:
        """Wait for the batchers to store what is left; give up retrying after ``grace``."""
        self._give_up_at = time.monotonic() + grace
        for thread in self._threads:
            thread.join(timeout=max(0.0, self._give_up_at - time.monotonic()) + 1)

    def _guarded(self, loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                loop()
            except BaseException as exc:  # reported, then the gateway stops
                log.exception("syslog batcher failed", extra={"event": "front_died"})
                if self._on_died is not None:
                    self._on_died("syslog", exc)

        return run

    def _build(self) -> None:
        try:
            while True:
                items = self._handoff.take(self._size, self._delay, self._most)
                if items:
                    self._ready.put(self._batch(items))
                elif self._handoff.closed and not self._handoff.pending:
                    return
        finally:
            self._ready.put(None)

    def _batch(self, items: list[Item]) -> Batch:
        return Batch(
            records=self._builder.records(items),
            batch_id=f"{self._prefix}{next(self._ids)}",
            emitter=EMITTER,
        )

    def _stores(self) -> None:
        while (batch := self._ready.get()) is not None:
            self._store(batch)

    def _store(self, batch: Batch) -> None:
        count = len(batch.records)
        while True:
            started = time.perf_counter()
            code = "OK"
            try:
                self._core.push(batch, batch.batch_id)
                return
            except Unavailable as exc:
                code = exc.code
                wait = exc.retry_after or MAX_RETRY_SEC
            except LogOpsError as exc:  # not expected for batches made here: lost, said
                code = exc.code
                self._lost("internal", count, exc)
                return
            except Exception as exc:  # a bug: this batch is lost, the listener goes on
                code = "INTERNAL"
                self._lost("internal", count, exc)
                return
            finally:
                self._requests.request_done(FRONT, code, time.perf_counter() - started, count)
            if self._stop_retrying(wait):
                self._lost("unavailable", count, None)
                return

    def _stop_retrying(self, wait: float) -> bool:
        """Wait before the next attempt; True once a stop's grace period is over."""
        wait = min(wait, MAX_RETRY_SEC)
        give_up_at = self._give_up_at
        if give_up_at is not None:
            left = give_up_at - time.monotonic()
            if left <= 0:
                return True
            wait = min(wait, left)
        time.sleep(wait)
        return False

    def _lost(self, reason: str, count: int, exc: BaseException | None) -> None:
        self._drops.dropped(reason, count)
        log.error(
            "syslog messages lost: %d (%s)",
            count,
            reason,
            extra={"event": "syslog_lost", "reason": reason, "error": str(exc or "")},
        )
