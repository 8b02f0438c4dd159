"""The timestamps web servers write, from text in their own shape, epoch seconds or RFC 3339.

- access logs (Apache ``%t``, nginx ``$time_local``): ``12/Mar/2024:14:05:09 +0000``, the
  server's local time with its offset;
- the Apache error log: ``Tue Mar 12 14:05:09.482113 2024`` (2.4; 2.2 had no fraction);
- the nginx error log: ``2024/03/12 14:05:09``.

Both error logs write local time without a zone. LogOps writes them in UTC, and Ingest
reads a zone-less time as UTC, so a server whose clock is not on UTC should log in UTC
(``TZ=UTC``, the default in containers). Text already in a format's shape is kept as it
is (so a parsed record renders back unchanged); an epoch number or RFC 3339 text is
converted (access logs keep its offset, error logs convert to UTC). Anything else, or no
time at all, cannot be written by a format whose time is mandatory: the current time
stands in for it, as the server itself would stamp the line when writing it.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from functools import lru_cache

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MON = "(?:" + "|".join(MONTHS) + ")"
_DAY = "(?:" + "|".join(WEEKDAYS) + ")"
CLF_PATTERN = rf"[0-3][0-9]/{_MON}/[0-9]{{4}}:[0-2][0-9]:[0-5][0-9]:[0-6][0-9] [+-][0-9]{{4}}"
CTIME_PATTERN = (
    rf"{_DAY} {_MON} [ 0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9](?:\.[0-9]{{6}})? [0-9]{{4}}"
)
NGINX_PATTERN = r"[0-9]{4}/[01][0-9]/[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9]"
_CLF = re.compile(CLF_PATTERN)
_CTIME = re.compile(CTIME_PATTERN)
_NGINX = re.compile(NGINX_PATTERN)
_CACHE = 4096


def clf_time(value: object) -> str:
    """``dd/Mon/yyyy:HH:MM:SS +zzzz`` for ``value``."""
    if type(value) is str:
        text = _clf_text(value)
        if text is not None:
            return text
    epoch = _epoch(value)
    return _clf_second(int(epoch // 1), 0)


def apache_ctime(value: object) -> str:
    """``Www Mon dd HH:MM:SS.uuuuuu yyyy`` (UTC) for ``value``; 2.2 text stays as it is."""
    if type(value) is str:
        text = _ctime_text(value)
        if text is not None:
            return text
    micros = round(_epoch(value) * 1_000_000)
    seconds, fraction = divmod(micros, 1_000_000)
    head, year = _ctime_second(seconds)
    return f"{head}.{fraction:06d} {year}"


def nginx_time(value: object) -> str:
    """``yyyy/mm/dd HH:MM:SS`` (UTC) for ``value``."""
    if type(value) is str:
        text = _nginx_text(value)
        if text is not None:
            return text
    return _nginx_second(int(_epoch(value) // 1))


def _epoch(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e20:
        # The unit follows from the magnitude, as Ingest reads epoch numbers.
        for unit in (1, 1_000, 1_000_000, 1_000_000_000):
            if value < 1e11 * unit:
                return value / unit
    if type(value) is str:
        moment = _iso(value)
        if moment is not None:
            return moment.timestamp()
    return time.time()


@lru_cache(maxsize=_CACHE)
def _clf_text(text: str) -> str | None:
    if _CLF.fullmatch(text):
        return text
    moment = _iso(text)
    if moment is None:
        return None
    offset = moment.utcoffset()
    minutes = 0 if offset is None else int(offset.total_seconds() // 60)
    return _clf_second(int(moment.timestamp() // 1), minutes)


@lru_cache(maxsize=_CACHE)
def _ctime_text(text: str) -> str | None:
    return text if _CTIME.fullmatch(text) else None


@lru_cache(maxsize=_CACHE)
def _nginx_text(text: str) -> str | None:
    return text if _NGINX.fullmatch(text) else None


def _iso(text: str) -> datetime | None:
    """An RFC 3339 / ISO 8601 instant (naive text is UTC), or None."""
    if len(text) > 40 or not text[:4].isdigit():
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment if 1970 <= moment.year <= 9999 else None


@lru_cache(maxsize=_CACHE)
def _clf_second(seconds: int, offset_minutes: int) -> str:
    """The access-log time of ``seconds`` (UTC) as local time at ``offset_minutes`` east."""
    t = time.gmtime(seconds + offset_minutes * 60)
    sign = "-" if offset_minutes < 0 else "+"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return (
        f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year:04d}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{hours:02d}{minutes:02d}"
    )


@lru_cache(maxsize=_CACHE)
def _ctime_second(seconds: int) -> tuple[str, int]:
    t = time.gmtime(seconds)
    head = (
        f"{WEEKDAYS[t.tm_wday]} {MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )
    return head, t.tm_year


@lru_cache(maxsize=_CACHE)
def _nginx_second(seconds: int) -> str:
    t = time.gmtime(seconds)
    return (
        f"{t.tm_year:04d}/{t.tm_mon:02d}/{t.tm_mday:02d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
    )
