"""Idempotency index of the NDJSON sink: file names, line format, in-memory table.

On disk, ``<dir>/.index/<YYYYMMDD>.idx`` holds one compact JSON array per stored batch::

    ["<batch_id>", accepted, rejected, "<data file name>", start, end, unix_time]

``start``/``end`` are byte offsets of the batch in the data file of the same UTC day. JSON
escaping keeps tabs and newlines in client-chosen ids from breaking the line structure, and
the leading dot keeps the folder out of a tailer's ``*.ndjson`` glob.

A batch with records whose ``ts``/``level`` were missing has one more line, written
just before its entry (in the same write), so a duplicate is answered those counts too::

    ["<batch_id>", ts_absent, ts_invalid, level_absent, level_invalid]

It belongs to the entry right after it and is ignored anywhere else (its entry torn off
in a crash). Indexes without such lines (older ones, batches without missing fields)
load as before; an older gateway drops these lines at start-up and keeps the entries.

In memory, :class:`IdIndex` keeps the ids of stored batches as 16-byte digests in a compact
table (``IdTable`` of the C extension, about 34 bytes an id; a dict without it), so the
default cap of two million ids costs about 70 MB rather than 250. The missing counts of
the batches that have any sit in a second such table (about 34 bytes more for those ids).

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

# ts_absent, ts_invalid, level_absent, level_invalid (``MissingCounts`` in this order).
Missing = tuple[int, int, int, int]
NO_MISSING: Missing = (0, 0, 0, 0)

# Flags on the rejected count in the main table: the missing counts are in the side table,
# packed 16 bits each under the id's digest, or whole under the digest (ts) and a key
# derived from it (level). Rejected counts never come near 2**30 (max_records).
_PACKED = 1 << 31
_WIDE = 1 << 30
_FLAGS = _PACKED | _WIDE


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """What a stored batch was answered with; a duplicate gets the same answer again
    (all but the per-record rejection details)."""

    accepted: int
    rejected: int
    missing: Missing = NO_MISSING


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
    """The index lines of one batch (one, or two with missing counts); ValueError when
    the id cannot be encoded (a lone surrogate)."""
    entry = [batch_id, stored.accepted, stored.rejected, file_name, start, end, round(ts, 3)]
    try:
        line = orjson.dumps(entry) + b"\n"
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"batch_id cannot be stored: {exc}") from exc
    if stored.missing == NO_MISSING:
        return line
    return orjson.dumps([batch_id, *stored.missing]) + b"\n" + line


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


def _level_key(digest: bytes) -> bytes:
    """A second side-table key for an id, as far from every other digest as any digest."""
    return digest[:-1] + bytes([digest[-1] ^ 0xFF])


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
        # Filled only by batches with missing counts, up to two entries each, so it
        # forgets an id no earlier than the main table does.
        self._side = _table(min(2 * max_ids, 1 << 30))
        self._pending: dict[str, V] = {}
        self._stored: dict[tuple[int, int, Missing], StoredBatch] = {}

    def __len__(self) -> int:
        return len(self._done) + len(self._pending)

    def stored(self, accepted: int, rejected: int, missing: Missing = NO_MISSING) -> StoredBatch:
        """Share one instance per common answer."""
        key = (accepted, rejected, missing)
        found = self._stored.get(key)
        if found is not None:
            return found
        made = StoredBatch(accepted, rejected, NO_MISSING if missing == NO_MISSING else missing)
        if len(self._stored) < _INTERN_MAX:
            self._stored[key] = made
        return made

    def get(self, batch_id: str) -> V | StoredBatch | None:
        pending = self._pending.get(batch_id)
        if pending is not None:
            return pending
        digest = id_digest(batch_id)
        counts = self._done.get(digest)
        if counts is None:
            return None
        accepted, rejected = counts
        if rejected < _WIDE:
            return self.stored(accepted, rejected)
        return self.stored(accepted, rejected & ~_FLAGS, self._missing(digest, rejected))

    def add(self, batch_id: str, value: V) -> None:
        """Remember a new id; the caller has checked that it is not present."""
        if isinstance(value, StoredBatch):
            self._put(id_digest(batch_id), value)
        else:
            self._pending[batch_id] = value

    def load(self, ids: Sequence[str], values: Sequence[StoredBatch]) -> None:
        """Add many stored ids (start-up); for an id already known the later answer wins."""
        put = self._done.put
        for batch_id, value in zip(ids, values, strict=True):
            if value.missing is NO_MISSING:
                put(id_digest(batch_id), value.accepted, value.rejected)
            else:
                self._put(id_digest(batch_id), value)

    def _put(self, digest: bytes, value: StoredBatch) -> None:
        missing = value.missing
        if missing == NO_MISSING or value.rejected >= _WIDE:
            self._done.put(digest, value.accepted, value.rejected)
            return
        ts_absent, ts_invalid, level_absent, level_invalid = missing
        if max(missing) <= 0xFFFF:
            self._side.put(digest, ts_absent << 16 | ts_invalid, level_absent << 16 | level_invalid)
            flag = _PACKED
        else:
            self._side.put(digest, ts_absent, ts_invalid)
            self._side.put(_level_key(digest), level_absent, level_invalid)
            flag = _WIDE
        self._done.put(digest, value.accepted, value.rejected | flag)

    def _missing(self, digest: bytes, flags: int) -> Missing:
        """The missing counts a flagged id keeps in the side table (zeros in the one case
        where the side table can forget first: an id stored again and again at start-up)."""
        ts = self._side.get(digest)
        if flags & _PACKED:
            if ts is None:
                return NO_MISSING
            return (ts[0] >> 16, ts[0] & 0xFFFF, ts[1] >> 16, ts[1] & 0xFFFF)
        level = self._side.get(_level_key(digest))
        if ts is None or level is None:
            return NO_MISSING
        return (ts[0], ts[1], level[0], level[1])

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
