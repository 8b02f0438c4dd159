"""What the syslog-framed formats share: the ``<PRI>`` of a record, and its time as text.

Used by ``syslog3164``, ``syslog5424`` and ``cef`` (whose lines usually travel behind a
BSD syslog header). A record's level maps to a syslog severity (FATAL 2, ERROR 3, WARN 4,
INFO 6, DEBUG and TRACE 7; syslog's own words and a ``<PRI>`` text as parsed are taken
too); with no level, a ``syslog_severity`` field (0-7) gives it, else 5 (notice): the
``<13>`` that ``logger`` and RFC 3164 relays write for a message without a priority.
The facility is the record's ``syslog_facility`` (0-23, so ``local0``..``local7`` are
16..23), else the one of a ``<PRI>`` level text, else 1 (user).

Times: a record's ``ts`` may be RFC 3339 text, epoch seconds or milliseconds (number or
digits), or RFC 3164 text without a year (the year nearest to the clock is taken). All
are read as instants in UTC when they carry no offset, as the Ingest Gateway reads them.
"""

from __future__ import annotations

import ipaddress
import re
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from emitters.formats.base import value_text

MAX_PRI = 191
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {name: number for number, name in enumerate(MONTHS, start=1)}
DEFAULT_SEVERITY = 5
DEFAULT_FACILITY = 1
_SEVERITY_WORDS = {
    "EMERG": 0,
    "EMERGENCY": 0,
    "PANIC": 0,
    "ALERT": 1,
    "FATAL": 2,
    "CRIT": 2,
    "CRITICAL": 2,
    "ERROR": 3,
    "ERR": 3,
    "SEVERE": 3,
    "WARN": 4,
    "WARNING": 4,
    "NOTICE": 5,
    "INFO": 6,
    "INFORMATION": 6,
    "INFORMATIONAL": 6,
    "DEBUG": 7,
    "TRACE": 7,
}
_PRI_TEXT = tuple(f"<{n}>" for n in range(MAX_PRI + 1))
_PRI_LEVEL = re.compile(r"<(0|[1-9][0-9]{0,2})>")
# The RFC 3164 timestamp as the RFC writes it: the day padded with a space, never a zero.
DAY_3164 = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (?: [1-9]|[12][0-9]|3[01])"
CLOCK = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
TS_3164 = f"{DAY_3164} {CLOCK}"
# Any 3164-like time in a record's ts (zero-padded or unpadded days too).
_LOOSE_3164 = re.compile(
    r"(?P<mon>[A-Z][a-z]{2}) +(?P<d>[0-9]{1,2}) (?P<H>[0-9]{2}):(?P<M>[0-9]{2}):(?P<S>[0-9]{2})"
)
_NOT_HOST = re.compile(r"[^!-Z\\^-~]")
_MAX_HOST = 255
_DIGITS = re.compile(r"[0-9]{1,19}")
_SECONDS_BELOW = 10**11
# 10000-01-01T00:00:00Z: no format here writes a five-digit year.
MAX_MS = 253_402_300_800_000


def pri_text(rec: dict[str, Any]) -> str:
    """``<PRI>`` for the record's level and facility (see the module docstring)."""
    severity, facility = _from_level(rec.get("level"))
    if severity is None:
        severity = _small_int(rec.get("syslog_severity"), 7)
        if severity is None:
            severity = DEFAULT_SEVERITY
    chosen = _small_int(rec.get("syslog_facility"), 23)
    if chosen is None:
        chosen = DEFAULT_FACILITY if facility is None else facility
    return _PRI_TEXT[chosen * 8 + severity]


def text_of(value: Any) -> str:
    """Text for a header or field value: :func:`value_text`, integers of any size too."""
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    try:
        return value_text(value)
    except TypeError:  # orjson refuses integers beyond 64 bits, also inside lists
        return str(value)


def host_3164(text: str) -> str:
    """A HOSTNAME for a BSD header (RFC 3164 section 4.1.2): no domain, an IP kept whole.

    Printable ASCII without ``[`` or ``]``, at most 255 characters, not ending in ``:``
    (a receiver would take it for a TAG); ``-`` when nothing is left.
    """
    return _host_3164(text)


@lru_cache(maxsize=1024)
def _host_3164(text: str) -> str:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        text = text.partition(".")[0]
    return _NOT_HOST.sub("_", text[:_MAX_HOST]).rstrip(":") or "-"


def split_pri(text: str) -> tuple[int, int]:
    """``(facility, severity)`` of the digits of a PRI; ``ValueError`` above 191."""
    pri = int(text)
    if pri > MAX_PRI:
        raise ValueError(f"syslog PRI must be 0-{MAX_PRI}, got {pri}")
    return divmod(pri, 8)


def severity_of_level(level: object) -> int | None:
    """The syslog severity of a level word or ``<PRI>`` text, or None for anything else."""
    return _from_level(level)[0]


def _from_level(level: object) -> tuple[int | None, int | None]:
    if type(level) is not str:
        return None, None
    severity = _SEVERITY_WORDS.get(level)
    if severity is None:
        severity = _SEVERITY_WORDS.get(level.strip().upper())
    if severity is not None:
        return severity, None
    match = _PRI_LEVEL.fullmatch(level.strip())
    if match is None or int(match.group(1)) > MAX_PRI:
        return None, None
    facility, severity = divmod(int(match.group(1)), 8)
    return severity, facility


def _small_int(value: object, top: int) -> int | None:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 2:
        value = int(value)
    if type(value) is int and 0 <= value <= top:
        return value
    return None


# -- time ------------------------------------------------------------------------------


def epoch_ms(value: object, now_ms: int) -> int | None:
    """Epoch milliseconds of a record's ``ts``, or None when it is no time we can read."""
    if isinstance(value, str):
        ms = _text_ms(value, now_ms)
    elif isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        return None
    elif value < _SECONDS_BELOW:
        ms = round(value * 1000)
    else:
        ms = int(value) if value < MAX_MS else MAX_MS
    return ms if ms is not None and 0 <= ms < MAX_MS else None


def _text_ms(text: str, now_ms: int) -> int | None:
    if len(text) >= 20 and text[-1] == "Z" and text[10] == "T" and text[19] in ".Z":
        second = _utc_second(text[:19])
        frac = text[20:-1]
        if second is not None and (not frac or (frac.isdigit() and frac.isascii())):
            return second * 1000 + int((frac + "00")[:3])
    if _DIGITS.fullmatch(text):
        number = int(text)
        return number * 1000 if number < _SECONDS_BELOW else number
    loose = _LOOSE_3164.fullmatch(text)
    if loose is not None:
        return _nearest_year_ms(loose, now_ms)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@lru_cache(maxsize=4096)
def _utc_second(prefix: str) -> int | None:
    """Epoch seconds of ``YYYY-MM-DDTHH:MM:SS`` (UTC), None for an impossible one."""
    try:
        moment = datetime.fromisoformat(prefix).replace(tzinfo=UTC)
    except ValueError:
        return None
    return int((moment - _EPOCH).total_seconds())


def _nearest_year_ms(match: re.Match[str], now_ms: int) -> int | None:
    month = _MONTH_NUMBER.get(match.group("mon"))
    if month is None:
        return None
    this_year = time.gmtime(now_ms // 1000).tm_year
    best: int | None = None
    for year in (this_year - 1, this_year, this_year + 1):
        try:
            moment = datetime(year, month, int(match.group("d")), *_clock(match), tzinfo=UTC)
        except ValueError:
            continue
        ms = int((moment - _EPOCH).total_seconds()) * 1000
        if best is None or abs(ms - now_ms) < abs(best - now_ms):
            best = ms
    return best


def _clock(match: re.Match[str]) -> tuple[int, int, int]:
    return int(match.group("H")), int(match.group("M")), int(match.group("S"))


@lru_cache(maxsize=4096)
def text_3164(second: int) -> str:
    """``Mmm dd HH:MM:SS`` (UTC, day padded with a space) of an epoch second."""
    t = time.gmtime(second)
    return f"{MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def rfc3339_text(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` of epoch milliseconds."""
    second, milli = divmod(ms, 1000)
    return f"{_second_text(second)}.{milli:03d}Z"


@lru_cache(maxsize=4096)
def _second_text(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def now_ms() -> int:
    """The clock, for a record with no readable time in a format that must write one."""
    return time.time_ns() // 1_000_000
