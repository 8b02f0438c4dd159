"""Syslog transports: TCP (RFC 6587 octet counting, or LF framing) and UDP (RFC 5426).

Both take the same ``send(batch) -> PushResult`` as the gateway transports; a batch's
records are lines (``raw``, rendered by the format), sent as they are. Syslog has no
acknowledgement: ``accepted`` means handed to the kernel, and loss shows downstream
(``logops verify``), as with any syslog sender.

- TCP keeps one connection, writes a whole batch with one ``sendall``, and before each
  write checks whether the peer has closed it (a restarted listener): then it reconnects
  first, so a batch is not written into a dead socket. A write that fails is tried once
  more on a fresh connection; the peer may then see part of that batch twice (plain TCP
  syslog cannot tell), which ``logops verify`` reports as duplicates.
- Octet counting (``framing="octet"``, the default, as ``loggen -P`` does) writes
  ``LEN SP MSG`` with LEN the byte length of MSG, so a line may hold anything; LF framing
  writes ``MSG LF``, and a line holding a line break is refused (``invalid_record``)
  rather than split in two.
- UDP sends one message per datagram. A message longer than ``max_datagram`` bytes is
  not sent and is refused (``too_large``), never truncated into a different record. When
  sending fails part way through a batch, the result counts only what went out.
"""

from __future__ import annotations

import select
import socket

from services.common.errors import Unavailable
from services.common.model import Batch, PushResult, Rejection

FRAMINGS = ("octet", "lf")
# rsyslog's default maxMessageSize; RFC 5426 asks receivers for at least 2048.
DEFAULT_MAX_DATAGRAM = 8192
MAX_UDP_PAYLOAD = 65_507


def frame_octet(data: bytes) -> bytes:
    """RFC 6587 section 3.4.1: ``MSG-LEN SP SYSLOG-MSG``."""
    return b"%d %b" % (len(data), data)


def frame_lf(data: bytes) -> bytes:
    """RFC 6587 section 3.4.2 (non-transparent framing) with LF as the trailer."""
    return data + b"\n"


def _lines(batch: Batch) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for index, rec in enumerate(batch.records):
        if rec is not None:
            out.append((index, str(rec.get("raw", "")).encode("utf-8")))
    return out


def _unavailable(where: str, exc: OSError) -> Unavailable:
    return Unavailable(f"syslog peer {where}: {exc}", reason="downstream_unavailable")


class SyslogTcpTransport:
    """Syslog over one TCP connection, opened on first use and reopened when lost."""

    def __init__(self, host: str, port: int, framing: str = "octet", timeout: float = 10.0) -> None:
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {', '.join(FRAMINGS)}")
        self._address = (host, port)
        self._framing = framing
        self._timeout = timeout
        self._sock: socket.socket | None = None

    @property
    def address(self) -> str:
        return f"{self._address[0]}:{self._address[1]}"

    def send(self, batch: Batch) -> PushResult:
        frames: list[bytes] = []
        rejections: list[Rejection] = []
        octet = self._framing == "octet"
        for index, data in _lines(batch):
            if octet:
                frames.append(frame_octet(data))
            elif b"\n" in data:
                rejections.append(
                    Rejection(
                        index,
                        "invalid_record",
                        "the line holds a line break; LF framing would "
                        "split it (use octet counting)",
                    )
                )
            else:
                frames.append(frame_lf(data))
        if frames:
            self._write(b"".join(frames))
        return PushResult(
            batch.batch_id, accepted=len(frames), rejected=len(rejections), rejections=rejections
        )

    def _write(self, payload: bytes) -> None:
        for attempt in (1, 2):
            try:
                self._connected().sendall(payload)
                return
            except OSError as exc:
                self.close()
                if attempt == 2:
                    raise _unavailable(self.address, exc) from exc

    def _connected(self) -> socket.socket:
        if self._sock is not None and _peer_closed(self._sock):
            self.close()
        if self._sock is None:
            self._sock = socket.create_connection(self._address, timeout=self._timeout)
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _peer_closed(sock: socket.socket) -> bool:
    """True when the peer has closed (or reset) the connection: readable with no data.
    A syslog receiver never writes, so anything readable means the end."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


class SyslogUdpTransport:
    """Syslog over UDP: one message per datagram, at most ``max_datagram`` bytes."""

    def __init__(self, host: str, port: int, max_datagram: int = DEFAULT_MAX_DATAGRAM) -> None:
        if not 1 <= max_datagram <= MAX_UDP_PAYLOAD:
            raise ValueError(f"max_datagram must be between 1 and {MAX_UDP_PAYLOAD}")
        self._address = (host, port)
        self._max = max_datagram
        self._sock: socket.socket | None = None

    def send(self, batch: Batch) -> PushResult:
        rejections: list[Rejection] = []
        sent = 0
        for index, data in _lines(batch):
            if len(data) > self._max:
                rejections.append(
                    Rejection(
                        index,
                        "too_large",
                        f"{len(data)} bytes is over the datagram limit of {self._max}",
                    )
                )
                continue
            try:
                self._send_one(data)
            except Unavailable:
                if not sent:
                    raise
                break  # the rest of the batch is not sent: the result accounts for less
            sent += 1
        return PushResult(
            batch.batch_id, accepted=sent, rejected=len(rejections), rejections=rejections
        )

    def _send_one(self, data: bytes) -> None:
        # A refused earlier datagram (ICMP port unreachable) surfaces on a later send: that
        # error is about the past, so this datagram is tried once more.
        for attempt in (1, 2):
            try:
                self._socket().send(data)
                return
            except OSError as exc:
                if attempt == 2 or not isinstance(exc, ConnectionRefusedError):
                    raise _unavailable(f"{self._address[0]}:{self._address[1]}", exc) from exc

    def _socket(self) -> socket.socket:
        if self._sock is None:
            family = socket.AF_INET6 if ":" in self._address[0] else socket.AF_INET
            self._sock = socket.socket(family, socket.SOCK_DGRAM)
            self._sock.connect(self._address)
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
