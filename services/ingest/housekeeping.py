"""Retention for the NDJSON sink: delete or gzip day files older than the retention.

Only names the sink writes are considered: ``YYYYMMDD.ndjson``, ``YYYYMMDD.N.ndjson``,
their ``.gz`` archives and ``.index/YYYYMMDD.idx``. A day's files are past the retention
when the *end* of that UTC day is more than ``retention_days`` ago, so the file being
written today is never touched. ``archive`` gzips a data file in place (``<name>.gz``,
written to a hidden temporary file, fsynced and renamed, then the original is removed) and
leaves existing archives alone; ``delete`` removes data files and archives alike. Index
files are always deleted. Symlinks are never followed nor removed.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from services.common.appendfile import fsync_dir
from services.ingest.batch_index import DAY_SEC, INDEX_DIR, day_start

__all__ = ["HousekeepingAction", "HousekeepingScheduler", "run_housekeeping"]

_log = logging.getLogger(__name__)

_ACTIONS = ("delete", "archive")
_DATA = re.compile(r"(\d{8})(?:\.\d+)?\.ndjson")
_ARCHIVE = re.compile(r"(\d{8})(?:\.\d+)?\.ndjson\.gz")
_INDEX = re.compile(r"(\d{8})\.idx")
_COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class HousekeepingAction:
    """One file deleted or archived (or, in a dry run, that would be)."""

    path: Path
    action: str
    # Days since the end of the file's UTC day: past the retention when above it.
    age_days: float
    bytes: int


def run_housekeeping(
    sink_dir: str | Path,
    retention_days: float,
    action: str,
    dry_run: bool,
    now: float | None = None,
) -> list[HousekeepingAction]:
    """Delete or archive the sink files past the retention; return what was (or would be) done.

    A file that cannot be handled is logged and left out of the result; the others go on.
    """
    if action not in _ACTIONS:
        raise ValueError(f"housekeeping action must be one of {', '.join(_ACTIONS)}")
    if retention_days < 0:
        raise ValueError("retention_days must be >= 0")
    now = time.time() if now is None else now
    planned = list(_plan(Path(sink_dir), retention_days * DAY_SEC, action, now))
    if dry_run:
        return planned
    done: list[HousekeepingAction] = []
    for item in planned:
        try:
            if item.action == "archive":
                _archive(item.path)
            else:
                item.path.unlink()
        except OSError as exc:
            _log.warning(
                f"housekeeping could not {item.action} {item.path.name}: {exc.strerror}",
                extra={"event": "housekeeping", "path": str(item.path), "action": item.action},
            )
            continue
        done.append(item)
    return done


def _plan(
    sink_dir: Path, retention_sec: float, action: str, now: float
) -> Iterator[HousekeepingAction]:
    for path, day, kind, size in sorted(_candidates(sink_dir)):
        start = day_start(day)
        if start is None:
            continue
        since_end = now - (start + DAY_SEC)
        if since_end <= retention_sec:
            continue
        if kind == "archive" and action == "archive":
            continue
        verb = "archive" if kind == "data" and action == "archive" else "delete"
        yield HousekeepingAction(path, verb, round(since_end / DAY_SEC, 3), size)


def _candidates(sink_dir: Path) -> Iterator[tuple[Path, str, str, int]]:
    """(path, day, kind, size) of every regular file with a sink name; symlinks skipped."""
    patterns = (("data", _DATA), ("archive", _ARCHIVE))
    yield from _matching(sink_dir, patterns)
    index_dir = sink_dir / INDEX_DIR
    if index_dir.is_dir() and not index_dir.is_symlink():
        yield from _matching(index_dir, (("index", _INDEX),))


def _matching(
    folder: Path, patterns: tuple[tuple[str, re.Pattern[str]], ...]
) -> Iterator[tuple[Path, str, str, int]]:
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for entry in entries:
        if not entry.is_file(follow_symlinks=False):
            continue
        for kind, pattern in patterns:
            match = pattern.fullmatch(entry.name)
            if match:
                size = entry.stat(follow_symlinks=False).st_size
                yield Path(entry.path), match.group(1), kind, size


def _archive(path: Path) -> None:
    target = path.with_name(path.name + ".gz")
    # Hidden and fixed: never matches a sink pattern, and a rerun overwrites a leftover.
    tmp = path.with_name(f".{path.name}.gz.tmp")
    src_fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        with os.fdopen(src_fd, "rb") as src:
            st = os.fstat(src.fileno())
            out_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            with os.fdopen(out_fd, "wb") as raw:
                with gzip.GzipFile(path.name, "wb", 6, raw, mtime=int(st.st_mtime)) as gz:
                    shutil.copyfileobj(src, gz, _COPY_CHUNK)
                raw.flush()
                os.fsync(raw.fileno())
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, target)
        fsync_dir(path.parent)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    path.unlink()


class HousekeepingScheduler:
    """Runs :func:`run_housekeeping` now and then every ``interval_sec`` on a daemon thread."""

    def __init__(
        self,
        sink_dir: str | Path,
        retention_days: float,
        action: str,
        interval_sec: float,
    ) -> None:
        if action not in _ACTIONS:
            raise ValueError(f"housekeeping action must be one of {', '.join(_ACTIONS)}")
        self._sink_dir = Path(sink_dir)
        self._retention_days = retention_days
        self._action = action
        self._interval = interval_sec
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread; an interval of 0 (or less) means the schedule is off."""
        if self._interval <= 0 or self._thread is not None:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, args=(self._stop,), name="housekeeping", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run_once(self) -> list[HousekeepingAction]:
        done = run_housekeeping(self._sink_dir, self._retention_days, self._action, False)
        for item in done:
            _log.info(
                f"housekeeping {item.action}d {item.path.name}",
                extra={"event": "housekeeping", "path": str(item.path), "action": item.action,
                       "age_days": item.age_days, "bytes": item.bytes},
            )
        return done

    def _loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:
                # The gateway keeps serving; the next run tries again.
                _log.exception("housekeeping run failed", extra={"event": "housekeeping"})
            if stop.wait(self._interval):
                return
