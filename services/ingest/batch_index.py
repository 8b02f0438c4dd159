"""Idempotency index of the NDJSON sink: file names, line format, in-memory table.

On disk, ``<dir>/.index/<YYYYMMDD>.idx`` holds one compact JSON array per stored batch::

    ["<batch_id>", accepted, rejected, "<data file name>", start, end, unix_time]

``start``/``end`` are byte offsets of the batch in the data file of the same UTC day. JSON
escaping keeps tabs and newlines in client-chosen ids from breaking the line structure, and
the leading dot keeps the folder out of a tailer's ``*.ndjson`` glob.

Crash repair of these files at start-up is in :mod:`services.ingest.sink_recovery`.
"""

from __future__ import annotations

import calendar
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import orjson

INDEX_DIR = ".index"
DAY_SEC = 86_400
DATA_NAME = re.compile(r"(\d{8})(?:\.(\d+))?\.ndjson")
INDEX_NAME = re.compile(r"(\d{8})\.idx")

_INTERN_MAX = 4096

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """What a stored batch was answered with; a duplicate gets the same answer again."""

    accepted: int
    rejected: int


def day_of(ts: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(ts))


def day_start(day: str) -> float | None:
    """Unix time of 00:00 UTC of ``YYYYMMDD``, or None when it is not a real date."""
    try:
        return float(calendar.timegm(time.strptime(day, "%Y%m%d")))
    except ValueError:
        return None


def data_name(day: str, suffix: int) -> str:
    return f"{day}.ndjson" if suffix == 0 else f"{day}.{suffix}.ndjson"


def index_name(day: str) -> str:
    return f"{day}.idx"


def encode_entry(
    batch_id: str, stored: StoredBatch, file_name: str, start: int, end: int, ts: float
) -> bytes:
    """One index line; ValueError when the id cannot be encoded (a lone surrogate)."""
    entry = [batch_id, stored.accepted, stored.rejected, file_name, start, end, round(ts, 3)]
    try:
        return orjson.dumps(entry) + b"\n"
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"batch_id cannot be stored: {exc}") from exc


class IdIndex(Generic[V]):
    """Batch ids in insertion order; beyond ``max_ids`` the oldest are forgotten first."""

    def __init__(self, max_ids: int) -> None:
        self._max = max_ids
        self._map: dict[str, V] = {}
        self._order: deque[str] = deque()
        self._stored: dict[tuple[int, int], StoredBatch] = {}

    def __len__(self) -> int:
        return len(self._map)

    def stored(self, accepted: int, rejected: int) -> StoredBatch:
        """Share one instance per common (accepted, rejected) pair: millions of ids stay small."""
        key = (accepted, rejected)
        found = self._stored.get(key)
        if found is not None:
            return found
        made = StoredBatch(accepted, rejected)
        if len(self._stored) < _INTERN_MAX:
            self._stored[key] = made
        return made

    def get(self, batch_id: str) -> V | None:
        return self._map.get(batch_id)

    def add(self, batch_id: str, value: V) -> None:
        """Remember a new id; the caller has checked that it is not present."""
        self._map[batch_id] = value
        self._order.append(batch_id)
        self._trim()

    def load(self, ids: Sequence[str], values: Sequence[V]) -> None:
        """Add many ids at C speed (start-up); for an id already known the later answer wins."""
        before = len(self._map)
        self._map.update(zip(ids, values, strict=True))
        if len(self._map) - before == len(ids):
            self._order.extend(ids)
        else:
            # Stored again after the cap forgot it: as at run time, the latest store answers.
            self._order = deque(self._map)
        self._trim()

    def replace(self, batch_id: str, old: V, new: V) -> None:
        if self._map.get(batch_id) is old:
            self._map[batch_id] = new

    def discard(self, batch_id: str, value: V) -> None:
        """Forget an id that was added but not kept (rolled back); usually the newest."""
        if self._map.get(batch_id) is not value:
            return
        del self._map[batch_id]
        if self._order[-1] == batch_id:
            self._order.pop()
        else:
            self._order.remove(batch_id)

    def _trim(self) -> None:
        for _ in range(len(self._order) - self._max):
            self._map.pop(self._order.popleft(), None)
