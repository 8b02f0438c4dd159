"""The ``logfmt`` format: space-separated ``key=value`` pairs.

A value is quoted when it contains a space, ``=`` or ``"`` or is not printable; inside
quotes ``"`` and ``\\`` are backslash-escaped, and so are control characters (``\\n``,
``\\r``, ``\\t``, otherwise ``\\u00XX``), which keeps a record on one line. A bare key
means true. Parsed values are strings (the format has no types); rendering writes
``ts``, ``level`` and ``msg`` first and other values as JSON text (``true``, ``42``).
"""

from __future__ import annotations

import re
from typing import Any

from emitters.formats.base import AppEvents, FormatError, value_text

# Groups: key, "=", opening quote, quoted text, bare value.
_PAIR = r'([^ \t="]+)(?:(=)(?:(")([^"\\]*(?:\\.[^"\\]*)*)"|([^ \t"]*)))?(?=[ \t]|\Z)'
# One pass checks the whole line, a second collects the pairs: both run in C, which
# beats matching token by token from Python several times over.
_LINE = re.compile(rf"[ \t]*(?:{_PAIR}[ \t]*)*", re.DOTALL)
_PAIRS = re.compile(_PAIR, re.DOTALL)
_ONE_PAIR = re.compile(rf"[ \t]*{_PAIR}[ \t]*", re.DOTALL)
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|.)", re.DOTALL)
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
_BAD_KEY = re.compile(r'[\s="]')
_FIRST = ("ts", "level", "msg")


class LogfmtFormat(AppEvents):
    """``key=value`` pairs; ``ts``, ``level`` and ``msg`` are conventional keys."""

    name = "logfmt"

    def render(self, rec: dict[str, Any]) -> str:
        keys = [k for k in _FIRST if k in rec]
        keys.extend(k for k in rec if k not in _FIRST)
        return " ".join([f"{_key(k)}={_value(rec[k])}" for k in keys])

    def parse(self, line: str) -> dict[str, Any]:
        if _LINE.fullmatch(line) is None:
            raise FormatError(f"invalid logfmt at character {_error_at(line)}: expected key=value")
        rec: dict[str, Any] = {}
        for key, eq, quote, quoted, bare in _PAIRS.findall(line):
            if quote:
                rec[key] = _unescape(quoted) if "\\" in quoted else quoted
            else:
                rec[key] = bare if eq else True
        if not rec:
            raise FormatError("an empty line is not a logfmt record")
        return rec

    def looks_like(self, line: str) -> bool:
        text = line.lstrip(" \t")
        eq = text.find("=")
        if eq <= 0:
            return False
        key = text[:eq]
        return " " not in key and '"' not in key and "\t" not in key


def _error_at(line: str) -> int:
    """Where the first pair that does not parse starts (for the error message only)."""
    pos = 0
    while (match := _ONE_PAIR.match(line, pos)) is not None and match.end() > pos:
        pos = match.end()
    return pos


def _key(key: object) -> str:
    return _BAD_KEY.sub("_", str(key)) or "_"


def _value(value: Any) -> str:
    text = value_text(value)
    if text.isprintable():
        if " " not in text and "=" not in text and '"' not in text:
            return text
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return '"' + "".join([_escape_char(c) for c in text]) + '"'


def _escape_char(c: str) -> str:
    if c == "\\" or c == '"':
        return "\\" + c
    if c == "\n":
        return "\\n"
    if c == "\r":
        return "\\r"
    if c == "\t":
        return "\\t"
    if c < " " or "\x7f" <= c <= "\x9f" or c in "\u2028\u2029":
        return f"\\u{ord(c):04x}"
    return c


def _unescape(text: str) -> str:
    return _ESCAPE.sub(_unescape_one, text)


def _unescape_one(match: re.Match[str]) -> str:
    code = match.group(1)
    if len(code) == 5:
        return chr(int(code[1:], 16))
    # An unknown escape keeps its backslash, as most logfmt readers do.
    return _UNESCAPE.get(code, "\\" + code)
