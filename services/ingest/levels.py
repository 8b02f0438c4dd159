"""Log levels as sources write them, mapped onto ``TRACE DEBUG INFO WARN ERROR FATAL``.

Words are matched case-insensitively after trimming: the usual names and their
abbreviations (``dbg``, ``wrn``, ``err``, ``crit``, Serilog's ``VRB``/``INF``/``FTL``),
syslog's (``notice`` is INFO; ``alert``, ``emerg`` and ``crit`` are FATAL), Java's
(``severe`` is ERROR, ``fine`` DEBUG, ``finer``/``finest`` TRACE), Apache's ``trace1``
to ``trace8`` and single letters (``D``, ``I``, ``W``, ``E``, ``F``).

Numbers (int, integral float or digit text) follow one rule, decided by magnitude:

- 0 to 5 are Windows event levels: 0 LogAlways and 4 Information are INFO, 1 Critical
  FATAL, 2 Error ERROR, 3 Warning WARN, 5 Verbose DEBUG;
- 10 to 69 are pino/bunyan levels by tens: 10s TRACE, 20s DEBUG, 30s INFO, 40s WARN,
  50s ERROR, 60s FATAL;
- anything else (6 to 9, 70 and up, negatives) is not a level.

Syslog severities 0 to 7 are not bare numbers (they would clash with Windows levels):
they come as the ``<PRI>`` text of a syslog header (severity = PRI mod 8), or through
:func:`syslog_level` for an explicit ``syslog_severity`` field.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")

_WORDS = {
    "TRACE": ("trace", "trc", "finest", "finer", "t", *(f"trace{n}" for n in range(1, 9))),
    "DEBUG": ("debug", "dbg", "fine", "verbose", "vrb", "d", "v"),
    "INFO": ("info", "inf", "information", "informational", "notice", "i"),
    "WARN": ("warn", "warning", "wrn", "w"),
    "ERROR": ("error", "err", "eror", "severe", "e"),
    "FATAL": ("fatal", "ftl", "crit", "critical", "alert", "emerg", "emergency", "panic", "f"),
}
# Every spelling a sender is likely to use is a key, so the hot path is one dict lookup.
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        spelling: level
        for level, words in _WORDS.items()
        for word in words
        for spelling in (word, word.upper(), word.capitalize())
    }
)
_SYSLOG = ("FATAL", "FATAL", "FATAL", "ERROR", "WARN", "INFO", "INFO", "DEBUG")
_WINDOWS = ("INFO", "FATAL", "ERROR", "WARN", "INFO", "DEBUG")
_PINO = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_MAX_PRI = 191
_MAX_DIGITS = 6


def canonical_level(value: object) -> str | None:
    """One of ``LEVELS`` for ``value``, or None when it is no level we know. Never raises."""
    if isinstance(value, str):
        hit = ALIASES.get(value)
        return hit if hit is not None else _from_text(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _from_number(value)
    if isinstance(value, float) and value.is_integer():
        return _from_number(int(value))
    return None


def syslog_level(severity: object) -> str | None:
    """The level of a syslog severity 0-7 (int or digit text), or None."""
    if isinstance(severity, str) and severity.isascii() and severity.strip().isdigit():
        severity = int(severity)
    if isinstance(severity, int) and not isinstance(severity, bool) and 0 <= severity <= 7:
        return _SYSLOG[severity]
    return None


def _from_text(text: str) -> str | None:
    word = text.strip()
    hit = ALIASES.get(word.lower())
    if hit is not None:
        return hit
    if len(word) > 2 and word[0] == "<" and word[-1] == ">":
        pri = word[1:-1]
        if pri.isascii() and pri.isdigit() and len(pri) <= 3 and int(pri) <= _MAX_PRI:
            return _SYSLOG[int(pri) % 8]
        return None
    if word.isascii() and word.isdigit() and len(word) <= _MAX_DIGITS:
        return _from_number(int(word))
    return None


def _from_number(number: int) -> str | None:
    if 0 <= number < len(_WINDOWS):
        return _WINDOWS[number]
    if 10 <= number < 70:
        return _PINO[number // 10 - 1]
    return None
