"""Durable NDJSON sink of the Ingest Gateway: whole-batch appends, rotation, idempotency, fsync.

Data goes to ``<dir>/<YYYYMMDD>.ndjson`` (UTC day of the clock at write time), continuing in
``<YYYYMMDD>.1.ndjson``, ``.2.ndjson``, ... when a batch would push the current file past
``max_file_bytes``. Files are only ever created and appended, never renamed, so a tailer
(Promtail, Alloy) keeps its place. Every batch is one write of whole lines under a lock,
followed by one line in the day's index (see :mod:`services.ingest.batch_index`).

Durability: ``batch`` fsyncs the data and then the index file before :meth:`NdjsonSink.append`
returns; concurrent appenders share one fsync (group commit) and the write lock is not
held while it runs. ``interval`` fsyncs from a background thread, ``none`` never does.

Lock order: ``_sync_lock`` before ``_lock``. File descriptors are closed only under
``_sync_lock`` (or at once in ``none`` mode), so an fsync never meets a closed descriptor.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from services.common.appendfile import AppendFile, fsync_dir
from services.common.config import SinkConfig
from services.ingest.batch_index import INDEX_DIR, IdIndex, StoredBatch, encode_entry
from services.ingest.sink_files import SinkFiles
from services.ingest.sink_recovery import recover

__all__ = ["NdjsonSink", "SinkError", "SinkObserver", "StoredBatch"]

_log = logging.getLogger(__name__)

_MODES = ("batch", "interval", "none")
_MAX_BATCH_ID = 128
_MIN_FREE_BYTES = 1024 * 1024
_WRITTEN, _SYNCED, _FAILED = 0, 1, 2


class SinkError(Exception):
    """The disk could not be written or read; the batch was not stored."""


class SinkObserver(Protocol):
    def sink_written(self, nbytes: int) -> None: ...

    def sink_error(self) -> None: ...

    def sink_fsync(self, seconds: float) -> None: ...


class _NoObserver:
    def sink_written(self, nbytes: int) -> None: ...

    def sink_error(self) -> None: ...

    def sink_fsync(self, seconds: float) -> None: ...


@dataclasses.dataclass(slots=True, eq=False)
class _Pending:
    """A batch written but not yet fsynced (``batch`` mode); duplicates wait for it too."""

    batch_id: str
    stored: StoredBatch
    data: AppendFile
    data_start: int
    index: AppendFile
    index_start: int
    state: int = _WRITTEN


class NdjsonSink:
    """Thread-safe, idempotent, crash-safe append of NDJSON batches; see the module docstring."""

    def __init__(
        self,
        cfg: SinkConfig,
        observer: SinkObserver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if cfg.durability not in _MODES:
            raise ValueError(f"sink durability must be one of {', '.join(_MODES)}")
        self._cfg = cfg
        self._dir = Path(cfg.dir)
        self._index_dir = self._dir / INDEX_DIR
        self._observer: SinkObserver = observer or _NoObserver()
        self._clock = clock
        self._mode = cfg.durability
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        self._is_open = False
        self._failure: str | None = None
        self._reset()

    def _reset(self) -> None:
        self._table: IdIndex[StoredBatch | _Pending] = IdIndex(self._cfg.dedup_max_ids)
        self._files = SinkFiles(
            self._dir, self._cfg.max_file_bytes, self._mode != "none", self._fsync
        )
        self._dirty_data: dict[AppendFile, None] = {}
        self._dirty_index: dict[AppendFile, None] = {}
        self._pending: list[_Pending] = []

    # -- public API ---------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory, repair what a crash left behind and load the id index."""
        with self._sync_lock, self._lock:
            if self._is_open:
                return
            self._reset()
            try:
                self._index_dir.mkdir(parents=True, exist_ok=True)
                report = recover(
                    self._dir, self._table, self._clock(), self._cfg.dedup_window_sec
                )
            except OSError as exc:
                raise self._error("cannot open the sink", exc) from exc
            self._is_open = True
            self._failure = None
        extra = {"event": "sink_open", "sink_dir": str(self._dir), "durability": self._mode}
        _log.info("sink opened", extra=extra | dataclasses.asdict(report))
        if self._mode == "interval":
            self._stop = threading.Event()
            self._syncer = threading.Thread(
                target=self._sync_every, args=(self._stop,), name="sink-fsync", daemon=True
            )
            self._syncer.start()

    def lookup(self, batch_id: str) -> StoredBatch | None:
        """The stored answer for ``batch_id`` if it is stored durably; no I/O, no lock."""
        found = self._table.get(batch_id)
        return found if isinstance(found, StoredBatch) else None

    def append(self, batch_id: str, data: bytes, stored: StoredBatch) -> StoredBatch | None:
        """Store one batch whole, or answer the earlier result if ``batch_id`` is stored.

        Returns None once the batch is written (and fsynced in ``batch`` mode): only then
        may the caller acknowledge it. Raises SinkError when the disk fails; nothing of the
        batch is then left in the files and the id is not remembered.
        """
        _check_batch(batch_id, data)
        pending: _Pending | None = None
        with self._lock:
            if not self._is_open:
                raise SinkError("the sink is not open")
            now = self._clock()
            prior = self._table.get(batch_id)
            if prior is None:
                try:
                    pending = self._write_batch(batch_id, data, stored, now)
                except OSError as exc:
                    self._files.after_failure()
                    raise self._error("cannot append to the sink", exc) from exc
        if prior is not None:
            return self._answer_duplicate(prior)
        self._observer.sink_written(len(data))
        if pending is not None:
            self._await_durable(pending)
        return None

    def check_writable(self) -> str | None:
        """Readiness: None when appends can be expected to work, else a short reason."""
        if not self._is_open:
            return "sink not open"
        try:
            st = os.stat(self._dir)
            if not stat.S_ISDIR(st.st_mode):
                return "sink path is not a directory"
            if not os.access(self._dir, os.W_OK):
                return "sink directory not writable"
            vfs = os.statvfs(self._dir)
        except FileNotFoundError:
            return "sink directory missing"
        except OSError as exc:
            return f"sink directory unusable: {exc.strerror}"
        if vfs.f_bavail * vfs.f_frsize < _MIN_FREE_BYTES:
            return "disk full"
        failure = self._failure
        # A probe lets readiness recover without traffic, which a not-ready gateway lacks.
        if failure is not None and not self._probe():
            return f"last write failed: {failure}"
        return None

    def close(self) -> None:
        """Fsync (unless durability is none) and close the files; stop the interval thread."""
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join()
            self._syncer = None
        with self._sync_lock:
            if not self._is_open:
                return
            if self._mode != "none":
                self._sync_logged()
            with self._lock:
                self._is_open = False
                self._files.close()

    # -- writing ------------------------------------------------------------------------

    def _write_batch(
        self, batch_id: str, data: bytes, stored: StoredBatch, now: float
    ) -> _Pending | None:
        data_file, index_file = self._files.files_for(now, len(data))
        start = data_file.size
        kept = self._table.stored(stored.accepted, stored.rejected, stored.missing)
        line = encode_entry(batch_id, kept, data_file.name, start, start + len(data), now)
        if data:
            data_file.write(data)
        index_start = index_file.size
        try:
            index_file.write(line)
        except OSError:
            data_file.truncate(start)
            raise
        self._failure = None
        if self._mode != "none":
            self._dirty_data[data_file] = None
            self._dirty_index[index_file] = None
        pending = None
        if self._mode == "batch":
            pending = _Pending(batch_id, kept, data_file, start, index_file, index_start)
            self._pending.append(pending)
        self._table.add(batch_id, pending or kept)
        return pending

    def _error(self, what: str, exc: OSError) -> SinkError:
        # Not logged here: the caller translates SinkError and logs it once.
        self._failure = exc.strerror or type(exc).__name__
        self._observer.sink_error()
        return SinkError(f"{what}: {self._failure}")

    def _probe(self) -> bool:
        probe = self._dir / ".ready-probe"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            try:
                os.write(fd, b"\n")
            finally:
                os.close(fd)
            probe.unlink()
        except OSError:
            return False
        return True

    # -- durability ---------------------------------------------------------------------

    def _answer_duplicate(self, prior: StoredBatch | _Pending) -> StoredBatch:
        if isinstance(prior, StoredBatch):
            return prior
        # The first copy is not durable yet: answering now could acknowledge lost data.
        self._await_durable(prior)
        return prior.stored

    def _await_durable(self, pending: _Pending) -> None:
        with self._sync_lock:
            if pending.state == _WRITTEN:
                self._sync_round()
        if pending.state == _FAILED:
            raise self._error("cannot make the batch durable", OSError(errno.EIO, "fsync failed"))

    def _sync_round(self) -> None:
        """Fsync every file written since the last round; the caller holds ``_sync_lock``."""
        with self._lock:
            pending, self._pending = self._pending, []
            data_files, index_files = list(self._dirty_data), list(self._dirty_index)
            self._dirty_data.clear()
            self._dirty_index.clear()
            retired = self._files.take_retired()
        try:
            # Data before index: an index entry must never point at data not yet on disk.
            for f in (*data_files, *index_files):
                self._fsync(f.fd)
        except OSError as exc:
            with self._lock:
                cut = self._rollback([*pending, *self._pending])
                self._pending = []
                # Still-open files are fsynced again next round; retired ones are given up.
                self._dirty_data.update(dict.fromkeys(set(data_files) - set(retired)))
                self._dirty_index.update(dict.fromkeys(set(index_files) - set(retired)))
                self._files.after_failure(cut)
            _close_all(retired)
            raise self._error("fsync failed", exc) from exc
        with self._lock:
            for p in pending:
                p.state = _SYNCED
                self._table.replace(p.batch_id, p, p.stored)
        _close_all(retired)

    def _rollback(self, pending: list[_Pending]) -> list[AppendFile]:
        """Cut unsynced batches off their files and forget their ids (write lock held)."""
        cut: dict[AppendFile, int] = {}
        for p in reversed(pending):
            p.state = _FAILED
            self._table.discard(p.batch_id, p)
            cut[p.data] = min(cut.get(p.data, p.data_start), p.data_start)
            cut[p.index] = min(cut.get(p.index, p.index_start), p.index_start)
        for f, size in cut.items():
            f.truncate(size)
        return list(cut)

    def _sync_every(self, stop: threading.Event) -> None:
        seconds = max(self._cfg.fsync_interval_ms, 1) / 1000
        while not stop.wait(seconds):
            with self._sync_lock:
                if not self._is_open:
                    return
                self._sync_logged()

    def _sync_logged(self) -> None:
        """A round nobody waits on (interval thread, close): the failure is only logged."""
        try:
            self._sync_round()
        except SinkError as exc:
            _log.warning(str(exc), extra={"event": "sink_error", "sink_dir": str(self._dir)})

    def _fsync(self, target: int | Path) -> None:
        began = time.perf_counter()
        if isinstance(target, Path):
            fsync_dir(target)
        else:
            os.fsync(target)
        self._observer.sink_fsync(time.perf_counter() - began)


def _check_batch(batch_id: str, data: bytes) -> None:
    if not isinstance(batch_id, str) or not 0 < len(batch_id) <= _MAX_BATCH_ID:
        raise ValueError(f"batch_id must be 1 to {_MAX_BATCH_ID} characters")
    if data and not data.endswith(b"\n"):
        raise ValueError("data must be complete NDJSON lines")


def _close_all(files: Iterable[AppendFile]) -> None:
    for f in files:
        f.close()
