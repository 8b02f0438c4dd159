"""Windows events as XML and Winlogbeat JSON: exact, read back, checked by libxml2 and json."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from lxml import etree  # type: ignore[import-untyped]

from emitters.content import ContentOptions
from emitters.formats import FORMATS
from emitters.formats.base import FormatError
from emitters.formats.winevent import NAMESPACE, WinEventJsonFormat, WinEventXmlFormat
from emitters.formats.winevent_content import (
    DATA_NAMES,
    KEYWORDS_CLASSIC,
    KEYWORDS_FAILURE,
    KEYWORDS_SUCCESS,
    SECURITY,
    SYSMON,
)
from services.common.config import PiiConfig
from services.common.model import Batch
from services.ingest.normalize import Normaliser
from tests.unit.emitters.golden_lines import NOW, check_golden, golden_lines

XML = WinEventXmlFormat()
JSON = WinEventJsonFormat()
NS = "{" + NAMESPACE + "}"
SYSTEM_ORDER = [
    *("Provider", "EventID", "Version", "Level", "Task", "Opcode", "Keywords", "TimeCreated"),
    *("EventRecordID", "Correlation", "Execution", "Channel", "Computer", "Security"),
]
# What Windows writes in <System> for each kind: version, level, task, keywords.
SYSTEM_VALUES = {
    (SYSMON, 1): ("5", "4", "1", "0x8000000000000000"),
    (SYSMON, 3): ("5", "4", "3", "0x8000000000000000"),
    (SECURITY, 4624): ("2", "0", "12544", "0x8020000000000000"),
    (SECURITY, 4625): ("0", "0", "12544", "0x8010000000000000"),
    (SECURITY, 4688): ("2", "0", "13312", "0x8020000000000000"),
}
GUIDS = {
    SYSMON: "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}",
    SECURITY: "{54849625-5478-4994-A5BA-3E3B0328C30D}",
}
SYSTEM_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z")
GUID = re.compile(
    r"\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}"
)
SID = re.compile(r"S-1-(0-0|5-18|16-\d+|5-21-\d+-\d+-\d+-\d+)")
HEX = re.compile(r"0x[0-9a-f]+")
HASHES = re.compile(r"MD5=[0-9A-F]{32},SHA256=[0-9A-F]{64}")


def samples(count: int, seed: int = 7, **opts: Any) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    options = ContentOptions(**opts)
    return [XML.sample(rng, options, NOW + n) for n in range(count)]


# --- golden files and real-world lines ------------------------------------------------


def test_golden_xml() -> None:
    check_golden("winevent_xml", golden_lines(XML))


def test_golden_json() -> None:
    check_golden("winevent_json", golden_lines(JSON))


# Microsoft's example of event 4624 (learn.microsoft.com, "4624(S): An account was
# successfully logged on"), as Event Viewer prints it, joined into one line.
MS_4624 = " ".join(
    part.strip()
    for part in """
<Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event">
 <System>
  <Provider Name="Microsoft-Windows-Security-Auditing"
            Guid="{54849625-5478-4994-A5BA-3E3B0328C30D}" />
  <EventID>4624</EventID>
  <Version>2</Version>
  <Level>0</Level>
  <Task>12544</Task>
  <Opcode>0</Opcode>
  <Keywords>0x8020000000000000</Keywords>
  <TimeCreated SystemTime="2015-11-12T00:24:35.079785200Z" />
  <EventRecordID>211</EventRecordID>
  <Correlation ActivityID="{00D66690-1CDF-0000-AC66-D600DF1CD101}" />
  <Execution ProcessID="716" ThreadID="760" />
  <Channel>Security</Channel>
  <Computer>WIN-GG82ULGC9GO</Computer>
  <Security />
 </System>
 <EventData>
  <Data Name="SubjectUserSid">S-1-5-18</Data>
  <Data Name="SubjectUserName">WIN-GG82ULGC9GO$</Data>
  <Data Name="SubjectDomainName">CONTOSO</Data>
  <Data Name="SubjectLogonId">0x3e7</Data>
  <Data Name="TargetUserSid">S-1-5-21-1377283216-344919071-3415362939-500</Data>
  <Data Name="TargetUserName">Administrator</Data>
  <Data Name="TargetDomainName">CONTOSO</Data>
  <Data Name="TargetLogonId">0x8dcdc</Data>
  <Data Name="LogonType">2</Data>
  <Data Name="LogonProcessName">User32</Data>
  <Data Name="AuthenticationPackageName">Negotiate</Data>
  <Data Name="WorkstationName">WIN-GG82ULGC9GO</Data>
  <Data Name="LogonGuid">{00000000-0000-0000-0000-000000000000}</Data>
  <Data Name="TransmittedServices">-</Data>
  <Data Name="LmPackageName">-</Data>
  <Data Name="KeyLength">0</Data>
  <Data Name="ProcessId">0x44c</Data>
  <Data Name="ProcessName">C:\\Windows\\System32\\svchost.exe</Data>
  <Data Name="IpAddress">127.0.0.1</Data>
  <Data Name="IpPort">0</Data>
  <Data Name="ImpersonationLevel">%%1833</Data>
  <Data Name="RestrictedAdminMode">-</Data>
  <Data Name="TargetOutboundUserName">-</Data>
  <Data Name="TargetOutboundDomainName">-</Data>
  <Data Name="VirtualAccount">%%1843</Data>
  <Data Name="TargetLinkedLogonId">0x0</Data>
  <Data Name="ElevatedToken">%%1842</Data>
 </EventData>
</Event>""".splitlines()
)


def test_parse_microsoft_4624_example() -> None:
    rec = XML.parse(MS_4624)
    data = rec.pop("event_data")
    assert rec == {
        "ts": "2015-11-12T00:24:35.079785200Z",
        "level": 0,
        "msg": "An account was successfully logged on: Administrator",
        "host": "WIN-GG82ULGC9GO",
        "event_id": 4624,
        "version": 2,
        "task": 12544,
        "opcode": 0,
        "keywords": "0x8020000000000000",
        "channel": "Security",
        "provider": "Microsoft-Windows-Security-Auditing",
        "provider_guid": "{54849625-5478-4994-A5BA-3E3B0328C30D}",
        "record_id": 211,
        "activity_id": "{00D66690-1CDF-0000-AC66-D600DF1CD101}",
        "pid": 716,
        "thread_id": 760,
        "outcome": "success",
    }
    assert list(data) == list(DATA_NAMES[SECURITY, 4624])
    assert (data["ProcessName"], data["LogonType"], data["ElevatedToken"]) == (
        "C:\\Windows\\System32\\svchost.exe",
        "2",
        "%%1842",
    )


def test_our_4624_has_the_shape_of_microsofts() -> None:
    ours = next(r for r in samples(50) if r["event_id"] == 4624)
    theirs = etree.fromstring(MS_4624.encode())
    mine = etree.fromstring(XML.render(ours).encode())
    for path in ("s:System/*", "s:EventData/s:Data"):
        tags = [(e.tag, sorted(e.attrib)) for e in theirs.xpath(path, namespaces={"s": NAMESPACE})]
        assert [
            (e.tag, sorted(e.attrib)) for e in mine.xpath(path, namespaces={"s": NAMESPACE})
        ] == tags
    names = theirs.xpath("s:EventData/s:Data/@Name", namespaces={"s": NAMESPACE})
    assert mine.xpath("s:EventData/s:Data/@Name", namespaces={"s": NAMESPACE}) == names


# A Sysmon event as EvtRender writes it (single-quoted attributes), as forwarders ship it.
SYSMON_3 = (
    "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System>"
    "<Provider Name='Microsoft-Windows-Sysmon' Guid='{5770385f-c22a-43e0-bf4c-06f5698ffbd9}'/>"
    "<EventID>3</EventID><Version>5</Version><Level>4</Level><Task>3</Task><Opcode>0</Opcode>"
    "<Keywords>0x8000000000000000</Keywords>"
    "<TimeCreated SystemTime='2024-03-12T14:05:09.482113400Z'/><EventRecordID>88412</EventRecordID>"
    "<Correlation/><Execution ProcessID='3140' ThreadID='4356'/>"
    "<Channel>Microsoft-Windows-Sysmon/Operational</Channel><Computer>ws12.corp.example</Computer>"
    "<Security UserID='S-1-5-18'/></System><EventData><Data Name='RuleName'>-</Data>"
    "<Data Name='Image'>C:\\Windows\\System32\\curl.exe</Data><Data Name='Protocol'>tcp</Data>"
    "<Data Name='DestinationIp'>203.0.113.9</Data><Data Name='DestinationPort'>443</Data>"
    "</EventData></Event>"
)


def test_parse_evtrender_sysmon_line() -> None:
    rec = XML.parse(SYSMON_3)
    assert (
        rec["msg"]
        == "Network connection detected: C:\\Windows\\System32\\curl.exe -> 203.0.113.9:443"
    )
    assert (rec["event_id"], rec["level"], rec["user_id"], rec["host"]) == (
        3,
        4,
        "S-1-5-18",
        "ws12.corp.example",
    )
    assert "outcome" not in rec and "activity_id" not in rec
    assert rec["event_data"]["Protocol"] == "tcp"


WINLOGBEAT_4625 = (
    '{"@timestamp":"2024-03-12T14:05:09.482Z","event":{"code":"4625","kind":"event",'
    '"provider":"Microsoft-Windows-Security-Auditing","action":"logon-failed","outcome":"failure"},'
    '"log":{"level":"information"},"host":{"name":"dc01"},"agent":{"type":"winlogbeat","version":"8.12.2"},'
    '"winlog":{"channel":"Security","event_id":"4625","provider_name":"Microsoft-Windows-Security-Auditing",'
    '"provider_guid":"{54849625-5478-4994-a5ba-3e3b0328c30d}","record_id":5151,'
    '"computer_name":"dc01.corp.example","process":{"pid":652,"thread":{"id":3480}},'
    '"task":"Logon","opcode":"Info","keywords":["Audit Failure"],"api":"wineventlog",'
    '"event_data":{"TargetUserName":"mallory","Status":"0xc000006d","SubStatus":"0xc000006a",'
    '"LogonType":"3","IpAddress":"192.0.2.44","IpPort":"51122"},'
    '"logon":{"type":"Network","failure":{"reason":"Unknown user name or bad password."}}},'
    '"source":{"ip":"192.0.2.44","port":51122},"user":{"name":"mallory"}}'
)


def test_parse_winlogbeat_line() -> None:
    rec = JSON.parse(WINLOGBEAT_4625)
    assert rec == {
        "ts": "2024-03-12T14:05:09.482Z",
        "level": "information",
        "msg": "An account failed to log on: mallory",
        "host": "dc01.corp.example",
        "event_id": 4625,
        "task": "Logon",
        "opcode": "Info",
        "keywords": ["Audit Failure"],
        "channel": "Security",
        "provider": "Microsoft-Windows-Security-Auditing",
        "provider_guid": "{54849625-5478-4994-a5ba-3e3b0328c30d}",
        "record_id": 5151,
        "pid": 652,
        "thread_id": 3480,
        "outcome": "failure",
        "event_data": {
            "TargetUserName": "mallory",
            "Status": "0xc000006d",
            "SubStatus": "0xc000006a",
            "LogonType": "3",
            "IpAddress": "192.0.2.44",
            "IpPort": "51122",
        },
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("<Event", "invalid XML"),
        ("not xml at all", "invalid XML"),
        ('<Event xmlns="urn:other"><System><EventID>1</EventID></System></Event>', "root element"),
        (f'<Event xmlns="{NAMESPACE}"><EventData/></Event>', "needs a System"),
        (f'<Event xmlns="{NAMESPACE}"><System><Channel>x</Channel></System></Event>', "no EventID"),
        (f'<Event xmlns="{NAMESPACE}"><System><EventID>one</EventID></System></Event>', "decimal"),
        (
            f'<Event xmlns="{NAMESPACE}"><System><EventID>1</EventID></System></Event> x',
            "invalid XML",
        ),
        (f'<Event xmlns="{NAMESPACE}">&bogus;</Event>', "invalid XML"),
        # A JSON body's "\ud800" escape reaches the parser as a lone surrogate.
        (
            f'<Event xmlns="{NAMESPACE}"><System><EventID>1</EventID></System>\ud800</Event>',
            "lone surrogate",
        ),
        (
            '<!DOCTYPE e [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            f'<Event xmlns="{NAMESPACE}"><System><EventID>1</EventID></System>&b;</Event>',
            "DOCTYPE",
        ),
    ],
)
def test_xml_refuses(line: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        XML.parse(line)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"winlog":', "invalid JSON"),
        ('{"event":{"code":"1"}}', "needs a winlog object"),
        ("[1]", "needs a winlog object"),
        ('{"winlog":{"event_id":"one","channel":"Security"}}', "decimal number"),
    ],
)
def test_json_refuses(line: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        JSON.parse(line)


def test_looks_like_claims_only_its_own_lines() -> None:
    rec = samples(1)[0]
    xml_line, json_line = XML.render(rec), JSON.render(rec)
    assert XML.looks_like(xml_line) and XML.looks_like(SYSMON_3) and XML.looks_like(MS_4624)
    assert JSON.looks_like(json_line) and JSON.looks_like(WINLOGBEAT_4625)
    others = [
        '{"ts":"2024-03-12T14:05:09.482Z","level":"info","msg":"winlog: rotated"}',
        '{"msg": "has a \\"winlog\\": {} inside"}',
        '{"msg": "nested", "meta": {"winlog": {"event_id": "1"}}}',
        '{"winlog": {"channel": "Security"}}',
        "<34>Mar  2 04:05:06 web01 sshd[4412]: Failed password for root",
        "ts=2024-03-12T14:05:09.482Z level=error msg=x",
        "<Events><Event/></Events>",
        "",
    ]
    for line in [*others, json_line]:
        assert not XML.looks_like(line), line
    for line in [*others, xml_line]:
        assert not JSON.looks_like(line), line


# --- what the samples hold ----------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.0, 0.2, 1.0])
def test_failed_logons_follow_error_ratio(ratio: float) -> None:
    kinds = Counter((r["provider"], r["event_id"]) for r in samples(5000, error_ratio=ratio))
    assert kinds[SECURITY, 4625] / 5000 == pytest.approx(ratio, abs=0.02)
    if ratio < 1:
        # The rest: Sysmon 1 and 3 and Security 4624 and 4688, 30/30/20/20.
        rest = 5000 - kinds[SECURITY, 4625]
        assert kinds[SYSMON, 1] / rest == pytest.approx(0.3, abs=0.03)
        assert kinds[SECURITY, 4688] / rest == pytest.approx(0.2, abs=0.03)
        assert set(kinds) == set(SYSTEM_VALUES) - ({(SECURITY, 4625)} if ratio == 0 else set())


def test_same_seed_same_events() -> None:
    assert samples(30, seed=3) == samples(30, seed=3)
    assert samples(30, seed=3) != samples(30, seed=4)


# --- libxml2 reads every line: 10,000 of them ----------------------------------------


def _check_xml_event(rec: dict[str, Any], line: str) -> None:
    assert "\n" not in line and "\r" not in line
    root = etree.fromstring(line.encode())
    assert root.tag == NS + "Event"
    system, event_data = list(root)
    assert [child.tag for child in system] == [NS + tag for tag in SYSTEM_ORDER]
    kind = (rec["provider"], rec["event_id"])
    text = {child.tag[len(NS) :]: child.text for child in system}
    assert (text["Version"], text["Level"], text["Task"], text["Keywords"]) == SYSTEM_VALUES[kind]
    provider = system.find(NS + "Provider")
    assert (provider.get("Name"), provider.get("Guid")) == (rec["provider"], GUIDS[rec["provider"]])
    assert (text["EventID"], text["Opcode"], text["Computer"]) == (
        str(rec["event_id"]),
        "0",
        rec["host"],
    )
    assert SYSTEM_TIME.fullmatch(system.find(NS + "TimeCreated").get("SystemTime"))
    execution = system.find(NS + "Execution")
    assert (
        int(execution.get("ProcessID")) == rec["pid"]
        and int(execution.get("ThreadID")) == rec["thread_id"]
    )
    user = system.find(NS + "Security").get("UserID")
    assert user == ("S-1-5-18" if rec["provider"] == SYSMON else None)
    activity = system.find(NS + "Correlation").get("ActivityID")
    assert activity is None or GUID.fullmatch(activity)
    assert event_data.tag == NS + "EventData"
    pairs = [(d.get("Name"), d.text or "") for d in event_data]
    assert [name for name, _ in pairs] == list(DATA_NAMES[kind])
    assert dict(pairs) == rec["event_data"]
    _check_values(kind, dict(pairs))


def _check_values(kind: tuple[str, int], data: dict[str, str]) -> None:
    if kind[0] == SYSMON:
        assert GUID.fullmatch(data["ProcessGuid"]) and data["ProcessId"].isdigit()
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", data["UtcTime"])
    if kind == (SYSMON, 1):
        assert HASHES.fullmatch(data["Hashes"]) and HEX.fullmatch(data["LogonId"])
        assert data["Image"].startswith("C:\\") and data["ParentImage"].startswith("C:\\")
    if kind[0] == SECURITY:
        assert SID.fullmatch(data["SubjectUserSid"]) and HEX.fullmatch(data["SubjectLogonId"])
    if kind in ((SECURITY, 4624), (SECURITY, 4625)):
        assert data["LogonType"] in ("2", "3", "5", "7", "10", "11")
    if kind == (SECURITY, 4625):
        assert (data["Status"], data["FailureReason"]) == ("0xc000006d", "%%2313")


def test_libxml2_reads_10000_lines() -> None:
    for rec in samples(10_000, seed=11, error_ratio=0.2):
        _check_xml_event(rec, XML.render(rec))


# --- the json module reads every Winlogbeat line: 10,000 of them ---------------------


def _check_json_event(rec: dict[str, Any], line: str) -> None:
    doc = json.loads(line)
    assert doc["@timestamp"] == rec["ts"][:23] + "Z"
    event, winlog = doc["event"], doc["winlog"]
    assert (event["code"], event["kind"], event["provider"]) == (
        str(rec["event_id"]),
        "event",
        rec["provider"],
    )
    assert doc["log"]["level"] == "information" and doc["host"]["name"] == rec["host"]
    assert winlog["event_id"] == str(rec["event_id"]) and isinstance(winlog["record_id"], int)
    assert (winlog["channel"], winlog["provider_name"], winlog["computer_name"]) == (
        rec["channel"],
        rec["provider"],
        rec["host"],
    )
    assert winlog["provider_guid"] == GUIDS[rec["provider"]]
    assert winlog["process"] == {"pid": rec["pid"], "thread": {"id": rec["thread_id"]}}
    assert list(winlog["event_data"].items()) == list(rec["event_data"].items())
    data = rec["event_data"]
    kind = (rec["provider"], rec["event_id"])
    assert doc["agent"]["type"] == "winlogbeat" and winlog["api"] == "wineventlog"
    outcome = {"success": ["Audit Success"], "failure": ["Audit Failure"]}
    assert winlog.get("keywords") == outcome.get(rec.get("outcome", ""))
    if rec["provider"] == SYSMON:
        assert winlog["user"] == {"identifier": "S-1-5-18"}
        assert doc["process"]["executable"] == data["Image"]
        assert doc["process"]["pid"] == int(data["ProcessId"])
        assert doc["user"]["name"] == data["User"].split("\\")[1]
    else:
        assert "user" not in winlog and event["outcome"] == rec["outcome"]
    if kind == (SYSMON, 1):
        assert doc["process"]["command_line"] == data["CommandLine"]
        assert doc["process"]["parent"]["executable"] == data["ParentImage"]
        assert doc["process"]["hash"]["sha256"] == data["Hashes"].split("SHA256=")[1].lower()
    if kind == (SYSMON, 3):
        assert (doc["source"]["ip"], doc["destination"]["ip"]) == (
            data["SourceIp"],
            data["DestinationIp"],
        )
        assert doc["destination"]["port"] == int(data["DestinationPort"])
    if kind in ((SECURITY, 4624), (SECURITY, 4625)):
        assert doc["user"]["name"] == data["TargetUserName"]
        assert doc["source"]["ip"] == data["IpAddress"]
    if kind == (SECURITY, 4688):
        assert doc["process"]["pid"] == int(data["NewProcessId"], 16)
        assert doc["process"]["parent"]["executable"] == data["ParentProcessName"]


def test_json_module_reads_10000_lines() -> None:
    for rec in samples(10_000, seed=12, error_ratio=0.2):
        _check_json_event(rec, JSON.render(rec))


# --- round trips ----------------------------------------------------------------------


def test_samples_round_trip() -> None:
    for rec in samples(500, seed=5, error_ratio=0.2):
        assert XML.parse(XML.render(rec)) == rec
        line = JSON.render(rec)
        back = JSON.parse(line)
        assert back["ts"] == rec["ts"][:23] + "Z" and back["level"] == "information"
        same = ("msg", "host", "event_id", "channel", "provider", "record_id", "pid", "event_data")
        assert {k: back[k] for k in same} == {k: rec[k] for k in same}
        # What the JSON parser returns renders the same line again.
        assert JSON.render(back) == line


NASTY = st.text(
    st.one_of(st.sampled_from("&<>\"'\t\n\r\x00\x1b\ufffe]]>=|\\"), st.characters(codec="utf-8")),
    max_size=30,
)
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_clean(text: str) -> str:
    return FORBIDDEN.sub("\ufffd", text)


EVENTS = st.fixed_dictionaries(
    {
        "ts": NASTY,
        "level": st.integers(0, 5),
        "host": NASTY,
        "event_id": st.integers(0, 65535),
        "keywords": NASTY,
        "channel": NASTY,
        "provider": NASTY,
        "record_id": st.integers(0, 2**63),
        "pid": st.integers(0, 2**32),
        "event_data": st.dictionaries(NASTY.filter(bool), NASTY, max_size=5),
    },
    optional={
        "activity_id": NASTY,
        "user_id": NASTY,
        "run_id": NASTY,
        "seq": st.integers(0, 2**64 - 1),
    },
)


_PLAIN_EVENT: dict[str, Any] = {
    "ts": "",
    "level": 0,
    "host": "",
    "event_id": 0,
    "keywords": "",
    "channel": "",
    "provider": "",
    "record_id": 0,
    "pid": 0,
    "event_data": {},
}


@settings(max_examples=300)
@given(EVENTS)
def test_xml_round_trip_with_nasty_text(rec: dict[str, Any]) -> None:
    line = XML.render(rec)
    assert "\n" not in line and "\r" not in line
    etree.fromstring(line.encode())  # libxml2: well-formed whatever the record held
    back = XML.parse(line)
    for key in ("ts", "host", "keywords", "channel", "provider", "activity_id", "user_id"):
        if key in rec:
            assert back[key] == _xml_clean(rec[key]), key
    for key in ("level", "event_id", "record_id", "pid"):
        assert back[key] == rec[key]
    assert back["event_data"] == {
        _xml_clean(k): _xml_clean(v) for k, v in rec["event_data"].items()
    }


@settings(max_examples=300)
@given(EVENTS)
@example(
    {
        **_PLAIN_EVENT,
        "keywords": KEYWORDS_CLASSIC,
    }
)
@example({**_PLAIN_EVENT, "keywords": KEYWORDS_FAILURE})
def test_json_round_trip_with_nasty_text(rec: dict[str, Any]) -> None:
    line = JSON.render(rec)
    assert "\n" not in line
    back = JSON.parse(line)
    # Winlogbeat writes the names Windows renders for the audit keywords, and none for
    # Sysmon's classic bit: those three come back as Winlogbeat ships them.
    keywords = {
        KEYWORDS_CLASSIC: None,
        KEYWORDS_SUCCESS: ["Audit Success"],
        KEYWORDS_FAILURE: ["Audit Failure"],
    }.get(rec["keywords"], rec["keywords"])
    assert back.get("keywords") == keywords
    for key in (
        "host",
        "channel",
        "provider",
        "activity_id",
        "user_id",
        "run_id",
        "seq",
    ):
        if key in rec:
            assert back[key] == rec[key], key
    assert (back["ts"], back["event_id"], back["record_id"], back["pid"]) == (
        rec["ts"],
        rec["event_id"],
        rec["record_id"],
        rec["pid"],
    )
    assert back["event_data"] == rec["event_data"]


# --- Ingest: what the normaliser stores for these lines -------------------------------


@pytest.fixture
def normaliser(monkeypatch: pytest.MonkeyPatch) -> Normaliser:
    """The real normaliser, with these formats known to it by name."""
    formats = dict(FORMATS) | {XML.name: XML, JSON.name: JSON}
    monkeypatch.setattr("services.ingest.normalize.FORMATS", formats)
    return Normaliser(PiiConfig(mode="off"), 1 << 20)


def test_ingest_normalises_both_formats(normaliser: Normaliser) -> None:
    recs = samples(200, seed=9, error_ratio=0.2)
    for fmt in (XML, JSON):
        batch = Batch(
            records=[{"raw": fmt.render(r), "seq": n} for n, r in enumerate(recs)],
            batch_id="b",
            emitter="win",
            scenario_id="",
            run_id="r",
            default_format=fmt.name,
        )
        result = normaliser.normalise_batch(batch, 1_710_252_400_000)
        assert result.rejections == [] and result.accepted == 200
        assert result.missing.to_dict() == dict.fromkeys(result.missing.to_dict(), 0)
        lines = [json.loads(line) for line in result.data.splitlines()]
        for rec, out in zip(recs, lines, strict=True):
            assert out["ts"] == rec["ts"][:23] + "Z" and out["level"] == "INFO"
            assert (out["msg"], out["host"], out["format"]) == (rec["msg"], rec["host"], fmt.name)
            assert out["event_data"] == rec["event_data"] and out["event_id"] == rec["event_id"]


@pytest.mark.parametrize(
    ("level", "word", "expected"),
    [
        (1, "critical", "FATAL"),
        (2, "error", "ERROR"),
        (3, "warning", "WARN"),
        (5, "verbose", "DEBUG"),
    ],
)
def test_ingest_maps_windows_levels(
    normaliser: Normaliser, level: int, word: str, expected: str
) -> None:
    rec = samples(1)[0] | {"level": level}
    for fmt in (XML, JSON):
        line = fmt.render(rec)
        assert fmt.parse(line)["level"] == (level if fmt is XML else word)
        batch = Batch(
            records=[{"raw": line}],
            batch_id="b",
            emitter="e",
            scenario_id="",
            run_id="r",
            default_format=fmt.name,
        )
        out = json.loads(normaliser.normalise_batch(batch, 0).data)
        assert (out["level"], out["level_missing"]) == (expected, False)


def test_xml_replaces_what_xml_cannot_carry() -> None:
    rec = samples(1)[0] | {"host": "a\x00b\ud800c\uffff", "event_data": {"k\x1f": "<&>\r\n\t'\""}}
    line = XML.render(rec)
    etree.fromstring(line.encode("utf-8"))
    back = XML.parse(line)
    assert back["host"] == "a\ufffdb\ufffdc\ufffd"
    assert back["event_data"] == {"k\ufffd": "<&>\r\n\t'\""}


def test_json_writes_what_orjson_refuses() -> None:
    rec = samples(1)[0] | {"host": "ws\ud83d", "record_id": 2**80}
    back = JSON.parse(JSON.render(rec))
    assert (back["host"], back["record_id"]) == ("ws\ufffd", str(2**80))
