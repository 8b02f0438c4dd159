"""Plain model types that the fronts decode into and the cores decide on.

A record is a plain ``dict``: the keys of ``LogRecord`` (``ts``, ``level``, ``msg``,
``service``, ``host``, ``stream``, ``seq``, ``raw``, ``format``) plus any other
structured fields at the top level, exactly as JSON bodies arrive. Keeping records as
dicts means the JSON path does no copying and the protobuf path builds one dict each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]

# Serialized bodies a Batch may carry undecoded: protobuf PushRequest or LogBatch, JSON.
WIRE_KINDS = ("push_request", "log_batch", "json")

# The keys a LogRecord carries itself; everything else in a record is a structured field.
RECORD_KEYS = ("ts", "level", "msg", "service", "host", "stream", "seq", "raw", "format")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one record was not stored: its index in the batch and a reason from a fixed set."""

    index: int
    reason: str
    message: str


@dataclass(slots=True)
class Batch:
    """One pushed batch, whatever the transport or content type.

    A decoder that cannot read one record (an NDJSON line that is not JSON, a CSV row
    with the wrong field count) leaves ``None`` at its position and says why in
    ``rejections``; the rest of the batch goes on.
    """

    records: list[Record | None]
    batch_id: str = ""
    emitter: str = ""
    scenario_id: str = ""
    run_id: str = ""
    # Format named by the transport (``X-LogOps-Format``) for raw lines without one.
    default_format: str = ""
    rejections: list[Rejection] = field(default_factory=list)
    # A body kept undecoded for the Ingest Gateway's C path, once checked: ``wire`` is
    # the body, ``wire_kind`` one of ``WIRE_KINDS``, ``wire_span`` where the JSON records
    # array lies; ``records`` stays empty.
    wire: bytes | None = None
    wire_kind: str = ""
    wire_count: int = 0
    wire_span: tuple[int, int] = (0, 0)

    def count(self) -> int:
        """How many records the batch holds, decoded or not."""
        return self.wire_count if self.wire is not None else len(self.records)


@dataclass(slots=True)
class MissingCounts:
    """Records whose ``ts``/``level`` were absent or unparseable, per reason."""

    ts_absent: int = 0
    ts_invalid: int = 0
    level_absent: int = 0
    level_invalid: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "ts_absent": self.ts_absent,
            "ts_invalid": self.ts_invalid,
            "level_absent": self.level_absent,
            "level_invalid": self.level_invalid,
        }


@dataclass(slots=True)
class PushResult:
    """The outcome of one push, the same fields as ``PushResponse``."""

    batch_id: str
    accepted: int = 0
    rejected: int = 0
    # Details of each rejection; empty for a duplicate, whose counts come from the index.
    rejections: list[Rejection] = field(default_factory=list)
    duplicate: bool = False
    spooled: bool = False
    missing: MissingCounts = field(default_factory=MissingCounts)
    request_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejections": [
                {"index": r.index, "reason": r.reason, "message": r.message}
                for r in self.rejections
            ],
            "duplicate": self.duplicate,
            "spooled": self.spooled,
            "missing": self.missing.to_dict(),
            "request_id": self.request_id,
        }
