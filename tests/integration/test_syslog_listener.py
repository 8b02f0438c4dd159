"""The syslog listener with real senders: util-linux ``logger`` and syslog-ng's ``loggen``
over TCP (octet counting and LF framing) and UDP, and hostile or broken connections."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.ingest.wiring import IngestGateway
from tests.conftest import GatewayFactory, grow_fs, stored_lines

LOGGER = shutil.which("logger")
LOGGEN = shutil.which("loggen")
needs_logger = pytest.mark.skipif(LOGGER is None, reason="logger (util-linux) not installed")
needs_loggen = pytest.mark.skipif(LOGGEN is None, reason="loggen (syslog-ng-core) not installed")
FORMAT_OF = {"rfc5424": "syslog5424", "rfc3164": "syslog3164"}
LOGGEN_SEQ = re.compile(r"seq: (\d{10}), thread: (\d{4})")

Records = list[dict[str, Any]]


@pytest.fixture
def syslog_gw(start_gateway: GatewayFactory) -> IngestGateway:
    return start_gateway(**{"syslog.batch_delay_ms": 10})


def ports(gw: IngestGateway) -> tuple[int, int]:
    assert gw.syslog_addresses is not None
    return gw.syslog_addresses.tcp_port, gw.syslog_addresses.udp_port


def wait_stored(
    gw: IngestGateway, done: Callable[[Records], bool], timeout: float = 30.0
) -> Records:
    """The sink's records once ``done(records)`` holds (polled), or the last seen."""
    deadline = time.monotonic() + timeout
    while True:
        lines = stored_lines(gw.cfg.sink.dir)
        if done(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def with_token(token: str) -> Callable[[Records], bool]:
    return lambda lines: any(token in r["msg"] for r in lines)


def metric(gw: IngestGateway, name: str, **labels: str) -> float:
    value = gw.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def tcp(gw: IngestGateway) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", ports(gw)[0]), timeout=10)
    return sock


def closed_by_server(sock: socket.socket, timeout: float = 10.0) -> bool:
    """Whether the server closes ``sock`` within ``timeout`` (reads until EOF or reset)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


def run_logger(gw: IngestGateway, transport: str, rfc: str, extra: list[str], text: str) -> None:
    tcp_port, udp_port = ports(gw)
    port = tcp_port if transport == "tcp" else udp_port
    assert LOGGER is not None
    cmd = [LOGGER, "--server", "127.0.0.1", "--port", str(port), f"--{transport}"]
    cmd += [f"--{rfc}", "-t", "checkout", "--id=4412"]
    subprocess.run([*cmd, *extra, text], check=True, timeout=30)


LOGGER_CASES = [
    ("tcp", "rfc5424", ["--octet-count"]),
    ("tcp", "rfc5424", []),
    ("tcp", "rfc3164", ["--octet-count"]),
    ("tcp", "rfc3164", []),
    ("udp", "rfc5424", []),
    ("udp", "rfc3164", []),
]


@needs_logger
@pytest.mark.parametrize(("transport", "rfc", "extra"), LOGGER_CASES)
def test_logger_messages_are_stored_once(
    syslog_gw: IngestGateway, transport: str, rfc: str, extra: list[str]
) -> None:
    tokens = [uuid.uuid4().hex for _ in range(3)]
    for token in tokens:
        run_logger(syslog_gw, transport, rfc, extra, f"payment declined {token}")
    lines = wait_stored(syslog_gw, lambda ls: all(with_token(t)(ls) for t in tokens))
    for token in tokens:
        hits = [r for r in lines if token in r["msg"]]
        assert len(hits) == 1, f"{token} stored {len(hits)} times"
        assert hits[0]["batch_id"].startswith("syslog-")
        assert hits[0]["emitter"] == "syslog"


@needs_logger
@pytest.mark.parametrize(("transport", "rfc", "extra"), LOGGER_CASES)
def test_logger_messages_are_parsed_by_their_rfc(
    syslog_gw: IngestGateway, transport: str, rfc: str, extra: list[str]
) -> None:
    token = uuid.uuid4().hex
    run_logger(syslog_gw, transport, rfc, extra, f"payment declined {token}")
    (rec,) = [r for r in wait_stored(syslog_gw, with_token(token)) if token in r["msg"]]
    assert rec["format"] == FORMAT_OF[rfc]
    assert rec["msg"].endswith(f"payment declined {token}")
    assert rec["service"] == "checkout"
    assert rec["host"] == socket.gethostname()
    assert not rec["ts_missing"] and not rec["level_missing"]
    assert rec["level"] == "INFO"  # logger's default priority, user.notice


@needs_logger
def test_a_line_without_host_gets_the_peers_address(syslog_gw: IngestGateway) -> None:
    token = uuid.uuid4().hex
    run_logger(syslog_gw, "udp", "rfc5424=nohost", [], f"no host here {token}")
    (rec,) = [r for r in wait_stored(syslog_gw, with_token(token)) if token in r["msg"]]
    assert rec["format"] == "syslog5424"
    assert rec["host"] == "127.0.0.1"


def test_a_bsd_line_without_host_gets_the_peers_address(syslog_gw: IngestGateway) -> None:
    token = uuid.uuid4().hex
    with tcp(syslog_gw) as sock:
        sock.sendall(f"<11>Mar  2 04:05:06 sshd[7]: ERROR no host here {token}\n".encode())
    (rec,) = [r for r in wait_stored(syslog_gw, with_token(token)) if token in r["msg"]]
    assert rec["host"] == "127.0.0.1"
    assert rec["service"] == "sshd" and rec["level"] == "ERROR"
    assert rec["format"] != "text"


def loggen(gw: IngestGateway, flags: list[str], count: int, connections: int = 1) -> str:
    tcp_port, udp_port = ports(gw)
    assert LOGGEN is not None
    port = udp_port if "--dgram" in flags else tcp_port
    cmd = [LOGGEN, "--inet", *flags, "--number", str(count)]
    cmd += [f"--active-connections={connections}", "127.0.0.1", str(port)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout + done.stderr


def loggen_seqs(lines: Records) -> Counter[tuple[str, str]]:
    """(thread, seq) of every stored loggen message, counted."""
    found: Counter[tuple[str, str]] = Counter()
    for rec in lines:
        match = LOGGEN_SEQ.search(rec["msg"])
        if match:
            found[(match.group(2), match.group(1))] += 1
    return found


@needs_loggen
@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(["--stream", "--syslog-proto"], id="tcp-5424-octet-counting"),
        pytest.param(["--stream", "--syslog-proto", "--no-framing"], id="tcp-5424-lf"),
        pytest.param(["--stream"], id="tcp-bsd-lf"),
        pytest.param(["--dgram", "--syslog-proto", "--rate", "2000"], id="udp-5424"),
    ],
)
def test_loggen_messages_are_each_stored_exactly_once(
    syslog_gw: IngestGateway, flags: list[str]
) -> None:
    connections = 1 if "--dgram" in flags else 3
    count = 1000 if "--dgram" in flags else 3000
    rate = [] if "--rate" in flags else ["--rate", "1000000"]
    loggen(syslog_gw, [*flags, *rate], count, connections)
    expected = count * connections
    lines = wait_stored(syslog_gw, lambda ls: len(ls) >= expected)
    seqs = loggen_seqs(lines)
    assert len(lines) == expected
    assert sum(seqs.values()) == expected and set(seqs.values()) == {1}
    threads = {thread for thread, _ in seqs}
    for thread in threads:
        assert sorted(int(s) for t, s in seqs if t == thread) == list(range(count))
    # loggen's BSD-style line has an ISO time, not RFC 3164's: the lenient format reads it.
    assert {r["format"] for r in lines} == {"syslog5424" if "--syslog-proto" in flags else "syslog"}
    assert {r["service"] for r in lines} == {"prg00000"}
    assert not any(r["ts_missing"] or r["level_missing"] for r in lines)


def test_oversized_frames_are_dropped_and_counted_the_rest_kept(
    start_gateway: GatewayFactory,
) -> None:
    gw = start_gateway(**{"syslog.max_message_bytes": 1024, "syslog.batch_delay_ms": 10})
    big = b"<13>1 - - app - - - " + b"x" * 2000
    ok = [f"<13>Mar  2 04:05:06 web app: fits {n}".encode() for n in range(4)]
    with tcp(gw) as counted:
        counted.sendall(b"".join(b"%d %s" % (len(m), m) for m in (ok[0], big, ok[1])))
    with tcp(gw) as lines:
        lines.sendall(ok[2] + b"\n" + big + b"\n" + ok[3] + b"\n")
    stored = wait_stored(gw, lambda ls: len(ls) >= 4)
    assert sorted(r["msg"] for r in stored) == [f"fits {n}" for n in range(4)]
    deadline = time.monotonic() + 10
    while metric(gw, "logops_ingest_syslog_dropped_total", reason="oversized") < 2:
        assert time.monotonic() < deadline, "oversized frames not counted"
        time.sleep(0.05)
    assert metric(gw, "logops_ingest_syslog_dropped_total", reason="oversized") == 2


def test_an_idle_connection_is_closed_after_its_lines_are_kept(
    start_gateway: GatewayFactory,
) -> None:
    gw = start_gateway(**{"syslog.idle_timeout_sec": 0.5, "syslog.batch_delay_ms": 10})
    token = uuid.uuid4().hex
    with tcp(gw) as quiet, tcp(gw) as talker:
        talker.sendall(f"<13>Mar  2 04:05:06 web app: then silence {token}".encode())
        assert closed_by_server(quiet)
        assert closed_by_server(talker)
    # The last line had no LF: kept when the connection was closed.
    assert with_token(token)(wait_stored(gw, with_token(token)))
    assert metric(gw, "logops_ingest_syslog_connections_closed_total", reason="idle") == 2


def test_connections_over_the_cap_are_closed_at_once(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(**{"syslog.max_connections": 2, "syslog.batch_delay_ms": 10})
    first, second = tcp(gw), tcp(gw)
    for n, sock in enumerate((first, second)):
        sock.sendall(f"<13>Mar  2 04:05:06 web app: held {n}\n".encode())
    wait_stored(gw, lambda ls: len(ls) == 2)
    with tcp(gw) as third:
        assert closed_by_server(third)
    assert metric(gw, "logops_ingest_syslog_connections_closed_total", reason="over_cap") == 1
    first.close()
    deadline = time.monotonic() + 10
    while metric(gw, "logops_ingest_syslog_connections") > 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with tcp(gw) as fourth:
        fourth.sendall(b"<13>Mar  2 04:05:06 web app: room again\n")
    assert with_token("room again")(wait_stored(gw, with_token("room again")))
    second.close()


def test_garbage_closes_only_its_own_connection(syslog_gw: IngestGateway) -> None:
    gw = syslog_gw
    good = tcp(gw)
    good.sendall(b"<13>Mar  2 04:05:06 web app: before the garbage\n")
    with tcp(gw) as bad_header:
        bad_header.sendall(b"12abc not a length\n" + os.urandom(4096))
        assert closed_by_server(bad_header)
    for _ in range(5):
        with tcp(gw) as noise:
            noise.sendall(b"<" + os.urandom(64 * 1024))
    udp_port = ports(gw)[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for _ in range(20):
            udp.sendto(os.urandom(1500), ("127.0.0.1", udp_port))
    good.sendall(b"<13>Mar  2 04:05:06 web app: after the garbage\n")
    good.close()
    lines = wait_stored(gw, with_token("after the garbage"))
    kept = [r["msg"] for r in lines if "the garbage" in r["msg"]]
    assert kept == ["before the garbage", "after the garbage"]
    assert metric(gw, "logops_ingest_syslog_connections_closed_total", reason="framing") == 1
    assert gw.failure is None and gw.core.readiness() is None


def test_stop_stores_every_message_already_sent(start_gateway: GatewayFactory) -> None:
    gw = start_gateway(**{"syslog.batch_delay_ms": 10})
    with tcp(gw) as sock:
        sock.sendall(b"<13>Mar  2 04:05:06 web app: first\n")
        wait_stored(gw, lambda ls: len(ls) == 1)
        sock.sendall(b"".join(b"<13>Mar  2 04:05:06 web app: n %d\n" % n for n in range(5000)))
        gw.stop(grace=5)
    lines = stored_lines(gw.cfg.sink.dir)
    assert len(lines) == 5001
    # In the order sent: batches are stored in the order their messages were read.
    assert [r["msg"] for r in lines[1:]] == [f"n {n}" for n in range(5000)]


def test_a_full_disk_stops_reading_and_loses_nothing(
    start_gateway: GatewayFactory, tiny_fs: Path
) -> None:
    gw = start_gateway(
        sink_dir=tiny_fs / "sink",
        **{"syslog.batch_delay_ms": 10, "syslog.max_pending": 500, "syslog.batch_records": 100},
    )
    count = 100_000  # more than the kernel's socket buffers hold (several MB on loopback)
    payload = b"".join(
        b"<13>Mar  2 04:05:06 web app: n %06d %s\n" % (n, b"p" * 60) for n in range(count)
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
    sock.connect(("127.0.0.1", ports(gw)[0]))
    sock.settimeout(1.0)
    sent = 0
    try:
        while sent < len(payload):
            sent += sock.send(payload[sent : sent + 65536])
    except TimeoutError:
        pass  # the listener stopped reading: the disk is full, TCP holds the rest
    assert sent < len(payload), "the sender was never held back"
    assert gw.core.readiness() is not None
    # Held in memory: the hand-off's capacity and at most one read (256 KiB) beyond it.
    line_bytes = len(payload) // count
    assert metric(gw, "logops_ingest_syslog_pending_messages") <= 500 + 256 * 1024 // line_bytes
    grow_fs(tiny_fs, "128m")
    sock.settimeout(30)
    sock.sendall(payload[sent:])
    sock.close()
    lines = wait_stored(gw, lambda ls: len(ls) >= count, timeout=60)
    assert [r["msg"][:8] for r in lines] == [f"n {n:06d}" for n in range(count)]
    assert metric(gw, "logops_ingest_syslog_dropped_total", reason="unavailable") == 0
    assert metric(gw, "logops_ingest_syslog_paused_seconds_total") > 0


def test_logops_ingest_announces_its_syslog_ports_or_none(tmp_path: Path) -> None:
    from clients.launcher import GatewayProcess

    base = ["ingest", "--http-port", "0", "--grpc-port", "0"]
    sink = tmp_path / "sink"
    with GatewayProcess([*base, "--syslog-port", "0", "--sink-dir", str(sink)]) as gw:
        host, port = str(gw.listening["syslog_tcp"]).rsplit(":", 1)
        assert host == "127.0.0.1" and gw.listening["syslog_udp"].startswith("127.0.0.1:")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"<13>Mar  2 04:05:06 web app: over the CLI's port\n")
        deadline = time.monotonic() + 30
        while not any("over the CLI" in r["msg"] for r in stored_lines(sink)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    with GatewayProcess([*base, "--no-syslog", "--sink-dir", str(tmp_path / "off")]) as gw:
        assert gw.listening["syslog_tcp"] is None and gw.listening["syslog_udp"] is None


def test_out_of_descriptors_the_listener_waits_and_recovers(tmp_path: Path) -> None:
    """At the process's descriptor limit accept() fails (EMFILE): the listener keeps
    serving the connections it has and accepts again once descriptors are free."""
    from clients.launcher import GatewayProcess

    prlimit = shutil.which("prlimit")
    if prlimit is None:
        pytest.skip("prlimit (util-linux) not installed")
    sink = tmp_path / "sink"
    args = ["ingest", "--http-port", "0", "--grpc-port", "0", "--syslog-port", "0"]
    gw = GatewayProcess([*args, "--sink-dir", str(sink)])
    gw.args = [prlimit, "--nofile=96:96", *gw.args]
    with gw:
        started = time.monotonic()
        host, port = str(gw.listening["syslog_tcp"]).rsplit(":", 1)
        held = [socket.create_connection((host, int(port)), timeout=10) for _ in range(120)]
        held[0].sendall(b"<13>Mar  2 04:05:06 web app: while full\n")
        for sock in held:
            sock.close()
        deadline = time.monotonic() + 30
        while not any(e.get("event") == "accept_failed" for e in gw.logs):
            assert time.monotonic() < deadline, "the descriptor limit was never reached"
            time.sleep(0.05)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"<13>Mar  2 04:05:06 web app: after the limit\n")
        while not any("after the limit" in r["msg"] for r in stored_lines(sink)):
            assert time.monotonic() < deadline, "no connection accepted after the limit"
            time.sleep(0.05)
        # It stops watching the listener until its next tick (0.5 s), not spinning on it:
        # one warning a tick at most, not a flood.
        failed = sum(e.get("event") == "accept_failed" for e in gw.logs)
        assert failed <= 2 + 2 * (time.monotonic() - started)


def test_a_dead_syslog_reader_fails_the_gateway_like_a_dead_front(
    start_gateway: GatewayFactory,
) -> None:
    failed: list[bool] = []
    gw = start_gateway()
    gw._watch.on_failure = lambda: failed.append(True)
    assert gw.syslog is not None
    # The reader's selector closed under it: its next select() raises, the thread ends.
    gw.syslog.server._selector.close()
    deadline = time.monotonic() + 10
    while gw.failure is None:
        assert time.monotonic() < deadline, "the reader's death went unnoticed"
        time.sleep(0.05)
    assert gw.failure == "the syslog front stopped serving"
    assert gw.core.readiness() == gw.failure
    assert failed == [True]


def test_the_listener_serves_ipv6_and_names_the_peer(start_gateway: GatewayFactory) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    try:
        gw = start_gateway(**{"syslog.host": "::1", "syslog.batch_delay_ms": 10})
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    assert gw.syslog_addresses is not None
    assert gw.syslog_addresses.tcp_target.startswith("[::1]:")
    with socket.create_connection(("::1", gw.syslog_addresses.tcp_port), timeout=10) as sock:
        sock.sendall(b"<13>1 - - app - - - over IPv6\n")
    (rec,) = wait_stored(gw, with_token("over IPv6"))
    assert rec["host"] == "::1" and rec["format"] == "syslog5424"
