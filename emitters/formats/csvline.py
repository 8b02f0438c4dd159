"""The ``csv`` format: the seed-compatible ``ts,level,msg`` line, and whole CSV documents.

Quoting follows RFC 4180: a field holding a comma, a double quote, CR or LF is wrapped
in double quotes and an embedded quote is doubled. A single data line without quotes is
split on its first two commas, so an unquoted message may itself contain commas (as the
seed data did). Empty fields are left out of the parsed record: CSV cannot tell an empty
value from a missing one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from emitters.formats.base import AppEvents, FormatError, value_text

COLUMNS = ("ts", "level", "msg")
HEADER = ",".join(COLUMNS)
# The csv module's default (128 KiB) is below the largest record the gateway takes;
# a field longer than this is a CSV error for its row.
_FIELD_LIMIT = 64 * 1024 * 1024


class CsvFormat(AppEvents):
    """``ts,level,msg`` lines with RFC 4180 quoting."""

    name = "csv"

    def render(self, rec: dict[str, Any]) -> str:
        return ",".join([_quote(value_text(rec.get(key))) for key in COLUMNS])

    def parse(self, line: str) -> dict[str, Any]:
        if line == HEADER:
            raise FormatError("a CSV header line is not a record")
        if '"' not in line:
            fields = line.split(",", 2)
        else:
            try:
                rows = list(_rows(line))
            except csv.Error as exc:
                raise FormatError(f"invalid CSV: {exc}") from exc
            if len(rows) != 1:
                raise FormatError("a CSV line must hold exactly one record")
            fields = rows[0]
            if len(fields) > len(COLUMNS):
                raise FormatError(f"expected 3 fields (ts,level,msg), got {len(fields)}")
        if len(fields) < len(COLUMNS):
            raise FormatError(f"expected 3 fields (ts,level,msg), got {len(fields)}")
        return {key: value for key, value in zip(COLUMNS, fields, strict=True) if value}

    def looks_like(self, line: str) -> bool:
        # Seed rows start with a timestamp and carry a one-word level in the second field.
        # The first field is a timestamp: at most one space ("2024-03-12 14:05:09"), so a
        # syslog line whose message holds commas ("TS host app: a,b") is not taken.
        head, sep, rest = line.partition(",")
        if not sep or not head[:1].isdigit() or head.count(" ") > 1 or len(head) > 40:
            return False
        level, sep, _ = rest.partition(",")
        return bool(sep) and 0 < len(level) <= 16 and " " not in level


def parse_csv_document(text: str) -> list[dict[str, Any] | FormatError]:
    """Parse a CSV body whose first row is the header; one result per data row, in order.

    Any column names are taken as keys (``ts,level,msg`` is the usual header; aliases such
    as ``timestamp`` or ``message`` stay as they are for the normaliser to resolve). A row
    whose field count differs from the header's is a ``FormatError`` in its place, and the
    other rows are kept. Blank lines are not rows. Quoted fields may span lines. Never
    raises: a body the csv module gives up on ends with one ``FormatError``.
    """
    results: list[dict[str, Any] | FormatError] = []
    rows = _rows(text)
    header = [name.strip() for name in next(rows, [])]
    try:
        for row in rows:
            if len(row) != len(header):
                results.append(
                    FormatError(f"the row has {len(row)} fields, the header has {len(header)}")
                )
            else:
                results.append({k: v for k, v in zip(header, row, strict=True) if v})
    except csv.Error as exc:
        results.append(FormatError(f"invalid CSV: {exc}"))
    return results


def _rows(text: str) -> Iterator[list[str]]:
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    return (row for row in csv.reader(io.StringIO(text, newline="")) if row)


def _quote(text: str) -> str:
    if '"' in text:
        return '"' + text.replace('"', '""') + '"'
    if "," in text or "\n" in text or "\r" in text:
        return '"' + text + '"'
    return text
