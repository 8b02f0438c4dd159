"""What is known of each ``seq`` of one stream: sent, acknowledged, how often stored.

One byte a seq, in chunks of 4096 created on first use, so memory follows the seqs the run
used (about a byte each), not the size of the sink: the low two bits say what the sends
say (0 never sent, 1 acknowledged, 2 sent but not acknowledged), the six high bits count
the stored copies (saturating at 63).
"""

from __future__ import annotations

import re

ACKED = 1
UNACKED = 2
_STATE = 3
_ONE = 4
_MAX_COPIES = 63
_SHIFT = 12
_CHUNK = 1 << _SHIFT
_MASK = _CHUNK - 1
_ACKED_RUN = bytes([ACKED]) * _CHUNK
# Before the sink is read only the state bits are set: 0 (never sent) becomes "sent, not
# acknowledged", anything else stays.
_TO_UNACKED = bytes([UNACKED, ACKED, UNACKED]) + bytes(range(3, 256))
# Acknowledged and never stored.
_MISSING = re.compile(rb"\x01+")


class SeqTable:
    """See the module docstring. Sends are marked first, then stored lines counted."""

    def __init__(self) -> None:
        self._chunks: dict[int, bytearray] = {}

    def _chunk(self, index: int) -> bytearray:
        chunk = self._chunks.get(index)
        if chunk is None:
            chunk = self._chunks[index] = bytearray(_CHUNK)
        return chunk

    def _pieces(self, first: int, count: int) -> list[tuple[bytearray, int, int]]:
        out = []
        seq, end = first, first + count
        while seq < end:
            lo = seq & _MASK
            hi = min(_CHUNK, lo + end - seq)
            out.append((self._chunk(seq >> _SHIFT), lo, hi))
            seq += hi - lo
        return out

    def mark_sent(self, first: int, count: int, acked: bool) -> tuple[int, int]:
        """Mark ``first .. first+count-1`` sent (and acknowledged); return how many seqs
        were sent for the first time and how many became acknowledged."""
        sent = newly = 0
        for chunk, lo, hi in self._pieces(first, count):
            sent += chunk.count(0, lo, hi)
            if acked:
                newly += hi - lo - chunk.count(ACKED, lo, hi)
                chunk[lo:hi] = _ACKED_RUN[: hi - lo]
            else:
                chunk[lo:hi] = chunk[lo:hi].translate(_TO_UNACKED)
        return sent, newly

    def state(self, seq: int) -> int:
        chunk = self._chunks.get(seq >> _SHIFT)
        return 0 if chunk is None else chunk[seq & _MASK] & _STATE

    def set_state(self, seq: int, state: int) -> None:
        chunk = self._chunk(seq >> _SHIFT)
        chunk[seq & _MASK] = (chunk[seq & _MASK] & ~_STATE) | state

    def store(self, seq: int) -> tuple[int, int]:
        """Count one stored copy of ``seq``; return its state and the copies seen before."""
        chunk = self._chunk(seq >> _SHIFT)
        value = chunk[seq & _MASK]
        copies = value >> 2
        if copies < _MAX_COPIES:
            chunk[seq & _MASK] = value + _ONE
        return value & _STATE, copies

    def missing_ranges(self, limit: int) -> list[tuple[int, int]]:
        """The first ``limit`` runs of acknowledged seqs never stored, as inclusive ranges."""
        ranges: list[tuple[int, int]] = []
        for index in sorted(self._chunks):
            base = index << _SHIFT
            for match in _MISSING.finditer(self._chunks[index]):
                lo, hi = base + match.start(), base + match.end() - 1
                if ranges and ranges[-1][1] == lo - 1:
                    ranges[-1] = (ranges[-1][0], hi)
                elif len(ranges) == limit:
                    return ranges
                else:
                    ranges.append((lo, hi))
        return ranges
