"""CEF lines: exact renders, the standard's examples read back, a strict grammar agrees.

The independent parser is a strict grammar written in this file from ArcSight's
"Implementing ArcSight Common Event Format (CEF)" (revision 25): seven header fields
split at unescaped ``|`` (only ``\\|`` and ``\\\\`` escapes), a severity of 0-10 or
Unknown/Low/Medium/High/Very-High, then an extension split at each unescaped ``=``
looking back for its key (only ``\\=``, ``\\\\``, ``\\n`` and ``\\r`` escapes; ``=``
in a value must be escaped; no raw line breaks). PyPI's ``pycef`` (1.11, 2020) was
tried and is not strict enough to judge exactness: it misreads a header holding an
escaped pipe (the standard's own example) or an ``=``, refuses an empty header field,
and keeps the escapes in the values it returns.
"""

from __future__ import annotations

import random
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emitters.content import ContentOptions
from emitters.formats import detect_format
from emitters.formats.base import FormatError
from emitters.formats.cef import CefFormat
from services.ingest.levels import canonical_level
from services.ingest.timeparse import parse_ts
from tests.unit.emitters.golden_lines import check_golden, golden_lines
from tests.unit.emitters.web_checks import NASTY, OTHER_LINES, ingest

FMT = CefFormat()
SEVERITY_WORDS = ("Unknown", "Low", "Medium", "High", "Very-High")
KEY_CHAR = re.compile(r"[A-Za-z0-9_.]")
SYSLOG_PREFIX = re.compile(
    r"(<(0|[1-9][0-9]{0,2})>)?(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"( [1-9]|[12][0-9]|3[01]) ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9] [!-~]+ "
)
HEADER_NAMES = ("version", "vendor", "product", "device_version", "class_id", "name", "severity")
LEVEL_AFTER_ROUND_TRIP = {
    "TRACE": "INFO",
    "DEBUG": "INFO",
    "INFO": "INFO",
    "WARN": "WARN",
    "ERROR": "ERROR",
    "FATAL": "FATAL",
}


def cef_grammar(line: str) -> dict[str, Any]:
    """The header fields and extension pairs of one CEF line; ``ValueError`` if it breaks."""
    start = line.find("CEF:")
    if start < 0:
        raise ValueError("no 'CEF:'")
    if start and SYSLOG_PREFIX.fullmatch(line[:start]) is None:
        raise ValueError("text before 'CEF:' is no syslog header")
    fields, rest = _header(line[start + 4 :])
    out: dict[str, Any] = dict(zip(HEADER_NAMES, fields, strict=True))
    if not out["version"].isdigit():
        raise ValueError("version")
    severity = out["severity"]
    if not (severity.isdigit() and int(severity) <= 10) and severity not in SEVERITY_WORDS:
        raise ValueError(f"severity {severity!r}")
    out["extension"] = _extension(rest)
    return out


def _header(body: str) -> tuple[list[str], str]:
    fields: list[str] = []
    current: list[str] = []
    i = 0
    while len(fields) < 7:
        if i >= len(body):
            raise ValueError("fewer than 7 header fields")
        char = body[i]
        if char == "\\":
            if body[i + 1 : i + 2] not in ("|", "\\"):
                raise ValueError("header escape other than \\| or \\\\")
            current.append(body[i + 1])
            i += 2
            continue
        if char in "\r\n":
            raise ValueError("line break in the header")
        if char == "|":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    return fields, body[i:]


def _extension(text: str) -> dict[str, str]:
    if "\n" in text or "\r" in text:
        raise ValueError("raw line break in the extension")
    equals = _unescaped_equals(text)
    starts = []
    for eq in equals:
        key_start = eq
        while key_start > 0 and KEY_CHAR.match(text[key_start - 1]):
            key_start -= 1
        if key_start == eq or (key_start > 0 and text[key_start - 1] != " "):
            raise ValueError(f"'=' at {eq} is not escaped and follows no key")
        starts.append(key_start)
    if text and (not starts or starts[0] != 0):
        raise ValueError("the extension does not start with a key")
    pairs: dict[str, str] = {}
    for n, (key_start, eq) in enumerate(zip(starts, equals, strict=True)):
        end = starts[n + 1] - 1 if n + 1 < len(starts) else len(text)
        raw = text[eq + 1 : end]
        value = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m[1], m[1]), raw)
        pairs[text[key_start:eq]] = value
    return pairs


def _unescaped_equals(text: str) -> list[int]:
    equals: list[int] = []
    i = 0
    while i < len(text):
        if text[i] == "\\":
            if text[i + 1 : i + 2] not in ("\\", "=", "n", "r"):
                raise ValueError("extension escape other than \\\\ \\= \\n \\r")
            i += 2
            continue
        if text[i] == "=":
            equals.append(i)
        i += 1
    return equals


# --- golden and real lines ------------------------------------------------------------


def test_golden() -> None:
    lines = golden_lines(FMT)
    check_golden(FMT.name, lines)
    for line in lines:
        cef_grammar(line)
        assert detect_format(line) == "cef"


REAL_LINES = [
    (
        # The standard's example behind a syslog header without PRI.
        "Sep 19 08:26:10 host CEF:0|Security|threatmanager|1.0|100|worm successfully stopped|"
        "10|src=10.0.0.1 dst=2.1.2.2 spt=1232",
        {"ts": "Sep 19 08:26:10", "host": "host", "level": "FATAL", "cef_severity": "10"}
        | {"device_vendor": "Security", "device_product": "threatmanager"}
        | {"device_version": "1.0", "signature_id": "100"}
        | {"event_name": "worm successfully stopped", "src": "10.0.0.1", "dst": "2.1.2.2"}
        | {"spt": "1232", "cef_version": "0"},
    ),
    (
        # The standard's escaping examples: a pipe in the header, "=" and "\" in values.
        "CEF:0|security|threatmanager|1.0|100|detected a \\| in message|10|src=10.0.0.1 "
        "act=blocked a | dst=1.1.1.1",
        {"event_name": "detected a | in message", "act": "blocked a |"},
    ),
    (
        "CEF:0|security|threatmanager|1.0|100|detected a \\\\ in packet|10|src=10.0.0.1 "
        "act=blocked a \\\\ dst=1.1.1.1",
        {"event_name": "detected a \\ in packet", "act": "blocked a \\"},
    ),
    (
        "CEF:0|security|threatmanager|1.0|100|detected a = in message|10|src=10.0.0.1 "
        "act=blocked a \\= dst=1.1.1.1",
        {"event_name": "detected a = in message", "act": "blocked a ="},
    ),
    (
        "CEF:0|security|threatmanager|1.0|100|Detected a threat. No action needed.|10|"
        "src=10.0.0.1 msg=Detected a threat.\\n No action needed.",
        {"msg": "Detected a threat.\n No action needed."},
    ),
    (
        # The standard's Logger example: labels, an epoch-ms rt, severity 1 (Low).
        "CEF:0|ArcSight|Logger|5.0.0.5355.2|sensor:115|Logger Internal Event|1|"
        "cat=/Monitor/Sensor/Fan5 cs2=Current Value cnt=1 dvc=10.0.0.1 cs3=Ok cs1=null "
        "type=0 cs1Label=unit rt=1305034099211 cs3Label=Status cn1Label=value cn1=0 "
        "cs2Label=timeframe",
        {"ts": "1305034099211", "level": "INFO", "cs2": "Current Value", "cs2Label": "timeframe"},
    ),
    (
        # The product's example: a BSD header with PRI, severity 7 (High).
        "<134>Mar 12 14:05:09 fw01 CEF:0|LogOps|emitter|1.0|auth-fail|Failed login|7|"
        "src=192.0.2.44 suser=alice dpt=22 msg=bad password rt=1710252309000",
        {"ts": "1710252309000", "host": "fw01", "level": "ERROR", "msg": "bad password"}
        | {"syslog_facility": 16, "syslog_severity": 6, "suser": "alice"},
    ),
    (
        # rsyslog's tocef() also escapes "=", "%" and "#" in the header; a word severity.
        "CEF:0|MyVendor|rsyslog|1.0|sshd\\=x\\%y\\#z||Very-High|",
        {"signature_id": "sshd=x%y#z", "event_name": "", "level": "FATAL"},
    ),
]


@pytest.mark.parametrize(("line", "expected"), REAL_LINES)
def test_parse_real_lines(line: str, expected: dict[str, Any]) -> None:
    parsed = FMT.parse(line)
    assert parsed | expected == parsed
    assert FMT.looks_like(line)


@pytest.mark.parametrize(
    ("severity", "level"),
    [
        *[("0", "INFO"), ("3", "INFO"), ("4", "WARN"), ("6", "WARN"), ("7", "ERROR")],
        *[("8", "ERROR"), ("9", "FATAL"), ("10", "FATAL"), ("Low", "INFO"), ("Medium", "WARN")],
        *[("High", "ERROR"), ("Very-High", "FATAL"), ("Unknown", None)],
    ],
)
def test_severity_bands_give_levels(severity: str, level: str | None) -> None:
    parsed = FMT.parse(f"CEF:0|v|p|1|id|name|{severity}|")
    assert parsed.get("level") == level
    assert parsed["cef_severity"] == severity


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        *[("TRACE", "0"), ("DEBUG", "1"), ("INFO", "3"), ("WARN", "5"), ("warning", "5")],
        *[("ERROR", "8"), ("FATAL", "10"), (None, "3"), ("<11>", "3")],
    ],
)
def test_render_maps_levels_to_severities(level: str | None, severity: str) -> None:
    line = FMT.render({"level": level})
    assert line == f"CEF:0|LogOps|emitter|1.0|app-event|application event|{severity}|"
    assert FMT.render({"level": "ERROR", "cef_severity": "Low"}).endswith("|Low|")


def test_render_exact_with_and_without_the_syslog_header() -> None:
    rec = {
        "ts": "2024-03-12T14:05:09.482Z",
        "level": "ERROR",
        "host": "fw01.corp.example",
        "device_vendor": "Example|Networks",
        "device_product": "Edge\\Wall",
        "device_version": "9.1",
        "signature_id": "fw-deny",
        "event_name": "Traffic\ndenied",
        "src": "192.0.2.44",
        "request": "https://x.example/?a=b",
        "msg": "line one\r\nline two \\ end",
        "syslog_facility": 16,
    }
    line = FMT.render(rec)
    assert line == (
        "<131>Mar 12 14:05:09 fw01 CEF:0|Example\\|Networks|Edge\\\\Wall|9.1|fw-deny|Traffic "
        "denied|8|rt=1710252309482 dvchost=fw01.corp.example src=192.0.2.44 "
        "request=https://x.example/?a\\=b msg=line one\\r\\nline two \\\\ end"
    )
    assert cef_grammar(line)["extension"]["msg"] == rec["msg"]
    bare = FMT.render(rec | {"syslog_header": False})
    assert bare == line[line.index("CEF:") :]
    header = ("syslog_facility", "syslog_severity")
    assert FMT.parse(bare) == {k: v for k, v in FMT.parse(line).items() if k not in header}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "not a CEF line"),
        ("CEF:0|a|b|c|d|e", "7 '|'-separated fields"),
        ("CEF:x|a|b|c|d|e|3|", "7 '|'-separated fields"),
        ("CEF:0|a|b|c|d|e|11|", "severity must be"),
        ("CEF:0|a|b|c|d|e|Critical|", "severity must be"),
        ("CEF:0|a|b|c|d|e|3|src=1 x=\\", "key=value"),
        ("CEF:0|a|b|c|d|e|3|just words", "key=value"),
        ("junk CEF:0|a|b|c|d|e|3|", "not a BSD syslog header"),
        ("<192>Mar 12 14:05:09 h CEF:0|a|b|c|d|e|3|", "PRI must be 0-191"),
    ],
)
def test_refuses(line: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        FMT.parse(line)


def test_parse_is_lenient_with_an_unescaped_equals_sign_in_a_value() -> None:
    line = "CEF:0|a|b|c|d|e|3|request=http://x/?a=b c=1"
    assert FMT.parse(line)["request"] == "http://x/?a=b"
    with pytest.raises(ValueError, match="not escaped"):
        cef_grammar(line)


# --- properties ---------------------------------------------------------------------

KEY = st.from_regex(r"[a-z][A-Za-z0-9_]{0,12}", fullmatch=True).filter(
    lambda k: (
        k not in ("rt", "msg", "dvchost", "dvcpid", "dproc", "level", "ts", "host", "pid")
        and not k.startswith(("cef_", "device_", "syslog_", "ext_"))
        and k not in ("service", "signature_id", "event_name")
    )
)


def header_text(text: str) -> str:
    return text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


@given(
    st.sampled_from(list(LEVEL_AFTER_ROUND_TRIP)),
    # From 1973 on: Ingest reads a smaller epoch-ms number as seconds.
    st.integers(100_000_000, 4_000_000_000),
    st.lists(NASTY, min_size=5, max_size=5),
    st.dictionaries(KEY, NASTY, max_size=5),
    NASTY,
    NASTY,
    st.none() | st.integers(0, 2**40),
)
def test_round_trip_with_nasty_text(
    level: str,
    second: int,
    header: list[str],
    extra: dict[str, str],
    msg: str,
    host: str,
    pid: int | None,
) -> None:
    names = ("device_vendor", "device_product", "device_version", "signature_id", "event_name")
    rec: dict[str, Any] = {"ts": second, "level": level, "msg": msg, "host": host, "pid": pid}
    rec |= dict(zip(names, header, strict=True)) | extra | {"run_id": "r|1", "seq": 2**63}
    line = FMT.render(rec)
    assert "\n" not in line and "\r" not in line
    parsed = FMT.parse(line)
    assert canonical_level(parsed.pop("level")) == LEVEL_AFTER_ROUND_TRIP[level]
    assert parsed.pop("cef_severity") in {"0", "1", "3", "5", "8", "10"}
    assert parsed.pop("cef_version") == "0"
    assert parse_ts(parsed.pop("ts")) == second * 1000
    assert parsed.pop("syslog_facility") == 1
    assert parsed.pop("syslog_severity") in range(8)
    # An empty msg or host and a missing pid are left out; other empty values are kept.
    expected = {k: v for k, v in rec.items() if k not in ("ts", "level") and v is not None}
    expected = {k: v for k, v in expected.items() if v != "" or k not in ("msg", "host")}
    defaults = FMT.parse(FMT.render({}))
    for name in names:
        expected[name] = header_text(rec[name]) if rec[name] else defaults[name]
    assert parsed == expected
    grammar = cef_grammar(line)
    assert grammar["extension"].get("msg") == (msg or None)
    assert grammar["extension"]["rt"] == str(second * 1000)


@given(
    st.dictionaries(
        st.sampled_from(["ts", "level", "host", "pid", "msg", "service", "cef_severity"])
        | st.sampled_from(["device_vendor", "event_name", "syslog_facility", "cef_version"])
        | NASTY,
        NASTY | st.integers(-(2**70), 2**70) | st.none() | st.floats() | st.booleans(),
        max_size=8,
    )
)
def test_any_record_renders_a_line_the_grammar_accepts(rec: dict[str, Any]) -> None:
    line = FMT.render(rec)
    cef_grammar(line)
    FMT.parse(line)



def test_ten_thousand_samples_agree_with_the_grammar() -> None:
    rng = random.Random(4242)
    opts = ContentOptions(error_ratio=0.2, missing_ts_ratio=0.05)
    for n in range(10_000):
        rec = FMT.sample(rng, opts, 1_710_252_309.482 + n)
        rec |= {"run_id": "run-7", "stream": f"s{n % 4}", "seq": n}
        line = FMT.render(rec)
        ours = FMT.parse(line)
        theirs = cef_grammar(line)
        assert theirs["vendor"] == ours["device_vendor"] == rec["device_vendor"]
        assert theirs["product"] == ours["device_product"] == rec["device_product"]
        assert theirs["device_version"] == ours["device_version"] == rec["device_version"]
        assert theirs["class_id"] == ours["signature_id"] == rec["signature_id"]
        assert theirs["name"] == ours["event_name"] == rec["event_name"]
        assert theirs["severity"] == ours["cef_severity"]
        assert ours["level"] == LEVEL_AFTER_ROUND_TRIP[rec["level"]]
        ext = theirs["extension"]
        assert ext.get("rt") == ours.get("ts")
        if "ts" in rec:
            assert parse_ts(ours["ts"]) == parse_ts(rec["ts"])
        assert ext["msg"] == ours["msg"] == rec["msg"]
        assert ext["dvchost"] == ours["host"] == rec["host"]
        assert (ours["run_id"], ours["stream"], ours["seq"]) == ("run-7", f"s{n % 4}", n)
        for key in ("src", "dst", "spt", "dpt", "suser", "request", "act", "cs1"):
            if key in rec:
                assert ext[key] == ours[key] == str(rec[key])


def test_sample_honours_the_options() -> None:
    rng = random.Random(1)
    opts = ContentOptions(error_ratio=0.5, missing_ts_ratio=0.5, missing_level_ratio=0.5)
    records = [FMT.sample(rng, opts, 0.0) for _ in range(2000)]
    levels = [r["level"] for r in records if "level" in r]
    assert 400 < sum(lv in ("ERROR", "FATAL") for lv in levels) < 600
    assert 800 < sum("ts" not in r for r in records) < 1200
    assert 800 < len(levels) < 1200
    bare = [FMT.render(r) for r in records if "ts" not in r]
    assert all(line.startswith("CEF:0|") for line in bare)
    assert {r["device_product"] for r in records} == {"EdgeWall", "SentryIDS", "AuthHub"}


# --- detection and Ingest -----------------------------------------------------------


def test_looks_like_only_cef() -> None:
    others = [line for line in OTHER_LINES if not line.startswith("CEF:")]
    assert [line for line in others if FMT.looks_like(line)] == []
    assert FMT.looks_like("<134>Mar 12 14:05:09 fw01 CEF:0|a|b|c|d|e|3|")
    assert detect_format("<134>Mar 12 14:05:09 fw01 CEF:0|a|b|c|d|e|3|") == "cef"


def test_ingest_normalises_cef_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [
        "<134>Mar 12 14:05:09 fw01 CEF:0|LogOps|emitter|1.0|auth-fail|Failed login|7|"
        "src=192.0.2.44 suser=alice msg=bad password rt=1710252309482 run_id=r-cef stream=s2 "
        "seq=9",
        "<134>Mar 12 14:05:09 fw01 CEF:0|LogOps|emitter|1.0|auth-ok|Login|Low|suser=bob",
        "CEF:0|LogOps|emitter|1.0|x|y|Unknown|msg=no time here",
    ]
    out = ingest(monkeypatch, FMT, lines)
    assert [(r["ts"], r["level"], r["msg"], r["host"]) for r in out] == [
        ("2024-03-12T14:05:09.482Z", "ERROR", "bad password", "fw01"),
        ("2024-03-12T14:05:09.000Z", "INFO", "", "fw01"),
        (out[2]["ingest_ts"], "INFO", "no time here", ""),
    ]
    assert out[2]["ts_missing"] is True and out[2]["level_missing"] is True
    assert out[0]["suser"] == "alice" and out[0]["signature_id"] == "auth-fail"
    assert (out[0]["run_id"], out[0]["stream"], out[0]["seq"]) == ("r-cef", "s2", 9)
    assert all(r["format"] == "cef" for r in out)


def test_numbers_are_read_only_from_ascii_digits() -> None:
    parsed = FMT.parse("CEF:0|a|b|c|d|e|3|dvcpid=\u00b2 seq=\u0661 spt=22")
    assert (parsed["pid"], parsed["seq"], parsed["spt"]) == ("\u00b2", "\u0661", "22")
    assert FMT.parse("CEF:0|a|b|c|d|e|3|dvcpid=4412 seq=7")["pid"] == 4412


def test_lone_surrogates_never_reach_the_line() -> None:
    bad = "a\ud800b\udfff"
    keys = ("ts", "level", "msg", "host", "service", "pid", "msgid", "run_id", "stream")
    rec: dict[str, Any] = {key: bad for key in keys}
    rec |= {"device_vendor": bad, "event_name": bad, bad: bad, "sd": {bad: {bad: bad}}}
    line = FMT.render(rec)
    line.encode("utf-8")  # a lone surrogate would raise here, and in every transport
    assert "a\ufffdb\ufffd" in line
