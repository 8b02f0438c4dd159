"""The access-log layout Apache and nginx share (NCSA common/combined), written once.

``client ident user [dd/Mon/yyyy:HH:MM:SS +zzzz] "request" status bytes`` and, in the
combined layout, `` "referer" "user-agent"``. A format here differs from another only in
its escaping (:mod:`emitters.formats.webescape`), in how it writes an empty body (Apache
``%b`` ``-``, nginx ``0``), an empty request line (Apache ``-``, nginx nothing) and an
absent status (Apache ``-``, nginx ``000``), and in nginx's fixed ``-`` ident.

Record keys (what ``render`` reads and ``parse`` returns): ``ts`` (the time as written),
``level`` (derived from the status, :func:`level_of_status`: 5xx ``ERROR``, 4xx ``WARN``,
else ``INFO``), ``msg`` (the request line; rendered in preference to ``method path
protocol``, which parse also splits out), ``client_ip`` (the first field: an address, or
a name under ``HostnameLookups``), ``ident``, ``user``, ``status`` (int), ``bytes`` (int;
an empty body's ``-`` reads as 0), and in the combined layout ``referer`` and
``user_agent``. ``-`` fields are left out; Apache's ``""`` (an empty user name) reads as
``""``. The machine that logged (``host``) and ``run_id``/``stream``/``seq`` are not in
the line: records travel as ``raw`` with them beside it.

Values are decoded on parse. On render, spaces in the unquoted fields are written as
``\\x20`` so that every line parses back; the servers themselves never log such a value.
"""

from __future__ import annotations

import random
import re
from typing import Any, ClassVar

from emitters.content import ContentOptions
from emitters.formats.base import FormatError, value_text
from emitters.formats.web_content import WEB_HOSTS, level_of_status, web_request
from emitters.formats.webescape import Escaper, decode
from emitters.formats.webtime import CLF_PATTERN, clf_time

# Possessive and atomic: Ingest parses lines from anywhere, so no input may backtrack.
_QUOTED = r'(?:[^"\\\r\n]|\\[^\r\n])*+'
_COMMON = (
    r"(?P<client>[^ \r\n]++) (?P<ident>[^ \r\n]++) (?>(?P<user>[^\r\n]*?) "
    rf'\[(?P<ts>{CLF_PATTERN})\] )"(?P<request>{_QUOTED})" '
    r"(?P<status>[0-9]{3}|-) (?P<bytes>[0-9]{1,19}|-)"
)
_COMBINED = rf'{_COMMON} "(?P<referer>{_QUOTED})" "(?P<ua>{_QUOTED})"'
COMMON_LINE = re.compile(_COMMON)
COMBINED_LINE = re.compile(_COMBINED)
_REQUEST = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (.*?)(?: (HTTP/[0-9.]+))?", re.DOTALL)


_END = "status bytes"


class AccessLogFormat:
    """Renderer, parser and sampler of one access-log variant; subclasses set the knobs."""

    name: ClassVar[str]
    combined: ClassVar[bool]

    def __init__(
        self,
        escape: Escaper,
        *,
        empty_body: str,
        empty_request: str,
        no_status: str,
        service: str,
        fixed_ident: bool = False,
    ) -> None:
        self._escape = escape
        self._empty_body = empty_body
        self._empty_request = empty_request
        self._no_status = no_status
        self._service = service
        self._fixed_ident = fixed_ident

    def render(self, rec: dict[str, Any]) -> str:
        get = rec.get
        request = get("msg")
        if type(request) is not str:
            request = value_text(request)
        request = self._escape(request) if request else self._request_text(rec)
        user = self._user(get("user"))
        line = (
            f"{self._token(get('client_ip'))} {self._ident(get('ident'))} {user} "
            f'[{clf_time(get("ts"))}] "{request}" '
            f"{_status_text(get('status'), self._no_status)} {self._bytes_text(get('bytes'))}"
        )
        if not self.combined:
            return line
        return f'{line} "{self._quoted(get("referer"))}" "{self._quoted(get("user_agent"))}"'

    def parse(self, line: str) -> dict[str, Any]:
        match = (COMBINED_LINE if self.combined else COMMON_LINE).fullmatch(line)
        if match is None:
            raise FormatError(f"not an {self.name} line: {self._expected()}")
        client, ident, user, ts, request, status, size = match.group(
            "client", "ident", "user", "ts", "request", "status", "bytes"
        )
        rec: dict[str, Any] = {"ts": ts}
        code = None if status == "-" else int(status)
        rec["level"] = level_of_status(code)
        if request and request != "-":
            _add_request(rec, decode(request))
        _add_names(rec, client, ident, user)
        if code is not None:
            rec["status"] = code
        rec["bytes"] = 0 if size == "-" else int(size)
        if self.combined:
            referer, agent = match.group("referer", "ua")
            if referer != "-":
                rec["referer"] = decode(referer)
            if agent != "-":
                rec["user_agent"] = decode(agent)
        return rec

    def looks_like(self, line: str) -> bool:
        if '] "' not in line:
            return False
        match = (COMBINED_LINE if self.combined else COMMON_LINE).fullmatch(line)
        return match is not None and self._claims(match)

    def sample(self, rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
        req = web_request(rng, opts)
        rec: dict[str, Any] = {
            "ts": clf_time(now),
            "level": level_of_status(req.status),
            "msg": req.request_line,
            "client_ip": req.client_ip,
            "method": req.method,
            "path": req.path,
            "protocol": req.protocol,
            "status": req.status,
            "bytes": req.bytes,
        }
        if req.user is not None:
            rec["user"] = req.user
        if self.combined:
            if req.referer is not None:
                rec["referer"] = req.referer
            if req.user_agent is not None:
                rec["user_agent"] = req.user_agent
        rec["host"] = rng.choice(WEB_HOSTS)
        rec["service"] = self._service
        return rec

    def _claims(self, match: re.Match[str]) -> bool:
        """Whether a line of this layout is one this server writes (for detection)."""
        return True

    def _expected(self) -> str:
        tail = ' "referer" "user-agent"' if self.combined else ""
        return f"expected 'client ident user [dd/Mon/yyyy:HH:MM:SS +zzzz] \"request\" {_END}{tail}'"

    def _request_text(self, rec: dict[str, Any]) -> str:
        parts = [value_text(rec.get(key)) for key in ("method", "path", "protocol")]
        text = " ".join(p for p in parts if p)
        return self._escape(text) if text else self._empty_request

    def _token(self, value: Any) -> str:
        text = value_text(value)
        return self._escape(text).replace(" ", "\\x20") if text else "-"

    def _ident(self, value: Any) -> str:
        return "-" if self._fixed_ident else self._token(value)

    def _user(self, value: Any) -> str:
        return self._token(value)

    def _quoted(self, value: Any) -> str:
        text = value if type(value) is str else value_text(value)
        return self._escape(text) if text else "-"

    def _bytes_text(self, value: Any) -> str:
        if type(value) is int and value > 0:
            return str(value)
        if isinstance(value, str) and value.isascii() and value.isdigit() and value.strip("0"):
            return value
        return self._empty_body


def _status_text(value: Any, absent: str) -> str:
    if type(value) is int and 0 <= value <= 999:
        return f"{value:03d}"
    if isinstance(value, str) and len(value) == 3 and value.isascii() and value.isdigit():
        return value
    return absent


def _add_names(rec: dict[str, Any], client: str, ident: str, user: str) -> None:
    if client != "-":
        rec["client_ip"] = decode(client)
    if ident != "-":
        rec["ident"] = decode(ident)
    if user == '""':
        rec["user"] = ""
    elif user != "-":
        rec["user"] = decode(user)


def _add_request(rec: dict[str, Any], request: str) -> None:
    rec["msg"] = request
    parts = _REQUEST.fullmatch(request)
    if parts is None:
        return
    method, target, protocol = parts.groups()
    rec["method"] = method
    if target:
        rec["path"] = target
    if protocol:
        rec["protocol"] = protocol
