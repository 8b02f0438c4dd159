"""Start-up crash recovery of the NDJSON sink: repair the data and index files, load the ids."""

from __future__ import annotations

import gc
import itertools
import operator
import os
import re
import time
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any

import orjson

from services.common.appendfile import fsync_dir, truncate_path
from services.ingest.batch_index import (
    DATA_NAME,
    DAY_SEC,
    INDEX_DIR,
    INDEX_NAME,
    IdIndex,
    Missing,
    day_start,
    index_name,
)

_BLOCK = 1024 * 1024
# Below this many lines a block with a bad line is checked line by line.
_SLOW_LINES = 64
_NO_SIZE = 1 << 62
# Columns of an index entry and of the line of missing counts before it.
_ENTRY, _EXTRA = 7, 5


@dataclass(slots=True)
class RepairReport:
    """What start-up recovery found and changed."""

    loaded: int = 0
    dropped_index_lines: int = 0
    truncated_bytes: int = 0
    seconds: float = 0.0


def recover(
    sink_dir: Path, table: IdIndex[Any], now: float, window_sec: float
) -> RepairReport:
    """Repair the files of the days inside the window (and the newest day) and load their ids.

    Runs before the sink appends anything: it drops torn or unreadable index lines and
    entries whose data never reached the disk, cuts data files back to the last indexed
    batch (which also removes a torn last line), and loads the ids still inside the
    deduplication window into an :class:`IdIndex`.

    A day whose index file is missing was not written by this sink (or its index was
    removed); only a torn last line is cut from its data files there.
    """
    began = time.perf_counter()
    report = RepairReport()
    # Millions of short-lived parsed lists would trigger a full collection again and again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        _recover_days(sink_dir, table, now - window_sec, report)
    finally:
        if collecting:
            gc.enable()
    report.loaded = len(table)
    report.seconds = time.perf_counter() - began
    return report


def _recover_days(
    sink_dir: Path, table: IdIndex[Any], cutoff: float, report: RepairReport
) -> None:
    data_days = _scan(sink_dir, DATA_NAME)
    index_days = _scan(sink_dir / INDEX_DIR, INDEX_NAME)
    days = sorted(data_days.keys() | index_days.keys())
    for day in days:
        start = day_start(day)
        if start is None or (start + DAY_SEC <= cutoff and day != days[-1]):
            continue
        files = data_days.get(day, {})
        complete = {name: _complete_size(sink_dir / name, size) for name, size in files.items()}
        if day in index_days:
            path = sink_dir / INDEX_DIR / index_name(day)
            kept_ends = _repair_index(path, complete, table, cutoff, report)
        else:
            kept_ends = complete
        for name, size in files.items():
            keep = kept_ends.get(name, 0)
            if size > keep:
                truncate_path(sink_dir / name, keep)
                report.truncated_bytes += size - keep


def _scan(folder: Path, pattern: re.Pattern[str]) -> dict[str, dict[str, int]]:
    """Day -> {name: size} of the regular files in ``folder`` whose name matches."""
    days: dict[str, dict[str, int]] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False):
                size = entry.stat(follow_symlinks=False).st_size
                days.setdefault(match.group(1), {})[entry.name] = size
    return days


def _complete_size(path: Path, size: int) -> int:
    """Length of the file up to and including its last newline."""
    if size == 0:
        return 0
    with path.open("rb") as fh:
        pos = size
        while pos > 0:
            step = min(pos, 65_536)
            fh.seek(pos - step)
            block = fh.read(step)
            at = block.rfind(b"\n")
            if at >= 0:
                return pos - step + at + 1
            pos -= step
    return 0


def _repair_index(
    path: Path,
    sizes: dict[str, int],
    table: IdIndex[Any],
    cutoff: float,
    report: RepairReport,
) -> dict[str, int]:
    """Drop bad lines from one day's index, load its ids, return each file's last kept end."""
    scan = _IndexScan(sizes, table, cutoff)
    with path.open("rb") as fh:
        rest = b""
        while block := fh.read(_BLOCK):
            buf = rest + block
            cut = buf.rfind(b"\n") + 1
            rest = buf[cut:]
            if cut:
                scan.block(buf[:cut])
        total = scan.offset + len(rest)
    scan.drop_carried()
    if rest:
        scan.drops.append((scan.offset, len(rest)))
    if scan.drops:
        _drop_lines(path, scan.drops, total)
        report.dropped_index_lines += len(scan.drops)
    return scan.ends


class _IndexScan:
    """Validates index lines block by block, remembering what to drop and where data ends.

    A block of good lines is checked and loaded with a few C-level passes; a block with a
    bad line is halved until the pieces are small, and those are checked line by line.
    A line of missing counts goes with the entry right after it, which may open the next
    block (``carried``); see :mod:`services.ingest.batch_index`.
    """

    def __init__(self, sizes: dict[str, int], table: IdIndex[Any], cutoff: float) -> None:
        self.sizes = sizes
        self.table = table
        self.cutoff = cutoff
        self.offset = 0
        self.drops: list[tuple[int, int]] = []
        self.ends: dict[str, int] = {}
        # A last line of missing counts: (batch id, counts, offset, length).
        self.carried: tuple[str, Missing, int, int] | None = None

    def block(self, buf: bytes) -> None:
        """Take complete lines (``buf`` ends with a newline)."""
        count = buf.count(b"\n")
        if self._fast(buf, count):
            self.offset += len(buf)
            return
        mid = buf.rfind(b"\n", 0, len(buf) // 2) + 1
        if count > _SLOW_LINES and mid:
            self.block(buf[:mid])
            self.block(buf[mid:])
            return
        for line in buf[:-1].split(b"\n"):
            if not self._fast(line + b"\n", 1):
                self.drops.append((self.offset, len(line) + 1))
            self.offset += len(line) + 1

    def _fast(self, buf: bytes, count: int) -> bool:
        """Check and load a run of lines; False (nothing loaded) when one is bad."""
        try:
            rows = orjson.loads(b"[" + buf[:-1].replace(b"\n", b",") + b"]")
            lengths = list(map(len, rows))
        except (orjson.JSONDecodeError, TypeError):
            return False
        split = _split(rows, lengths) if len(rows) == count else None
        if split is None:
            return False
        entries, missing, carry = split
        carried = self.carried
        follows = carried is not None and _entry_of(rows, lengths, 0, carried[0])
        if carried is not None and follows:
            missing[0] = carried[1]
        if entries and not self._load(entries, missing):
            return False
        if not follows:
            self.drop_carried()
        self.carried = None
        if carry is not None:
            at = buf.rfind(b"\n", 0, len(buf) - 1) + 1
            self.carried = (*carry, self.offset + at, len(buf) - at)
        return True

    def drop_carried(self) -> None:
        """Drop a line of missing counts that its entry does not follow (torn off)."""
        if self.carried is not None:
            self.drops.append(self.carried[2:])
            self.carried = None

    def _load(self, entries: list[Any], missing: dict[int, Missing]) -> bool:
        """Check entry rows as columns and load their ids; False when one is bad."""
        try:
            columns = list(zip(*entries, strict=True))
        except (TypeError, ValueError):
            return False
        if len(columns) != _ENTRY or not self._valid(columns):
            return False
        ids, accepted, rejected, names, _, ends, times = columns
        pairs = list(zip(accepted, rejected, strict=True))
        stored = {pair: self.table.stored(*pair) for pair in set(pairs)}
        values = list(map(stored.__getitem__, pairs))
        for at, counts in missing.items():
            values[at] = self.table.stored(accepted[at], rejected[at], counts)
        if min(times) < self.cutoff:
            inside = list(map(operator.le, repeat(self.cutoff), times))
            ids = tuple(itertools.compress(ids, inside))
            values = list(itertools.compress(values, inside))
        self.table.load(ids, values)
        if len(set(names)) == 1:
            last = {names[0]: max(ends)}
        else:
            # Sorted (name, end) pairs put each name's largest end last, and dict() keeps it.
            last = dict(sorted(zip(names, ends, strict=True)))
        for name, end in last.items():
            if name in self.sizes and end > self.ends.get(name, 0):
                self.ends[name] = end
        return True

    def _valid(self, columns: list[tuple[Any, ...]]) -> bool:
        # A wrong shape (a string, an object) cannot pass the column type checks below.
        ids, accepted, rejected, names, starts, ends, times = columns
        return bool(
            set(map(type, ids)) == set(map(type, names)) == {str}
            and set(map(type, itertools.chain(accepted, rejected, starts, ends))) == {int}
            and set(map(type, times)) <= {int, float}
            and min(starts) >= 0
            and all(map(operator.le, starts, ends))
            and all(map(operator.le, ends, map(self.sizes.get, names, repeat(_NO_SIZE))))
        )


def _split(
    rows: list[Any], lengths: list[int]
) -> tuple[list[Any], dict[int, Missing], tuple[str, Missing] | None] | None:
    """The entry rows, the missing counts of some of them (by position among the entries)
    and a last line of missing counts whose entry may open the next block; None when a
    line is bad, or is missing counts that their entry does not follow."""
    extra_at = list(itertools.compress(range(len(rows)), map((_EXTRA).__eq__, lengths)))
    if not extra_at:
        return rows, {}, None
    entries = [row for row, n in zip(rows, lengths, strict=True) if n != _EXTRA]
    carry = None
    if extra_at[-1] == len(rows) - 1:
        last = _extra_counts([rows[extra_at.pop()]])
        if last is None:
            return None
        carry = last[0]
        if not extra_at:
            return entries, {}, carry
    followed = _extra_counts(list(map(rows.__getitem__, extra_at)))
    if followed is None:
        return None
    # Each line of counts must be followed by its batch's entry (checked in full later).
    after = [at + 1 for at in extra_at]
    try:
        next_ids = [rows[at][0] for at in after]
    except (IndexError, KeyError, TypeError):
        return None
    if next_ids != [batch_id for batch_id, _ in followed] or _EXTRA in map(
        lengths.__getitem__, after
    ):
        return None
    positions = map(operator.sub, extra_at, range(len(extra_at)))
    missing = dict(zip(positions, (counts for _, counts in followed), strict=True))
    return entries, missing, carry


def _extra_counts(rows: list[Any]) -> list[tuple[str, Missing]] | None:
    """``["<batch_id>", ts_absent, ts_invalid, level_absent, level_invalid]`` lines as
    (id, counts), or None when one is not such a line."""
    try:
        ids, *columns = zip(*rows, strict=True)
    except (TypeError, ValueError):
        return None
    counts = list(itertools.chain.from_iterable(columns))
    if len(columns) != 4 or set(map(type, ids)) != {str} or set(map(type, counts)) != {int}:
        return None
    if min(counts) < 0:
        return None
    return list(zip(ids, zip(*columns, strict=True), strict=True))


def _entry_of(rows: list[Any], lengths: list[int], at: int, batch_id: str) -> bool:
    """Whether ``rows[at]`` looks like the entry of ``batch_id`` (checked in full later)."""
    return at < len(rows) and lengths[at] == _ENTRY and type(rows[at]) is list and (
        rows[at][0] == batch_id
    )


def _drop_lines(path: Path, drops: list[tuple[int, int]], total: int) -> None:
    contiguous = all(a[0] + a[1] == b[0] for a, b in itertools.pairwise(drops))
    if contiguous and drops[-1][0] + drops[-1][1] == total:
        truncate_path(path, drops[0][0])
        return
    data = path.read_bytes()
    parts: list[bytes] = []
    pos = 0
    for offset, length in drops:
        parts.append(data[pos:offset])
        pos = offset + length
    parts.append(data[pos:])
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(b"".join(parts))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)

