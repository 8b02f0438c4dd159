"""The ``syslog`` format: the seed's syslog-like text, parsed leniently like real syslog.

Rendered as ``TS HOST APP[PID]: LEVEL MSG``, for example
``2024-03-12T14:05:09.482Z web01 checkout[4412]: ERROR payment declined``.

Parsing also takes what BSD senders write: an optional ``<PRI>`` in front, an RFC 3164
``Mmm dd HH:MM:SS`` timestamp, no host, ``app:`` without a pid. The first word of the
message is taken as the level when it is a level word (any case; followed by ``:`` or
not). After a ``<PRI>`` only an upper-case level word counts, because there the PRI
already carries the severity and the message is usually prose ("Error reading ...");
without a level word the level is the ``<PRI>`` text itself, and the severity and
facility are kept as ``syslog_severity`` and ``syslog_facility``. ``-`` stands for an
absent timestamp, host or app. Control characters in the message are written as
``#ooo`` (octal, as rsyslog does) so that a record stays on one line.
"""

from __future__ import annotations

import re
from typing import Any

from emitters.formats.base import AppEvents, FormatError, value_text

_TS_3164 = r"[A-Za-z]{3} +\d{1,2} \d\d:\d\d:\d\d(?:\.\d{1,9})?"
_TS_STRICT = rf"\d{{4}}-\d\d-\d\dT[^ ]+|{_TS_3164}"
_HEAD_TAIL = r" +(?:(?P<host>[^ \[\]:]+) +)?(?P<app>[^ \[\]:]+)(?:\[(?P<pid>[^\] ]*)\])?:"
_TAIL = rf"{_HEAD_TAIL}(?: ?(?P<rest>.*))?"
# Parsing takes any token as the timestamp (junk timestamps are counted later, not
# refused here); detection insists on a real one. Detection stops at the ":" after the
# app: what follows is optional and takes anything, so reading it (about 1 us on a
# 256-byte line) could not change the answer.
_LINE = re.compile(rf"(?:<(?P<pri>\d{{1,3}})>)?(?P<ts>{_TS_STRICT}|[^ ]+){_TAIL}", re.DOTALL)
_LOOKS = re.compile(rf"(?:<\d{{1,3}}>)?(?:{_TS_STRICT}){_HEAD_TAIL}", re.DOTALL)
_SPACE_3164 = re.compile(_TS_3164)
_UNSAFE_TOKEN = re.compile(r"[\s\[\]:]")

LEVEL_WORDS = frozenset(
    (
        *("TRACE", "DEBUG", "DBG", "VERBOSE", "INFO", "INFORMATION", "NOTICE", "WARN"),
        *("WARNING", "ERR", "ERROR", "SEVERE", "FATAL", "CRIT", "CRITICAL", "ALERT"),
        *("EMERG", "EMERGENCY", "PANIC"),
    )
)
_MAX_PRI = 191


class SyslogFormat(AppEvents):
    """``TS HOST APP[PID]: LEVEL MSG``, with BSD syslog variants accepted on input."""

    name = "syslog"

    def render(self, rec: dict[str, Any]) -> str:
        head = f"{_ts_text(rec.get('ts'))} {_token(rec.get('host'))} {_token(rec.get('service'))}"
        pid = value_text(rec.get("pid"))
        if pid:
            head = f"{head}[{_UNSAFE_TOKEN.sub('_', pid)}]"
        level = _UNSAFE_TOKEN.sub("_", value_text(rec.get("level")))
        msg = _escape(value_text(rec.get("msg")))
        body = f"{level} {msg}" if level and msg else level or msg
        return f"{head}: {body}" if body else f"{head}:"

    def parse(self, line: str) -> dict[str, Any]:
        match = _LINE.fullmatch(line)
        if match is None:
            raise FormatError("not a syslog line: expected 'TIMESTAMP HOST APP[PID]: MESSAGE'")
        pri_text, ts, host, app, pid, rest = match.group("pri", "ts", "host", "app", "pid", "rest")
        level, msg = _split_level(rest or "", upper_only=pri_text is not None)
        rec: dict[str, Any] = {}
        if ts != "-":
            rec["ts"] = ts
        if level:
            rec["level"] = level
        elif pri_text is not None:
            rec["level"] = f"<{pri_text}>"
        if msg:
            rec["msg"] = msg
        if app != "-":
            rec["service"] = app
        if host and host != "-":
            rec["host"] = host
        if pid:
            rec["pid"] = int(pid) if pid.isascii() and pid.isdigit() and len(pid) < 19 else pid
        if pri_text is not None:
            _add_pri(rec, int(pri_text))
        return rec

    def looks_like(self, line: str) -> bool:
        return _LOOKS.match(line) is not None


def _split_level(rest: str, upper_only: bool) -> tuple[str, str]:
    word, _, tail = rest.partition(" ")
    bare = word[:-1] if word.endswith(":") else word
    known = bare in LEVEL_WORDS if upper_only else bare.upper() in LEVEL_WORDS
    return (bare, tail) if known else ("", rest)


def _add_pri(rec: dict[str, Any], pri: int) -> None:
    if pri > _MAX_PRI:
        raise FormatError(f"syslog PRI must be 0-{_MAX_PRI}, got {pri}")
    rec["syslog_facility"], rec["syslog_severity"] = divmod(pri, 8)


def _ts_text(value: Any) -> str:
    text = value_text(value)
    if not text:
        return "-"
    if " " in text and _SPACE_3164.fullmatch(text) is None:
        return text.replace(" ", "_")
    return text


def _token(value: Any) -> str:
    return _UNSAFE_TOKEN.sub("_", value_text(value)) or "-"


def _escape(msg: str) -> str:
    if msg.isprintable():
        return msg
    return "".join(f"#{ord(c):03o}" if c < " " or c == "\x7f" else c for c in msg)
