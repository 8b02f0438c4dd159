"""RFC 5424 lines: exact renders, real senders' lines read back, a strict grammar agrees.

The independent parser is a strict grammar written in this file straight from the ABNF
of RFC 5424 section 6 (and the MUSTs of sections 6.3 and 7.3.1), walked octet by octet
rather than matched by regular expressions like the module under test. PyPI's
``syslog-rfc5424-parser`` (0.3.2, last released 2019, built on the deprecated
``lark-parser`` 0.6) was tried and is not strict enough to judge exactness: it accepts a
PRI of 999, month 13, a non-ASCII SD-ID and an unescaped ``]`` in a PARAM-VALUE, and
returns values with their escapes still in them.
"""

from __future__ import annotations

import random
import re
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emitters.content import ContentOptions
from emitters.formats.base import FormatError
from emitters.formats.syslog5424 import MAX_SEQUENCE_ID, Syslog5424Format
from services.ingest.levels import canonical_level
from services.ingest.timeparse import normalise_ts
from tests.unit.emitters.golden_lines import check_golden, golden_lines
from tests.unit.emitters.web_checks import NASTY, OTHER_LINES, ingest

FMT = Syslog5424Format()
BOM = b"\xef\xbb\xbf"
REGISTERED_SD_IDS = {"timeQuality", "origin", "meta"}
LEVEL_AFTER_ROUND_TRIP = {
    "TRACE": "DEBUG",
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARN": "WARN",
    "ERROR": "ERROR",
    "FATAL": "FATAL",
}


class Abnf5424:
    """One SYSLOG-MSG by the ABNF of RFC 5424 section 6; ``ValueError`` where it breaks.

    ``strict`` adds the rules the ABNF leaves to prose: PRIVAL at most 191, VERSION 1, a
    real date, no SD-ID twice, an SD-ID without ``@`` only from the IANA registry and
    one with ``@`` ending in a private enterprise number, ``meta sequenceId`` 1 to
    2147483647.
    """

    def __init__(self, line: str | bytes, strict: bool = True) -> None:
        self.data = line.encode("utf-8") if isinstance(line, str) else line
        self.pos = 0
        self.strict = strict

    def parse(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pri": self.pri(), "version": self.version()}
        for name, limit in (("timestamp", 0), ("hostname", 255), ("app_name", 48)):
            self.sp()
            out[name] = self.timestamp() if name == "timestamp" else self.field(limit)
        for name, limit in (("procid", 128), ("msgid", 32)):
            self.sp()
            out[name] = self.field(limit)
        self.sp()
        out["sd"] = self.structured_data()
        out["msg"] = None
        if self.pos < len(self.data):
            self.sp()
            out["msg"], out["bom"] = self.msg()
        return out

    # -- header --
    def expect(self, octet: bytes) -> None:
        if self.data[self.pos : self.pos + 1] != octet:
            raise ValueError(f"expected {octet!r} at {self.pos}")
        self.pos += 1

    def sp(self) -> None:
        self.expect(b" ")

    def digits(self, low: int, high: int) -> str:
        start = self.pos
        while self.pos < len(self.data) and self.pos - start < high and self.at_digit():
            self.pos += 1
        if self.pos - start < low:
            raise ValueError(f"expected {low} to {high} digits at {start}")
        return self.data[start : self.pos].decode()

    def at_digit(self) -> bool:
        return 0x30 <= self.data[self.pos] <= 0x39

    def pri(self) -> int:
        self.expect(b"<")
        value = int(self.digits(1, 3))
        self.expect(b">")
        if self.strict and value > 191:
            raise ValueError("PRIVAL over 191")
        return value

    def version(self) -> int:
        text = self.digits(1, 3)
        if text[0] == "0" or (self.strict and text != "1"):
            raise ValueError(f"VERSION {text}")
        return int(text)

    def field(self, limit: int) -> str | None:
        start = self.pos
        while self.pos < len(self.data) and 33 <= self.data[self.pos] <= 126:
            self.pos += 1
        if not 1 <= self.pos - start <= limit:
            raise ValueError(f"field of {self.pos - start} PRINTUSASCII at {start}")
        text = self.data[start : self.pos].decode()
        return None if text == "-" else text

    def two(self, low: int, high: int) -> int:
        value = int(self.digits(2, 2))
        if not low <= value <= high:
            raise ValueError(f"{value} outside {low}-{high}")
        return value

    def timestamp(self) -> str | None:
        start = self.pos
        if self.data[self.pos : self.pos + 1] == b"-":
            self.pos += 1
            return None
        year = int(self.digits(4, 4))
        self.expect(b"-")
        month = self.two(1, 12)
        self.expect(b"-")
        day = self.two(1, 31)
        if self.strict:
            datetime(year, month, day)  # raises ValueError for a day the month lacks
        self.expect(b"T")
        self.two(0, 23)
        self.expect(b":")
        self.two(0, 59)
        self.expect(b":")
        self.two(0, 59)
        if self.data[self.pos : self.pos + 1] == b".":
            self.pos += 1
            self.digits(1, 6)
            if self.pos < len(self.data) and self.at_digit():
                raise ValueError("more than 6 TIME-SECFRAC digits")
        if self.data[self.pos : self.pos + 1] == b"Z":
            self.pos += 1
        else:
            if self.data[self.pos : self.pos + 1] not in (b"+", b"-"):
                raise ValueError("TIME-OFFSET must be Z or +/-hh:mm")
            self.pos += 1
            self.two(0, 23)
            self.expect(b":")
            self.two(0, 59)
        return self.data[start : self.pos].decode()

    # -- structured data --
    def structured_data(self) -> list[tuple[str, list[tuple[str, str]]]] | None:
        if self.data[self.pos : self.pos + 1] == b"-":
            self.pos += 1
            return None
        elements = [self.element()]
        while self.data[self.pos : self.pos + 1] == b"[":
            elements.append(self.element())
        ids = [sd_id for sd_id, _ in elements]
        if self.strict:
            if len(set(ids)) != len(ids):
                raise ValueError("an SD-ID appears twice")
            for sd_id, params in elements:
                self.check_sd_id(sd_id, params)
        return elements

    def check_sd_id(self, sd_id: str, params: list[tuple[str, str]]) -> None:
        name, at, number = sd_id.partition("@")
        if not at and sd_id not in REGISTERED_SD_IDS:
            raise ValueError(f"SD-ID {sd_id} is neither registered nor private")
        if at and (not name or not number.isdigit() or "@" in number):
            raise ValueError(f"private SD-ID {sd_id} must be name@enterprise-number")
        for param, value in params:
            if sd_id == "meta" and param == "sequenceId" and not _sequence_id_ok(value):
                raise ValueError(f"meta sequenceId {value}")

    def element(self) -> tuple[str, list[tuple[str, str]]]:
        self.expect(b"[")
        sd_id = self.sd_name()
        params = []
        while self.data[self.pos : self.pos + 1] == b" ":
            self.pos += 1
            name = self.sd_name()
            self.expect(b"=")
            self.expect(b'"')
            params.append((name, self.param_value()))
        self.expect(b"]")
        return sd_id, params

    def sd_name(self) -> str:
        start = self.pos
        while self.pos < len(self.data):
            octet = self.data[self.pos]
            if not 33 <= octet <= 126 or octet in b'= ]"':
                break
            self.pos += 1
        if not 1 <= self.pos - start <= 32:
            raise ValueError(f"SD-NAME of {self.pos - start} characters at {start}")
        return self.data[start : self.pos].decode()

    def param_value(self) -> str:
        value = bytearray()
        while True:
            if self.pos >= len(self.data):
                raise ValueError("PARAM-VALUE not closed")
            octet = self.data[self.pos : self.pos + 1]
            self.pos += 1
            if octet == b'"':
                return value.decode("utf-8")  # UTF-8-STRING: strict decoding
            if octet == b"]":
                raise ValueError("']' in PARAM-VALUE must be escaped")
            if octet == b"\\" and self.data[self.pos : self.pos + 1] in (b'"', b"\\", b"]"):
                octet = self.data[self.pos : self.pos + 1]
                self.pos += 1
            value += octet

    def msg(self) -> tuple[str, bool]:
        rest = self.data[self.pos :]
        self.pos = len(self.data)
        if rest.startswith(BOM):
            return rest[3:].decode("utf-8"), True
        return rest.decode("utf-8", "surrogateescape"), False


def _sequence_id_ok(value: str) -> bool:
    return value.isdigit() and 1 <= int(value) <= MAX_SEQUENCE_ID


def grammar(line: str) -> dict[str, Any]:
    return Abnf5424(line).parse()


def octal(text: str) -> str:
    """What a record's text reads back as: control characters as ``#ooo``."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda m: f"#{ord(m.group()):03o}", text)


# --- golden and real lines ------------------------------------------------------------


def test_golden() -> None:
    lines = golden_lines(FMT)
    check_golden(FMT.name, lines)
    for line in lines:
        grammar(line)


RFC_EXAMPLES = [
    (
        # RFC 5424 section 6.5, example 1 (the BOM written as the octets it stands for).
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
        "\ufeff'su root' failed for lonvick on /dev/pts/8",
        {
            "ts": "2003-10-11T22:14:15.003Z",
            "level": "<34>",
            "syslog_facility": 4,
            "syslog_severity": 2,
            "host": "mymachine.example.com",
            "service": "su",
            "msgid": "ID47",
            "msg": "'su root' failed for lonvick on /dev/pts/8",
        },
    ),
    (
        # Example 2: an offset and microseconds; no BOM, so MSG-ANY.
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - "
        "%% It's time to make the do-nuts.",
        {
            "ts": "2003-08-24T05:14:15.000003-07:00",
            "level": "<165>",
            "syslog_facility": 20,
            "syslog_severity": 5,
            "host": "192.0.2.1",
            "service": "myproc",
            "pid": 8710,
            "msg": "%% It's time to make the do-nuts.",
        },
    ),
    (
        # Example 4: two SD elements and no MSG.
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 "
        'iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]',
        {
            "ts": "2003-10-11T22:14:15.003Z",
            "level": "<165>",
            "syslog_facility": 20,
            "syslog_severity": 5,
            "host": "mymachine.example.com",
            "service": "evntslog",
            "msgid": "ID47",
            "sd": {
                "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
                "examplePriority@32473": {"class": "high"},
            },
        },
    ),
    (
        # util-linux logger 2.38: --rfc5424 --msgid ID47 --sd-id zoo@123 --sd-param ...
        '<13>1 2026-12-01T20:43:19.232331+00:00 vm root - ID47 [timeQuality tzKnown="1" '
        'isSynced="0"][zoo@123 tiger="hungry \\] \\"x"] h\u00e9llo w\u00f6rld',
        {
            "ts": "2026-12-01T20:43:19.232331+00:00",
            "level": "<13>",
            "syslog_facility": 1,
            "syslog_severity": 5,
            "host": "vm",
            "service": "root",
            "msgid": "ID47",
            "sd": {
                "timeQuality": {"tzKnown": "1", "isSynced": "0"},
                "zoo@123": {"tiger": 'hungry ] "x'},
            },
            "msg": "h\u00e9llo w\u00f6rld",
        },
    ),
    (
        # util-linux logger --rfc5424=notime,nohost: NILVALUE time and host.
        "<13>1 - - root - - - hello",
        {"level": "<13>", "syslog_facility": 1, "syslog_severity": 5, "service": "root"}
        | {"msg": "hello"},
    ),
    (
        # syslog-ng loggen -P --sdata '[test name="value"]' (the frame's LF stripped).
        '<38>1 2026-12-01T20:44:23+00:00 localhost prg00000 1234 - [test name="value"] '
        "\ufeffseq: 0000000000, thread: 0000, runid: 1796157863, stamp: 2026-12-01T20:44:23 P",
        {
            "ts": "2026-12-01T20:44:23+00:00",
            "level": "<38>",
            "syslog_facility": 4,
            "syslog_severity": 6,
            "host": "localhost",
            "service": "prg00000",
            "pid": 1234,
            "sd": {"test": {"name": "value"}},
            "msg": "seq: 0000000000, thread: 0000, runid: 1796157863, stamp: 2026-12-01T20:44:23 P",
        },
    ),
    (
        # rsyslog and syslog-ng number messages with meta sequenceId alone.
        '<14>1 2024-03-12T14:05:09Z h app - - [meta sequenceId="7" sysUpTime="42"] x',
        {
            "ts": "2024-03-12T14:05:09Z",
            "level": "<14>",
            "syslog_facility": 1,
            "syslog_severity": 6,
            "host": "h",
            "service": "app",
            "seq": 7,
            "sd": {"meta": {"sysUpTime": "42"}},
            "msg": "x",
        },
    ),
]


@pytest.mark.parametrize(("line", "expected"), RFC_EXAMPLES)
def test_parse_real_lines(line: str, expected: dict[str, Any]) -> None:
    assert FMT.parse(line) == expected
    Abnf5424(line, strict=False).parse()
    assert FMT.looks_like(line)


def test_render_the_product_example() -> None:
    rec = {
        "ts": "2024-03-12T14:05:09.482113Z",
        "level": "<165>",
        "host": "app7.example.net",
        "service": "billing",
        "pid": 8812,
        "msgid": "PAY01",
        "run_id": "r-1",
        "stream": "s1",
        "seq": 1042,
        "sd": {"txn@32473": {"id": "a91", "amount": "12.50"}},
        "msg": "charge captured",
    }
    line = FMT.render(rec)
    assert line == (
        "<165>1 2024-03-12T14:05:09.482113Z app7.example.net billing 8812 PAY01 "
        '[logops@32473 run_id="r-1" stream="s1" seq="1042"][meta sequenceId="1042"]'
        '[txn@32473 id="a91" amount="12.50"] charge captured'
    )
    assert FMT.parse(line) == rec | {"syslog_facility": 20, "syslog_severity": 5}
    grammar(line)


@pytest.mark.parametrize(
    ("seq", "sequence_id"),
    [(1, 1), (MAX_SEQUENCE_ID, MAX_SEQUENCE_ID), (MAX_SEQUENCE_ID + 1, 1), (0, MAX_SEQUENCE_ID)],
)
def test_sequence_id_wraps_and_seq_reads_back_whole(seq: int, sequence_id: int) -> None:
    line = FMT.render({"msg": "x", "seq": seq})
    assert f'[meta sequenceId="{sequence_id}"]' in line
    assert FMT.parse(line)["seq"] == seq
    grammar(line)


@pytest.mark.parametrize(
    ("rec", "expected"),
    [
        ({}, "<13>1 - - - - - -"),
        ({"level": "ERROR", "syslog_facility": 23}, "<187>1 - - - - - -"),
        ({"level": "warning", "ts": 1710252309.482}, "<12>1 2024-03-12T14:05:09.482Z - - - - -"),
        ({"ts": "2024-03-12T16:05:09.123456789+02:00"}, "<13>1 2024-03-12T14:05:09.123Z - - - - -"),
        ({"ts": "not a time", "level": "FATAL"}, "<10>1 - - - - - -"),
        ({"host": "a b\u00e9", "service": "x" * 60, "pid": "p\tq", "msgid": "-"}, None),
        ({"sd": {"my id": {"k=v": 'a"b\\c]d\ne'}, "origin": {"ip": ["1", "2"]}}}, None),
        ({"msg": "tab\there"}, "<13>1 - - - - - - tab#011here"),
        ({"msg": "caf\u00e9\n"}, "<13>1 - - - - - - \ufeffcaf\u00e9#012"),
    ],
)
def test_render_replaces_what_5424_cannot_carry(rec: dict[str, Any], expected: str | None) -> None:
    line = FMT.render(rec)
    if expected is not None:
        assert line == expected
    parsed = grammar(line)
    if "host" in rec:
        assert parsed["hostname"] == "a_b_"
        assert parsed["app_name"] == "x" * 48
        assert parsed["procid"] == "p_q"
        assert parsed["msgid"] is None
    if "sd" in rec:
        assert parsed["sd"] == [
            ("my_id@32473", [("k_v", 'a"b\\c]d#012e')]),
            ("origin", [("ip", "1"), ("ip", "2")]),
        ]
        assert FMT.parse(line)["sd"] == {
            "my_id@32473": {"k_v": 'a"b\\c]d#012e'},
            "origin": {"ip": ["1", "2"]},
        }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "expected '<PRI>1"),
        ("<13>2 - - - - - -", "VERSION 2"),
        ("<192>1 - - - - - -", "PRI must be 0-191"),
        ("<13>1 2024-03-12t14:05:09Z h a p m -", "TIMESTAMP"),
        ("<13>1 2024-03-12T14:05:09.1234567Z h a p m -", "TIMESTAMP"),
        ("<13>1 2024-03-12T14:05:09 h a p m -", "TIMESTAMP"),
        ("<13>1 2024-02-30T14:05:09Z h a p m -", "does not exist"),
        ("<13>1 - h a p m", "HOSTNAME APP-NAME"),
        ('<13>1 - h a p m [x@1 a="]"]', "ABNF"),
        ('<13>1 - h a p m [x@1 a="b"][x@1 c="d"]', "appears twice"),
        ('<13>1 - h a p m [x@1 a="b"]msg', "ABNF"),
        (f"<13>1 - {'h' * 256} a p m -", "ABNF"),
        (f"<13>1 - h a p {'m' * 33} -", "ABNF"),
        (f"<13>1 - h a p m [{'i' * 33}]", "ABNF"),
        ("<13>1 - h\u00e9 a p m -", "ABNF"),
    ],
)
def test_refuses(line: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        FMT.parse(line)
    with pytest.raises((ValueError, IndexError)):
        grammar(line)


# --- properties ---------------------------------------------------------------------

TOKEN = st.from_regex(r"[!-,.-~][!-~]{0,20}", fullmatch=True)
SD_NAME = st.from_regex(r"[!#-<>-?A-\\^-~]{1,20}", fullmatch=True)
SD_ID = st.sampled_from(["origin", "timeQuality"]) | st.builds(
    lambda name, number: f"{name}@{number}", SD_NAME, st.integers(1, 999_999)
)
TIMESTAMP = st.from_regex(
    r"20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,6})?(Z|[+-](0[0-9]|1[0-4]):[0-5][0-9])",
    fullmatch=True,
)
LEVEL = st.sampled_from(list(LEVEL_AFTER_ROUND_TRIP))


@given(
    st.fixed_dictionaries(
        {"level": LEVEL, "run_id": NASTY, "stream": NASTY, "seq": st.integers(0, 2**64 - 1)},
        optional={
            "ts": TIMESTAMP,
            "host": TOKEN,
            "service": TOKEN.map(lambda t: t[:48]),
            "pid": st.integers(0, 2**31),
            "msgid": TOKEN.map(lambda t: t[:32]),
            "msg": NASTY,
            "sd": st.dictionaries(SD_ID, st.dictionaries(SD_NAME, NASTY, max_size=3), max_size=3),
        },
    )
)
def test_round_trip_with_nasty_text(rec: dict[str, Any]) -> None:
    line = FMT.render(rec)
    assert "\n" not in line and "\r" not in line
    parsed = FMT.parse(line)
    assert canonical_level(parsed.pop("level")) == LEVEL_AFTER_ROUND_TRIP[rec["level"]]
    assert parsed.pop("syslog_facility") == 1
    assert parsed.pop("syslog_severity") in range(8)
    expected = {k: v for k, v in rec.items() if k != "level" and v not in ("", {})}
    for key in ("run_id", "stream", "msg"):
        if key in expected:
            expected[key] = octal(expected[key])
    if "sd" in expected:
        expected["sd"] = {
            sd_id: {name: octal(value) for name, value in params.items()}
            for sd_id, params in expected["sd"].items()
        }
    assert parsed == expected
    grammar(line)


@given(
    st.dictionaries(
        st.sampled_from(["ts", "level", "host", "service", "pid", "msgid", "msg", "run_id"])
        | st.sampled_from(["stream", "seq", "syslog_facility"]),
        NASTY | st.integers(-(2**70), 2**70) | st.none() | st.floats(),
    ),
    st.dictionaries(
        NASTY, st.dictionaries(NASTY, NASTY | st.lists(NASTY, max_size=2), max_size=3), max_size=3
    ),
)
def test_any_record_renders_a_line_the_grammar_accepts(
    rec: dict[str, Any], sd: dict[str, Any]
) -> None:
    line = FMT.render(rec | {"sd": sd})
    grammar(line)
    FMT.parse(line)



def test_ten_thousand_samples_agree_with_the_grammar() -> None:
    rng = random.Random(5424)
    opts = ContentOptions(missing_ts_ratio=0.05, error_ratio=0.2)
    for n in range(10_000):
        rec = FMT.sample(rng, opts, 1_710_252_309.482 + n)
        rec |= {"run_id": "run-7", "stream": f"s{n % 4}", "seq": n}
        line = FMT.render(rec)
        ours = FMT.parse(line)
        theirs = grammar(line)
        assert theirs["timestamp"] == ours.get("ts") == rec.get("ts")
        assert theirs["hostname"] == ours["host"] == rec["host"]
        assert theirs["app_name"] == ours["service"] == rec["service"]
        assert theirs["procid"] == str(ours["pid"]) == str(rec["pid"])
        assert theirs["msgid"] == ours.get("msgid") == rec.get("msgid")
        assert theirs["msg"] == ours["msg"] == rec["msg"]
        assert theirs["pri"] % 8 == ours["syslog_severity"]
        sd = dict(theirs["sd"])
        assert dict(sd.pop("logops@32473")) == {"run_id": "run-7", "stream": f"s{n % 4}"} | {
            "seq": str(n)
        }
        assert (ours["run_id"], ours["stream"], ours["seq"]) == ("run-7", f"s{n % 4}", n)
        if n:
            assert dict(sd.pop("meta")) == {"sequenceId": str(n)}
        else:
            assert dict(sd.pop("meta")) == {"sequenceId": str(MAX_SEQUENCE_ID)}
        assert {k: dict(v) for k, v in sd.items()} == ours["sd"] == rec["sd"]


def test_sample_honours_the_options() -> None:
    rng = random.Random(1)
    records = [
        FMT.sample(rng, ContentOptions(error_ratio=0.5, missing_ts_ratio=0.5), 0.0)
        for _ in range(2000)
    ]
    errors = sum(r["level"] in ("ERROR", "FATAL") for r in records)
    assert 800 < errors < 1200
    assert 800 < sum("ts" not in r for r in records) < 1200
    assert all("level" in r for r in records)
    levels = [FMT.sample(rng, ContentOptions(missing_level_ratio=1.0), 0.0) for _ in range(50)]
    assert all("level" in r for r in levels)


# --- detection and Ingest -----------------------------------------------------------


def test_looks_like_only_5424() -> None:
    others = [line for line in OTHER_LINES if not line.startswith("<165>1 ")]
    assert [line for line in others if FMT.looks_like(line)] == []
    assert all(FMT.looks_like(line) for line in golden_lines(FMT))


def test_ingest_normalises_5424_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [
        FMT.render(
            {"ts": "2024-03-12T16:05:09.482113+02:00", "level": "WARN", "msg": "slow"}
            | {"host": "h1", "service": "api", "stream": "s9", "seq": 77, "run_id": "r-line"}
            | {"sd": {"origin": {"ip": "10.0.0.1"}}}
        ),
        "<187>1 - h2 app - - - boom",
        "<15>1 2024-03-12T14:05:09Z h3 app - - - debug detail",
    ]
    out = ingest(monkeypatch, FMT, lines)
    assert [(r["ts"], r["level"], r["msg"]) for r in out] == [
        ("2024-03-12T14:05:09.482Z", "WARN", "slow"),
        (out[1]["ingest_ts"], "ERROR", "boom"),
        ("2024-03-12T14:05:09.000Z", "DEBUG", "debug detail"),
    ]
    first = out[0]
    assert (first["host"], first["service"], first["stream"], first["seq"]) == (
        "h1",
        "api",
        "s9",
        77,
    )
    assert first["run_id"] == "r-line"  # the line's own run, not the batch's (PRODUCT.md 6)
    assert first["sd"] == {"origin": {"ip": "10.0.0.1"}}
    assert first["format"] == "syslog5424"
    assert out[1]["ts_missing"] is True and out[1]["syslog_facility"] == 23


def test_timestamps_parse_as_ingest_reads_them() -> None:
    for ts in ("2003-08-24T05:14:15.000003-07:00", "2024-03-12T14:05:09Z"):
        assert normalise_ts(FMT.parse(f"<13>1 {ts} h a - - -")["ts"]) is not None


def test_lone_surrogates_never_reach_the_line() -> None:
    bad = "a\ud800b\udfff"
    keys = ("ts", "level", "msg", "host", "service", "pid", "msgid", "run_id", "stream")
    rec: dict[str, Any] = {key: bad for key in keys}
    rec |= {"device_vendor": bad, "event_name": bad, bad: bad, "sd": {bad: {bad: bad}}}
    line = FMT.render(rec)
    line.encode("utf-8")  # a lone surrogate would raise here, and in every transport
    assert "a\ufffdb\ufffd" in line
