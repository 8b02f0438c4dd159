"""nginx's logs: ``nginx_access`` (the default ``combined``) and ``nginx_error``.

``nginx_access`` is ``log_format combined '$remote_addr - $remote_user [$time_local]
"$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"'``, laid out by
:mod:`emitters.formats.access` (keys and levels are described there). It differs from
Apache's combined in three ways: the second field is always ``-``, an empty body is
``0``, and values are escaped the ``escape=default`` way (``"``, ``\\`` and bytes outside
32-126 as ``\\xHH``). An absent request line is written empty (``""``), as nginx logs a
connection closed before its request, and an absent status ``000`` (``%03ui`` of 0).

``nginx_error`` is ``ngx_log_error_core``'s layout::

    2024/03/12 14:05:09 [error] 2231#2231: *8812 open() "/usr/share/nginx/html/x" failed
    (2: No such file or directory), client: 198.51.100.7, server: shop.example, request:
    "GET /x HTTP/1.1", upstream: "http://10.0.3.7:8080/x", host: "shop.example",
    referrer: "https://shop.example/"

``*N`` (the connection number) only for messages about a connection; the context after
the message (``client``, then ``server``, ``request``, ``subrequest``, ``upstream``,
``host``, ``referrer``, each when known) only for HTTP connections and never at debug.
Keys: ``ts`` (as written: local time without a zone, which LogOps writes in UTC),
``level`` (nginx's word: ``debug info notice warn error crit alert emerg``), ``pid``,
``tid``, ``connection_id``, ``msg``, ``client_ip``, ``server``, ``request``,
``subrequest``, ``upstream``, ``http_host`` (the Host header: ``host`` in LogOps is the
machine that logged) and ``referer``. The line carries neither ``host`` nor
``run_id``/``stream``/``seq``; they travel beside it. An absent ``pid`` is written ``0``.

nginx writes the message and the context raw. LogOps keeps a line on one line and
parseable: control characters and ``\\`` (and ``"`` in the quoted context values) are
written as ``\\xHH``, which parse decodes; a message holding ``, client: `` gets that
comma escaped, one starting with ``*`` its star. A real line whose message holds a
literal ``\\xHH`` reads back decoded.
"""

from __future__ import annotations

import random
import re
from typing import Any

from emitters.content import ContentOptions, pick_level
from emitters.formats import webescape
from emitters.formats.access import AccessLogFormat
from emitters.formats.base import FormatError, value_text
from emitters.formats.nginx_messages import draw_message
from emitters.formats.web_content import WEB_HOSTS
from emitters.formats.webtime import NGINX_PATTERN, nginx_time

LEVELS = ("debug", "info", "notice", "warn", "error", "crit", "alert", "emerg")
_LEVEL_OF = {
    **{word: word for word in LEVELS},
    **{"trace": "debug", "verbose": "debug", "information": "info", "warning": "warn"},
    **{"err": "error", "critical": "crit", "fatal": "crit", "emergency": "emerg"},
    **{"panic": "emerg", "severe": "error"},
}
_HEAD = re.compile(
    rf"(?P<ts>{NGINX_PATTERN}) \[(?P<level>{'|'.join(LEVELS)})\] "
    r"(?P<pid>[0-9]{1,10})#(?P<tid>[0-9]{1,20}): (?:\*(?P<cid>[0-9]{1,20}) )?"
)
_CLIENT = ", client: "
_CONTEXT = (
    ("server", ", server: ", False),
    ("request", ", request: ", True),
    ("subrequest", ", subrequest: ", True),
    ("upstream", ", upstream: ", True),
    ("http_host", ", host: ", True),
    ("referer", ", referrer: ", True),
)
_TAIL = re.compile(
    r", client: (?P<client_ip>[^,\r\n]*+)(?:, server: (?P<server>[^,\r\n]*+))?"
    + "".join(rf'(?:{sep}"(?P<{key}>[^"\r\n]*+)")?' for key, sep, quoted in _CONTEXT if quoted)
)
# How many ", client: " a message may hold before the context is looked for no further.
_MAX_TRIES = 8


class NginxAccessFormat(AccessLogFormat):
    """nginx's default ``combined`` access log."""

    name = "nginx_access"
    combined = True

    def __init__(self) -> None:
        super().__init__(
            webescape.nginx,
            empty_body="0",
            empty_request="",
            no_status="000",
            service="nginx",
            fixed_ident=True,
        )

    def _claims(self, match: re.Match[str]) -> bool:
        # nginx never writes an ident, a "-" body or a backslash escape other than \xHH.
        if match.group("ident") != "-" or match.group("bytes") == "-":
            return False
        return _NOT_NGINX_ESCAPE.search(match.string) is None


_NOT_NGINX_ESCAPE = re.compile(r"\\(?!x[0-9A-F]{2})")


class NginxErrorFormat:
    """nginx's error log."""

    name = "nginx_error"

    def render(self, rec: dict[str, Any]) -> str:
        get = rec.get
        level = value_text(get("level"))
        level = _LEVEL_OF.get(level) or _LEVEL_OF.get(level.lower()) or "info"
        pid, tid = _digits(get("pid")) or "0", _digits(get("tid")) or "0"
        head = f"{nginx_time(get('ts'))} [{level}] {pid}#{tid}: "
        cid = _digits(get("connection_id"))
        if cid:
            head += f"*{cid} "
        msg = _text(value_text(get("msg")), quoted=False)
        if msg[:1] == "*":
            msg = "\\x2A" + msg[1:]
        if _CLIENT in msg:
            msg = msg.replace(_CLIENT, "\\x2C client: ")
        return head + msg + _context(rec)

    def parse(self, line: str) -> dict[str, Any]:
        match = _HEAD.match(line)
        if match is None:
            raise FormatError(
                "not an nginx_error line: expected 'yyyy/mm/dd HH:MM:SS [level] pid#tid: ...'"
            )
        rest = line[match.end() :]
        if "\n" in rest or "\r" in rest:
            raise FormatError("an nginx_error line cannot hold a raw line break")
        ts, level, pid, tid, cid = match.group("ts", "level", "pid", "tid", "cid")
        rec: dict[str, Any] = {"ts": ts, "level": level, "pid": int(pid), "tid": int(tid)}
        if cid:
            rec["connection_id"] = int(cid)
        tail = _find_context(rest)
        rec["msg"] = webescape.decode(rest if tail is None else rest[: tail.start()])
        if tail is not None:
            for key, value in tail.groupdict().items():
                if value is not None:
                    rec[key] = webescape.decode(value)
        return rec

    def looks_like(self, line: str) -> bool:
        return line[:1].isdigit() and _HEAD.match(line) is not None

    def sample(self, rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
        host = rng.choice(WEB_HOSTS)
        message = draw_message(rng, pick_level(rng, opts))
        # Worker processes: the pid is the thread id, as nginx on Linux logs it.
        pid = rng.randint(20, 65_000)
        rec: dict[str, Any] = {
            "ts": nginx_time(now),
            "level": message.level,
            "pid": pid,
            "tid": pid,
        }
        rec.update(message.fields)
        rec["host"] = host
        rec["service"] = "nginx"
        return rec


def _find_context(rest: str) -> re.Match[str] | None:
    """The context after the message: at the first ``, client: `` from which the rest
    of the line reads as one (so a message may itself hold that text)."""
    pos = rest.find(_CLIENT)
    tries = 0
    while pos >= 0 and tries < _MAX_TRIES:
        match = _TAIL.fullmatch(rest, pos)
        if match is not None:
            return match
        pos = rest.find(_CLIENT, pos + 1)
        tries += 1
    return None


def _context(rec: dict[str, Any]) -> str:
    client = value_text(rec.get("client_ip"))
    if not client:
        return ""
    parts = [_CLIENT, _text(client, quoted=False).replace(",", "\\x2C")]
    for key, sep, quoted in _CONTEXT:
        value = rec.get(key)
        if value is None or (key != "server" and value == ""):
            continue
        text = _text(value_text(value), quoted=True)
        parts.append(f'{sep}"{text}"' if quoted else sep + text.replace(",", "\\x2C"))
    return "".join(parts)


def _text(text: str, quoted: bool) -> str:
    """nginx's raw text, kept on one line: ``\\``, controls (and ``"`` when quoted) as ``\\xHH``."""
    if "\\" not in text and text.isprintable() and not (quoted and '"' in text):
        return text
    return "".join([_char(c, quoted) for c in text])


def _char(c: str, quoted: bool) -> str:
    if c == "\\" or (quoted and c == '"') or not c.isprintable():
        return "".join([f"\\x{b:02X}" for b in c.encode("utf-8", "surrogatepass")])
    return c


def _digits(value: Any) -> str:
    text = value_text(value)
    return text if text.isascii() and text.isdigit() else ""
