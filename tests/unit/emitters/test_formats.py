"""Each log format renders what its parser reads back, and parses what real senders write."""

from __future__ import annotations

import csv
import io
import random
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emitters.content import ContentOptions
from emitters.formats import (
    FORMAT_NAMES,
    FormatError,
    detect_format,
    get_format,
    parse_csv_document,
)

JSON = get_format("json")
CSV = get_format("csv")
SYSLOG = get_format("syslog")
LOGFMT = get_format("logfmt")

# Text with the characters that break naive formats: quotes, commas, backslashes, "=",
# spaces, newlines and other controls, and any unicode (no surrogates).
NASTY = st.text(
    st.one_of(st.sampled_from("\"\\,= \n\r\t'{}[]#:"), st.characters(codec="utf-8")),
    max_size=40,
)
PRINTABLE = st.text(st.characters(codec="utf-8", blacklist_categories=("Cc", "Cs")), max_size=40)
TIMESTAMPS = st.from_regex(r"20\d\d-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-5]\d\.\d{3}Z", fullmatch=True)
TOKENS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,15}", fullmatch=True)
LEVEL_WORDS = st.sampled_from(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "warning"])


def test_registry() -> None:
    assert set(FORMAT_NAMES) == {
        *("json", "csv", "minimal", "noise", "syslog", "syslog3164", "syslog5424"),
        *("apache_common", "apache_combined", "apache_error", "nginx_access", "nginx_error"),
        *("logfmt", "winevent_xml", "winevent_json", "cef"),
    }
    for name in FORMAT_NAMES:
        assert get_format(name).name == name
    with pytest.raises(KeyError):
        get_format("yaml")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"ts":"2024-03-12T14:05:09.482Z","msg":"hi"}', "json"),
        ('  {"msg": "indented"}', "json"),
        ("2024-03-12T14:05:09.482Z web01 checkout[4412]: ERROR payment declined", "syslog"),
        ("<34>Mar  2 04:05:06 web01 sshd[4412]: Failed password for root", "syslog3164"),
        # Without a <PRI> it is no RFC 3164 packet; the lenient seed shape takes it.
        ("Mar  2 04:05:06 web01 cron: job done", "syslog"),
        ("<165>1 2024-03-12T14:05:09.482113Z app7 billing 8812 PAY01 - charge captured",
         "syslog5424"),
        ("<134>Mar 12 14:05:09 fw01 CEF:0|LogOps|emitter|1.0|auth-fail|Failed login|7|src=1.2.3.4",
         "cef"),
        ("CEF:0|LogOps|emitter|1.0|auth-fail|Failed login|7|src=192.0.2.44", "cef"),
        ('198.51.100.7 - carol [12/Mar/2024:14:05:09 +0000] "GET /api/orders/42 HTTP/1.1" 200 5123',
         "apache_common"),
        ('198.51.100.7 - - [12/Mar/2024:14:05:09 +0000] "POST /cart HTTP/1.1" 302 219 '
         '"https://shop.example/" "Mozilla/5.0 (X11; Linux x86_64)"', "apache_combined"),
        ('203.0.113.9 - - [12/Mar/2024:14:05:10 +0000] "GET /healthz HTTP/1.1" 204 0 "-" '
         '"kube-probe/1.29"', "nginx_access"),
        ("[Tue Mar 12 14:05:09.482113 2024] [core:error] [pid 2231:tid 140201] "
         "[client 198.51.100.7:53211] AH00128: File does not exist: /var/www/html/favicon.ico",
         "apache_error"),
        ("2024/03/12 14:05:09 [error] 2231#2231: *17 open() \"/srv/x\" failed (2: No such file or "
         'directory), client: 198.51.100.7, server: shop, request: "GET /x HTTP/1.1"',
         "nginx_error"),
        ('ts=2024-03-12T14:05:09.482Z level=error msg="upstream timeout"', "logfmt"),
        ("level=info msg=started", "logfmt"),
        ('2024-03-12T14:05:09Z,ERROR,"timeout, retrying"', "csv"),
        ("just some words", None),
        ("hello, world, again", None),
        ("", None),
        ("a sentence with x=1 later", None),
    ],
)
def test_detect(line: str, expected: str | None) -> None:
    assert detect_format(line) == expected


# --- json ---------------------------------------------------------------------------


def test_json_parse() -> None:
    line = '{"ts":"2024-03-12T14:05:09.482Z","level":"info","msg":"order placed","order_id":42}'
    assert JSON.parse(line) == {
        "ts": "2024-03-12T14:05:09.482Z",
        "level": "info",
        "msg": "order placed",
        "order_id": 42,
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1, 2]", "must be an object, not an array"),
        ('"text"', "not a string"),
        ("42", "not a number"),
        ("null", "not a JSON literal"),
        ('{"msg": "cut', "invalid JSON"),
        ("", "invalid JSON"),
    ],
)
def test_json_refuses(line: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        JSON.parse(line)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | NASTY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NASTY, inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(NASTY, JSON_VALUES, max_size=6))
def test_json_round_trip(rec: dict[str, Any]) -> None:
    line = JSON.render(rec)
    assert "\n" not in line
    assert JSON.parse(line) == rec
    assert detect_format(line) == "json"


# --- csv ----------------------------------------------------------------------------


def test_csv_render_quotes_like_rfc4180() -> None:
    rec = {"ts": "2024-03-12T14:05:09Z", "level": "ERROR", "msg": 'calling "payments", retry'}
    line = CSV.render(rec)
    assert line == '2024-03-12T14:05:09Z,ERROR,"calling ""payments"", retry"'
    assert next(csv.reader([line])) == [rec["ts"], rec["level"], rec["msg"]]


def test_csv_renders_exactly_three_columns() -> None:
    assert CSV.render({"ts": "1", "msg": "x", "service": "svc"}) == "1,,x"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("2024-03-12T14:05:09Z,INFO,started", ["2024-03-12T14:05:09Z", "INFO", "started"]),
        ('1,WARN,"a, ""quoted"" word"', ["1", "WARN", 'a, "quoted" word']),
        ("1,WARN,unquoted, commas stay", ["1", "WARN", "unquoted, commas stay"]),
        ('1,INFO,"two\nlines"', ["1", "INFO", "two\nlines"]),
        ("1,,no level", ["1", None, "no level"]),
        ("1,INFO,", ["1", "INFO", None]),
    ],
)
def test_csv_parse(line: str, expected: list[str | None]) -> None:
    wanted = {k: v for k, v in zip(("ts", "level", "msg"), expected, strict=True) if v is not None}
    assert CSV.parse(line) == wanted


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ts,level,msg", "header"),
        ("only,two", "expected 3 fields"),
        ('"a","b","c","d"', "expected 3 fields"),
        ("", "expected 3 fields"),
    ],
)
def test_csv_refuses(line: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        CSV.parse(line)


def test_csv_document_keeps_good_rows() -> None:
    body = (
        "timestamp,level,message\r\n"
        '2024-03-12T14:05:09Z,INFO,"multi\nline, with comma"\r\n'
        "2024-03-12T14:05:10Z,WARN\r\n"
        "\r\n"
        "2024-03-12T14:05:11Z,ERROR,x,extra\r\n"
        '2024-03-12T14:05:12Z,,"said ""hi"""\r\n'
    )
    rows = parse_csv_document(body)
    assert rows[0] == {
        "timestamp": "2024-03-12T14:05:09Z",
        "level": "INFO",
        "message": "multi\nline, with comma",
    }
    assert isinstance(rows[1], FormatError)
    assert "2 fields, the header has 3" in str(rows[1])
    assert isinstance(rows[2], FormatError)
    assert rows[3] == {"timestamp": "2024-03-12T14:05:12Z", "message": 'said "hi"'}
    assert len(rows) == 4


def test_csv_document_edges() -> None:
    assert parse_csv_document("") == []
    assert parse_csv_document("ts,level,msg\n") == []
    big = "x" * 300_000
    assert parse_csv_document(f"ts,level,msg\n1,INFO,{big}\n") == [
        {"ts": "1", "level": "INFO", "msg": big}
    ]


@given(TIMESTAMPS, LEVEL_WORDS, NASTY.filter(bool))
def test_csv_round_trip(ts: str, level: str, msg: str) -> None:
    rec = {"ts": ts, "level": level, "msg": msg}
    line = CSV.render(rec)
    assert CSV.parse(line) == rec
    assert parse_csv_document(f"ts,level,msg\r\n{line}\r\n") == [rec]
    assert list(csv.reader(io.StringIO(line, newline=""))) == [[ts, level, msg]]


# --- syslog -------------------------------------------------------------------------


def test_syslog_render() -> None:
    rec = {
        "ts": "2024-03-12T14:05:09.482Z",
        "host": "web01",
        "service": "checkout",
        "pid": 4412,
        "level": "ERROR",
        "msg": "payment declined",
    }
    line = "2024-03-12T14:05:09.482Z web01 checkout[4412]: ERROR payment declined"
    assert SYSLOG.render(rec) == line
    assert SYSLOG.parse(line) == rec


def test_syslog_render_fills_and_escapes() -> None:
    assert SYSLOG.render({"msg": "two\nlines"}) == "- - -: two#012lines"
    assert SYSLOG.render({"ts": "x", "host": "a b", "service": "c:d", "level": "INFO"}) == (
        "x a_b c_d: INFO"
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "<34>Mar  2 04:05:06 web01 sshd[4412]: Failed password for root",
            {
                "ts": "Mar  2 04:05:06",
                "level": "<34>",
                "msg": "Failed password for root",
                "service": "sshd",
                "host": "web01",
                "pid": 4412,
                "syslog_facility": 4,
                "syslog_severity": 2,
            },
        ),
        (
            # After a PRI only an upper-case word is a level: "Error" here is prose.
            "<13>Mar 12 14:05:09 host app: Error reading file",
            {
                "ts": "Mar 12 14:05:09",
                "level": "<13>",
                "msg": "Error reading file",
                "service": "app",
                "host": "host",
                "syslog_facility": 1,
                "syslog_severity": 5,
            },
        ),
        (
            "<11>Mar 12 14:05:09 host app: ERROR disk full",
            {
                "ts": "Mar 12 14:05:09",
                "level": "ERROR",
                "msg": "disk full",
                "service": "app",
                "host": "host",
                "syslog_facility": 1,
                "syslog_severity": 3,
            },
        ),
        (
            "Mar 12 14:05:09 app[7]: warn: low disk",
            {"ts": "Mar 12 14:05:09", "level": "warn", "msg": "low disk", "service": "app"}
            | {"pid": 7},
        ),
        (
            "2024-03-12T14:05:09+02:00 db1 postgres: starting",
            {"ts": "2024-03-12T14:05:09+02:00", "msg": "starting"}
            | {"service": "postgres", "host": "db1"},
        ),
        ("- - -: INFO", {"level": "INFO"}),
    ],
)
def test_syslog_parse_lenient(line: str, expected: dict[str, Any]) -> None:
    assert SYSLOG.parse(line) == expected


@pytest.mark.parametrize(
    "line", ["just words", "", "<999>Mar 12 14:05:09 host app: x", "2024-03-12T14:05:09Z host"]
)
def test_syslog_refuses(line: str) -> None:
    with pytest.raises(FormatError):
        SYSLOG.parse(line)


@given(
    TIMESTAMPS,
    TOKENS,
    TOKENS,
    st.none() | st.integers(0, 4_000_000),
    LEVEL_WORDS,
    PRINTABLE.filter(bool),
)
def test_syslog_round_trip(
    ts: str, host: str, service: str, pid: int | None, level: str, msg: str
) -> None:
    rec: dict[str, Any] = {"ts": ts, "level": level, "msg": msg, "service": service, "host": host}
    if pid is not None:
        rec["pid"] = pid
    line = SYSLOG.render(rec)
    assert SYSLOG.parse(line) == rec
    assert detect_format(line) == "syslog"


# --- logfmt -------------------------------------------------------------------------


def test_logfmt_parse() -> None:
    line = (
        'ts=2024-03-12T14:05:09.482Z level=error msg="upstream \\"api\\" timeout" '
        'svc=checkout status=504 path="C:\\\\temp" retry empty='
    )
    assert LOGFMT.parse(line) == {
        "ts": "2024-03-12T14:05:09.482Z",
        "level": "error",
        "msg": 'upstream "api" timeout',
        "svc": "checkout",
        "status": "504",
        "path": "C:\\temp",
        "retry": True,
        "empty": "",
    }


def test_logfmt_render() -> None:
    rec = {"svc": "checkout", "msg": 'say "hi"', "level": "info", "n": 3, "ok": True}
    assert LOGFMT.render(rec) == 'level=info msg="say \\"hi\\"" svc=checkout n=3 ok=true'
    assert LOGFMT.render({"msg": "a=b c\nd"}) == 'msg="a=b c\\nd"'


@pytest.mark.parametrize("line", ['msg="unterminated', 'a=b"c', "", "   "])
def test_logfmt_refuses(line: str) -> None:
    with pytest.raises(FormatError):
        LOGFMT.parse(line)


@given(
    st.dictionaries(
        st.from_regex(r"[a-z_][a-z0-9_.]{0,10}", fullmatch=True), NASTY, min_size=1, max_size=6
    )
)
def test_logfmt_round_trip(rec: dict[str, str]) -> None:
    line = LOGFMT.render(rec)
    assert "\n" not in line and "\r" not in line
    assert LOGFMT.parse(line) == rec


@given(st.text(max_size=60))
def test_parsers_raise_only_format_errors(line: str) -> None:
    for name in FORMAT_NAMES:
        try:
            parsed = get_format(name).parse(line)
        except FormatError:
            continue
        assert isinstance(parsed, dict)
        orjson.dumps(parsed)


# What detection answers for each format's own lines, where that is not the format itself:
# Nginx's access log is Apache's combined layout (read the same), minimal is a JSON
# object, and noise is never guessed.
DETECTED_AS = {"nginx_access": {"apache_combined", "nginx_access"}, "minimal": {"json"}}


@pytest.mark.parametrize("name", [n for n in FORMAT_NAMES if n != "noise"])
def test_each_formats_lines_are_detected_as_that_format(name: str) -> None:
    fmt = get_format(name)
    rng = random.Random(11)
    for i in range(300):
        line = fmt.render(fmt.sample(rng, ContentOptions(), 1_710_252_309.0 + i))
        assert detect_format(line) in DETECTED_AS.get(name, {name}), line


# Starts that take a parser deep into its grammar before the random tail.
DEEP_PREFIXES = {
    "cef": ["CEF:0|a|b|c|d|e|3|", "<134>Mar 12 14:05:09 fw01 CEF:0|v|p|1|", "CEF:"],
    "syslog3164": ["<13>Mar  2 04:05:06 h ", "<13>Mar  2 04:05:06 h tag[", "<13>"],
    "syslog5424": ["<13>1 - - - - - ", "<13>1 2024-03-12T14:05:09Z h a p m [x@1 ", "<13>1 "],
}


@pytest.mark.parametrize("name", FORMAT_NAMES)
@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_parse_raises_only_format_errors(name: str, data: st.DataObject) -> None:
    """Whatever follows a real line's start, a parser answers a record Ingest can store as
    JSON or a FormatError, nothing else."""
    fmt = get_format(name)
    line = fmt.render(fmt.sample(random.Random(3), ContentOptions(), 1_710_252_309.0))
    starts = ["", line[: len(line) // 2], line[:-1], *DEEP_PREFIXES.get(name, [])]
    text = data.draw(st.sampled_from(starts)) + data.draw(st.text(max_size=80))
    try:
        parsed = fmt.parse(text)
    except FormatError:
        return
    orjson.dumps(parsed)
