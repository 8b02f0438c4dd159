"""RFC 3164 lines: exact renders, what real senders write read back, a strict grammar agrees.

The independent parser is a strict grammar written in this file from RFC 3164 section
4.1 (PRI, HEADER with TIMESTAMP and HOSTNAME, MSG with TAG and CONTENT, 1024 bytes),
walked character by character. PyPI's ``syslogmp`` (0.4, 2021) was tried and is not
strict enough: it takes a PRI with a leading zero, a zero-padded day and a hostname with
its domain, and does not split TAG from CONTENT.
"""

from __future__ import annotations

import ipaddress
import random
import re
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emitters.content import ContentOptions
from emitters.formats.base import FormatError
from emitters.formats.syslog3164 import MAX_PACKET, Syslog3164Format
from services.ingest.levels import canonical_level
from services.ingest.timeparse import parse_ts
from tests.unit.emitters.golden_lines import check_golden, golden_lines
from tests.unit.emitters.web_checks import NASTY, OTHER_LINES, ingest

FMT = Syslog3164Format()
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
LEVEL_AFTER_ROUND_TRIP = {
    "TRACE": "DEBUG",
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARN": "WARN",
    "ERROR": "ERROR",
    "FATAL": "FATAL",
}


def rfc3164(line: str) -> dict[str, Any]:
    """One packet by RFC 3164 section 4.1; ``ValueError`` where it breaks a rule.

    4.1.1 PRI: ``<``, 1-3 digits without leading zeros (unless 0), at most 191, ``>``.
    4.1.2 HEADER: TIMESTAMP ``Mmm dd hh:mm:ss`` (English month abbreviation, a day
    below 10 padded with a space, 24-hour time), one space, HOSTNAME (no spaces, no
    domain: an IP address is the only dotted form), one space.
    4.1.3 MSG: TAG of 1-32 alphanumeric characters ended by a non-alphanumeric one (here
    ``[`` or ``:``), then CONTENT; no control characters. A MSG without such a TAG is
    CONTENT alone, as in the section 5.4 example from a relay. 4.1: at most 1024 bytes.
    """
    if len(line.encode("utf-8")) > 1024:
        raise ValueError("packet over 1024 bytes")
    if any(c < " " or c == "\x7f" for c in line):
        raise ValueError("control character")
    pri, rest = _pri(line)
    stamp, rest = _timestamp(rest)
    if rest[:1] != " ":
        raise ValueError("no space after TIMESTAMP")
    host, sep, msg = rest[1:].partition(" ")
    if not sep or not host or not all("!" <= c <= "~" for c in host):
        raise ValueError("HOSTNAME")
    if "." in host and not _is_ip(host):
        raise ValueError("HOSTNAME with a domain")
    tag = re.match(r"([A-Za-z0-9]*)[\[:]", msg)
    if tag is not None and len(tag.group(1)) > 32:
        raise ValueError("TAG over 32 characters")
    return {"pri": pri, "timestamp": stamp, "hostname": host, "tag": tag and tag.group(1)}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _pri(line: str) -> tuple[int, str]:
    if line[:1] != "<":
        raise ValueError("no PRI")
    end = line.index(">")
    digits = line[1:end]
    if not (1 <= len(digits) <= 3 and digits.isdigit()) or (digits[0] == "0" and digits != "0"):
        raise ValueError(f"PRI {digits!r}")
    if int(digits) > 191:
        raise ValueError("PRI over 191")
    return int(digits), line[end + 1 :]


def _timestamp(rest: str) -> tuple[str, str]:
    stamp = rest[:15]
    month, day, clock = stamp[:3], stamp[4:6], stamp[7:]
    if month not in MONTHS or stamp[3:4] != " " or stamp[6:7] != " ":
        raise ValueError("TIMESTAMP month")
    if not (day[:1] == " " and day[1:] in list("123456789")) and not (
        day.isdigit() and 10 <= int(day) <= 31
    ):
        raise ValueError(f"TIMESTAMP day {day!r}")
    hh, mm, ss = clock.split(":")
    if not (len(clock) == 8 and int(hh) < 24 and int(mm) < 60 and int(ss) < 60):
        raise ValueError("TIMESTAMP time")
    return stamp, rest[15:]


# --- golden and real lines ------------------------------------------------------------


def test_golden() -> None:
    lines = golden_lines(FMT)
    check_golden(FMT.name, lines)
    for line in lines:
        rfc3164(line)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            # RFC 3164 section 5.4, example 1 (its <34> is auth.crit).
            "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
            {"ts": "Oct 11 22:14:15", "level": "<34>", "host": "mymachine", "service": "su"}
            | {"msg": "'su root' failed for lonvick on /dev/pts/8"},
        ),
        (
            # Section 5.4, example 3: a message without TAG from a relay, IP as HOSTNAME.
            "<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!",
            {"ts": "Feb  5 17:32:18", "level": "<13>", "host": "10.0.0.99", "msg": "Use the BFG!"},
        ),
        (
            # util-linux logger 2.38 --rfc3164 -i, captured from its UDP packet.
            "<13>Dec  1 20:43:19 vm root[21263]: h\u00e9llo w\u00f6rld",
            {"ts": "Dec  1 20:43:19", "level": "<13>", "host": "vm", "service": "root"}
            | {"pid": 21263, "msg": "h\u00e9llo w\u00f6rld"},
        ),
        (
            # rsyslog's traditional forward format: tag with a slash, kernel's bracket.
            "<22>Mar 12 14:05:09 mx1 postfix/smtpd[2231]: connect from unknown[192.0.2.7]",
            {"ts": "Mar 12 14:05:09", "level": "<22>", "host": "mx1"}
            | {"service": "postfix/smtpd", "pid": 2231, "msg": "connect from unknown[192.0.2.7]"},
        ),
        (
            "<6>Mar  2 04:05:06 web01 kernel: [ 1197.936000] e1000e: eth0 NIC Link is Up",
            {"ts": "Mar  2 04:05:06", "level": "<6>", "host": "web01", "service": "kernel"}
            | {"msg": "[ 1197.936000] e1000e: eth0 NIC Link is Up"},
        ),
        (
            "<78>Mar 12 14:05:01 db1 CRON[998]:",
            {"ts": "Mar 12 14:05:01", "level": "<78>", "host": "db1", "service": "CRON"}
            | {"pid": 998},
        ),
    ],
)
def test_parse_real_lines(line: str, expected: dict[str, Any]) -> None:
    pri = int(expected["level"][1:-1])
    facility = {"syslog_facility": pri // 8, "syslog_severity": pri % 8}
    assert FMT.parse(line) == expected | facility
    assert FMT.looks_like(line)


def test_render_exact() -> None:
    rec = {
        "ts": "2024-03-02T04:05:06.482Z",
        "level": "ERROR",
        "host": "web01.eu1.example.net",
        "service": "sshd",
        "pid": 4412,
        "msg": "Failed password for root from 192.0.2.44 port 51122 ssh2",
        "syslog_facility": 4,
    }
    line = FMT.render(rec)
    assert line == (
        "<35>Mar  2 04:05:06 web01 sshd[4412]: Failed password for root from 192.0.2.44 port"
        " 51122 ssh2"
    )
    assert FMT.parse(line) == rec | {
        "ts": "Mar  2 04:05:06",
        "level": "<35>",
        "host": "web01",
        "syslog_severity": 3,
    }
    rfc3164(line)


@pytest.mark.parametrize(
    ("rec", "expected"),
    [
        ({"ts": 1710252309, "msg": "x"}, "<13>Mar 12 14:05:09 - x"),
        ({"ts": "2024-03-12T16:05:09+02:00", "level": "<165>"}, "<165>Mar 12 14:05:09 - "),
        ({"ts": "Mar  2 04:05:06", "level": "FATAL", "syslog_facility": 16}, None),
        ({"ts": "Mar  2 04:05:06", "host": "192.0.2.7", "service": "my-app_2", "pid": "x y"}, None),
        ({"ts": "Mar  2 04:05:06", "service": "s" * 40, "msg": "a\nb\x00"}, None),
    ],
)
def test_render_replaces_what_3164_cannot_carry(rec: dict[str, Any], expected: str | None) -> None:
    line = FMT.render(rec)
    if expected is not None:
        assert line == expected
    parsed = rfc3164(line)
    if rec.get("level") == "FATAL":
        assert line == "<130>Mar  2 04:05:06 - "
    if rec.get("host") == "192.0.2.7":
        assert line == "<13>Mar  2 04:05:06 192.0.2.7 myapp2[xy]: "
    if rec.get("service") == "s" * 40:
        assert parsed["tag"] == "s" * 32
        assert FMT.parse(line)["msg"] == "a#012b#000"


def test_render_without_a_time_writes_the_clock() -> None:
    before = int(time.time())
    parsed = FMT.parse(FMT.render({"ts": "junk", "msg": "x"}))
    after = int(time.time())
    got = parse_ts(parsed["ts"], after * 1000)
    assert got is not None and before * 1000 - 1000 <= got <= after * 1000


@pytest.mark.parametrize("size", [1000, 1024, 5000])
def test_packet_is_cut_to_1024_bytes_on_a_character_boundary(size: int) -> None:
    head = "<13>Mar  2 04:05:06 h svc: "
    for filler in ("a", "\u00e9", "\u20ac", "\U0001f600"):
        rec = {"ts": "Mar  2 04:05:06", "host": "h", "service": "svc", "msg": filler * size}
        line = FMT.render(rec)
        data = line.encode("utf-8")
        full = head + filler * size
        if len(full.encode("utf-8")) <= MAX_PACKET:
            assert line == full
        else:
            assert full.startswith(line)
            assert MAX_PACKET - len(filler.encode("utf-8")) < len(data) <= MAX_PACKET
        rfc3164(line)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "expected '<PRI>"),
        ("Mar  2 04:05:06 web01 sshd: x", "expected '<PRI>"),
        ("<034>Mar  2 04:05:06 web01 sshd: x", "leading zeros"),
        ("<192>Mar  2 04:05:06 web01 sshd: x", "PRI must be 0-191"),
        ("<34>Mar 02 04:05:06 web01 sshd: x", "space-padded day"),
        ("<34>Mar  2 24:05:06 web01 sshd: x", "timestamp"),
        ("<34>2024-03-12T14:05:09Z web01 sshd: x", "timestamp"),
        ("<34>Mar  2 04:05:06 sshd[12]: x", "HOSTNAME"),
        ("<34>Mar  2 04:05:06 cron: x", "HOSTNAME"),
    ],
)
def test_refuses(line: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        FMT.parse(line)
    assert not FMT.looks_like(line)


# --- properties ---------------------------------------------------------------------

PRINTABLE = st.text(st.characters(codec="utf-8", blacklist_categories=("Cc", "Cs")), max_size=60)
HOST = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)
SERVICE = st.from_regex(r"[A-Za-z0-9]{1,32}", fullmatch=True)


@given(
    st.sampled_from(list(LEVEL_AFTER_ROUND_TRIP)),
    st.integers(0, 23),
    st.integers(1_000_000_000, 4_000_000_000),
    HOST,
    SERVICE,
    st.none() | st.integers(0, 4_000_000),
    NASTY,
)
def test_round_trip_with_nasty_text(
    level: str, facility: int, second: int, host: str, service: str, pid: int | None, msg: str
) -> None:
    rec: dict[str, Any] = {"ts": second, "level": level, "host": host, "service": service}
    rec |= {"msg": msg, "syslog_facility": facility}
    if pid is not None:
        rec["pid"] = pid
    line = FMT.render(rec)
    parsed = FMT.parse(line)
    assert canonical_level(parsed.pop("level")) == LEVEL_AFTER_ROUND_TRIP[level]
    assert parse_ts(parsed.pop("ts"), second * 1000) == second * 1000
    assert parsed.pop("syslog_severity") in range(8)
    escaped = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"#{ord(m.group()):03o}", msg)
    expected = {k: v for k, v in rec.items() if k not in ("ts", "level", "msg")}
    if escaped:
        expected["msg"] = escaped
    assert parsed == expected
    rfc3164(line)
    assert FMT.looks_like(line)


@given(
    st.dictionaries(
        st.sampled_from(["ts", "level", "host", "service", "pid", "msg", "syslog_facility"]),
        NASTY | PRINTABLE | st.integers(-(2**70), 2**70) | st.none() | st.floats(),
    )
)
def test_any_record_renders_a_line_the_grammar_accepts(rec: dict[str, Any]) -> None:
    line = FMT.render(rec)
    rfc3164(line)
    FMT.parse(line)



def test_ten_thousand_samples_agree_with_the_grammar() -> None:
    rng = random.Random(3164)
    opts = ContentOptions(error_ratio=0.2)
    for n in range(10_000):
        rec = FMT.sample(rng, opts, 1_710_252_309.482 + n * 7)
        line = FMT.render(rec)
        ours = FMT.parse(line)
        theirs = rfc3164(line)
        assert theirs["pri"] == ours["syslog_facility"] * 8 + ours["syslog_severity"]
        assert ours["syslog_facility"] == rec["syslog_facility"]
        assert canonical_level(ours["level"]) == LEVEL_AFTER_ROUND_TRIP[rec["level"]]
        assert theirs["timestamp"] == ours["ts"]
        assert parse_ts(ours["ts"], 1_710_252_309_482) == (1_710_252_309 + n * 7) * 1000
        assert theirs["hostname"] == ours["host"] == rec["host"]
        assert theirs["tag"] == ours["service"] == rec["service"].replace("-", "")
        assert ours.get("pid") == rec.get("pid")
        assert ours["msg"] == rec["msg"]


def test_sample_honours_the_error_ratio_and_always_has_ts_and_level() -> None:
    rng = random.Random(1)
    opts = ContentOptions(error_ratio=0.5, missing_ts_ratio=1.0, missing_level_ratio=1.0)
    records = [FMT.sample(rng, opts, 0.0) for _ in range(2000)]
    assert 800 < sum(r["level"] in ("ERROR", "FATAL") for r in records) < 1200
    assert all("ts" in r and "level" in r for r in records)
    assert {r["service"] for r in records} == {"sshd", "sudo", "CRON", "kernel", "systemd"} | {
        "dhclient"
    }


# --- detection and Ingest -----------------------------------------------------------


def test_looks_like_only_3164() -> None:
    others = [line for line in OTHER_LINES if not line.startswith("<34>Mar")]
    others += ["<134>Mar 12 14:05:09 fw01 CEF:0|LogOps|emitter|1.0|x|y|3|src=192.0.2.1"]
    others += ["<38>2026-12-01T20:44:22 localhost prg00000[1234]: seq: 0000000000"]
    assert [line for line in others if FMT.looks_like(line)] == []


def test_ingest_normalises_3164_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [
        "<35>Mar 12 14:05:09 web01 sshd[4412]: Failed password for root",
        "<14>Mar 11 23:59:59 web02 app: started",
        "<15>Mar  2 04:05:06 web03 kernel: debug detail",
    ]
    out = ingest(monkeypatch, FMT, lines)
    # The ingest clock is 2024-03-12T14:06:40Z, so every line falls in 2024.
    assert [(r["ts"], r["level"], r["msg"], r["service"], r["host"]) for r in out] == [
        ("2024-03-12T14:05:09.000Z", "ERROR", "Failed password for root", "sshd", "web01"),
        ("2024-03-11T23:59:59.000Z", "INFO", "started", "app", "web02"),
        ("2024-03-02T04:05:06.000Z", "DEBUG", "debug detail", "kernel", "web03"),
    ]
    assert out[0]["pid"] == 4412 and out[0]["syslog_facility"] == 4
    assert all(r["format"] == "syslog3164" for r in out)


def test_lone_surrogates_never_reach_the_line() -> None:
    bad = "a\ud800b\udfff"
    keys = ("ts", "level", "msg", "host", "service", "pid", "msgid", "run_id", "stream")
    rec: dict[str, Any] = {key: bad for key in keys}
    rec |= {"device_vendor": bad, "event_name": bad, bad: bad, "sd": {bad: {bad: bad}}}
    line = FMT.render(rec)
    line.encode("utf-8")  # a lone surrogate would raise here, and in every transport
    assert "a\ufffdb\ufffd" in line
