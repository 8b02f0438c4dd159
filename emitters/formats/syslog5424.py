"""The ``syslog5424`` format: the syslog protocol of RFC 5424 section 6, exactly.

``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]``, for example
``<165>1 2024-03-12T14:05:09.482Z app7 billing 8812 PAY01 [logops@32473 run_id="r1"
stream="s1" seq="1042"][meta sequenceId="1042"] charge captured``.

Record keys: ``ts`` is TIMESTAMP, ``host`` HOSTNAME, ``service`` APP-NAME, ``pid``
PROCID, ``msgid`` MSGID, ``msg`` MSG; ``level`` and ``syslog_facility`` give the PRI
(:mod:`emitters.formats.syslog_header`). Structured data other than loss accounting is
``sd``: a dict of SD-ID to a dict of PARAM-NAME to value (a list when a name repeats, as
RFC 5424 allows). Ingest stores it as one nested JSON object, so SD-IDs such as
``origin`` or ``zoo@123`` keep their names instead of being folded into key names.

Loss accounting (PRODUCT.md section 6): ``run_id``, ``stream`` and ``seq`` travel in
``[logops@32473 run_id="..." stream="..." seq="..."]`` and ``seq`` also as ``[meta
sequenceId="N"]`` (RFC 5424 section 7.3.1: 1 to 2147483647, so a larger or zero seq
is written wrapped into that range). Parsing lifts them back out of ``sd`` (``seq`` as
an int); a line with only ``meta sequenceId`` (rsyslog, syslog-ng) gives ``seq`` from it.

Rendering writes only lines the RFC allows: ``-`` for an absent or unreadable field;
TIMESTAMP as RFC 3339 with ``Z`` or ``+hh:mm`` and at most 6 fractional digits (other
times are converted); HOSTNAME, APP-NAME, PROCID and MSGID cut to 255/48/128/32
printable US-ASCII characters (others become ``_``); SD-IDs and PARAM-NAMEs cut to 32
characters without ``= ] "`` or space, a record's own SD-ID that is neither registered
(``timeQuality``, ``origin``, ``meta``) nor ``name@number`` gets ``@32473``; ``"``,
``\\`` and ``]`` in values escaped with a backslash. Control characters in values and
MSG are written as ``#ooo`` (octal, as rsyslog does) so a record stays on one line. A
MSG with non-ASCII text starts with the UTF-8 BOM (MSG-UTF8); an ASCII one does not.

Parsing is strict on the header and structured data (the RFC's ABNF, VERSION 1 only, a
real date and a PRI of at most 191, no SD-ID twice) and takes any MSG; a leading BOM is
dropped. ``level`` is the ``<PRI>`` text, beside ``syslog_facility``/``syslog_severity``.
"""

from __future__ import annotations

import dataclasses
import random
import re
from functools import lru_cache
from typing import Any, NoReturn

from emitters.content import SERVICES, ContentOptions, app_record, hex_id, ipv4
from emitters.formats.base import FormatError
from emitters.formats.syslog_header import (
    MAX_PRI,
    epoch_ms,
    now_ms,
    pri_text,
    rfc3339_text,
    split_pri,
    text_of,
)

LOGOPS_ID = "logops@32473"
_ENTERPRISE = "@32473"
_REGISTERED = frozenset(("timeQuality", "origin", "meta"))
MAX_SEQUENCE_ID = 2_147_483_647
_LIMITS = {"host": 255, "service": 48, "pid": 128, "msgid": 32}
_BOM = "\ufeff"

_TS = (
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
# SD-NAME: 1 to 32 of PRINTUSASCII except "=", SP, "]" and '"'.
_NAME = r"[!#-<>-\\^-~]{1,32}"
_VALUE = r'(?:[^"\\\]]|\\.)*'
_ELEMENT = rf'\[{_NAME}(?: {_NAME}="{_VALUE}")*\]'
_LINE = re.compile(
    rf"<(?P<pri>[0-9]{{1,3}})>1 (?P<ts>-|{_TS}) (?P<host>[!-~]{{1,255}}) "
    r"(?P<app>[!-~]{1,48}) (?P<pid>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) "
    rf"(?P<sd>-|(?:{_ELEMENT})+)(?: (?P<msg>.*))?",
    re.DOTALL,
)
_SD_TOKENS = re.compile(rf'\[({_NAME})| ({_NAME})="({_VALUE})"', re.DOTALL)
_UNESCAPE = re.compile(r'\\(["\\\]])')
_LOOKS = re.compile(r"<([0-9]{1,3})>1 ")
_TS_RE = re.compile(_TS)
_NOT_PRINTUSASCII = re.compile(r"[^!-~]")
_NOT_NAME = re.compile(r"[^!#-<>-\\^-~]")
_PRIVATE_ID = re.compile(r"[^@]{1,25}@[0-9]{1,6}")
_VALUE_SPECIAL = re.compile(r'["\\\]\x00-\x1f\x7f\ud800-\udfff]')
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
# ``level`` text, facility and severity of every PRI the grammar takes (1 to 3 digits,
# leading zeros too, at most MAX_PRI), by its digits.
_PRI_PARTS = {
    f"{pri:0{width}d}": (f"<{pri:0{width}d}>", *divmod(pri, 8))
    for pri in range(MAX_PRI + 1)
    for width in (1, 2, 3)
}


class Syslog5424Format:
    """RFC 5424 syslog with structured data; sampled records are app events."""

    name = "syslog5424"

    def render(self, rec: dict[str, Any]) -> str:
        head = (
            f"{pri_text(rec)}1 {_ts_text(rec.get('ts'))} "
            f"{_field(text_of(rec.get('host')), 255)} "
            f"{_field(text_of(rec.get('service')), 48)} "
            f"{_field(text_of(rec.get('pid')), 128)} "
            f"{_field(text_of(rec.get('msgid')), 32)} {_sd_text(rec)}"
        )
        msg = text_of(rec.get("msg"))
        if not msg:
            return head
        if msg.isascii():
            return f"{head} {msg}" if msg.isprintable() else f"{head} {_CONTROL.sub(_octal, msg)}"
        return f"{head} {_BOM}{_CONTROL.sub(_octal, msg)}"

    def parse(self, line: str) -> dict[str, Any]:
        match = _LINE.fullmatch(line)
        if match is None:
            raise FormatError(_why_not(line))
        # One call for every field (the only groups are the named ones): this runs
        # once per message on the syslog listener.
        pri, ts, host, app, pid, msgid, sd_text, msg = match.groups()
        rec = _read_header(pri, ts, host, app, pid, msgid)
        if sd_text != "-":
            _read_sd(sd_text, rec)
        if msg:
            if msg[0] == _BOM:
                msg = msg[1:]
            if msg:
                rec["msg"] = msg
        return rec

    def looks_like(self, line: str) -> bool:
        head = _LOOKS.match(line)
        return head is not None and int(head.group(1)) <= MAX_PRI

    def sample(self, rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
        return _sample(rng, opts, now)


def structured_data(line: str) -> str | None:
    """The STRUCTURED-DATA text (``-`` for none) of a line that follows the grammar, else
    None; the line may still be refused for its date, PRI or a repeated SD-ID."""
    match = _LINE.fullmatch(line)
    return None if match is None else match.group("sd")


def _read_header(pri: str, ts: str, host: str, app: str, pid: str, msgid: str) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    if ts != "-":
        if not _real_date(ts[:10]):
            raise FormatError("RFC 5424 TIMESTAMP names a day that does not exist")
        rec["ts"] = ts
    parts = _PRI_PARTS.get(pri) or _bad_pri(pri)
    rec["level"], rec["syslog_facility"], rec["syslog_severity"] = parts
    if host != "-":
        rec["host"] = host
    if app != "-":
        rec["service"] = app
    if pid != "-":
        rec["pid"] = int(pid) if pid.isdigit() and len(pid) < 19 else pid
    if msgid != "-":
        rec["msgid"] = msgid
    return rec


def _bad_pri(pri: str) -> NoReturn:
    try:
        split_pri(pri)
    except ValueError as exc:
        raise FormatError(str(exc)) from None
    raise AssertionError(f"PRI {pri} is in range but not in the table")


def _why_not(line: str) -> str:
    head = re.match(r"<([0-9]{1,3})>([0-9]{1,3}) ", line)
    if head is None:
        return "not an RFC 5424 line: expected '<PRI>1 TIMESTAMP HOSTNAME ...'"
    if head.group(2) != "1":
        return f"RFC 5424 VERSION {head.group(2)} is not supported (only 1)"
    parts = line[head.end() :].split(" ", 5)
    if _TS_RE.fullmatch(parts[0]) is None and parts[0] != "-":
        return "RFC 5424 TIMESTAMP must be RFC 3339 with Z or +hh:mm and at most 6 digits"
    if len(parts) < 6:
        return "RFC 5424 header needs HOSTNAME APP-NAME PROCID MSGID and SD"
    return "RFC 5424 header fields or structured data do not follow the ABNF"


@lru_cache(maxsize=1024)
def _real_date(day: str) -> bool:
    year, month, mday = int(day[:4]), int(day[5:7]), int(day[8:10])
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return mday <= (29 if leap else 28)
    return mday <= (30 if month in (4, 6, 9, 11) else 31)


def _read_sd(sd_text: str, rec: dict[str, Any]) -> None:
    sd: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {}
    # The line matched the ABNF, so one pass over its tokens reads every element.
    for sd_id, name, raw in _SD_TOKENS.findall(sd_text):
        if sd_id:
            if sd_id in sd:
                raise FormatError(f"RFC 5424 SD-ID {sd_id[:32]} appears twice")
            params = sd[sd_id] = {}
            continue
        value = _UNESCAPE.sub(r"\1", raw) if "\\" in raw else raw
        old = params.get(name)
        if old is None:
            params[name] = value
        elif isinstance(old, list):
            old.append(value)
        else:
            params[name] = [old, value]
    _lift_accounting(sd, rec)
    if sd:
        rec["sd"] = sd


def _lift_accounting(sd: dict[str, dict[str, Any]], rec: dict[str, Any]) -> None:
    """``run_id``/``stream``/``seq`` out of ``logops@32473``, else seq from ``meta``."""
    ours = sd.get(LOGOPS_ID, {})
    for key in ("run_id", "stream"):
        if isinstance(ours.get(key), str):
            rec[key] = ours.pop(key)
    seq = _seq_number(ours.get("seq"), 20)
    if seq is not None:
        del ours["seq"]
    meta = sd.get("meta", {})
    sequence_id = _seq_number(meta.get("sequenceId"), 10)
    if sequence_id is not None and 1 <= sequence_id <= MAX_SEQUENCE_ID:
        del meta["sequenceId"]
        if seq is None:
            seq = sequence_id
    if seq is not None:
        rec["seq"] = seq
    for sd_id in (LOGOPS_ID, "meta"):
        if sd_id in sd and not sd[sd_id]:
            del sd[sd_id]


def _seq_number(value: object, digits: int) -> int | None:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= digits:
        return int(value)
    return None


# -- render ----------------------------------------------------------------------------


def _ts_text(value: Any) -> str:
    if type(value) is str and _TS_RE.fullmatch(value) and _real_date(value[:10]):
        return value
    ms = epoch_ms(value, now_ms())
    return "-" if ms is None else rfc3339_text(ms)


@lru_cache(maxsize=2048)
def _field(text: str, limit: int) -> str:
    if not text:
        return "-"
    if len(text) > limit or not (text.isascii() and text.isprintable()) or " " in text:
        text = _NOT_PRINTUSASCII.sub("_", text[:limit])
    return text


def _sd_text(rec: dict[str, Any]) -> str:
    extra = rec.get("sd")
    extra = extra if isinstance(extra, dict) else {}
    parts: list[str] = []
    ours = [(key, rec[key]) for key in ("run_id", "stream", "seq") if _present(rec.get(key))]
    if ours or LOGOPS_ID in extra:
        parts.append(_element(LOGOPS_ID, extra.get(LOGOPS_ID), ours))
    sequence_id = _sequence_id(rec.get("seq"))
    if sequence_id is not None or "meta" in extra:
        head = [("sequenceId", sequence_id)] if sequence_id is not None else []
        parts.append(_element("meta", extra.get("meta"), head))
    if len(extra) > ("meta" in extra) + (LOGOPS_ID in extra):
        _other_elements(extra, parts)
    return "".join(parts) or "-"


def _other_elements(extra: dict[Any, Any], parts: list[str]) -> None:
    seen = {LOGOPS_ID, "meta"}
    for raw_id, params in extra.items():
        sd_id = _sd_id(raw_id if type(raw_id) is str else text_of(raw_id))
        if sd_id not in seen:
            seen.add(sd_id)
            parts.append(_element(sd_id, params, []))


def _present(value: object) -> bool:
    return value is not None and value != ""


def _element(sd_id: str, params: object, head: list[tuple[str, Any]]) -> str:
    """``[SD-ID name="value" ...]``: ``head`` first, then ``params`` (a dict; a list value
    repeats its name) less the names ``head`` has."""
    parts = [f"[{sd_id}"]
    parts.extend([f' {name}="{_value(value)}"' for name, value in head])
    if isinstance(params, dict):
        taken = {name for name, _ in head}
        for name, value in params.items():
            if name in taken:
                continue
            key = _name(name if type(name) is str else text_of(name))
            if type(value) is list:
                parts.extend([f' {key}="{_value(item)}"' for item in value])
            else:
                parts.append(f' {key}="{_value(value)}"')
    parts.append("]")
    return "".join(parts)


def _sequence_id(seq: object) -> int | None:
    if isinstance(seq, str) and seq.isascii() and seq.isdigit() and len(seq) <= 20:
        seq = int(seq)
    if type(seq) is not int or seq < 0:
        return None
    return seq if 1 <= seq <= MAX_SEQUENCE_ID else (seq - 1) % MAX_SEQUENCE_ID + 1


@lru_cache(maxsize=1024)
def _sd_id(text: str) -> str:
    if text in _REGISTERED or (_PRIVATE_ID.fullmatch(text) and _name(text) == text):
        return text
    return _name(text.replace("@", "_"))[: 32 - len(_ENTERPRISE)] + _ENTERPRISE


@lru_cache(maxsize=1024)
def _name(text: str) -> str:
    return _NOT_NAME.sub("_", text[:32]) or "_"


def _value(value: object) -> str:
    """A PARAM-VALUE: ``"``, ``\\`` and ``]`` escaped, control characters as ``#ooo``."""
    text = value if type(value) is str else text_of(value)
    if _VALUE_SPECIAL.search(text) is None:
        return text
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
    return _CONTROL.sub(_octal, text)


def _octal(match: re.Match[str]) -> str:
    char = match.group()
    return "\ufffd" if char >= "\ud800" else f"#{ord(char):03o}"


# -- sample ----------------------------------------------------------------------------

_MSGIDS = {
    "checkout": "CHECKOUT",
    "payments": "PAY01",
    "orders": "ORDER",
    "auth": "LOGIN",
    "gateway": "HTTP",
    "billing": "INVOICE",
}
_METHODS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
_VERSIONS = ("2.14.1", "2.14.2", "3.0.0-rc.2", "1.9.12")


def _sample(rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
    """An app event with ``origin``, trace and HTTP structured data.

    The level is never left out: a 5424 line always has a PRI, so an absent level could
    not be told apart from a notice.
    """
    rec = app_record(rng, dataclasses.replace(opts, missing_level_ratio=0.0), now)
    service = rec["service"]
    trace_id = rec.pop("trace_id")
    rec["msgid"] = _MSGIDS.get(service, "-") if rng.random() < 0.7 else "-"
    if rec["msgid"] == "-":
        del rec["msgid"]
    status = 500 if rec["level"] in ("ERROR", "FATAL") else rng.choice((200, 200, 201, 204, 404))
    rec["sd"] = {
        "origin": {
            "ip": ipv4(rng, public=False),
            "software": service,
            "swVersion": rng.choice(_VERSIONS),
        },
        "trace@32473": {"trace_id": trace_id, "span_id": hex_id(rng, 16)},
        "http@32473": {
            "method": rng.choice(_METHODS),
            "path": f"/api/v1/{rng.choice(SERVICES)}/{rng.randint(1, 99_999)}"
            + ('?filter=tags[]="new"' if rng.random() < 0.1 else ""),
            "status": str(status),
            "duration_ms": str(rng.randint(1, 30_000 if status == 500 else 400)),
        },
    }
    return rec
