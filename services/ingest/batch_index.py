"""Idempotency index of the NDJSON sink: file names, line format, in-memory table.

On disk, ``<dir>/.index/<YYYYMMDD>.idx`` holds one compact JSON array per stored batch::

    ["<batch_id>", accepted, rejected, "<data file name>", start, end, unix_time]

``start``/``end`` are byte offsets of the batch in the data file of the same UTC day. JSON
escaping keeps tabs and newlines in client-chosen ids from breaking the line structure, and
the leading dot keeps the folder out of a tailer's ``*.ndjson`` glob.

In memory, :class:`IdIndex` keeps the ids of stored batches as 16-byte digests in a compact
table (``IdTable`` of the C extension, about 34 bytes an id; a dict without it), so the
default cap of two million ids costs about 70 MB rather than 250.

Crash repair of these files at start-up is in :mod:`services.ingest.sink_recovery`.
"""

from __future__ import annotations

import calendar
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

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


def id_digest(batch_id: str) -> bytes:
    """The 16-byte key an id is remembered by (BLAKE2b: collisions are out of reach)."""
    return hashlib.blake2b(batch_id.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class _DictTable:
    """The compact table's stand-in where the C extension is not built (larger, slower)."""

    def __init__(self, max_ids: int) -> None:
        self._max = max_ids
        self._map: dict[bytes, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self._map)

    def get(self, key: bytes) -> tuple[int, int] | None:
        return self._map.get(key)

    def put(self, key: bytes, accepted: int, rejected: int) -> None:
        if key not in self._map and len(self._map) >= self._max:
            del self._map[next(iter(self._map))]  # dicts keep insertion order
        self._map[key] = (accepted, rejected)


def _table(max_ids: int) -> Any:
    try:
        from services.ingest import _native  # type: ignore[attr-defined]
    except ImportError:
        return _DictTable(max_ids)
    return _native.IdTable(max_ids)


class IdIndex(Generic[V]):
    """Batch ids and what they were answered with; beyond ``max_ids`` the oldest go first.

    Stored batches sit in a compact table keyed by a digest of the id (32 bytes each
    with the C extension); a batch still being written (any value that is not a
    ``StoredBatch``) is held as itself until :meth:`replace` or :meth:`discard`.
    """

    def __init__(self, max_ids: int) -> None:
        self._done = _table(max_ids)
        self._pending: dict[str, V] = {}
        self._stored: dict[tuple[int, int], StoredBatch] = {}

    def __len__(self) -> int:
        return len(self._done) + len(self._pending)

    def stored(self, accepted: int, rejected: int) -> StoredBatch:
        """Share one instance per common (accepted, rejected) pair."""
        key = (accepted, rejected)
        found = self._stored.get(key)
        if found is not None:
            return found
        made = StoredBatch(accepted, rejected)
        if len(self._stored) < _INTERN_MAX:
            self._stored[key] = made
        return made

    def get(self, batch_id: str) -> V | StoredBatch | None:
        pending = self._pending.get(batch_id)
        if pending is not None:
            return pending
        counts = self._done.get(id_digest(batch_id))
        return None if counts is None else self.stored(*counts)

    def add(self, batch_id: str, value: V) -> None:
        """Remember a new id; the caller has checked that it is not present."""
        if isinstance(value, StoredBatch):
            self._done.put(id_digest(batch_id), value.accepted, value.rejected)
        else:
            self._pending[batch_id] = value

    def load(self, ids: Sequence[str], values: Sequence[StoredBatch]) -> None:
        """Add many stored ids (start-up); for an id already known the later answer wins."""
        put = self._done.put
        for batch_id, value in zip(ids, values, strict=True):
            put(id_digest(batch_id), value.accepted, value.rejected)

    def replace(self, batch_id: str, old: V, new: V | StoredBatch) -> None:
        """The batch written as ``old`` is now ``new`` (stored, once fsynced)."""
        if self._pending.get(batch_id) is not old:
            return
        del self._pending[batch_id]
        self.add(batch_id, new)  # type: ignore[arg-type]

    def discard(self, batch_id: str, value: V) -> None:
        """Forget an id that was added but not kept (rolled back)."""
        if self._pending.get(batch_id) is value:
            del self._pending[batch_id]
