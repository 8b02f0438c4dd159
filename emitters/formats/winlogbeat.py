"""The Winlogbeat 8 (ECS) document of a Windows event, written and read back.

:func:`winlogbeat_document` builds what Winlogbeat ships for a Windows event record
(the record shape of :mod:`emitters.formats.winevent_content`); :func:`read_winlogbeat`
turns such a document back into that record. ``winlog`` carries the event itself:
``event_id`` as text, ``task``/``opcode``/``keywords`` as their display names (``Logon``,
``Info``, ``["Audit Success"]``; Sysmon's single keyword bit has no name, so no
``keywords``). ``agent`` names Winlogbeat 8.12.2 and ``ecs.version`` is 8.0.0. The ECS
fields the Sysmon and Security modules derive from the event data (``process.*``,
``source.*``, ``destination.*``, ``user.*``, ``network.transport``) are written for the
five sampled kinds and not read back: the event data they come from is. ``run_id``,
``stream`` and ``seq`` are top-level keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from emitters.formats.base import FormatError, value_text
from emitters.formats.winevent_content import (
    KEYWORDS_CLASSIC,
    KEYWORDS_FAILURE,
    KEYWORDS_SUCCESS,
    RECORD_KEYS,
    SECURITY,
    SYSMON,
    number_or_text,
    summary,
)

AGENT_VERSION = "8.12.2"
_LEVEL_WORDS = ("information", "critical", "error", "warning", "information", "verbose")
_TS_7 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\d*Z")


def read_winlogbeat(doc: object) -> dict[str, Any]:
    """The event record of a Winlogbeat document; ``FormatError`` when it is none."""
    winlog = doc.get("winlog") if isinstance(doc, dict) else None
    if not isinstance(winlog, dict):
        raise FormatError("a Winlogbeat event needs a winlog object")
    rec = _from_winlog(winlog)
    if "event_id" not in rec:
        raise FormatError("winlog.event_id must be a decimal number")
    assert isinstance(doc, dict)
    _from_ecs(rec, doc)
    return {key: rec[key] for key in _ORDER if key in rec}


_ORDER = (*RECORD_KEYS, "run_id", "stream", "seq")
_WINLOG_TEXT = (
    ("channel", "channel"),
    ("provider_name", "provider"),
    ("provider_guid", "provider_guid"),
    ("computer_name", "host"),
    ("activity_id", "activity_id"),
    ("task", "task"),
    ("opcode", "opcode"),
    ("keywords", "keywords"),
    ("version", "version"),
    ("record_id", "record_id"),
)


def _from_winlog(winlog: dict[str, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    event_id = winlog.get("event_id")
    if isinstance(event_id, str):
        event_id = number_or_text(event_id)
    if type(event_id) is int:
        rec["event_id"] = event_id
    for src, key in _WINLOG_TEXT:
        if winlog.get(src) is not None:
            rec[key] = winlog[src]
    if isinstance(rec.get("record_id"), str):
        rec["record_id"] = number_or_text(rec["record_id"])
    process = _obj(winlog, "process")
    _put_value(rec, "pid", process.get("pid"))
    _put_value(rec, "thread_id", _obj(process, "thread").get("id"))
    _put_value(rec, "user_id", _obj(winlog, "user").get("identifier"))
    data = winlog.get("event_data")
    rec["event_data"] = dict(data) if isinstance(data, dict) else {}
    return rec


def _from_ecs(rec: dict[str, Any], doc: dict[str, Any]) -> None:
    _put_value(rec, "ts", doc.get("@timestamp"))
    _put_value(rec, "level", _obj(doc, "log").get("level"))
    event = _obj(doc, "event")
    _put_value(rec, "outcome", event.get("outcome"))
    if "provider" not in rec:
        _put_value(rec, "provider", event.get("provider"))
    if "host" not in rec:
        _put_value(rec, "host", _obj(doc, "host").get("name"))
    message = doc.get("message")
    if isinstance(message, str) and message:
        rec["msg"] = message
    else:
        rec["msg"] = summary(rec["event_id"], rec.get("provider"), rec["event_data"])
    for key in ("run_id", "stream", "seq"):
        _put_value(rec, key, doc.get(key))


def _obj(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _put_value(rec: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        rec[key] = value


_TASKS: dict[tuple[object, object], str] = {
    (SYSMON, 1): "Process Create (rule: ProcessCreate)",
    (SYSMON, 3): "Network connection detected (rule: NetworkConnect)",
    (SECURITY, 12544): "Logon",
    (SECURITY, 13312): "Process Creation",
}
_KEYWORD_NAMES = {KEYWORDS_SUCCESS: ["Audit Success"], KEYWORDS_FAILURE: ["Audit Failure"]}
_ACTIONS: dict[tuple[object, object], str] = {
    (SYSMON, 1): "Process Create (rule: ProcessCreate)",
    (SYSMON, 3): "Network connection detected (rule: NetworkConnect)",
    (SECURITY, 4624): "logged-in",
    (SECURITY, 4625): "logon-failed",
    (SECURITY, 4688): "created-process",
}
_MODULES = {SYSMON: "sysmon", SECURITY: "security"}


def winlogbeat_document(rec: Mapping[str, Any]) -> dict[str, Any]:
    """The Winlogbeat 8 document for a Windows event record."""
    get = rec.get
    provider, event_id = get("provider"), get("event_id")
    data = get("event_data")
    data = dict(data) if isinstance(data, Mapping) else {}
    doc: dict[str, Any] = {}
    if get("ts") is not None:
        doc["@timestamp"] = _millis(rec["ts"])
    event: dict[str, Any] = {"code": value_text(event_id), "kind": "event"}
    _put_value(event, "provider", provider)
    _put_value(event, "module", _MODULES.get(provider) if isinstance(provider, str) else None)
    _put_value(
        event,
        "action",
        _ACTIONS.get((provider, event_id)) if _hashable(provider, event_id) else None,
    )
    _put_value(event, "outcome", get("outcome"))
    doc["event"] = event
    doc["log"] = {"level": _level_word(get("level"))}
    msg = get("msg")
    doc["message"] = value_text(msg) if msg is not None else summary(event_id, provider, data)
    if get("host") is not None:
        doc["host"] = {"name": rec["host"]}
    doc["agent"] = {"type": "winlogbeat", "version": AGENT_VERSION}
    doc["ecs"] = {"version": "8.0.0"}
    doc["winlog"] = _winlog(rec, data)
    doc.update(_ecs(provider, event_id, data))
    for key in ("run_id", "stream", "seq"):
        _put_value(doc, key, get(key))
    return doc


def _hashable(*values: object) -> bool:
    return all(isinstance(v, str | int) for v in values)


def _millis(ts: object) -> Any:
    if isinstance(ts, str) and _TS_7.fullmatch(ts):
        return ts[:23] + "Z"
    return ts


def _level_word(level: object) -> Any:
    if type(level) is int and 0 <= level < len(_LEVEL_WORDS):
        return _LEVEL_WORDS[level]
    return level


def _winlog(rec: Mapping[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    get = rec.get
    provider = get("provider")
    winlog: dict[str, Any] = {"api": "wineventlog"}
    _put_value(winlog, "channel", get("channel"))
    if get("event_id") is not None:
        winlog["event_id"] = value_text(rec["event_id"])
    _put_value(winlog, "provider_name", provider)
    _put_value(winlog, "provider_guid", get("provider_guid"))
    _put_value(winlog, "record_id", get("record_id"))
    _put_value(winlog, "computer_name", get("host"))
    process: dict[str, Any] = {}
    _put_value(process, "pid", get("pid"))
    if get("thread_id") is not None:
        process["thread"] = {"id": rec["thread_id"]}
    if process:
        winlog["process"] = process
    if get("user_id") is not None:
        winlog["user"] = {"identifier": rec["user_id"]}
    _put_value(winlog, "version", get("version"))
    task, opcode, keywords = get("task"), get("opcode"), get("keywords")
    key = (provider, task if provider == SECURITY else get("event_id"))
    _put_value(winlog, "task", _TASKS.get(key, task) if _hashable(*key) else task)
    _put_value(winlog, "opcode", "Info" if opcode == 0 else opcode)
    # Winlogbeat writes the keyword names Windows renders; Sysmon's one bit has none.
    if keywords != KEYWORDS_CLASSIC:
        names = _KEYWORD_NAMES.get(keywords) if isinstance(keywords, str) else None
        _put_value(winlog, "keywords", keywords if names is None else names)
    _put_value(winlog, "activity_id", get("activity_id"))
    winlog["event_data"] = data
    return winlog


def _ecs(provider: object, event_id: object, data: dict[str, Any]) -> dict[str, Any]:
    """The ECS fields Winlogbeat's Sysmon and Security modules add for these events."""
    get = data.get
    if provider == SYSMON and event_id in (1, 3):
        process = _process(get("Image"), _int(get("ProcessId")), get("ProcessGuid"))
        if event_id == 1:
            _put_value(process, "command_line", get("CommandLine"))
            _put_value(process, "working_directory", get("CurrentDirectory"))
            parent = _process(
                get("ParentImage"), _int(get("ParentProcessId")), get("ParentProcessGuid")
            )
            _put_value(parent, "command_line", get("ParentCommandLine"))
            process["parent"] = parent
            process["hash"] = _hashes(get("Hashes"))
            return {"process": process, "user": _user(get("User"))}
        return {
            "process": process,
            "user": _user(get("User")),
            "network": {"transport": get("Protocol")},
            "source": {"ip": get("SourceIp"), "port": _int(get("SourcePort"))},
            "destination": {"ip": get("DestinationIp"), "port": _int(get("DestinationPort"))},
        }
    if provider == SECURITY and event_id in (4624, 4625):
        ecs: dict[str, Any] = {
            "user": {"name": get("TargetUserName"), "domain": get("TargetDomainName")}
        }
        if get("IpAddress") not in (None, "-"):
            ecs["source"] = {"ip": get("IpAddress"), "port": _int(get("IpPort"))}
        ecs["process"] = _process(get("ProcessName"), _int(get("ProcessId")), None)
        return ecs
    if provider == SECURITY and event_id == 4688:
        process = _process(get("NewProcessName"), _int(get("NewProcessId")), None)
        _put_value(process, "command_line", get("CommandLine"))
        process["parent"] = _process(get("ParentProcessName"), _int(get("ProcessId")), None)
        return {
            "process": process,
            "user": {"name": get("SubjectUserName"), "domain": get("SubjectDomainName")},
        }
    return {}


def _process(image: object, pid: int | None, guid: object) -> dict[str, Any]:
    process: dict[str, Any] = {}
    _put_value(process, "entity_id", guid)
    _put_value(process, "pid", pid)
    if isinstance(image, str) and image != "-":
        process["executable"] = image
        process["name"] = image.rpartition("\\")[2]
    return process


def _int(value: object) -> int | None:
    """A decimal or ``0x`` hex number as Windows writes ids and ports; None otherwise."""
    if not isinstance(value, str) or not value.isascii() or len(value) > 18:
        return None
    try:
        return int(value, 16) if value[:2].lower() == "0x" else int(value)
    except ValueError:
        return None


def _user(value: object) -> dict[str, Any]:
    if not isinstance(value, str):
        return {}
    domain, sep, name = value.rpartition("\\")
    return {"name": name, "domain": domain} if sep else {"name": value}


def _hashes(value: object) -> dict[str, str]:
    if not isinstance(value, str):
        return {}
    pairs = (item.partition("=") for item in value.split(","))
    return {algo.lower(): digest.lower() for algo, sep, digest in pairs if sep}
