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

from services.ingest.appendfile import fsync_dir, truncate_path
from services.ingest.batch_index import (
    DATA_NAME,
    DAY_SEC,
    INDEX_DIR,
    INDEX_NAME,
    IdIndex,
    day_start,
    index_name,
)

_BLOCK = 1024 * 1024
# Below this many lines a block with a bad line is checked line by line.
_SLOW_LINES = 64
_NO_SIZE = 1 << 62


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
    """

    def __init__(self, sizes: dict[str, int], table: IdIndex[Any], cutoff: float) -> None:
        self.sizes = sizes
        self.table = table
        self.cutoff = cutoff
        self.offset = 0
        self.drops: list[tuple[int, int]] = []
        self.ends: dict[str, int] = {}

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
        try:
            entries = orjson.loads(b"[" + buf[:-1].replace(b"\n", b",") + b"]")
        except orjson.JSONDecodeError:
            return False
        try:
            columns = list(zip(*entries, strict=True))
        except (TypeError, ValueError):
            return False
        if len(entries) != count or len(columns) != 7:
            return False
        # A wrong shape (a string, an object) cannot pass the column type checks below.
        ids, accepted, rejected, names, starts, ends, times = columns
        if not (
            set(map(type, ids)) == set(map(type, names)) == {str}
            and set(map(type, itertools.chain(accepted, rejected, starts, ends))) == {int}
            and set(map(type, times)) <= {int, float}
            and min(starts) >= 0
            and all(map(operator.le, starts, ends))
            and all(map(operator.le, ends, map(self.sizes.get, names, repeat(_NO_SIZE))))
        ):
            return False
        if min(times) < self.cutoff:
            inside = list(map(operator.le, repeat(self.cutoff), times))
            ids, accepted, rejected = (
                tuple(itertools.compress(col, inside)) for col in (ids, accepted, rejected)
            )
        pairs = zip(accepted, rejected, strict=True)
        stored = {pair: self.table.stored(*pair) for pair in set(pairs)}
        self.table.load(ids, list(map(stored.__getitem__, zip(accepted, rejected, strict=True))))
        if len(set(names)) == 1:
            last = {names[0]: max(ends)}
        else:
            # Sorted (name, end) pairs put each name's largest end last, and dict() keeps it.
            last = dict(sorted(zip(names, ends, strict=True)))
        for name, end in last.items():
            if name in self.sizes and end > self.ends.get(name, 0):
                self.ends[name] = end
        return True


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

