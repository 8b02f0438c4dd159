"""What real senders put on the wire reads as syslog5424 and syslog3164, strictly.

util-linux ``logger`` sends one message per UDP datagram to a socket opened here on port
0; syslog-ng's ``loggen -P`` sends RFC 6587 octet-counted frames over TCP. Each captured
message is parsed by the format and checked by the RFC grammars of the unit tests.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from emitters.formats import detect_format
from emitters.formats.syslog3164 import Syslog3164Format
from emitters.formats.syslog5424 import Syslog5424Format
from services.ingest.levels import canonical_level
from tests.unit.emitters.test_format_syslog5424 import Abnf5424

LOGGER = shutil.which("logger")
LOGGEN = shutil.which("loggen")
needs_logger = pytest.mark.skipif(LOGGER is None, reason="logger (util-linux) not installed")
needs_loggen = pytest.mark.skipif(LOGGEN is None, reason="loggen (syslog-ng-core) not installed")
S5424 = Syslog5424Format()
S3164 = Syslog3164Format()
TEXT = "h\u00e9llo w\u00f6rld: payment declined"


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    yield sock
    sock.close()


def logger_line(sock: socket.socket, *flags: str) -> str:
    port = str(sock.getsockname()[1])
    assert LOGGER is not None
    cmd = [LOGGER, "-d", "-n", "127.0.0.1", "-P", port, *flags, TEXT]
    subprocess.run(cmd, check=True, timeout=20, env=os.environ | {"LC_ALL": "C.UTF-8"})
    return sock.recv(65_535).decode("utf-8")


@needs_logger
@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--rfc5424"], {"level": "<13>", "syslog_facility": 1}),
        (["--rfc5424=notq", "-p", "local3.err"], {"level": "<155>", "syslog_facility": 19}),
        (["--rfc5424=notime,nohost", "-t", "billing"], {"service": "billing"}),
        (["--rfc5424", "-i", "--msgid", "PAY01"], {"msgid": "PAY01"}),
    ],
)
def test_logger_rfc5424_lines(
    udp: socket.socket, flags: list[str], expected: dict[str, Any]
) -> None:
    line = logger_line(udp, *flags)
    parsed = S5424.parse(line)
    assert parsed | expected == parsed
    assert parsed["msg"] == TEXT
    assert canonical_level(parsed["level"]) in ("INFO", "ERROR")
    assert detect_format(line) == "syslog5424"
    grammar = Abnf5424(line).parse()
    assert grammar["msg"] == TEXT
    if "-i" in flags:
        assert parsed["pid"] == int(grammar["procid"])
    if "notime,nohost" in flags[0]:
        assert "ts" not in parsed and "host" not in parsed
    else:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+[+-]\d\d:\d\d", parsed["ts"])


@needs_logger
def test_logger_structured_data_reads_back_unescaped(udp: socket.socket) -> None:
    line = logger_line(
        udp, "--rfc5424", "--sd-id", "zoo@123", "--sd-param", 'tiger="hungry \\] \\"x"'
    )
    parsed = S5424.parse(line)
    assert parsed["sd"]["zoo@123"] == {"tiger": 'hungry ] "x'}
    assert parsed["sd"]["timeQuality"]["tzKnown"] == "1"
    assert dict(Abnf5424(line).parse()["sd"])["zoo@123"] == [("tiger", 'hungry ] "x')]


@needs_logger
@pytest.mark.parametrize("flags", [["--rfc3164"], ["--rfc3164", "-i", "-t", "CRON"]])
def test_logger_rfc3164_lines(udp: socket.socket, flags: list[str]) -> None:
    line = logger_line(udp, *flags)
    parsed = S3164.parse(line)
    assert parsed["msg"] == TEXT
    assert parsed["level"] == "<13>"
    assert re.fullmatch(r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d", parsed["ts"])
    assert detect_format(line) == "syslog3164"
    if "-i" in flags:
        assert parsed["service"] == "CRON" and isinstance(parsed["pid"], int)


def loggen_frames(*flags: str) -> list[str]:
    """What ``loggen -S -P`` sends for 3 messages, split by its octet counts."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(20)
    assert LOGGEN is not None
    cmd = [LOGGEN, "-S", "-P", "-n", "3", "-s", "200", *flags]
    sender = subprocess.Popen([*cmd, "127.0.0.1", str(server.getsockname()[1])])
    conn, _ = server.accept()
    conn.settimeout(20)
    data = b""
    while chunk := conn.recv(65_535):
        data += chunk
    conn.close()
    server.close()
    assert sender.wait(timeout=20) == 0
    frames = []
    while data:
        length, _, rest = data.partition(b" ")
        frames.append(rest[: int(length)])
        data = rest[int(length) :]
    # loggen ends each counted message with a LF, which the listener strips like Ingest.
    return [frame.decode("utf-8").rstrip("\n") for frame in frames]


@needs_loggen
@pytest.mark.parametrize("sdata", [None, '[test name="value"]'])
def test_loggen_rfc5424_frames(sdata: str | None) -> None:
    frames = loggen_frames(*(["--sdata", sdata] if sdata else []))
    assert len(frames) == 3
    for n, line in enumerate(frames):
        parsed = S5424.parse(line)
        assert (parsed["service"], parsed["pid"], parsed["level"]) == ("prg00000", 1234, "<38>")
        assert parsed["msg"].startswith(f"seq: {n:010d}, thread: 0000, runid: ")
        assert parsed.get("sd") == ({"test": {"name": "value"}} if sdata else None)
        assert detect_format(line) == "syslog5424"
        # loggen's SD-ID "test" is not registered with IANA: only the ABNF applies.
        assert Abnf5424(line, strict=sdata is None).parse()["bom"] is True
