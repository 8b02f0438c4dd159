"""The files the NDJSON sink appends to: one pair per UTC day, rotation by size, reopening."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from services.common.appendfile import AppendFile, same_file, truncate_path
from services.ingest.batch_index import DATA_NAME, DAY_SEC, INDEX_DIR, data_name, day_of, index_name

# How often an append checks that its open files are still the ones at their paths.
_RECHECK_SEC = 1.0


class SinkFiles:
    """The current data and index file, and retired ones not yet closed.

    Not thread-safe: the sink calls it under its write lock. With ``durable`` a new file's
    directory entry is fsynced and a replaced file is kept (see :meth:`take_retired`) until
    the next fsync round; otherwise it is closed at once.
    """

    def __init__(
        self,
        sink_dir: Path,
        max_file_bytes: int,
        durable: bool,
        fsync_dir: Callable[[Path], None],
    ) -> None:
        self._dir = sink_dir
        self._index_dir = sink_dir / INDEX_DIR
        self._max_file_bytes = max_file_bytes
        self._durable = durable
        self._fsync_dir = fsync_dir
        self._data: AppendFile | None = None
        self._index: AppendFile | None = None
        self._retired: list[AppendFile] = []
        self._heal: dict[Path, int] = {}
        self._reopen = False
        self._day = ""
        self._day_start = 0.0
        self._checked_at = 0.0

    def files_for(self, now: float, nbytes: int) -> tuple[AppendFile, AppendFile]:
        """The data and index file a batch of ``nbytes`` written at ``now`` goes to."""
        if self._reopen:
            self._reopen_files()
        day = self._day_for(now)
        data, index = self._data, self._index
        if data is None or index is None or data.day != day:
            data, index = self._open_day(day)
            self._checked_at = now
        elif abs(now - self._checked_at) >= _RECHECK_SEC:
            self._checked_at = now
            if not (same_file(data) and same_file(index)):
                self._reopen_files()
                data, index = self._open_day(day)
        if nbytes and data.size > 0 and data.size + nbytes > self._max_file_bytes:
            data = self._open_data(day, rotate=data)
        return data, index

    def after_failure(self, touched: Iterable[AppendFile] = ()) -> None:
        """Called under the write lock: reopen before the next write, heal broken files."""
        self._reopen = True
        for f in (self._data, self._index, *self._retired, *touched):
            if f is not None and f.broken:
                self._heal[f.path] = min(self._heal.get(f.path, f.size), f.size)

    def take_retired(self) -> list[AppendFile]:
        """Hand over the files replaced since the last call; the caller closes them."""
        retired, self._retired = self._retired, []
        return retired

    def close(self) -> None:
        for f in (self._data, self._index, *self._retired):
            if f:
                f.close()
        self._data = self._index = None
        self._retired = []

    def _day_for(self, now: float) -> str:
        if not self._day_start <= now < self._day_start + DAY_SEC:
            self._day_start = (now // DAY_SEC) * DAY_SEC
            self._day = day_of(now)
        return self._day

    def _open_day(self, day: str) -> tuple[AppendFile, AppendFile]:
        self._retire(self._data)
        self._retire(self._index)
        self._data = self._index = None
        # The directory may have been removed and recreated while the gateway ran.
        self._index_dir.mkdir(parents=True, exist_ok=True)
        # The index file exists before any data of the day: a data file without an index
        # file was not written by this sink and is never cut back at start-up.
        self._index = self._create(self._index_dir / index_name(day), day)
        return self._open_data(day, rotate=None), self._index

    def _open_data(self, day: str, rotate: AppendFile | None) -> AppendFile:
        suffix = self._last_suffix(day)
        if rotate is not None:
            self._retire(rotate)
            self._data = None
            suffix += 1
        self._data = self._create(self._dir / data_name(day, max(suffix, 0)), day)
        return self._data

    def _last_suffix(self, day: str) -> int:
        last = -1
        for name in os.listdir(self._dir):
            match = DATA_NAME.fullmatch(name)
            if match and match.group(1) == day:
                last = max(last, int(match.group(2) or 0))
        return last

    def _create(self, path: Path, day: str) -> AppendFile:
        existed = os.path.lexists(path)
        f = AppendFile(path, day)
        if not existed and self._durable:
            try:
                self._fsync_dir(path.parent)
            except OSError:
                f.close()
                raise
        return f

    def _retire(self, f: AppendFile | None) -> None:
        if f is None:
            return
        if not self._durable:
            f.close()
        else:
            self._retired.append(f)

    def _reopen_files(self) -> None:
        for path, size in list(self._heal.items()):
            truncate_path(path, size)
            del self._heal[path]
        self._retire(self._data)
        self._retire(self._index)
        self._data = self._index = None
        self._reopen = False
