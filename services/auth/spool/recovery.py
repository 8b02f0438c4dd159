"""Start-up recovery of the Auth Gateway's spool: cut torn tails, set damage aside, reload.

Runs before the spool takes a batch. A put returns only once its record is whole in its
segment (and fsynced in ``batch`` mode), so the only record a crash can leave torn is the
last one of the newest segment, and its put never returned: it is cut off. Damaged bytes
anywhere else (bit rot, a failed write in an older segment) are copied to ``quarantine/``
and logged, and the records after them are kept: one bad record never blocks the spool.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.auth.spool.codec import (
    CURSOR_NAME,
    QUARANTINE_DIR,
    RECORD_MAGIC,
    SEGMENT_HEAD_SIZE,
    SEGMENT_NAME,
    TMP_SUFFIX,
    check_record,
    decode_cursor,
    decode_segment_head,
)
from services.common.appendfile import fsync_dir, truncate_path

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class FoundSegment:
    """A segment on disk and its records not yet delivered, as (seq, offset, length)."""

    path: Path
    first_seq: int
    seed: int
    records: list[tuple[int, int, int]] = field(default_factory=list)


@dataclass(slots=True)
class RecoveryReport:
    """What start-up recovery found and changed (logged by the spool)."""

    batches: int = 0
    bytes: int = 0
    cut_bytes: int = 0
    quarantined: int = 0
    removed_files: int = 0
    cursor_damaged: bool = False
    seconds: float = 0.0


@dataclass(slots=True)
class Recovered:
    acked: int
    next_seq: int
    segments: list[FoundSegment]
    report: RecoveryReport = field(default_factory=RecoveryReport)


def recover(spool_dir: Path) -> Recovered:
    """Repair the spool folder and return what is still to deliver, oldest first.

    Repairs are fsynced whatever the durability mode: they happen once, at start-up.
    """
    began = time.perf_counter()
    report = RecoveryReport()
    changed = _remove_temps(spool_dir, report)
    acked = _read_cursor(spool_dir, report)
    names = sorted(
        (int(m.group(1)), entry.name)
        for entry in os.scandir(spool_dir)
        if (m := SEGMENT_NAME.fullmatch(entry.name)) and entry.is_file(follow_symlinks=False)
    )
    segments: list[FoundSegment] = []
    last_seq = 0
    for i, (first_seq, name) in enumerate(names):
        newest = i == len(names) - 1
        found = _recover_segment(spool_dir / name, first_seq, last_seq + 1, newest, report)
        if found is not None and found.records:
            last_seq = found.records[-1][0]
        if found is not None:
            segments.append(found)
    kept = _drop_delivered(segments, acked, report)
    if changed or len(kept) < len(names):
        fsync_dir(spool_dir)
    report.batches = sum(len(s.records) for s in kept)
    report.bytes = sum(length for s in kept for _, _, length in s.records)
    report.seconds = time.perf_counter() - began
    return Recovered(acked, max(acked, last_seq) + 1, kept, report)


def set_aside(segment: Path, offset: int, raw: bytes, durable: bool) -> None:
    """Keep damaged bytes found in ``segment`` at ``offset`` in ``quarantine/`` and log it.

    The file name depends only on where the bytes were found, so finding them again
    (after another restart) rewrites the same file instead of adding one.
    """
    folder = segment.parent / QUARANTINE_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"{segment.name}.{offset:012d}.bad"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    if durable:
        fsync_dir(folder)
    _log.warning(
        "damaged spool record set aside",
        extra={
            "event": "spool_quarantine",
            "segment": segment.name,
            "offset": offset,
            "bytes": len(raw),
            "kept_at": str(path),
        },
    )


def _remove_temps(spool_dir: Path, report: RecoveryReport) -> bool:
    """Files a crash left half written (a new segment, the cursor) never counted: remove."""
    removed = 0
    for entry in os.scandir(spool_dir):
        if entry.name.endswith(TMP_SUFFIX) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
            removed += 1
    report.removed_files += removed
    return removed > 0


def _read_cursor(spool_dir: Path, report: RecoveryReport) -> int:
    try:
        raw = (spool_dir / CURSOR_NAME).read_bytes()
    except FileNotFoundError:
        return 0
    acked = decode_cursor(raw)
    if acked is None:
        # Safe, if wasteful: batches already delivered are offered again, and the Ingest
        # Gateway answers them as duplicates.
        report.cursor_damaged = True
        _log.warning(
            "spool cursor damaged; delivering every spooled batch again",
            extra={"event": "spool_cursor_damaged", "spool_dir": str(spool_dir)},
        )
        return 0
    return acked


def _recover_segment(
    path: Path, first_seq: int, min_seq: int, newest: bool, report: RecoveryReport
) -> FoundSegment | None:
    data = path.read_bytes()
    seed = decode_segment_head(data)
    if seed is None:
        _set_aside(path, report)
        return None
    records, damaged, tail = _scan(data, seed, min_seq)
    for start, end in damaged:
        _quarantine_span(path, start, data[start:end], report)
    if tail is not None:
        if not newest:
            _quarantine_span(path, tail, data[tail:], report)
        truncate_path(path, tail)
        report.cut_bytes += len(data) - tail
        _log.warning(
            "spool segment cut after its last whole record",
            extra={"event": "spool_cut", "segment": path.name, "cut_bytes": len(data) - tail},
        )
    return FoundSegment(path, first_seq, seed, records)


def _scan(
    data: bytes, seed: int, min_seq: int
) -> tuple[list[tuple[int, int, int]], list[tuple[int, int]], int | None]:
    """Whole records, damaged spans followed by a whole record, and where a damaged tail
    (nothing whole after it) starts."""
    records: list[tuple[int, int, int]] = []
    damaged: list[tuple[int, int]] = []
    pos = SEGMENT_HEAD_SIZE
    while pos < len(data):
        found = check_record(data, pos, seed, min_seq)
        if found is not None:
            seq, length = found
            records.append((seq, pos, length))
            min_seq = seq + 1
            pos += length
            continue
        following = _next_record(data, pos + 1, seed, min_seq)
        if following is None:
            return records, damaged, pos
        damaged.append((pos, following))
        pos = following
    return records, damaged, None


def _next_record(data: bytes, start: int, seed: int, min_seq: int) -> int | None:
    at = data.find(RECORD_MAGIC, start)
    while at >= 0:
        if check_record(data, at, seed, min_seq) is not None:
            return at
        at = data.find(RECORD_MAGIC, at + 1)
    return None


def _quarantine_span(path: Path, offset: int, raw: bytes, report: RecoveryReport) -> None:
    set_aside(path, offset, raw, durable=True)
    report.quarantined += 1


def _set_aside(path: Path, report: RecoveryReport) -> None:
    """A segment whose head is damaged cannot be checked at all: move it aside whole."""
    folder = path.parent / QUARANTINE_DIR
    folder.mkdir(exist_ok=True)
    os.replace(path, folder / path.name)
    fsync_dir(folder)
    report.quarantined += 1
    _log.warning(
        "spool segment with a damaged head set aside",
        extra={"event": "spool_quarantine", "segment": path.name, "kept_at": str(folder)},
    )


def _drop_delivered(
    segments: list[FoundSegment], acked: int, report: RecoveryReport
) -> list[FoundSegment]:
    """Forget records up to the cursor; remove segments left with nothing to deliver."""
    kept: list[FoundSegment] = []
    for seg in segments:
        seg.records = [r for r in seg.records if r[0] > acked]
        if seg.records:
            kept.append(seg)
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(seg.path)
        report.removed_files += 1
    return kept
