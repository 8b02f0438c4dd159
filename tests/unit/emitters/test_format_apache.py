"""Apache's access and error logs: exact lines, read back, checked by apache-log-parser."""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import apache_log_parser  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emitters.content import ContentOptions, app_record
from emitters.formats.apache import ApacheCombinedFormat, ApacheCommonFormat, ApacheErrorFormat
from emitters.formats.base import FormatError
from services.ingest.timeparse import parse_ts
from tests.unit.emitters.web_checks import (
    NASTY,
    NOW,
    OTHER_LINES,
    carried,
    check_golden,
    ingest,
    samples,
)

COMMON = ApacheCommonFormat()
COMBINED = ApacheCombinedFormat()
ERROR = ApacheErrorFormat()
COMMON_LOGFORMAT = '%h %l %u %t "%r" %>s %b'
COMBINED_LOGFORMAT = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'


@pytest.mark.parametrize("fmt", [COMMON, COMBINED, ERROR], ids=lambda f: f.name)
def test_golden(fmt: Any) -> None:
    check_golden(fmt)


# --- access logs: real lines ----------------------------------------------------------


def test_parse_the_apache_documentation_examples() -> None:
    line = '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'
    expected = {
        "ts": "10/Oct/2000:13:55:36 -0700",
        "level": "INFO",
        "msg": "GET /apache_pb.gif HTTP/1.0",
        "method": "GET",
        "path": "/apache_pb.gif",
        "protocol": "HTTP/1.0",
        "client_ip": "127.0.0.1",
        "user": "frank",
        "status": 200,
        "bytes": 2326,
    }
    assert COMMON.parse(line) == expected
    combined = f'{line} "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'
    assert COMBINED.parse(combined) == expected | {
        "referer": "http://www.example.com/start.html",
        "user_agent": "Mozilla/4.08 [en] (Win98; I ;Nav)",
    }
    assert COMMON.render(expected) == line
    assert COMBINED.render(COMBINED.parse(combined)) == combined


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        # A connection that timed out before sending its request line.
        (
            '192.0.2.5 - - [12/Mar/2024:14:05:09 +0000] "-" 408 -',
            {"level": "WARN", "status": 408, "bytes": 0},
        ),
        # A TLS handshake sent to the plain-HTTP port: bytes outside 32-126 as \xhh.
        (
            '192.0.2.5 - - [12/Mar/2024:14:05:09 +0000] "\\x16\\x03\\x01\\x02" 400 226',
            {"level": "WARN", "status": 400, "bytes": 226, "msg": "\x16\x03\x01\x02"},
        ),
        # Quote and backslash escaped with a backslash, a UTF-8 path byte by byte.
        (
            "192.0.2.5 - - [12/Mar/2024:14:05:09 +0100] "
            '"GET /a\\"b\\\\c/\\xc3\\xa9 HTTP/1.1" 404 196',
            {
                "level": "WARN",
                "msg": 'GET /a"b\\c/é HTTP/1.1',
                "method": "GET",
                "path": '/a"b\\c/é',
                "protocol": "HTTP/1.1",
                "status": 404,
                "bytes": 196,
            },
        ),
        # An empty user name (Basic auth with ":") is logged as "".
        (
            '192.0.2.5 - "" [12/Mar/2024:14:05:09 +0000] "GET / HTTP/1.1" 401 381',
            {"level": "WARN", "user": "", "status": 401, "bytes": 381},
        ),
        (
            '2001:db8::7 - - [12/Mar/2024:14:05:09 +0000] "GET / HTTP/2.0" 503 299',
            {"level": "ERROR", "client_ip": "2001:db8::7", "status": 503, "protocol": "HTTP/2.0"},
        ),
    ],
)
def test_parse_real_lines(line: str, fields: dict[str, Any]) -> None:
    rec = COMMON.parse(line)
    assert {k: rec.get(k) for k in fields} == fields
    assert COMMON.render(rec) == line


@pytest.mark.parametrize(
    "line",
    [
        "",
        "just some words",
        '192.0.2.5 - - [12/Mar/2024:14:05:09] "GET / HTTP/1.1" 200 5',
        '192.0.2.5 - - [12/Foo/2024:14:05:09 +0000] "GET / HTTP/1.1" 200 5',
        '192.0.2.5 - - [12/Mar/2024:14:05:09 +0000] "GET / HTTP/1.1" 2000 5',
        '192.0.2.5 - - [12/Mar/2024:14:05:09 +0000] "GET / HTTP/1.1" 200 five',
        '192.0.2.5 - - [12/Mar/2024:14:05:09 +0000] "GET "/" HTTP/1.1" 200 5',
        '192.0.2.5 - - [12/Mar/2024:14:05:09 +0000] "GET /\n HTTP/1.1" 200 5',
        '192.0.2.5 - - [12/Mar/2024:14:05:09 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"',
    ],
)
def test_common_refuses(line: str) -> None:
    with pytest.raises(FormatError, match="apache_common"):
        COMMON.parse(line)
    assert not COMMON.looks_like(line)


def test_combined_needs_referer_and_agent() -> None:
    with pytest.raises(FormatError, match="referer"):
        COMBINED.parse('192.0.2.5 - - [12/Mar/2024:14:05:09 +0000] "GET / HTTP/1.1" 200 5')


def test_render_writes_what_clf_cannot_carry_as_dashes_and_escapes() -> None:
    line = COMBINED.render(
        {
            "ts": "2024-03-12T16:05:09.482+02:00",
            "client_ip": "10.0.0.1",
            "user": "john doe",
            "method": "GET",
            "path": '/q?a="1"',
            "protocol": "HTTP/1.1",
            "status": 204,
            "bytes": 0,
            "user_agent": "bad\nagent",
        }
    )
    assert line == (
        '10.0.0.1 - john\\x20doe [12/Mar/2024:16:05:09 +0200] "GET /q?a=\\"1\\" HTTP/1.1" 204 - '
        '"-" "bad\\nagent"'
    )
    assert COMBINED.parse(line)["user"] == "john doe"


def test_render_takes_any_record() -> None:
    rec = app_record(random.Random(1), ContentOptions(), 1_710_252_309.482)
    line = COMBINED.render(rec)
    assert line.startswith(f'- - - [12/Mar/2024:14:05:09 +0000] "{rec["msg"]}" - - ')
    assert COMBINED.parse(line)["msg"] == rec["msg"]
    epoch = COMMON.render({"ts": 0, "msg": "GET / HTTP/1.1", "status": 200, "bytes": 5})
    assert epoch == '- - - [01/Jan/1970:00:00:00 +0000] "GET / HTTP/1.1" 200 5'


@pytest.mark.parametrize(
    ("ts", "written"),
    [
        ("12/Mar/2024:16:05:09 +0200", "12/Mar/2024:16:05:09 +0200"),
        ("2024-03-12T14:05:09.482Z", "12/Mar/2024:14:05:09 +0000"),
        ("2024-03-12T07:35:09-06:30", "12/Mar/2024:07:35:09 -0630"),
        ("2024-03-12 14:05:09", "12/Mar/2024:14:05:09 +0000"),
        (0, "01/Jan/1970:00:00:00 +0000"),
        (1_710_252_309.482, "12/Mar/2024:14:05:09 +0000"),
        (1_710_252_309_482, "12/Mar/2024:14:05:09 +0000"),
        (1_710_252_309_482_113_000, "12/Mar/2024:14:05:09 +0000"),
    ],
)
def test_render_writes_any_time_the_clf_way(ts: object, written: str) -> None:
    line = COMMON.render({"ts": ts, "msg": "GET / HTTP/1.1", "status": 200, "bytes": 1})
    assert line == f'- - - [{written}] "GET / HTTP/1.1" 200 1'


def test_a_line_without_a_usable_time_gets_the_time_of_writing() -> None:
    before = time.time()
    for ts in (None, "yesterday", True, -5):
        written = COMMON.parse(COMMON.render({"ts": ts, "msg": "GET / HTTP/1.1"}))["ts"]
        ms = parse_ts(written)
        assert ms is not None and before - 1 <= ms / 1000 <= time.time() + 1


# --- access logs: properties and an independent parser -------------------------------

TEXT_FIELDS = st.fixed_dictionaries(
    {"msg": NASTY.filter(lambda s: s not in ("", "-"))},
    optional={
        "client_ip": NASTY.filter(lambda s: s not in ("", "-")),
        "ident": NASTY.filter(lambda s: s not in ("", "-")),
        "user": NASTY.filter(lambda s: s != "-"),
        "referer": NASTY.filter(lambda s: s not in ("", "-")),
        "user_agent": NASTY.filter(lambda s: s not in ("", "-")),
        "status": st.integers(100, 999),
        "bytes": st.integers(1, 2**40),
    },
)


@settings(max_examples=300)
@given(TEXT_FIELDS)
def test_round_trip_with_nasty_text(rec: dict[str, Any]) -> None:
    rec = {"ts": "12/Mar/2024:14:05:09 +0000", **rec}
    line = COMBINED.render(rec)
    assert "\n" not in line and "\r" not in line and line.isascii()
    back = COMBINED.parse(line)
    assert {k: back.get(k) for k in rec} == rec
    assert back["bytes"] == rec.get("bytes", 0)
    assert COMMON.parse(COMMON.render(rec))["msg"] == rec["msg"]


@pytest.mark.parametrize(
    ("fmt", "logformat"), [(COMMON, COMMON_LOGFORMAT), (COMBINED, COMBINED_LOGFORMAT)]
)
def test_apache_log_parser_reads_every_line(fmt: Any, logformat: str) -> None:
    """apache-log-parser (PyPI) builds its reader from the LogFormat string itself."""
    parser = apache_log_parser.Parser(logformat)
    for n, rec in enumerate(samples(fmt, 10_000, seed=11, error_ratio=0.1)):
        line = fmt.render(rec)
        assert parser.log_line_regex.fullmatch(line), line
        got = parser.parse(line)
        assert got["remote_host"] == rec["client_ip"]
        assert (got["remote_logname"], got["remote_user"]) == ("-", rec.get("user", "-"))
        assert got["time_received"] == f"[{rec['ts']}]"
        moment = datetime.fromtimestamp(int(NOW + n / 100), UTC)
        assert got["time_received_utc_isoformat"] == moment.isoformat()
        assert got["request_first_line"] == rec["msg"]
        assert got["request_method"] == rec["method"]
        if rec["protocol"] != "HTTP/2.0":  # the parser only knows HTTP/1.x request lines
            assert got["request_url_path"] == rec["path"].partition("?")[0]
            assert got["request_http_ver"] == rec["protocol"][5:]
        assert got["status"] == str(rec["status"])
        assert got["response_bytes_clf"] == (str(rec["bytes"]) if rec["bytes"] else "-")
        if fmt is COMBINED:
            assert got["request_header_referer"] == rec.get("referer", "-")
            assert got["request_header_user_agent"] == rec.get("user_agent", "-")
        assert carried(fmt.parse(line)) == carried(rec)


# --- access logs: realistic content ---------------------------------------------------


@pytest.mark.parametrize("ratio", [0.0, 0.05, 0.4])
def test_error_ratio_is_the_5xx_share(ratio: float) -> None:
    recs = samples(COMBINED, 10_000, seed=3, error_ratio=ratio)
    classes = Counter(rec["status"] // 100 for rec in recs)
    assert classes[5] / len(recs) == pytest.approx(ratio, abs=0.015)
    # WARN's weight in the default level mix (0.15) is the 4xx share of the rest.
    assert classes[4] / len(recs) == pytest.approx((1 - ratio) * 0.15, abs=0.015)
    assert all(
        rec["level"] == {5: "ERROR", 4: "WARN"}.get(rec["status"] // 100, "INFO") for rec in recs
    )


def test_content_looks_like_a_real_site() -> None:
    recs = samples(COMBINED, 5_000, seed=4)
    paths = Counter(rec["path"] for rec in recs)
    assert paths["/healthz"] > 50 and paths["/favicon.ico"] > 20
    assert any(p.startswith("/api/v1/orders/") for p in paths)
    assert {rec["method"] for rec in recs} == {"GET", "POST", "PUT", "PATCH", "DELETE"}
    agents = Counter(rec.get("user_agent", "-").split("/")[0] for rec in recs)
    assert agents["Mozilla"] > 2_000 and agents["kube-probe"] > 20 and agents["curl"] > 20
    # Not-modified and no-content answers have no body; Apache writes it as "-".
    empty = [r for r in recs if r["status"] in (204, 304)]
    assert empty and all(r["bytes"] == 0 and COMMON.render(r).endswith(" -") for r in empty)
    assert len({rec["host"] for rec in recs}) > 5
    assert samples(COMBINED, 50, seed=4) == recs[:50]


# --- error log --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # Apache 2.4 documentation (logs.html), a threaded MPM, no client port.
        (
            "[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] "
            "[client 72.15.99.187] File does not exist: /usr/local/apache2/htdocs/favicon.ico",
            {
                "ts": "Fri Sep 09 10:42:29.902022 2011",
                "level": "error",
                "module": "core",
                "pid": 35708,
                "tid": 4328636416,
                "client_ip": "72.15.99.187",
                "msg": "File does not exist: /usr/local/apache2/htdocs/favicon.ico",
            },
        ),
        # ErrorLogFormat documentation example: IPv6 client with its port.
        (
            "[Thu May 12 08:28:57.652118 2011] [core:error] [pid 8777:tid 4326490112] "
            "[client ::1:58619] File does not exist: /usr/local/apache2/htdocs/favicon.ico",
            {
                "ts": "Thu May 12 08:28:57.652118 2011",
                "level": "error",
                "module": "core",
                "pid": 8777,
                "tid": 4326490112,
                "client_ip": "::1",
                "client_port": 58619,
                "msg": "File does not exist: /usr/local/apache2/htdocs/favicon.ico",
            },
        ),
        # Apache 2.2: no module, no fraction, no pid.
        (
            "[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server "
            "configuration: /export/home/live/ap/htdocs/test",
            {
                "ts": "Wed Oct 11 14:32:52 2000",
                "level": "error",
                "client_ip": "127.0.0.1",
                "msg": "client denied by server configuration: /export/home/live/ap/htdocs/test",
            },
        ),
        # The OS error comes before the client block, the AH code after it; prefork: no tid.
        (
            "[Tue Mar 12 14:05:09.482113 2024] [core:crit] [pid 2231] (13)Permission denied: "
            "[client 198.51.100.7:53211] AH00529: /var/www/html/.htaccess pcfg_openfile: unable "
            "to check htaccess file, ensure it is readable and that '/var/www/html/' is "
            "executable, referer: https://shop.example/",
            {
                "ts": "Tue Mar 12 14:05:09.482113 2024",
                "level": "crit",
                "module": "core",
                "pid": 2231,
                "os_errno": 13,
                "os_error": "Permission denied",
                "client_ip": "198.51.100.7",
                "client_port": 53211,
                "error_code": "AH00529",
                "msg": "/var/www/html/.htaccess pcfg_openfile: unable to check htaccess file, "
                "ensure it is readable and that '/var/www/html/' is executable",
                "referer": "https://shop.example/",
            },
        ),
        (
            "[Tue Mar 12 14:05:09.482113 2024] [proxy:error] [pid 2231:tid 140201845065472] "
            "(111)Connection refused: AH00957: HTTP: attempt to connect to 127.0.0.1:8080 "
            "(localhost) failed",
            {
                "ts": "Tue Mar 12 14:05:09.482113 2024",
                "level": "error",
                "module": "proxy",
                "pid": 2231,
                "tid": 140201845065472,
                "os_errno": 111,
                "os_error": "Connection refused",
                "error_code": "AH00957",
                "msg": "HTTP: attempt to connect to 127.0.0.1:8080 (localhost) failed",
            },
        ),
        # At debug and trace the source file and line follow the pid block.
        (
            "[Tue Mar 12 14:05:09.482113 2024] [authz_core:trace3] [pid 9:tid 7] "
            'mod_authz_core.c(820): [client 192.0.2.1:5000] AH01626: say \\"hi\\" \\\\ "ok"',
            {
                "ts": "Tue Mar 12 14:05:09.482113 2024",
                "level": "trace3",
                "module": "authz_core",
                "pid": 9,
                "tid": 7,
                "source_file": "mod_authz_core.c",
                "source_line": 820,
                "client_ip": "192.0.2.1",
                "client_port": 5000,
                "error_code": "AH01626",
                "msg": 'say "hi" \\ "ok"',
            },
        ),
        # A connection to a backend is a [remote ...]; an unknown module is empty.
        (
            "[Tue Mar 12 14:05:09.482113 2024] [:notice] [pid 1] (EAI 2)Name or service not "
            "known: [remote 10.0.3.7:8080] AH00898: Error reading from remote server",
            {
                "ts": "Tue Mar 12 14:05:09.482113 2024",
                "level": "notice",
                "pid": 1,
                "os_errno": "EAI 2",
                "os_error": "Name or service not known",
                "remote_ip": "10.0.3.7",
                "remote_port": 8080,
                "error_code": "AH00898",
                "msg": "Error reading from remote server",
            },
        ),
    ],
)
def test_error_parse_real_lines(line: str, expected: dict[str, Any]) -> None:
    assert ERROR.parse(line) == expected
    assert ERROR.looks_like(line)
    if "module" in expected and "\\" not in line:
        assert ERROR.render(expected) == line


@pytest.mark.parametrize(
    "line",
    [
        "",
        "[Tue Mar 12 14:05:09.482113 2024] [core:loud] [pid 1] x",
        "[Tue Mar 12 14:05:09.482113 2024] core:error [pid 1] x",
        "[2024-03-12T14:05:09Z] [core:error] [pid 1] x",
        "Tue Mar 12 14:05:09.482113 2024 [core:error] [pid 1] x",
        "[Tue Mar 12 14:05:09.482113 2024] [core:error] [pid 1] two\nlines",
        "AH00558: apache2: Could not reliably determine the server's fully qualified domain name",
    ],
)
def test_error_refuses(line: str) -> None:
    with pytest.raises(FormatError, match="apache_error"):
        ERROR.parse(line)


ERROR_RECORDS = st.fixed_dictionaries(
    {
        "ts": st.sampled_from(["Tue Mar 12 14:05:09.482113 2024", "Sat Mar 02 04:05:06 2024"]),
        "level": st.sampled_from(["emerg", "crit", "error", "warn", "notice", "debug", "trace8"]),
        "msg": NASTY,
    },
    optional={
        "module": st.from_regex(r"[a-z_0-9]{1,12}", fullmatch=True),
        "pid": st.integers(1, 2**22),
        "source_file": st.from_regex(r"[a-z_]{1,12}\.c", fullmatch=True),
        "os_errno": st.integers(1, 200_000),
        "os_error": NASTY,
        "client_ip": st.from_regex(r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}", fullmatch=True),
        "error_code": st.from_regex(r"AH[0-9]{5}", fullmatch=True),
        "referer": NASTY.filter(bool),
    },
)


@settings(max_examples=400)
@given(ERROR_RECORDS, st.integers(1, 2**48), st.integers(1, 65_535), st.integers(1, 9_999))
def test_error_round_trip_with_nasty_text(
    rec: dict[str, Any], tid: int, port: int, at: int
) -> None:
    if "pid" in rec:
        rec["tid"] = tid
    if "client_ip" in rec:
        rec["client_port"] = port
    if "source_file" in rec:
        rec["source_line"] = at
    if "os_errno" in rec:
        rec.setdefault("os_error", "")
    else:
        rec.pop("os_error", None)
    line = ERROR.render(rec)
    assert "\n" not in line and "\r" not in line
    back = ERROR.parse(line)
    assert back == {"module": "core", **rec}


# An Apache 2.4 error line read straight from do_errorlog_default() in server/log.c, not
# from our module: no error-log parser on PyPI knows this layout.
STRICT_ERROR = re.compile(
    r"\[(?P<ts>(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct"
    r"|Nov|Dec) \d\d \d\d:\d\d:\d\d\.\d{6} \d{4})\] "
    r"\[(?P<module>[a-z_0-9]+):"
    r"(?P<level>emerg|alert|crit|error|warn|notice|info|debug|trace[1-8])\] "
    r"\[pid (?P<pid>\d+)(?::tid (?P<tid>\d+))?\] "
    r"(?:(?P<file>[a-z_0-9]+\.c)\((?P<line>\d+)\): )?"
    r"(?:\((?P<errno>\d+)\)(?P<oserr>[^:]+): )?"
    r"(?:\[client (?P<ip>[0-9.]+):(?P<port>\d+)\] )?"
    r"(?:(?P<code>AH\d{5}): )?(?P<msg>[ -~]*?)(?:, referer: (?P<referer>[ -~]*))?"
)


def test_every_sampled_error_line_follows_the_httpd_layout() -> None:
    recs = samples(ERROR, 10_000, seed=12, error_ratio=0.2)
    for rec in recs:
        line = ERROR.render(rec)
        match = STRICT_ERROR.fullmatch(line)
        assert match is not None, line
        got = {k: v for k, v in match.groupdict().items() if v is not None}
        assert got["ts"] == rec["ts"] and got["level"] == rec["level"]
        assert (got["module"], int(got["pid"]), got["msg"]) == (
            rec["module"],
            rec["pid"],
            rec["msg"],
        )
        assert int(got.get("tid", 0)) == rec.get("tid", 0)
        assert got.get("code") == rec.get("error_code")
        assert int(got.get("port", 0)) == rec.get("client_port", 0)
        assert got.get("referer") == rec.get("referer")
        assert (got.get("file"), int(got.get("line", 0))) == (
            rec.get("source_file"),
            rec.get("source_line", 0),
        )
        assert carried(ERROR.parse(line)) == carried(rec)
    levels = Counter(rec["level"] for rec in recs)
    assert levels["error"] / len(recs) == pytest.approx(0.2 * 0.95, abs=0.02)
    assert {"crit", "warn", "notice", "info", "debug"} <= set(levels)
    assert any(level.startswith("trace") for level in levels)
    codes = Counter(rec.get("error_code") for rec in recs)
    assert {"AH00128", "AH01630", "AH00124", "AH00957"} <= set(codes)
    threaded = {rec["host"]: "tid" in rec for rec in recs}
    assert set(threaded.values()) == {True, False}


def test_error_render_takes_any_record() -> None:
    rec = app_record(random.Random(1), ContentOptions(), 1_710_252_309.482)
    line = ERROR.render(rec)
    assert line.startswith(f"[Tue Mar 12 14:05:09.482000 2024] [core:{rec['level'].lower()}] ")
    assert ERROR.parse(line)["msg"] == rec["msg"]
    assert ERROR.render({"level": "FATAL", "msg": "x", "ts": 0}) == (
        "[Thu Jan 01 00:00:00.000000 1970] [core:crit] x"
    )


# --- Ingest -----------------------------------------------------------------------------


def test_ingest_normalises_access_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [
        '192.0.2.5 - - [12/Mar/2024:16:05:09 +0200] "GET / HTTP/1.1" 200 5 "-" "curl/8.5.0"',
        '192.0.2.5 - - [12/Mar/2024:14:05:09 +0000] "GET /x HTTP/1.1" 404 5 "-" "-"',
        '192.0.2.5 - - [12/Mar/2024:14:05:09 +0000] "GET /y HTTP/1.1" 502 5 "-" "-"',
    ]
    out = ingest(monkeypatch, COMBINED, lines)
    assert [(o["ts"], o["level"], o["msg"]) for o in out] == [
        ("2024-03-12T14:05:09.000Z", "INFO", "GET / HTTP/1.1"),
        ("2024-03-12T14:05:09.000Z", "WARN", "GET /x HTTP/1.1"),
        ("2024-03-12T14:05:09.000Z", "ERROR", "GET /y HTTP/1.1"),
    ]
    assert out[0]["status"] == 200 and out[0]["client_ip"] == "192.0.2.5"
    assert not any(o["ts_missing"] or o["level_missing"] for o in out)


def test_ingest_normalises_every_error_level(monkeypatch: pytest.MonkeyPatch) -> None:
    words = ["emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"]
    words += [f"trace{n}" for n in range(1, 9)]
    lines = [f"[Tue Mar 12 14:05:09.482113 2024] [core:{w}] [pid 1] AH00001: m" for w in words]
    lines.append("[Sat Mar 02 04:05:06 2024] [error] [client 192.0.2.1] 2.2 line")
    out = ingest(monkeypatch, ERROR, lines)
    assert [o["level"] for o in out] == [
        *("FATAL", "FATAL", "FATAL", "ERROR", "WARN", "INFO", "INFO", "DEBUG"),
        *["TRACE"] * 8,
        "ERROR",
    ]
    assert {o["ts"] for o in out[:-1]} == {"2024-03-12T14:05:09.482Z"}
    assert out[-1]["ts"] == "2024-03-02T04:05:06.000Z"
    assert not any(o["ts_missing"] or o["level_missing"] for o in out)


# --- detection --------------------------------------------------------------------------


def test_looks_like_is_specific() -> None:
    for fmt in (COMMON, COMBINED, ERROR):
        assert [line for line in OTHER_LINES if fmt.looks_like(line)] == []
        rec = samples(fmt, 1)[0]
        assert fmt.looks_like(fmt.render(rec))
    common = COMMON.render(samples(COMMON, 1)[0])
    combined = COMBINED.render(samples(COMBINED, 1)[0])
    assert not COMBINED.looks_like(common) and not COMMON.looks_like(combined)


# --- hostile input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "line"),
    [
        (COMBINED, "a b " + ' [12/Mar/2024:14:05:09 +0000] "' * 5_000),
        (COMBINED, 'a b c [12/Mar/2024:14:05:09 +0000] "' + '\\"' * 50_000 + '" 200 5 "-"'),
        (COMMON, "a b " + "x " * 50_000),
    ],
)
def test_hostile_lines_are_refused_without_backtracking(fmt: Any, line: str) -> None:
    """Ingest parses lines from anyone: the patterns are possessive or atomic, so these
    lines are refused in linear time (a backtracking pattern would run into the timeout)."""
    with pytest.raises(FormatError):
        fmt.parse(line)
    assert not fmt.looks_like(line)


def test_hostile_error_lines_parse_without_backtracking() -> None:
    head = "[Tue Mar 12 14:05:09.482113 2024] [core:error] "
    for tail in ("(1)x: " * 20_000, "[pid " + "1" * 50_000, ", referer: " * 20_000):
        rec = ERROR.parse(head + tail)
        assert len(rec["msg"]) + len(rec.get("referer", "")) > len(tail) // 2
