"""Apache httpd's logs: ``apache_common``, ``apache_combined`` and ``apache_error``.

The access formats are mod_log_config's ``"%h %l %u %t \\"%r\\" %>s %b"`` and the same
plus ``\\"%{Referer}i\\" \\"%{User-Agent}i\\"``, laid out by :mod:`emitters.formats.access`
(keys and levels are described there). Apache writes an empty body as ``-`` (``%b``), an
empty user name as ``""`` and escapes with ``ap_escape_logitem``.

``apache_error`` is the 2.4 default layout (no ``ErrorLogFormat``)::

    [Tue Mar 12 14:05:09.482113 2024] [core:error] [pid 2231:tid 140201] (13)Permission
    denied: [client 198.51.100.7:53211] AH00128: File does not exist: /x, referer: https://...

``:tid`` only under threaded MPMs (event, worker); at ``debug`` and ``trace1-8`` the
source ``file.c(123): `` follows the pid block; the OS error ``(errno)text: `` comes
before the ``[client ip:port]`` block (``[remote ...]`` for a backend connection), the
``AHnnnnn:`` code after it; ``, referer: ...`` ends the line when the request had one.
Parse also takes the 2.2 layout (``[Tue Mar 12 14:05:09 2024] [error] [client 1.2.3.4]
(2)No such file...: message``). Keys: ``ts`` (as written; local time, which LogOps writes
in UTC), ``level`` (Apache's word: ``emerg alert crit error warn notice info debug
trace1``-``trace8``), ``module``, ``pid``, ``tid``, ``source_file``, ``source_line``,
``os_errno`` (int, or text such as ``EAI 2``), ``os_error``, ``client_ip``,
``client_port`` (or ``remote_ip``/``remote_port``), ``error_code`` (``AH00128``), ``msg``
(after the code) and ``referer``. Neither layout carries ``host``, ``run_id``,
``stream`` or ``seq``: they travel beside the line.

The message is escaped as Apache does (``ap_escape_errorlog_item``). A message that would
read as one of the optional blocks (it starts with ``AH01234: ``, ``[client ``,
``(13)...: ``) gets its first character written as ``\\xhh``, and a ``, referer: `` inside
it its comma, so that every rendered line parses back to the same record.
"""

from __future__ import annotations

import random
import re
from typing import Any

from emitters.content import ContentOptions, pick_level
from emitters.formats import webescape
from emitters.formats.access import AccessLogFormat
from emitters.formats.apache_messages import ApacheMessage, draw_message
from emitters.formats.base import FormatError, value_text
from emitters.formats.web_content import WEB_HOSTS
from emitters.formats.webtime import CTIME_PATTERN, apache_ctime

LEVELS = (
    *("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"),
    *(f"trace{n}" for n in range(1, 9)),
)
_LEVEL_OF = {
    **{word: word for word in LEVELS},
    **{"trace": "trace1", "verbose": "trace1", "information": "info", "warning": "warn"},
    **{"err": "error", "critical": "crit", "fatal": "crit", "emergency": "emerg"},
    **{"panic": "emerg", "severe": "error"},
}
_ERRNO_PATTERN = r"-?[0-9]{1,9}|EAI -?[0-9]{1,9}|OS [0-9]{1,9}|os 0x[0-9a-f]{8}"


def _os_error_pattern(errno: str, text: str) -> str:
    return rf"\((?P<{errno}>{_ERRNO_PATTERN})\)(?P<{text}>[^:\r\n]*+): "


_HEAD = re.compile(
    rf"\[(?P<ts>{CTIME_PATTERN})\] "
    rf"\[(?:(?P<module>[^\s:\[\]]*+):)?(?P<level>{'|'.join(LEVELS)})\] "
    r"(?:\[pid (?P<pid>[0-9]{1,10})(?::tid (?P<tid>[0-9]{1,20}))?\] )?"
    r"(?:(?P<file>[^\s()\[\]:]++)\((?P<line>[0-9]{1,9})\): )?"
    rf"(?:{_os_error_pattern('errno', 'oserr')})?"
    r"(?:\[(?P<peer>client|remote) (?P<addr>[^\s\]]++)\] )?"
    rf"(?:{_os_error_pattern('errno22', 'oserr22')})?"
    r"(?:(?P<code>AH[0-9]{5}): )?"
)
_AMBIGUOUS_START = re.compile(r"AH[0-9]{5}: |\[(?:client|remote|pid) |\(|[^\s()\[\]:]+\([0-9]+\): ")
_ERRNO = re.compile(_ERRNO_PATTERN)
_CODE = re.compile(r"AH[0-9]{5}")
_UNSAFE_TOKEN = re.compile(r"[\s:\[\]()]")
_REFERER_SEP = ", referer: "


class ApacheCommonFormat(AccessLogFormat):
    """Apache's Common Log Format (``%h %l %u %t "%r" %>s %b``)."""

    name = "apache_common"
    combined = False

    def __init__(self) -> None:
        super().__init__(
            webescape.apache, empty_body="-", empty_request="-", no_status="-", service="httpd"
        )

    def _user(self, value: Any) -> str:
        # mod_log_config writes an empty (but present) user name as "".
        return '""' if value == "" else self._token(value)

    def _claims(self, match: re.Match[str]) -> bool:
        # %b never writes 0: a zero body is nginx's $body_bytes_sent.
        return match.group("bytes") != "0"


class ApacheCombinedFormat(ApacheCommonFormat):
    """Apache's combined format: common plus ``"%{Referer}i" "%{User-Agent}i"``."""

    name = "apache_combined"
    combined = True


class ApacheErrorFormat:
    """Apache httpd's error log, 2.4 layout (2.2 accepted on input)."""

    name = "apache_error"

    def render(self, rec: dict[str, Any]) -> str:
        get = rec.get
        module = _UNSAFE_TOKEN.sub("_", webescape.apache_error(value_text(get("module"))))
        module = module or "core"
        head = f"[{apache_ctime(get('ts'))}] [{module}:{_level_word(get('level'))}] "
        pid, tid = _digits(get("pid")), _digits(get("tid"))
        if pid:
            head += f"[pid {pid}:tid {tid}] " if tid else f"[pid {pid}] "
        source, line = value_text(get("source_file")), _digits(get("source_line"))
        if source and line:
            head += f"{_UNSAFE_TOKEN.sub('_', webescape.apache_error(source))}({line}): "
        return head + _os_error(rec) + _peer(rec) + _body(rec)

    def parse(self, line: str) -> dict[str, Any]:
        match = _HEAD.match(line)
        if match is None:
            raise FormatError(
                "not an apache_error line: expected '[Www Mon dd HH:MM:SS[.uuuuuu] yyyy] "
                "[module:level] ...'"
            )
        rest = line[match.end() :]
        if "\n" in rest or "\r" in rest:
            raise FormatError("an apache_error line cannot hold a raw line break")
        g = match.groupdict()
        rec: dict[str, Any] = {"ts": g["ts"], "level": g["level"]}
        if g["module"]:
            rec["module"] = g["module"]
        _put_int(rec, "pid", g["pid"])
        _put_int(rec, "tid", g["tid"])
        if g["file"]:
            rec["source_file"] = g["file"]
            rec["source_line"] = int(g["line"])
        errno, oserr = (g["errno"], g["oserr"]) if g["errno"] else (g["errno22"], g["oserr22"])
        if errno:
            rec["os_errno"] = int(errno) if errno.lstrip("-").isdigit() else errno
            rec["os_error"] = webescape.decode(oserr)
        if g["peer"]:
            _put_peer(rec, g["peer"], webescape.decode(g["addr"]))
        if g["code"]:
            rec["error_code"] = g["code"]
        msg, sep, referer = rest.partition(_REFERER_SEP)
        rec["msg"] = webescape.decode(msg)
        if sep:
            rec["referer"] = webescape.decode(referer)
        return rec

    def looks_like(self, line: str) -> bool:
        return line[:1] == "[" and _HEAD.match(line) is not None

    def sample(self, rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
        host = rng.choice(WEB_HOSTS)
        message: ApacheMessage = draw_message(rng, pick_level(rng, opts))
        micros = round(now * 1_000_000) // 1000 * 1000 + rng.randrange(1000)
        rec: dict[str, Any] = {
            "ts": apache_ctime(micros / 1_000_000),
            "level": message.level,
            "module": message.module,
            "pid": rng.randint(1_000, 65_000),
        }
        # Hosts keep their MPM: most run event (threaded), a few still prefork.
        if sum(map(ord, host)) % 4:
            rec["tid"] = 0x7F00_0000_0000 + (rng.getrandbits(28) << 12)
        elif message.module == "mpm_event":
            rec["module"] = "mpm_prefork"
        rec.update(message.fields)
        rec["host"] = host
        rec["service"] = "httpd"
        return rec


def _level_word(value: Any) -> str:
    text = value_text(value)
    return _LEVEL_OF.get(text) or _LEVEL_OF.get(text.lower()) or "info"


def _digits(value: Any) -> str:
    text = value_text(value)
    return text if text.isascii() and text.isdigit() else ""


def _os_error(rec: dict[str, Any]) -> str:
    errno = value_text(rec.get("os_errno"))
    if not errno or _ERRNO.fullmatch(errno) is None:
        return ""
    text = webescape.apache_error(value_text(rec.get("os_error"))).replace(":", "\\x3a")
    return f"({errno}){text}: "


def _peer(rec: dict[str, Any]) -> str:
    for kind in ("client", "remote"):
        address = value_text(rec.get(f"{kind}_ip"))
        if address:
            address = re.sub(r"[\s\]]", "_", webescape.apache_error(address))
            port = _digits(rec.get(f"{kind}_port"))
            return f"[{kind} {address}:{port}] " if port else f"[{kind} {address}] "
    return ""


def _body(rec: dict[str, Any]) -> str:
    code = value_text(rec.get("error_code"))
    head = f"{code}: " if _CODE.fullmatch(code) else ""
    msg = webescape.apache_error(value_text(rec.get("msg")))
    if _AMBIGUOUS_START.match(msg):
        msg = webescape.hex_escape(msg[0]) + msg[1:]
    if _REFERER_SEP in msg:
        msg = msg.replace(_REFERER_SEP, "\\x2c referer: ")
    referer = value_text(rec.get("referer"))
    tail = f"{_REFERER_SEP}{webescape.apache_error(referer)}" if referer else ""
    return f"{head}{msg}{tail}"


def _put_int(rec: dict[str, Any], key: str, text: str | None) -> None:
    if text:
        rec[key] = int(text)


def _put_peer(rec: dict[str, Any], kind: str, address: str) -> None:
    """``ip:port`` (2.4) or a bare address (2.2). An IPv6 address always has a port in
    2.4, so its last ``:`` group is taken as the port."""
    ip, sep, port = address.rpartition(":")
    if sep and port.isdigit() and port.isascii() and len(port) <= 5 and ip:
        rec[f"{kind}_ip"], rec[f"{kind}_port"] = ip, int(port)
    else:
        rec[f"{kind}_ip"] = address
