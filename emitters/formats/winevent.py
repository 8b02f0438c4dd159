"""The ``winevent_xml`` and ``winevent_json`` formats: Windows events as XML or Winlogbeat JSON.

Both render and parse one record shape (see :mod:`emitters.formats.winevent_content`
for the events sampled): ``ts`` (``SystemTime`` text), ``level`` (the numeric Windows
level for XML; Winlogbeat's ``log.level`` word for JSON), ``msg`` (a short summary such
as ``Process Create: C:\\Windows\\System32\\cmd.exe``), ``host`` (``Computer``),
``event_id`` (int), ``version``, ``task``, ``opcode``, ``keywords``, ``channel``,
``provider``, ``provider_guid``, ``record_id``, ``activity_id`` (``Correlation``),
``pid`` and ``thread_id`` (``Execution``: the process that logged the event),
``user_id`` (``Security UserID``), ``outcome`` (``success``/``failure`` for audit
events) and ``event_data``, a dict of the ``<Data Name=...>`` values in their order.

**XML**: one ``<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">``
per line, ``<System>`` children in the order Windows writes them, then ``<EventData>``.
``& < > " '`` are written as entities, tab, LF and CR as character references (so a
line stays a line), and the characters XML 1.0 cannot carry at all (other C0 controls,
U+FFFE/U+FFFF, lone surrogates) as U+FFFD. An element whose value the record lacks is
left out (``<Correlation/>`` and ``<Security/>`` stay, empty, as Windows writes them).
The XML has no message text: parsing builds ``msg`` from the event data. Parsing
refuses a DOCTYPE (no entity expansion from untrusted lines).

**JSON**: the document Winlogbeat 8 ships: ``@timestamp`` (milliseconds), ``event``
(``code``, ``kind``, ``provider``, ``module``, ``action``, ``outcome``), ``log.level``,
``message`` (the summary), ``host.name``, ``winlog`` (``channel``, ``event_id`` as text,
``provider_name``, ``provider_guid``, ``record_id``, ``computer_name``, ``process.pid``,
``process.thread.id``, ``user.identifier``, ``version``, ``task``/``opcode``/
``keywords`` as their display names, ``activity_id``, ``event_data``), and the ECS
fields the Sysmon and Security modules derive (``process.*``, ``source.*``,
``destination.*``, ``user.*``, ``network.transport``). Those are derived from
``event_data`` on render and not read back. ``run_id``, ``stream`` and ``seq`` are top
level keys (as with Winlogbeat's ``fields_under_root``); the XML cannot carry them.
"""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import orjson

from emitters.content import ContentOptions
from emitters.formats.base import FormatError, value_text
from emitters.formats.jsontext import json_line
from emitters.formats.winevent_content import (
    KEYWORDS_FAILURE,
    KEYWORDS_SUCCESS,
    RECORD_KEYS,
    number_or_text,
    sample_event,
    summary,
)
from emitters.formats.winlogbeat import read_winlogbeat, winlogbeat_document

NAMESPACE = "http://schemas.microsoft.com/win/2004/08/events/event"
_NS = "{" + NAMESPACE + "}"
_XML_SPECIAL = re.compile("[&<>\"'\t\n\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_ESCAPES: dict[int, str] = {
    **{c: "\ufffd" for c in (*range(0x20), 0xFFFE, 0xFFFF, *range(0xD800, 0xE000))},
    ord("&"): "&amp;",
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    ord('"'): "&quot;",
    ord("'"): "&apos;",
    ord("\t"): "&#9;",
    ord("\n"): "&#10;",
    ord("\r"): "&#13;",
}
_SIMPLE = ("EventID", "Version", "Level", "Task", "Opcode", "Keywords")
_SIMPLE_KEYS = ("event_id", "version", "level", "task", "opcode", "keywords")
_AFTER = ("EventRecordID", "Channel", "Computer")
_INT_KEYS = frozenset(("event_id", "version", "level", "task", "opcode", "record_id"))
_INT_KEYS |= frozenset(("pid", "thread_id"))


def _x(value: Any) -> str:
    if type(value) is int:
        return str(value)
    text = value if type(value) is str else value_text(value)
    return text.translate(_ESCAPES) if _XML_SPECIAL.search(text) else text


@lru_cache(maxsize=1024)
def _data_open(name: str) -> str:
    """``<Data Name="...">`` for a name: a kind has a few dozen, so they are kept."""
    return f'<Data Name="{_x(name)}">'


class WinEventXmlFormat:
    """Windows events as the XML that ``EvtRender`` produces, one event per line."""

    name = "winevent_xml"

    def render(self, rec: dict[str, Any]) -> str:
        get = rec.get
        parts = [
            f'<Event xmlns="{NAMESPACE}"><System>',
            f'<Provider Name="{_x(get("provider"))}"',
            f' Guid="{_x(rec["provider_guid"])}"/>' if "provider_guid" in rec else "/>",
        ]
        for tag, key in zip(_SIMPLE, _SIMPLE_KEYS, strict=True):
            if get(key) is not None:
                parts.append(f"<{tag}>{_x(rec[key])}</{tag}>")
        if get("ts") is not None:
            parts.append(f'<TimeCreated SystemTime="{_x(rec["ts"])}"/>')
        if get("record_id") is not None:
            parts.append(f"<EventRecordID>{_x(rec['record_id'])}</EventRecordID>")
        activity = get("activity_id")
        parts.append(
            "<Correlation/>" if activity is None else f'<Correlation ActivityID="{_x(activity)}"/>'
        )
        if get("pid") is not None or get("thread_id") is not None:
            parts.append(_execution(rec))
        for tag, key in (("Channel", "channel"), ("Computer", "host")):
            if get(key) is not None:
                parts.append(f"<{tag}>{_x(rec[key])}</{tag}>")
        user = get("user_id")
        parts.append("<Security/>" if user is None else f'<Security UserID="{_x(user)}"/>')
        parts.append("</System>")
        parts.append(_event_data(get("event_data")))
        parts.append("</Event>")
        return "".join(parts)

    def parse(self, line: str) -> dict[str, Any]:
        if "<!DOCTYPE" in line:
            raise FormatError("a DOCTYPE is not allowed in a Windows event")
        try:
            root = ET.fromstring(line)
        except ET.ParseError as exc:
            raise FormatError(f"invalid XML: {exc}") from None
        except UnicodeEncodeError:  # the parser reads UTF-8: a lone surrogate has none
            raise FormatError("invalid XML: a lone surrogate is not a character") from None
        if root.tag != _NS + "Event":
            raise FormatError(f"the root element must be Event in the namespace {NAMESPACE}")
        system = root.find(_NS + "System")
        if system is None:
            raise FormatError("an Event needs a System element")
        rec = _system_fields(system)
        if "event_id" not in rec:
            raise FormatError("the System element has no EventID")
        data = _data_fields(root)
        rec["msg"] = summary(rec["event_id"], rec.get("provider"), data)
        outcome = _OUTCOMES.get(rec.get("keywords", ""))
        if outcome is not None:
            rec["outcome"] = outcome
        rec["event_data"] = data
        return rec

    def looks_like(self, line: str) -> bool:
        text = line.lstrip()
        return text.startswith("<Event ") and NAMESPACE in text[:120]

    def sample(self, rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
        return sample_event(rng, opts, now)


_OUTCOMES = {KEYWORDS_SUCCESS: "success", KEYWORDS_FAILURE: "failure"}


def _execution(rec: Mapping[str, Any]) -> str:
    attrs = "".join(
        f' {name}="{_x(rec[key])}"'
        for name, key in (("ProcessID", "pid"), ("ThreadID", "thread_id"))
        if rec.get(key) is not None
    )
    return f"<Execution{attrs}/>"


def _event_data(data: object) -> str:
    if not isinstance(data, Mapping) or not data:
        return "<EventData/>"
    search = _XML_SPECIAL.search
    items = ["<EventData>"]
    for name, value in data.items():
        opening = _data_open(name) if type(name) is str else _data_open(value_text(name))
        text = value if type(value) is str and not search(value) else _x(value)
        items.append(f"{opening}{text}</Data>" if text else opening[:-1] + "/>")
    items.append("</EventData>")
    return "".join(items)


def _system_fields(system: ET.Element) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for child in system:
        tag = child.tag[len(_NS) :] if child.tag.startswith(_NS) else child.tag
        attrs = child.attrib
        if tag == "Provider":
            _put(rec, "provider", attrs.get("Name"))
            _put(rec, "provider_guid", attrs.get("Guid"))
        elif tag == "TimeCreated":
            _put(rec, "ts", attrs.get("SystemTime"))
        elif tag == "Correlation":
            _put(rec, "activity_id", attrs.get("ActivityID"))
        elif tag == "Execution":
            _put(rec, "pid", attrs.get("ProcessID"))
            _put(rec, "thread_id", attrs.get("ThreadID"))
        elif tag == "Security":
            _put(rec, "user_id", attrs.get("UserID"))
        elif tag in _TEXT_TAGS:
            _put(rec, _TEXT_TAGS[tag], child.text or "")
    event_id = rec.get("event_id")
    if event_id is not None and type(event_id) is not int:
        raise FormatError("EventID must be a decimal number")
    return {key: rec[key] for key in RECORD_KEYS if key in rec}


_TEXT_TAGS = {
    **dict(zip(_SIMPLE, _SIMPLE_KEYS, strict=True)),
    "EventRecordID": "record_id",
    "Channel": "channel",
    "Computer": "host",
}


def _put(rec: dict[str, Any], key: str, value: str | None) -> None:
    if value is not None:
        rec[key] = number_or_text(value) if key in _INT_KEYS else value


def _data_fields(root: ET.Element) -> dict[str, str]:
    """``EventData``'s named ``Data`` (unnamed ones as ``Data1``...), or ``UserData``'s leaves."""
    data: dict[str, str] = {}
    event_data = root.find(_NS + "EventData")
    if event_data is not None:
        for n, item in enumerate(event_data.iter(_NS + "Data"), start=1):
            data[item.get("Name") or f"Data{n}"] = item.text or ""
        return data
    user_data = root.find(_NS + "UserData")
    if user_data is not None:
        for block in user_data:
            for item in block:
                data[item.tag.rpartition("}")[2]] = item.text or ""
    return data


class WinEventJsonFormat:
    """Windows events as Winlogbeat 8 (ECS) ships them, one JSON object per line."""

    name = "winevent_json"

    def render(self, rec: dict[str, Any]) -> str:
        return json_line(winlogbeat_document(rec))

    def parse(self, line: str) -> dict[str, Any]:
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise FormatError(f"invalid JSON at character {exc.pos}: {exc.msg}") from None
        return read_winlogbeat(doc)

    def looks_like(self, line: str) -> bool:
        text = line.lstrip()
        if text[:1] != "{" or '"winlog"' not in text:
            return False
        # A "winlog" key may sit deeper in an ordinary JSON line: only a line that
        # parses as an event is claimed, or detection would turn a json line into text.
        try:
            self.parse(text)
        except FormatError:
            return False
        return True

    def sample(self, rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
        return sample_event(rng, opts, now)
