"""Timestamps as sources write them, turned into epoch milliseconds (UTC) and back.

Understood forms (surrounding ``[]`` and whitespace are ignored):

- RFC 3339 / ISO 8601: ``2024-03-12T14:05:09.482Z``, offsets ``Z``, ``+02:00``,
  ``+0200``, ``+02``, ``UTC``; ``T``, ``t`` or a space between date and time; any
  number of fractional digits (truncated to milliseconds). Without an offset: UTC.
- Epoch numbers (int, float or numeric text). The unit follows from the magnitude:
  below 1e11 seconds (until the year 5138), below 1e14 milliseconds, below 1e17
  microseconds, otherwise nanoseconds. So milliseconds before 1973-03-03 read as seconds.
- RFC 3164 ``Mmm dd HH:MM:SS`` (no year): the year that puts the instant nearest to
  ``now_ms`` is taken, so it is never more than about six months ahead of the clock.
- Apache ``dd/Mon/yyyy:HH:MM:SS +zzzz``, Apache error ``Www Mon dd HH:MM:SS[.uuuuuu]
  yyyy``, nginx error ``yyyy/mm/dd HH:MM:SS``, RFC 2822 ``Tue, 12 Mar 2024 14:05:09
  +0000`` and ``Mmm dd yyyy HH:MM:SS``; without an offset these are taken as UTC.

Instants before 1970 or from the year 10000 on are refused, as are impossible dates.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime
from functools import lru_cache

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
# 10000-01-01T00:00:00Z: the first instant that no longer has a four-digit year.
MAX_MS = 253_402_300_800_000
_SECONDS_BELOW = 10**11
_MILLIS_BELOW = 10**14
_MICROS_BELOW = 10**17
# Longer text is no timestamp; the bound keeps int() and the regexes cheap.
_MAX_TEXT = 64

# ".000Z" to ".999Z": the tail of every canonical timestamp.
MS_SUFFIXES = frozenset(f".{n:03d}Z" for n in range(1000))
_NUMBER = re.compile(r"[0-9]{1,25}(?:\.[0-9]{1,30})?")
_ZONE = r"(?:\s?(?P<z>Z|UTC|GMT|[+-][0-9]{2}(?::?[0-9]{2})?))?"
_TIME = r"(?P<H>[0-9]{2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?:[.,](?P<f>[0-9]+))?)?"
_MON = r"(?P<mon>[A-Za-z]{3})"
_FORMS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        # ISO-like text that fromisoformat refuses: lower-case t/z, a space before the zone.
        rf"(?P<Y>[0-9]{{4}})-(?P<m>[0-9]{{2}})-(?P<d>[0-9]{{2}})[T ]{_TIME}{_ZONE}",
        rf"(?P<Y>[0-9]{{4}})/(?P<m>[0-9]{{2}})/(?P<d>[0-9]{{2}})[T :]{_TIME}{_ZONE}",
        rf"(?P<d>[0-9]{{1,2}})/{_MON}/(?P<Y>[0-9]{{4}}):{_TIME}{_ZONE}",
        rf"(?:[A-Za-z]{{3}},?\s+)?{_MON}\s+(?P<d>[0-9]{{1,2}})(?:\s+(?P<Y>[0-9]{{4}}))?,?\s+"
        rf"{_TIME}(?:\s+(?P<Y2>[0-9]{{4}}))?{_ZONE}",
        rf"(?:[A-Za-z]{{3}},\s*)?(?P<d>[0-9]{{1,2}})\s+{_MON}\s+(?P<Y>[0-9]{{4}})\s+{_TIME}{_ZONE}",
    )
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}


def parse_ts(value: object, now_ms: int | None = None) -> int | None:
    """Epoch milliseconds (UTC) of ``value``, or None when it is not a timestamp.

    ``now_ms`` (default: the clock) only decides the year of RFC 3164 timestamps.
    Never raises.
    """
    if isinstance(value, str):
        return _parse_text(value, now_ms)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _epoch_int(value)
    if isinstance(value, float):
        return _epoch_float(value)
    return None


def format_ts(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` for epoch milliseconds in ``[0, MAX_MS)``."""
    seconds, milli = divmod(ms, 1000)
    return f"{_second_text(seconds)}.{milli:03d}Z"


def normalise_ts(value: object, now_ms: int | None = None) -> str | None:
    """``format_ts(parse_ts(value))``, or None; fast for text that is nearly canonical.

    Most senders already write ``YYYY-MM-DDTHH:MM:SS.mmmZ``; such text is checked (one
    cached test per second) and returned as it is, not parsed and formatted again.
    """
    if type(value) is str and value[19:] in MS_SUFFIXES and canonical_second(value[:19]):
        return value
    return _normalise_other(value, now_ms)


def _normalise_other(value: object, now_ms: int | None) -> str | None:
    if (
        type(value) is str
        and 20 <= len(value) <= 30
        and value[-1] == "Z"
        and value.isascii()
        and canonical_second(value[:19])
    ):
        frac = value[19:-1]
        if not frac:
            return value[:19] + ".000Z"
        if frac[0] == "." and frac[1:].isdigit():
            return value[:19] + (frac + "00")[:4] + "Z"
    ms = parse_ts(value, now_ms)
    return None if ms is None else format_ts(ms)


@lru_cache(maxsize=4096)
def _second_text(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


@lru_cache(maxsize=4096)
def canonical_second(prefix: str) -> bool:
    """Whether ``prefix`` is exactly ``YYYY-MM-DDTHH:MM:SS``, a real UTC second from 1970.

    With :data:`MS_SUFFIXES` this lets a caller on a hot path recognise canonical text
    (``ts[19:] in MS_SUFFIXES and canonical_second(ts[:19])``) without a function call
    per character check.
    """
    try:
        parsed = datetime.fromisoformat(prefix)
    except ValueError:
        return False
    return parsed.year >= 1970 and parsed.strftime("%Y-%m-%dT%H:%M:%S") == prefix


def _parse_text(text: str, now_ms: int | None) -> int | None:
    s = text.strip()
    if len(s) > _MAX_TEXT or not s:
        return None
    if s[0] == "[" and s[-1] == "]":
        s = s[1:-1].strip()
    if _NUMBER.fullmatch(s):
        return _epoch_text(s)
    try:
        # C fast path; it raises ValueError (UnicodeError included) for anything odd.
        parsed = datetime.fromisoformat(s)
    except ValueError:
        return _parse_forms(s, now_ms)
    delta = parsed - (_EPOCH_NAIVE if parsed.tzinfo is None else _EPOCH)
    return _checked((delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000)


def _parse_forms(s: str, now_ms: int | None) -> int | None:
    for form in _FORMS:
        match = form.fullmatch(s)
        if match is not None:
            return _from_fields(match.groupdict(), now_ms)
    return None


def _from_fields(g: dict[str, str | None], now_ms: int | None) -> int | None:
    number = g.get("m")
    month = int(number) if number else _MONTHS.get((g.get("mon") or "").lower())
    offset = _offset_ms(g["z"])
    if month is None or offset is None:
        return None
    frac = g["f"] or ""
    clock = (int(g["H"] or 0), int(g["M"] or 0), int(g["S"] or 0), int((frac + "00000")[:6]))
    day = int(g["d"] or 0)
    year = g.get("Y") or g.get("Y2")
    if year is not None:
        local = _local_ms(int(year), month, day, clock)
        return None if local is None else _checked(local - offset)
    return _nearest_year(month, day, clock, offset, now_ms)


def _nearest_year(
    month: int, day: int, clock: tuple[int, int, int, int], offset: int, now_ms: int | None
) -> int | None:
    now = int(time.time() * 1000) if now_ms is None else now_ms
    this_year = time.gmtime(now // 1000).tm_year
    best: int | None = None
    for year in (this_year - 1, this_year, this_year + 1):
        local = _local_ms(year, month, day, clock)
        if local is not None and (best is None or abs(local - offset - now) < abs(best - now)):
            best = local - offset
    return None if best is None else _checked(best)


def _local_ms(year: int, month: int, day: int, clock: tuple[int, int, int, int]) -> int | None:
    try:
        delta = datetime(year, month, day, *clock) - _EPOCH_NAIVE
    except (ValueError, OverflowError):
        return None
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _offset_ms(zone: str | None) -> int | None:
    """Milliseconds east of UTC; None for an offset no clock uses."""
    if zone is None or zone[0] not in "+-":
        return 0
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        return None
    sign = -1 if zone[0] == "-" else 1
    return sign * (hours * 60 + minutes) * 60_000


def _epoch_text(s: str) -> int | None:
    whole, _, frac = s.partition(".")
    number = int(whole)
    if number < _SECONDS_BELOW:
        return _checked(number * 1000 + int((frac + "000")[:3]))
    return _epoch_int(number)


def _epoch_int(number: int) -> int | None:
    if number < 0:
        return None
    if number < _SECONDS_BELOW:
        return number * 1000
    if number < _MILLIS_BELOW:
        return number
    if number < _MICROS_BELOW:
        return number // 1000
    return _checked(number // 1_000_000)


def _epoch_float(number: float) -> int | None:
    if not math.isfinite(number) or number < 0:
        return None
    if number < _SECONDS_BELOW:
        return _checked(round(number * 1_000_000) // 1000)
    return _epoch_int(int(number))


def _checked(ms: int) -> int | None:
    return ms if 0 <= ms < MAX_MS else None
