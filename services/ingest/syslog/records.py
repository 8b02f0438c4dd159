"""Turns received syslog messages into the records the Ingest core stores.

Each message becomes a raw line for the core's normaliser, which detects its format
(RFC 5424, RFC 3164, or the lenient ``syslog`` one) and parses it; a message that fits
no format is kept whole as ``msg`` (format ``text``), so nothing is lost for its shape.
The peer's address is the record's ``host``, used when the line names none.
"""

from __future__ import annotations

from services.common.model import Record
from services.ingest.syslog.handoff import Item


class RecordBuilder:
    def records(self, items: list[Item]) -> list[Record | None]:
        out: list[Record | None] = []
        for host, _, frames in items:
            out += [{"raw": f.decode("utf-8", "replace"), "host": host} for f in frames]
        return out
