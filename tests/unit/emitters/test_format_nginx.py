"""nginx's access and error logs: exact lines, read back, checked against nginx's own layout."""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Any

import apache_log_parser  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emitters.content import ContentOptions, app_record
from emitters.formats.apache import ApacheCombinedFormat
from emitters.formats.base import FormatError
from emitters.formats.nginx import NginxAccessFormat, NginxErrorFormat
from tests.unit.emitters.web_checks import (
    NASTY,
    OTHER_LINES,
    carried,
    check_golden,
    ingest,
    samples,
)

ACCESS = NginxAccessFormat()
ERROR = NginxErrorFormat()


@pytest.mark.parametrize("fmt", [ACCESS, ERROR], ids=lambda f: f.name)
def test_golden(fmt: Any) -> None:
    check_golden(fmt)


# --- access log -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '203.0.113.9 - - [12/Mar/2024:14:05:10 +0000] "GET /healthz HTTP/1.1" 200 2 "-" '
            '"kube-probe/1.29"',
            {
                "ts": "12/Mar/2024:14:05:10 +0000",
                "level": "INFO",
                "msg": "GET /healthz HTTP/1.1",
                "method": "GET",
                "path": "/healthz",
                "protocol": "HTTP/1.1",
                "client_ip": "203.0.113.9",
                "status": 200,
                "bytes": 2,
                "user_agent": "kube-probe/1.29",
            },
        ),
        # A connection closed before its request line: $request is empty, the body 0.
        (
            '172.17.0.1 - - [12/Mar/2024:14:05:10 +0000] "" 400 0 "-" "-"',
            {
                "ts": "12/Mar/2024:14:05:10 +0000",
                "level": "WARN",
                "client_ip": "172.17.0.1",
                "status": 400,
                "bytes": 0,
            },
        ),
        # escape=default: '"', '\' and bytes outside 32-126 as \xHH, upper-case.
        (
            '192.0.2.1 - bob [12/Mar/2024:14:05:10 -0500] "GET /\\x22x\\x5C HTTP/1.1" 404 153 '
            '"https://shop.example/" "Mozilla/5.0 \\xE4\\xB8\\xAD"',
            {
                "ts": "12/Mar/2024:14:05:10 -0500",
                "level": "WARN",
                "msg": 'GET /"x\\ HTTP/1.1',
                "method": "GET",
                "path": '/"x\\',
                "protocol": "HTTP/1.1",
                "client_ip": "192.0.2.1",
                "user": "bob",
                "status": 404,
                "bytes": 153,
                "referer": "https://shop.example/",
                "user_agent": "Mozilla/5.0 中",
            },
        ),
        # A TLS handshake on the plain port.
        (
            '192.0.2.1 - - [12/Mar/2024:14:05:10 +0000] "\\x16\\x03\\x01\\x00\\xF7\\x01" 400 157 '
            '"-" "-"',
            {
                "ts": "12/Mar/2024:14:05:10 +0000",
                "level": "WARN",
                "msg": "\x16\x03\x01\x00\xf7\x01".encode("latin-1").decode(
                    "utf-8", "backslashreplace"
                ),
                "client_ip": "192.0.2.1",
                "status": 400,
                "bytes": 157,
            },
        ),
    ],
)
def test_access_parse_real_lines(line: str, expected: dict[str, Any]) -> None:
    assert ACCESS.parse(line) == expected
    assert ACCESS.looks_like(line)
    if "\\xF7" not in line:
        assert ACCESS.render(expected) == line


def test_access_differs_from_apache_only_where_nginx_does() -> None:
    rec = {
        "ts": "12/Mar/2024:14:05:10 +0000",
        "client_ip": "192.0.2.1",
        "ident": "someone",
        "msg": 'GET /"\n HTTP/1.1',
        "status": 304,
        "bytes": 0,
    }
    assert ACCESS.render(rec) == (
        '192.0.2.1 - - [12/Mar/2024:14:05:10 +0000] "GET /\\x22\\x0A HTTP/1.1" 304 0 "-" "-"'
    )
    assert ApacheCombinedFormat().render(rec) == (
        '192.0.2.1 someone - [12/Mar/2024:14:05:10 +0000] "GET /\\"\\n HTTP/1.1" 304 - "-" "-"'
    )
    assert ACCESS.render({"ts": "12/Mar/2024:14:05:10 +0000", "status": 400}).endswith(
        '"" 400 0 "-" "-"'
    )
    # $status is "%03ui": a request that got no answer is logged 000.
    assert ACCESS.render({"ts": "12/Mar/2024:14:05:10 +0000"}).endswith('"" 000 0 "-" "-"')
    assert ACCESS.parse('- - - [12/Mar/2024:14:05:10 +0000] "" 000 0 "-" "-"')["status"] == 0


ACCESS_RECORDS = st.fixed_dictionaries(
    {"msg": NASTY.filter(lambda s: s not in ("", "-"))},
    optional={
        "client_ip": NASTY.filter(lambda s: s not in ("", "-")),
        "user": NASTY.filter(lambda s: s not in ("", "-")),
        "referer": NASTY.filter(lambda s: s not in ("", "-")),
        "user_agent": NASTY.filter(lambda s: s not in ("", "-")),
        "status": st.integers(100, 999),
        "bytes": st.integers(0, 2**40),
    },
)


@settings(max_examples=300)
@given(ACCESS_RECORDS)
def test_access_round_trip_with_nasty_text(rec: dict[str, Any]) -> None:
    rec = {"ts": "12/Mar/2024:14:05:09 +0000", **rec}
    line = ACCESS.render(rec)
    assert STRICT_ACCESS.fullmatch(line), line
    back = ACCESS.parse(line)
    assert {k: back.get(k) for k in rec} == rec


# The default log_format, as ngx_http_log_module defines it, read as a grammar:
#   log_format combined '$remote_addr - $remote_user [$time_local] '
#                       '"$request" $status $body_bytes_sent '
#                       '"$http_referer" "$http_user_agent"';
# Each variable is escaped (escape=default), so a value holds printable ASCII other than
# '"' and '\', and \xHH (upper-case hex) for the rest.
_VALUE = r"(?:[ !#-\[\]-~]|\\x[0-9A-F]{2})*"
STRICT_ACCESS = re.compile(
    rf"(?P<remote_addr>{_VALUE.replace(' ', '')}) - (?P<remote_user>{_VALUE}) "
    r"\[(?P<time_local>\d\d/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}"
    r":\d\d:\d\d:\d\d [+-]\d{4})\] "
    rf'"(?P<request>{_VALUE})" (?P<status>\d{{3}}) (?P<body_bytes_sent>\d+) '
    rf'"(?P<http_referer>{_VALUE})" "(?P<http_user_agent>{_VALUE})"'
)


def _unescape(value: str) -> str:
    raw = re.sub(rb"\\x([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]), value.encode())
    return raw.decode("utf-8")


def test_every_sampled_access_line_follows_log_format_combined() -> None:
    recs = samples(ACCESS, 10_000, seed=13, error_ratio=0.1)
    for rec in recs:
        line = ACCESS.render(rec)
        match = STRICT_ACCESS.fullmatch(line)
        assert match is not None, line
        got = {k: _unescape(v) for k, v in match.groupdict().items()}
        assert got["remote_addr"] == rec["client_ip"]
        assert got["remote_user"] == rec.get("user", "-")
        assert got["time_local"] == rec["ts"]
        assert got["request"] == rec["msg"] == f"{rec['method']} {rec['path']} {rec['protocol']}"
        assert (int(got["status"]), int(got["body_bytes_sent"])) == (rec["status"], rec["bytes"])
        assert got["http_referer"] == rec.get("referer", "-")
        assert got["http_user_agent"] == rec.get("user_agent", "-")
        assert carried(ACCESS.parse(line)) == carried(rec)
    assert {rec["service"] for rec in recs} == {"nginx"}


@pytest.mark.parametrize(
    "line",
    [
        "",
        '192.0.2.1 - - [12/Mar/2024:14:05:10 +0000] "GET / HTTP/1.1" 200 5',
        '192.0.2.1 - - [12/Mar/2024:14:05:10] "GET / HTTP/1.1" 200 5 "-" "-"',
        '192.0.2.1 - - [12/Mar/2024:14:05:10 +0000] "GET / HTTP/1.1" 200 5 "-" "-" "extra"',
    ],
)
def test_access_refuses(line: str) -> None:
    with pytest.raises(FormatError, match="nginx_access"):
        ACCESS.parse(line)


# --- error log --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # What the official image logs for a missing favicon.
        (
            '2024/03/12 14:05:09 [error] 31#31: *1 open() "/usr/share/nginx/html/favicon.ico" '
            "failed (2: No such file or directory), client: 172.17.0.1, server: localhost, "
            'request: "GET /favicon.ico HTTP/1.1", host: "localhost:8080", '
            'referrer: "http://localhost:8080/"',
            {
                "ts": "2024/03/12 14:05:09",
                "level": "error",
                "pid": 31,
                "tid": 31,
                "connection_id": 1,
                "msg": 'open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file or '
                "directory)",
                "client_ip": "172.17.0.1",
                "server": "localhost",
                "request": "GET /favicon.ico HTTP/1.1",
                "http_host": "localhost:8080",
                "referer": "http://localhost:8080/",
            },
        ),
        (
            "2024/03/12 14:05:09 [error] 29#29: *12 upstream timed out (110: Connection timed "
            "out) while reading response header from upstream, client: 2001:db8::5, server: "
            'api.example.com, request: "POST /api/v1/orders HTTP/1.1", upstream: '
            '"http://10.0.3.7:8080/api/v1/orders", host: "api.example.com"',
            {
                "ts": "2024/03/12 14:05:09",
                "level": "error",
                "pid": 29,
                "tid": 29,
                "connection_id": 12,
                "msg": "upstream timed out (110: Connection timed out) while reading response "
                "header from upstream",
                "client_ip": "2001:db8::5",
                "server": "api.example.com",
                "request": "POST /api/v1/orders HTTP/1.1",
                "upstream": "http://10.0.3.7:8080/api/v1/orders",
                "http_host": "api.example.com",
            },
        ),
        # No request yet: the server is the listening address.
        (
            "2024/03/12 14:05:09 [info] 29#29: *3 client timed out (110: Connection timed out) "
            "while waiting for request, client: 192.0.2.1, server: 0.0.0.0:80",
            {
                "ts": "2024/03/12 14:05:09",
                "level": "info",
                "pid": 29,
                "tid": 29,
                "connection_id": 3,
                "msg": "client timed out (110: Connection timed out) while waiting for request",
                "client_ip": "192.0.2.1",
                "server": "0.0.0.0:80",
            },
        ),
        # Not about a connection; built without threads the tid is 0.
        (
            "2024/03/12 14:05:09 [emerg] 1#0: bind() to 0.0.0.0:80 failed (98: Address already "
            "in use)",
            {
                "ts": "2024/03/12 14:05:09",
                "level": "emerg",
                "pid": 1,
                "tid": 0,
                "msg": "bind() to 0.0.0.0:80 failed (98: Address already in use)",
            },
        ),
        # The stream module's context has another shape: it stays in the message.
        (
            "2024/03/12 14:05:09 [error] 30#30: *7 connect() failed (111: Connection refused) "
            "while connecting to upstream, client: 192.0.2.1, server: 0.0.0.0:5432, upstream: "
            '"10.0.0.9:5432", bytes from/to client:0/0, bytes from/to upstream:0/0',
            {
                "ts": "2024/03/12 14:05:09",
                "level": "error",
                "pid": 30,
                "tid": 30,
                "connection_id": 7,
                "msg": "connect() failed (111: Connection refused) while connecting to upstream, "
                'client: 192.0.2.1, server: 0.0.0.0:5432, upstream: "10.0.0.9:5432", bytes '
                "from/to client:0/0, bytes from/to upstream:0/0",
            },
        ),
    ],
)
def test_error_parse_real_lines(line: str, expected: dict[str, Any]) -> None:
    assert ERROR.parse(line) == expected
    assert ERROR.looks_like(line)
    if "stream" not in line:
        assert ERROR.render(expected) == line


@pytest.mark.parametrize(
    "line",
    [
        "",
        "2024/03/12 14:05:09 [loud] 1#1: x",
        "2024/03/12 14:05:09 [error] 1: x",
        "2024-03-12 14:05:09 [error] 1#1: x",
        "2024/03/12 14:05:09 [error] 1#1: two\nlines",
    ],
)
def test_error_refuses(line: str) -> None:
    with pytest.raises(FormatError, match="nginx_error"):
        ERROR.parse(line)


ERROR_RECORDS = st.fixed_dictionaries(
    {
        "ts": st.just("2024/03/12 14:05:09"),
        "level": st.sampled_from(["debug", "info", "notice", "warn", "error", "crit", "emerg"]),
        "pid": st.integers(0, 2**22),
        "tid": st.integers(0, 2**22),
        "msg": NASTY,
    },
    optional={
        "connection_id": st.integers(1, 2**40),
        "client_ip": NASTY.filter(bool),
        "server": NASTY,
        "request": NASTY.filter(bool),
        "subrequest": NASTY.filter(bool),
        "upstream": NASTY.filter(bool),
        "http_host": NASTY.filter(bool),
        "referer": NASTY.filter(bool),
    },
)


@settings(max_examples=400)
@given(ERROR_RECORDS)
def test_error_round_trip_with_nasty_text(rec: dict[str, Any]) -> None:
    line = ERROR.render(rec)
    assert "\n" not in line and "\r" not in line
    back = ERROR.parse(line)
    if "client_ip" not in rec:  # the context is written only for a client
        rec = {k: v for k, v in rec.items() if k in ("ts", "level", "pid", "tid", "msg")} | (
            {"connection_id": rec["connection_id"]} if "connection_id" in rec else {}
        )
    assert back == rec


# ngx_log_error_core() and ngx_http_log_error_handler() read as a grammar (not our module).
STRICT_ERROR = re.compile(
    r"(?P<time>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) "
    r"\[(?P<level>debug|info|notice|warn|error|crit|alert|emerg)\] "
    r"(?P<pid>\d+)#(?P<tid>\d+): (?:\*(?P<connection>\d+) )?(?P<message>[ -~]+?)"
    r"(?:, client: (?P<client>[0-9a-f.:]+), server: (?P<server>[a-z0-9.:]+)"
    r'(?:, request: "(?P<request>[^"]+)")?(?:, upstream: "(?P<upstream>[^"]+)")?'
    r'(?:, host: "(?P<host>[^"]+)")?(?:, referrer: "(?P<referrer>[^"]+)")?)?'
)


def test_every_sampled_error_line_follows_nginx_layout() -> None:
    recs = samples(ERROR, 10_000, seed=14, error_ratio=0.2)
    names = {"connection": "connection_id", "message": "msg", "client": "client_ip"}
    names |= {"host": "http_host", "referrer": "referer"}
    for rec in recs:
        line = ERROR.render(rec)
        match = STRICT_ERROR.fullmatch(line)
        assert match is not None, line
        got = {names.get(k, k): v for k, v in match.groupdict().items() if v is not None}
        want = carried(rec)
        assert got.pop("time") == want.pop("ts")
        assert got == {k: str(v) if isinstance(v, int) else v for k, v in want.items()}
        assert carried(ERROR.parse(line)) == carried(rec)
    levels = Counter(rec["level"] for rec in recs)
    assert levels["error"] / len(recs) == pytest.approx(0.2 * 0.95, abs=0.02)
    assert set(levels) == {"debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"}
    messages = " ".join(rec["msg"] for rec in recs)
    for text in (
        "(2: No such file or directory)",
        "upstream timed out (110: Connection timed out) while reading response header",
        "connect() failed (111: Connection refused)",
        "client intended to send too large body",
    ):
        assert text in messages
    # Debug lines never carry the request context.
    assert not any("client_ip" in rec for rec in recs if rec["level"] == "debug")


def test_error_render_takes_any_record() -> None:
    rec = app_record(random.Random(1), ContentOptions(), 1_710_252_309.482)
    line = ERROR.render(rec)
    level = {"TRACE": "debug", "DEBUG": "debug", "INFO": "info", "WARN": "warn"}[rec["level"]]
    assert line == f"2024/03/12 14:05:09 [{level}] {rec['pid']}#0: {rec['msg']}"
    assert ERROR.render({"level": "FATAL", "msg": "*x", "ts": 0}) == (
        "1970/01/01 00:00:00 [crit] 0#0: \\x2Ax"
    )


# --- Ingest -----------------------------------------------------------------------------


def test_ingest_normalises_error_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    words = ["debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"]
    lines = [f"2024/03/12 14:05:09 [{w}] 7#7: *1 m, client: 192.0.2.1, server: s" for w in words]
    out = ingest(monkeypatch, ERROR, lines)
    assert [o["level"] for o in out] == [
        *("DEBUG", "INFO", "INFO", "WARN", "ERROR", "FATAL", "FATAL", "FATAL")
    ]
    # The error log's time has no zone: Ingest reads it as UTC.
    assert {o["ts"] for o in out} == {"2024-03-12T14:05:09.000Z"}
    assert {(o["msg"], o["client_ip"], o["server"]) for o in out} == {("m", "192.0.2.1", "s")}
    assert not any(o["ts_missing"] or o["level_missing"] for o in out)


def test_ingest_normalises_access_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    recs = samples(ACCESS, 300, seed=15, error_ratio=0.2)
    out = ingest(monkeypatch, ACCESS, [ACCESS.render(r) for r in recs])
    for rec, got in zip(recs, out, strict=True):
        assert got["ts"] == "2024-03-12T14:05:{:02d}.000Z".format(int(rec["ts"][18:20]))
        assert got["level"] == rec["level"] and got["msg"] == rec["msg"]
        assert (got["status"], got["bytes"], got["format"]) == (
            rec["status"],
            rec["bytes"],
            "nginx_access",
        )


# --- detection --------------------------------------------------------------------------


def test_looks_like_is_specific() -> None:
    apache_lines = [
        '192.0.2.1 - - [12/Mar/2024:14:05:10 +0000] "GET / HTTP/1.1" 304 - "-" "-"',
        '192.0.2.1 - - [12/Mar/2024:14:05:10 +0000] "GET /\\"x HTTP/1.1" 404 5 "-" "-"',
        '192.0.2.1 ident - [12/Mar/2024:14:05:10 +0000] "GET / HTTP/1.1" 200 5 "-" "-"',
        "[Tue Mar 12 14:05:09.482113 2024] [core:error] [pid 1] AH00128: File does not exist",
    ]
    others = [line for line in OTHER_LINES if not line.startswith(("2024/", "198.51"))]
    assert [line for line in others + apache_lines if ACCESS.looks_like(line)] == []
    assert [line for line in others + apache_lines if ERROR.looks_like(line)] == []
    for fmt in (ACCESS, ERROR):
        assert all(fmt.looks_like(fmt.render(rec)) for rec in samples(fmt, 200))


def test_apache_log_parser_reads_nginx_lines_too() -> None:
    """The combined layout, read by apache-log-parser (PyPI) from its LogFormat: nginx
    writes the same fields, with %B's 0 for an empty body."""
    parser = apache_log_parser.Parser('%h %l %u %t "%r" %>s %B "%{Referer}i" "%{User-Agent}i"')
    for rec in samples(ACCESS, 3_000, seed=16, error_ratio=0.1):
        line = ACCESS.render(rec)
        assert parser.log_line_regex.fullmatch(line), line
        got = parser.parse(line)
        assert (got["remote_host"], got["remote_logname"]) == (rec["client_ip"], "-")
        assert (got["request_first_line"], got["status"]) == (rec["msg"], str(rec["status"]))
        assert got["response_bytes"] == str(rec["bytes"])
        assert got["request_header_user_agent"] == rec.get("user_agent", "-")


@pytest.mark.parametrize(
    "line",
    [
        "2024/03/12 14:05:09 [error] 1#1: " + ', client: a, server: b, request: "' * 5_000,
        "2024/03/12 14:05:09 [error] 1#1: " + ", client: " * 20_000,
    ],
)
def test_hostile_lines_parse_without_backtracking(line: str) -> None:
    """The context is looked for at a bounded number of places, each in linear time (a
    backtracking search would run into the timeout); what is not context is message."""
    rec = ERROR.parse(line)
    assert rec["msg"] == line[len("2024/03/12 14:05:09 [error] 1#1: ") :]
