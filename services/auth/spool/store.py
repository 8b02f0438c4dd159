"""Durable on-disk spool of the Auth Gateway: batches kept, in order, while Ingest is down.

When the Ingest Gateway cannot take a batch, the gateway puts it here and answers the
client 202 only once :meth:`Spool.put` has returned; a drainer later takes the batches
oldest first (:meth:`Spool.peek`), delivers them and marks them delivered
(:meth:`Spool.ack`). Batches go into append-only segment files, and an "acked up to
seq" cursor records delivery; a segment is removed once all of it is delivered. The
format is described in :mod:`services.auth.spool.codec`, start-up repair in
:mod:`services.auth.spool.recovery`.

Promise: a batch whose put returned survives a crash of the gateway (``kill -9``
included; power loss too in ``batch`` mode) and is offered until it is acked. The spool
itself never offers a batch again once its ack has returned. A batch delivered but not
yet acked when the gateway dies is offered again after the restart and sent twice: the
Ingest Gateway is idempotent on ``batch_id`` and answers the second copy as a duplicate,
which is expected, not a fault.

Durability: ``batch`` fsyncs a batch's segment before put returns (concurrent puts share
one fsync) and the cursor and folder before ack returns; ``interval`` fsyncs segments and
the folder from a background thread every ``fsync_interval`` seconds; ``none`` leaves all
to the page cache. Except in ``none``, a new segment is fsynced, with its folder, first.

Threads: any number may put; one drainer peeks and acks. Lock order: ``_sync_lock``,
then ``_ack_lock``, then ``_lock``. The write lock ``_lock`` is held during an fsync only
when a new segment is created.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType

from services.auth.spool.codec import (
    Prepared,
    SpooledBatch,
    decode_record,
    prepare_record,
    seal_record,
)
from services.auth.spool.order import DURABLE, FAILED, WRITTEN, Entry, SpoolQueue
from services.auth.spool.recovery import Recovered, recover, set_aside
from services.auth.spool.segments import (
    SegmentReader,
    SpoolFiles,
    can_write,
    folder_problem,
    record_delivery,
)
from services.common.appendfile import truncate_path
from services.common.errors import Unavailable

__all__ = ["Spool", "SpoolError", "SpoolFull", "SpooledBatch"]

_log = logging.getLogger(__name__)

_MODES = ("batch", "interval", "none")
_RETRY_AFTER_SEC = 5.0
_MIN_SEGMENT_BYTES = 256 * 1024
_MAX_SEGMENT_BYTES = 16 * 1024 * 1024


class SpoolError(Unavailable):
    """The batch was not spooled (disk error, spool closed): nothing of it is kept.

    An ``Unavailable`` with reason ``downstream_unavailable``: the client is answered
    503 (UNAVAILABLE) with a Retry-After, as when the Ingest Gateway itself is down.
    """

    default_reason = "downstream_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = _RETRY_AFTER_SEC) -> None:
        super().__init__(message, retry_after=retry_after)


class SpoolFull(SpoolError):
    """The batch would take the spool past its byte or batch bound; nothing was written."""


class Spool:
    """Thread-safe, bounded, crash-safe FIFO of batches on disk; see the module docstring.

    ``max_bytes`` bounds the bytes of undelivered records (each its body plus a few
    hundred bytes of head and batch headers). ``segment_bytes`` (default: an eighth of
    ``max_bytes``, within 256 KiB to 16 MiB) is where a segment file rolls over.
    """

    def __init__(
        self,
        dir: str | Path,
        max_bytes: int,
        max_batches: int,
        durability: str = "batch",
        *,
        segment_bytes: int | None = None,
        fsync_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if durability not in _MODES:
            raise ValueError(f"spool durability must be one of {', '.join(_MODES)}")
        if max_bytes < 1 or max_batches < 1:
            raise ValueError("spool bounds must be positive")
        self._dir = Path(dir)
        self._max_bytes = max_bytes
        self._max_batches = max_batches
        self._mode = durability
        self._segment_bytes = segment_bytes or min(
            _MAX_SEGMENT_BYTES, max(_MIN_SEGMENT_BYTES, max_bytes // 8)
        )
        self._fsync_interval = fsync_interval
        self._clock = clock
        # Per process: see spool_format on why checksums are seeded.
        self._seed = secrets.randbits(32)
        self._lock = threading.Lock()
        self._ack_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        self._is_open = False
        self._failure: str | None = None
        self._load(Recovered(acked=0, next_seq=1, segments=[]))

    # -- public API ---------------------------------------------------------------------

    def open(self) -> None:
        """Create the folder, or repair what a crash left in it and reload the batches."""
        with self._sync_lock, self._ack_lock, self._lock:
            if self._is_open:
                return
            try:
                self._dir.mkdir(parents=True, exist_ok=True)
                found = recover(self._dir)
            except OSError as exc:
                raise self._error("cannot open the spool", exc) from exc
            self._load(found)
            self._is_open = True
            self._failure = None
        extra = {"event": "spool_open", "spool_dir": str(self._dir), "durability": self._mode}
        _log.info("spool opened", extra=extra | dataclasses.asdict(found.report))
        if self._mode == "interval":
            self._stop = threading.Event()
            self._syncer = threading.Thread(
                target=self._sync_every, args=(self._stop,), name="spool-fsync", daemon=True
            )
            self._syncer.start()

    def put(
        self,
        batch_id: str,
        media_type: str,
        content_encoding: str,
        meta: Mapping[str, str],
        body: bytes,
        records: int,
    ) -> SpooledBatch:
        """Spool one batch; once this returns (in ``batch`` mode: fsynced) the client may
        be answered. Raises SpoolFull past a bound, SpoolError when the disk fails; either
        way nothing of the batch is kept."""
        body = bytes(body)
        spooled_at = self._clock()
        prepared = prepare_record(
            batch_id, media_type, content_encoding, meta, body, records, spooled_at, self._seed
        )
        with self._lock:
            self._check_room(prepared.size)
            entry = self._write(self._queue.take_seq(), prepared)
        if entry.state == WRITTEN:
            self._await_durable(entry)
        frozen_meta = MappingProxyType(dict(meta))
        return SpooledBatch(
            entry.seq,
            batch_id,
            media_type,
            content_encoding,
            frozen_meta,
            body,
            records,
            spooled_at,
        )

    def peek(self, n: int = 1) -> list[SpooledBatch]:
        """Up to ``n`` spooled batches, oldest first, without removing them.

        A record found damaged here is set aside (``quarantine/``) and skipped."""
        with self._lock:
            self._check_open()
            picked = self._queue.durable_head(n)
        with SegmentReader() as reader:
            found = [self._read(entry, reader) for entry in picked]
        return [batch for batch in found if batch is not None]

    def ack(self, seq: int) -> None:
        """Mark ``seq`` and every batch before it delivered, durably; frees their space.

        Acks are cumulative, so a drainer may deliver several peeked batches and ack the
        last. Raises SpoolError when the cursor cannot be written: the batches are still
        not offered again by this process, but may be after a restart.
        """
        with self._ack_lock:
            with self._lock:
                self._check_open()
                if seq >= self._queue.next_seq:
                    raise ValueError(f"seq {seq} was never spooled")
                acked, delivered = self._queue.advance(seq, self._files.active)
            if acked is None:
                return
            try:
                paths = [seg.path for seg in delivered]
                record_delivery(self._dir, acked, paths, durable=self._mode == "batch")
            except OSError as exc:
                raise self._error("cannot record a delivery", exc) from exc
            if self._mode == "interval":
                with self._lock:
                    self._files.dir_dirty = True
        self._drop_delivered_active()

    def depth(self) -> tuple[int, int]:
        """(batches, bytes) not yet acked, counting puts still waiting for their fsync
        (which peek does not offer yet)."""
        with self._lock:
            return len(self._queue), self._queue.nbytes

    def is_usable(self) -> str | None:
        """Readiness: None when a batch can be spooled, else a short reason why not."""
        if not self._is_open:
            return "spool not open"
        batches, nbytes = self.depth()
        if batches >= self._max_batches or nbytes >= self._max_bytes:
            return "spool full"
        problem = folder_problem(self._dir)
        if problem is not None:
            return problem
        failure = self._failure
        # A probe lets readiness recover without traffic, which a not-ready gateway lacks.
        if failure is not None and not can_write(self._dir):
            return f"last write failed: {failure}"
        return None

    def close(self) -> None:
        """Fsync what is pending (unless durability is none) and close the files."""
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join()
            self._syncer = None
        with self._sync_lock:
            with self._lock:
                if not self._is_open:
                    return
                # No put may write after the last round: its fsync would find files closed.
                self._is_open = False
            if self._mode != "none":
                self._sync_logged()
            with self._ack_lock, self._lock:
                self._files.close()

    # -- writing ------------------------------------------------------------------------

    def _load(self, found: Recovered) -> None:
        durable = self._mode != "none"
        self._queue = SpoolQueue(found)
        self._files = SpoolFiles(self._dir, self._segment_bytes, self._seed, durable)
        self._unsynced: list[Entry] = []

    def _check_open(self) -> None:
        if not self._is_open:
            raise SpoolError("the spool is not open")

    def _check_room(self, size: int) -> None:
        self._check_open()
        queue = self._queue
        if len(queue) >= self._max_batches or queue.nbytes + size > self._max_bytes:
            raise SpoolFull("the spool is full")

    def _write(self, seq: int, prepared: Prepared) -> Entry:
        """Append one record (write lock held)."""
        record = seal_record(prepared, seq)
        try:
            seg, offset = self._files.append(seq, record)
        except OSError as exc:
            raise self._error("cannot write to the spool", exc) from exc
        state = WRITTEN if self._mode == "batch" else DURABLE
        entry = Entry(seq, seg, offset, len(record), state)
        self._queue.add(entry)
        self._failure = None
        if state == WRITTEN:
            self._unsynced.append(entry)
        return entry

    def _error(self, what: str, exc: OSError) -> SpoolError:
        # Not logged here: the caller translates the error and logs it once.
        self._failure = exc.strerror or type(exc).__name__
        return SpoolError(f"{what}: {self._failure}")

    # -- durability ---------------------------------------------------------------------

    def _await_durable(self, entry: Entry) -> None:
        with self._sync_lock:
            if entry.state == WRITTEN:
                self._sync_round()
        if entry.state == FAILED:
            raise self._error("cannot make the batch durable", OSError(errno.EIO, "fsync failed"))

    def _sync_round(self) -> None:
        """Fsync every segment written since the last round; ``_sync_lock`` held."""
        with self._lock:
            entries, self._unsynced = self._unsynced, []
            work = self._files.take_round()
        try:
            work.fsync()
        except OSError as exc:
            with self._lock:
                self._rollback([*entries, *self._unsynced])
                self._unsynced = []
                self._files.after_failed_round(work)
            work.close_retired()
            raise self._error("cannot fsync the spool", exc) from exc
        with self._lock:
            for entry in entries:
                entry.state = DURABLE
        work.close_retired()

    def _rollback(self, failed: list[Entry]) -> None:
        """Forget batches whose fsync failed and cut them off their files (lock held).

        If a cut fails the records stay on disk and are delivered after a restart,
        although their clients were refused: the retry is then a duplicate at Ingest.
        """
        cut: dict[Path, int] = {}
        for entry in failed:
            entry.state = FAILED
            seg = entry.segment
            cut[seg.path] = min(cut.get(seg.path, entry.offset), entry.offset)
            seg.last_seq = min(seg.last_seq, entry.seq - 1)
        self._queue.drop_failed()
        for path, size in cut.items():
            with contextlib.suppress(OSError):
                truncate_path(path, size)

    def _sync_every(self, stop: threading.Event) -> None:
        while not stop.wait(self._fsync_interval):
            with self._sync_lock:
                if not self._is_open:
                    return
                self._sync_logged()

    def _sync_logged(self) -> None:
        """A round nobody waits on (interval thread, close): a failure is only logged."""
        try:
            self._sync_round()
        except SpoolError as exc:
            _log.warning(str(exc), extra={"event": "spool_error", "spool_dir": str(self._dir)})

    # -- delivery -----------------------------------------------------------------------

    def _read(self, entry: Entry, reader: SegmentReader) -> SpooledBatch | None:
        try:
            raw = reader.read(entry.segment.path, entry.offset, entry.length)
        except OSError as exc:
            raise self._error("cannot read the spool", exc) from exc
        if raw is None:
            return None  # delivered and removed meanwhile
        batch = decode_record(raw, entry.segment.seed)
        if batch is None or batch.seq != entry.seq:
            self._set_aside(entry, raw)
            return None
        return batch

    def _set_aside(self, entry: Entry, raw: bytes) -> None:
        """A record damaged since start-up: keep its bytes aside and stop offering it."""
        with self._lock:
            self._queue.remove(entry)
        try:
            set_aside(entry.segment.path, entry.offset, raw, self._mode != "none")
        except OSError as exc:
            # Still on disk until its segment is delivered; found again after a restart.
            extra = {"event": "spool_error", "segment": entry.segment.path.name}
            _log.warning(f"damaged spool record not set aside: {exc.strerror}", extra=extra)

    def _drop_delivered_active(self) -> None:
        """Remove the segment being written once all of it is delivered, so that its
        space comes back (a full disk included) without waiting for it to fill up.

        Its file is closed under ``_sync_lock``: no fsync round is using it then. The
        unlink needs no fsync: if a crash undoes it, the cursor marks it delivered.
        """
        with self._lock:
            active = self._files.active
            if active is None or not self._queue.delivered(active):
                return
        with self._sync_lock, self._lock:
            active = self._files.active
            if not self._is_open or active is None or not self._queue.delivered(active):
                return
            self._files.drop_active()
            self._queue.forget(active)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(active.path)
