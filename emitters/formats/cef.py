"""The ``cef`` format: ArcSight Common Event Format, optionally behind a BSD syslog header.

``[<PRI>Mmm dd HH:MM:SS HOST ]CEF:Version|Vendor|Product|DevVersion|SignatureID|Name|
Severity|Extension``, for example ``<134>Mar 12 14:05:09 fw01 CEF:0|Example Networks|
EdgeWall|9.1.2|fw-deny|Traffic denied|5|src=192.0.2.44 dpt=22 act=deny rt=1710252309482``.

Header: ``|`` and ``\\`` are escaped with a backslash (line breaks become spaces).
Extension: space-separated ``key=value``; ``=`` and ``\\`` in values are escaped with a
backslash, a line feed is ``\\n`` and a carriage return ``\\r``.

Record keys: the header fields are ``cef_version`` (0), ``device_vendor``,
``device_product``, ``device_version``, ``signature_id``, ``event_name`` and
``cef_severity``; standard extension keys carry ``ts`` as ``rt`` (epoch ms), ``msg`` as
``msg``, ``host`` as ``dvchost``, ``pid`` as ``dvcpid``, ``service`` as ``dproc``; every
other record field is an extension pair of its own (so ``run_id``, ``stream`` and
``seq`` are carried too). A field whose name is one of ours (``level``, ``ts`` ...) when
it comes from an extension key is kept as ``ext_<key>``.

Severity and level: rendering writes ``cef_severity`` when the record has a valid one
(0-10, ``Low``, ``Medium``, ``High``, ``Very-High``), else maps the level: TRACE 0,
DEBUG 1, INFO 3, WARN 5, ERROR 8, FATAL 10. Parsing maps the severity band to a level
word the Ingest Gateway knows: 0-3 and Low INFO, 4-6 and Medium WARN, 7-8 and High
ERROR, 9-10 and Very-High FATAL (so TRACE and DEBUG read back as INFO: CEF has no such
severities; ``Unknown`` gives no level), and keeps the original as ``cef_severity``.

The syslog header is written as real devices send CEF (``<PRI>`` from the level and
``syslog_facility``, the time in UTC, the short host name), unless the record says
``syslog_header: False`` or has no readable ``ts``. Parsing takes lines with or without
it (with or without ``<PRI>``, with an optional year after the day); its PRI gives
``syslog_facility``/``syslog_severity``, its host and time stand in for a missing
``dvchost`` and ``rt``. Parsing is strict on the header (seven fields, a known severity)
and lenient in the extension as real receivers are: a ``=`` not preceded by `` key``
stays in the value, an unknown backslash pair is kept as it is.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache
from typing import Any

from emitters.content import HOSTS, USERS, ContentOptions, ipv4, pick_level
from emitters.formats.base import FormatError
from emitters.formats.syslog_header import (
    CLOCK,
    DAY_3164,
    epoch_ms,
    host_3164,
    now_ms,
    pri_text,
    rfc3339_text,
    split_pri,
    text_3164,
    text_of,
)

_SEVERITY_OF_LEVEL = {"TRACE": "0", "DEBUG": "1", "INFO": "3", "WARN": "5", "ERROR": "8"}
_SEVERITY_OF_LEVEL["FATAL"] = "10"
_WORD_LEVEL = {"Low": "INFO", "Medium": "WARN", "High": "ERROR", "Very-High": "FATAL"}
_NUMBER_LEVEL = ("INFO",) * 4 + ("WARN",) * 3 + ("ERROR",) * 2 + ("FATAL",) * 2
_SEVERITIES = frozenset((*(str(n) for n in range(11)), *_WORD_LEVEL, "Unknown"))
_HEADER_KEYS = ("device_vendor", "device_product", "device_version", "signature_id")
_DEFAULTS = {
    "device_vendor": "LogOps",
    "device_product": "emitter",
    "device_version": "1.0",
    "signature_id": "app-event",
    "event_name": "application event",
}
# Record key <-> CEF extension key; the record's own names win on parse.
_TO_EXT = {"ts": "rt", "msg": "msg", "host": "dvchost", "pid": "dvcpid", "service": "dproc"}
_FROM_EXT = {ext: key for key, ext in _TO_EXT.items()}
_SYSLOG_KEYS = ("syslog_header", "syslog_facility", "syslog_severity")
# Record keys that are not extension pairs; an extension key among them is ext_<key>.
_OURS = frozenset((*_TO_EXT, *_DEFAULTS, "level", "cef_version", "cef_severity", *_SYSLOG_KEYS))

_FIELD = r"((?:[^|\\]|\\.)*)\|"
_SYSLOG = (
    rf"(?:<(?P<pri>0|[1-9][0-9]{{0,2}})>)?(?P<sts>{DAY_3164}(?: [0-9]{{4}})? {CLOCK}) "
    r"(?P<shost>[!-~]+) "
)
_LINE = re.compile(rf"(?:{_SYSLOG})?CEF:(?P<ver>[0-9]{{1,2}})\|{_FIELD * 6}(?P<ext>.*)", re.DOTALL)
_LOOKS = re.compile(rf"(?:{_SYSLOG})?CEF:[0-9]")
_KEY = r"[A-Za-z0-9_.\-\[\]]+"
# One space separates pairs, so a value keeps its own trailing spaces; a value never
# holds " key=" (the next pair starts there), which also keeps matching linear.
_EXT_VALUE = rf"(?:(?! {_KEY}=)(?:[^\\]|\\.))*"
_PAIRS = re.compile(rf"({_KEY})=({_EXT_VALUE})", re.DOTALL)
_EXT = re.compile(rf" *(?:{_KEY}={_EXT_VALUE}(?: (?={_KEY}=)|\Z))*", re.DOTALL)
# The spec escapes only "|" and "\\" in the header; rsyslog's tocef() also "=", "%", "#".
_HEADER_UNESCAPE = re.compile(r"\\([|\\=%#])")
_EXT_UNESCAPE = re.compile(r"\\([=\\nr])")
_EXT_CHARS = {"=": "=", "\\": "\\", "n": "\n", "r": "\r"}
_HEADER_SPECIAL = re.compile(r"[|\\\r\n\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_EXT_SPECIAL = re.compile(r"[=\\\r\n\ud800-\udfff]")
_BAD_KEY = re.compile(r"[^A-Za-z0-9_.]")


class CefFormat:
    """ArcSight CEF; sampled records are firewall, IDS and authentication events."""

    name = "cef"

    def render(self, rec: dict[str, Any]) -> str:
        ms = epoch_ms(rec.get("ts"), now_ms()) if "ts" in rec else None
        head = f"CEF:{_version(rec.get('cef_version'))}|"
        head += "|".join([_header(rec.get(k) or _DEFAULTS[k]) for k in _HEADER_KEYS])
        name = _header(rec.get("event_name") or _DEFAULTS["event_name"])
        ext = _extension(rec, ms)
        line = f"{head}|{name}|{_severity(rec)}|{ext}"
        if ms is None or rec.get("syslog_header") is False:
            return line
        host = host_3164(text_of(rec.get("host")))
        return f"{pri_text(rec)}{text_3164(ms // 1000)} {host} {line}"

    def parse(self, line: str) -> dict[str, Any]:
        match = _LINE.fullmatch(line)
        if match is None:
            raise FormatError(_why_not(line))
        fields = [_HEADER_UNESCAPE.sub(r"\1", f) if "\\" in f else f for f in match.groups()[4:10]]
        severity = fields[5]
        if severity not in _SEVERITIES:
            raise FormatError("CEF severity must be 0-10, Unknown, Low, Medium, High or Very-High")
        rec: dict[str, Any] = {}
        level = _level(severity)
        if level is not None:
            rec["level"] = level
        rec["cef_severity"] = severity
        rec["cef_version"] = match.group("ver")
        rec.update(zip((*_HEADER_KEYS, "event_name"), fields[:5], strict=True))
        _read_syslog(match, rec)
        _read_extension(match.group("ext"), rec)
        return rec

    def looks_like(self, line: str) -> bool:
        return _LOOKS.match(line) is not None

    def sample(self, rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
        return _sample(rng, opts, now)


def _why_not(line: str) -> str:
    start = line.find("CEF:")
    if start < 0:
        return "not a CEF line: expected 'CEF:Version|Vendor|Product|...'"
    if start and re.fullmatch(_SYSLOG, line[:start]) is None:
        return "CEF line: the text before 'CEF:' is not a BSD syslog header"
    return "CEF header must have 7 '|'-separated fields after 'CEF:' and a version number"


def _level(severity: str) -> str | None:
    """The level of a valid severity; None for ``Unknown``."""
    return _NUMBER_LEVEL[int(severity)] if severity.isdigit() else _WORD_LEVEL.get(severity)


def _read_syslog(match: re.Match[str], rec: dict[str, Any]) -> None:
    pri = match.group("pri")
    if pri is not None:
        try:
            rec["syslog_facility"], rec["syslog_severity"] = split_pri(pri)
        except ValueError as exc:
            raise FormatError(str(exc)) from None
    if match.group("sts") is not None:
        rec["ts"] = match.group("sts")
        if match.group("shost") != "-":
            rec["host"] = match.group("shost")


def _read_extension(text: str, rec: dict[str, Any]) -> None:
    if _EXT.fullmatch(text) is None:
        raise FormatError("CEF extension must be space-separated key=value pairs")
    for key, raw in _PAIRS.findall(text):
        value = _EXT_UNESCAPE.sub(_ext_char, raw) if "\\" in raw else raw
        name = _FROM_EXT.get(key)
        if name is None:
            name = f"ext_{key}" if key in _OURS else key
        rec[name] = value
    pid = rec.get("pid")
    if isinstance(pid, str) and pid.isascii() and pid.isdigit() and len(pid) < 19:
        rec["pid"] = int(pid)
    seq = rec.get("seq")
    if isinstance(seq, str) and seq.isascii() and seq.isdigit() and len(seq) <= 20:
        rec["seq"] = int(seq)


def _ext_char(match: re.Match[str]) -> str:
    return _EXT_CHARS[match.group(1)]


# -- render ----------------------------------------------------------------------------


def _version(value: object) -> str:
    text = text_of(value)
    return text if text.isdigit() and len(text) <= 2 else "0"


def _header(value: object) -> str:
    text = text_of(value)
    if _HEADER_SPECIAL.search(text) is None:
        return text
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    text = text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return _SURROGATE.sub("\ufffd", text)


def _severity(rec: dict[str, Any]) -> str:
    given = text_of(rec.get("cef_severity"))
    if given in _SEVERITIES:
        return given
    level = text_of(rec.get("level")).upper()
    return _SEVERITY_OF_LEVEL.get("WARN" if level == "WARNING" else level, "3")


def _extension(rec: dict[str, Any], ms: int | None) -> str:
    pairs: list[str] = []
    if ms is not None:
        pairs.append(f"rt={ms}")
    for key in ("host", "pid", "service"):
        text = text_of(rec.get(key))
        if text:
            pairs.append(f"{_TO_EXT[key]}={_ext_value(text)}")
    for key, value in rec.items():
        if key not in _OURS and value is not None:
            pairs.append(f"{_ext_key(key)}={_ext_value(text_of(value))}")
    msg = text_of(rec.get("msg"))
    if msg:
        pairs.append(f"msg={_ext_value(msg)}")
    return " ".join(pairs)


def _ext_key(key: object) -> str:
    return _key_text(key if isinstance(key, str) else text_of(key))


@lru_cache(maxsize=1024)
def _key_text(text: str) -> str:
    if text.startswith("ext_") and text[4:] in _OURS:
        text = text[4:]
    return _BAD_KEY.sub("_", text) or "_"


def _ext_value(text: str) -> str:
    if _EXT_SPECIAL.search(text) is None:
        return text
    text = text.replace("\\", "\\\\").replace("=", "\\=")
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return _SURROGATE.sub("\ufffd", text)


# -- sample ----------------------------------------------------------------------------

# (vendor, product, version) and, by level band, (signature id, name, extension maker).
_FIREWALL = ("Example Networks", "EdgeWall", "9.1.2")
_IDS = ("Example Security", "SentryIDS", "4.2.0")
_AUTH = ("Example Identity", "AuthHub", "2.3.7")


def _traffic(rng: random.Random, act: str) -> dict[str, Any]:
    proto, port = rng.choice((("TCP", 443), ("TCP", 22), ("TCP", 3389), ("UDP", 53)))
    return {
        "src": ipv4(rng),
        "spt": rng.randint(1024, 65_535),
        "dst": ipv4(rng, public=False),
        "dpt": port,
        "proto": proto,
        "act": act,
        "cs1Label": "Rule",
        "cs1": f"{act}-{rng.choice(('web', 'ssh', 'rdp', 'dns'))}-{rng.randint(1, 99)}",
    }


def _login(rng: random.Random, outcome: str) -> dict[str, Any]:
    return {
        "src": ipv4(rng),
        "suser": rng.choice(USERS),
        "outcome": outcome,
        "app": rng.choice(("SSH", "HTTPS", "LDAP")),
        "request": "https://sso.corp.example/login?next=/dashboard&lang=en",
    }


# Per product: the levels of its bad event, (signature id, name, msg) of the bad and the
# routine event, and the extension fields of each (bad: True).
_Event = tuple[str, str, str]
_KINDS: tuple[tuple[tuple[str, str, str], frozenset[str], _Event, _Event], ...] = (
    (
        _FIREWALL,
        frozenset(("WARN", "ERROR", "FATAL")),
        ("fw-deny", "Traffic denied", "connection blocked by policy"),
        ("fw-allow", "Traffic allowed", "session started"),
    ),
    (
        _IDS,
        frozenset(("ERROR", "FATAL")),
        ("2019401", "ET SCAN Suspicious inbound to mySQL port 3306", "alert: attempted recon"),
        ("2013028", "ET POLICY curl User-Agent Outbound", "policy match: user-agent=curl"),
    ),
    (
        _AUTH,
        frozenset(("WARN", "ERROR", "FATAL")),
        ("auth-fail", "Failed login", "bad password"),
        ("auth-ok", "Successful login", "login ok"),
    ),
)


def _fields(rng: random.Random, vendor: tuple[str, str, str], bad: bool) -> dict[str, Any]:
    if vendor is _FIREWALL:
        return _traffic(rng, "deny" if bad else "allow")
    if vendor is _IDS:
        return _traffic(rng, "alert")
    return _login(rng, "failure" if bad else "success")


def _sample(rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
    """A firewall, IDS or authentication event whose severity follows the drawn level."""
    level = pick_level(rng, opts)
    vendor, bad_levels, bad_event, routine = _KINDS[rng.randrange(len(_KINDS))]
    rec: dict[str, Any] = {}
    if rng.random() >= opts.missing_ts_ratio:
        rec["ts"] = rfc3339_text(int(now * 1000))
    if rng.random() >= opts.missing_level_ratio:
        rec["level"] = level
    bad = level in bad_levels
    sig, name, msg = bad_event if bad else routine
    fields = _fields(rng, vendor, bad)
    rec.update(zip(("device_vendor", "device_product", "device_version"), vendor, strict=True))
    rec.update({"signature_id": sig, "event_name": name, "msg": msg})
    rec["host"] = rng.choice(HOSTS)
    # Security devices usually log to a local facility: <134> is local0.info.
    rec["syslog_facility"] = rng.choice((16, 16, 17, 20))
    rec.update(fields)
    return rec
