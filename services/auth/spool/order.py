"""In-memory order of the Auth Gateway's spool: undelivered batches, segments, the cursor."""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass

from services.auth.spool.recovery import Recovered
from services.auth.spool.segments import Segment

WRITTEN, DURABLE, FAILED = 0, 1, 2


@dataclass(slots=True, eq=False)
class Entry:
    """A batch not yet delivered: where its record is, and whether it may be offered.

    ``state`` is WRITTEN from the write to its fsync in ``batch`` mode (not offered yet),
    DURABLE after it (and at once in the other modes), FAILED when its fsync failed.
    """

    seq: int
    segment: Segment
    offset: int
    length: int
    state: int = DURABLE


class SpoolQueue:
    """Undelivered batches in seq order, the segments holding them, the cursor and the
    next seq. Not thread-safe: the spool calls it under its write lock."""

    def __init__(self, found: Recovered) -> None:
        self.entries: collections.deque[Entry] = collections.deque()
        self.segments: collections.deque[Segment] = collections.deque()
        self.nbytes = 0
        self.acked = found.acked
        self.next_seq = found.next_seq
        for seg in found.segments:
            segment = Segment(seg.path, seg.first_seq, seg.seed, None, seg.records[-1][0])
            for seq, offset, length in seg.records:
                self.add(Entry(seq, segment, offset, length))

    def __len__(self) -> int:
        return len(self.entries)

    def take_seq(self) -> int:
        """A new seq; never handed out twice, even when its batch fails."""
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def add(self, entry: Entry) -> None:
        if not self.segments or self.segments[-1] is not entry.segment:
            self.segments.append(entry.segment)
        self.entries.append(entry)
        self.nbytes += entry.length

    def durable_head(self, n: int) -> list[Entry]:
        """The oldest ``n`` entries that may be offered, stopping at one that may not."""
        durable = itertools.takewhile(lambda e: e.state == DURABLE, self.entries)
        return list(itertools.islice(durable, max(n, 0)))

    def remove(self, entry: Entry) -> None:
        """Stop offering one entry (found damaged); a no-op when already gone."""
        try:
            self.entries.remove(entry)
        except ValueError:
            return
        self.nbytes -= entry.length

    def drop_failed(self) -> None:
        """Forget the FAILED entries, which are always the newest ones."""
        while self.entries and self.entries[-1].state == FAILED:
            self.nbytes -= self.entries.pop().length

    def advance(self, seq: int, active: Segment | None) -> tuple[int | None, list[Segment]]:
        """Drop entries delivered up to ``seq``; the new cursor (None when it did not move)
        and the segments, other than ``active``, now wholly delivered."""
        entries = self.entries
        while entries and entries[0].seq <= seq and entries[0].state == DURABLE:
            self.nbytes -= entries.popleft().length
        # The cursor never passes a batch still kept, whatever seq the caller gave.
        limit = entries[0].seq - 1 if entries else self.next_seq - 1
        acked = min(seq, limit)
        if acked <= self.acked:
            return None, []
        self.acked = acked
        delivered: list[Segment] = []
        segments = self.segments
        while segments and segments[0] is not active and self.delivered(segments[0]):
            delivered.append(segments.popleft())
        return acked, delivered

    def delivered(self, segment: Segment) -> bool:
        return segment.last_seq <= self.acked

    def forget(self, segment: Segment) -> None:
        if segment in self.segments:
            self.segments.remove(segment)
