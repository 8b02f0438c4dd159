"""Emitting over syslog TCP and UDP to plain socket servers, framing checked byte for byte.

The servers here are a few lines of ``socket`` code that keep every byte they receive;
the tests split the bytes themselves (RFC 6587 octet counting: ``LEN SP MSG``; LF
framing: ``MSG LF``; UDP: one datagram per message) and check that exactly the emitted
records arrived, in order, each carrying its run_id, stream and seq.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import orjson
import pytest

from clients.syslog import SyslogTcpTransport, SyslogUdpTransport
from clients.transports import Transport
from emitters.content import ContentOptions
from emitters.emit import EmitLoop, EmitOptions, EmitResult
from emitters.formats import get_format
from emitters.rate import Schedule
from emitters.source import Accounting, EventSource
from services.common.model import Batch


class TcpSink:
    """Accepts connections one after another and keeps what each one sent."""

    def __init__(self, close_first_after: int = 0) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections: list[bytes] = []
        self._changed = threading.Condition()
        self._close_first_after = close_first_after
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data = bytearray()
                limit = self._close_first_after if not self.connections else 0
                while chunk := conn.recv(65536):
                    data += chunk
                    if limit and len(data) >= limit:
                        break
            # Told only once the connection is closed: a test waiting for it then knows the
            # peer is gone (recorded before the close, a batch sent at once could meet it).
            with self._changed:
                self.connections.append(bytes(data))
                self._changed.notify_all()

    def close(self, expect: int = 1) -> list[bytes]:
        """What the first ``expect`` connections sent, once each has ended."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.connections) >= expect, timeout=10)
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        self.server.close()
        self._thread.join(timeout=5)
        return self.connections


def octet_frames(data: bytes) -> list[bytes]:
    """Split RFC 6587 octet-counted frames; fails on anything else."""
    frames: list[bytes] = []
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        assert data[pos:space] == str(length).encode()  # digits only, no padding
        frames.append(data[space + 1 : space + 1 + length])
        pos = space + 1 + length
    assert pos == len(data)
    return frames


def _emit(transport: Transport, fmt: str, count: int, **opts: object) -> EmitResult:
    source = EventSource(get_format(fmt), ContentOptions(), Accounting("run-s", "sys#1"), seed=3)
    options = EmitOptions("syslog-emitter", batched=False, **opts)  # type: ignore[arg-type]
    loop = EmitLoop(source, Schedule.constant(5000.0, count=count), transport, options)
    try:
        return loop.run()
    finally:
        transport.close()


@pytest.fixture
def tcp_sink() -> Iterator[TcpSink]:
    sink = TcpSink()
    yield sink
    sink.server.close()


def test_octet_counting_frames_every_record_exactly(tcp_sink: TcpSink) -> None:
    result = _emit(SyslogTcpTransport("127.0.0.1", tcp_sink.port), "json", 500, batch_size=64)
    (data,) = tcp_sink.close()
    frames = octet_frames(data)
    records = [orjson.loads(frame) for frame in frames]
    assert [r["seq"] for r in records] == list(range(500))
    assert {(r["run_id"], r["stream"]) for r in records} == {("run-s", "sys#1")}
    assert result.sent == result.accepted == 500
    assert result.ok


def test_lf_framing_ends_every_record_with_one_line_feed(tcp_sink: TcpSink) -> None:
    transport = SyslogTcpTransport("127.0.0.1", tcp_sink.port, framing="lf")
    result = _emit(transport, "logfmt", 300, batch_size=50)
    (data,) = tcp_sink.close()
    assert data.endswith(b"\n")
    lines = data[:-1].split(b"\n")
    parsed = [get_format("logfmt").parse(line.decode()) for line in lines]
    assert [int(p["seq"]) for p in parsed] == list(range(300))
    assert result.accepted == 300


def test_lf_framing_refuses_a_line_with_a_line_break(tcp_sink: TcpSink) -> None:
    transport = SyslogTcpTransport("127.0.0.1", tcp_sink.port, framing="lf")
    result = transport.send(Batch([{"raw": "one"}, {"raw": "two\nthree"}, {"raw": "four"}]))
    transport.close()
    assert (result.accepted, result.rejected) == (2, 1)
    assert result.rejections[0].index == 1
    assert tcp_sink.close() == [b"one\nfour\n"]


def test_octet_counting_counts_bytes_not_characters(tcp_sink: TcpSink) -> None:
    transport = SyslogTcpTransport("127.0.0.1", tcp_sink.port)
    transport.send(Batch([{"raw": "zażółć\nline"}, {"raw": "x"}]))
    transport.close()
    assert tcp_sink.close() == [b"15 za\xc5\xbc\xc3\xb3\xc5\x82\xc4\x87\nline1 x"]


def test_a_connection_the_peer_closed_is_replaced_before_the_next_batch() -> None:
    sink = TcpSink(close_first_after=1)
    transport = SyslogTcpTransport("127.0.0.1", sink.port)
    first = transport.send(Batch([{"raw": "a"}]))
    # The peer reads the first batch and closes; the next batch goes on a new connection.
    with sink._changed:
        sink._changed.wait_for(lambda: bool(sink.connections), timeout=10)
    second = transport.send(Batch([{"raw": "b"}, {"raw": "c"}]))
    transport.close()
    assert (first.accepted, second.accepted) == (1, 2)
    assert sink.close(expect=2) == [b"1 a", b"1 b1 c"]


def test_udp_sends_one_datagram_per_record_and_refuses_oversized_ones() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    port = server.getsockname()[1]
    transport = SyslogUdpTransport("127.0.0.1", port, max_datagram=100)
    batch = Batch([{"raw": "x" * 100}, {"raw": "y" * 101}, {"raw": "short"}])
    result = transport.send(batch)
    server.settimeout(5)
    got = [server.recv(65536), server.recv(65536)]
    assert got == [b"x" * 100, b"short"]
    assert (result.accepted, result.rejected) == (2, 1)
    assert result.rejections[0].reason == "too_large"

    result2 = _emit(SyslogUdpTransport("127.0.0.1", port, max_datagram=8192), "json", 200)
    seqs = [orjson.loads(server.recv(65536))["seq"] for _ in range(200)]
    server.close()
    # Loopback UDP with a large receive buffer drops nothing here.
    assert seqs == list(range(200))
    assert result2.accepted == 200


def test_a_tcp_peer_that_is_gone_counts_the_batch_as_failed() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    result = _emit(SyslogTcpTransport("127.0.0.1", port, timeout=2.0), "json", 20, batch_size=10)
    assert result.failed == 20
    assert result.errors["downstream_unavailable"] == 2
    assert not result.ok
