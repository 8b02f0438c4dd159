"""Serves syslog over TCP and UDP on one thread with a selector, and hands messages on.

One reader thread owns every socket: the TCP listener, the UDP socket and the TCP
connections. Each connection has its own :class:`FrameDecoder` (framing detected from its
first byte) and holds at most one frame in progress. Complete messages go to the
:class:`Handoff`; while it is full the reader reads nothing (TCP senders then block on
their full window, as with syslog-ng's flow control), so memory stays bounded whatever the
senders do. Limits: a connection cap (one more is accepted and closed at once), an idle
timeout, a maximum message size (``framing`` says what happens to bigger ones).

:meth:`SyslogServer.stop` stops accepting, reads what connections still have buffered,
closes them, and closes the hand-off so the batchers store everything and end.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from services.common.config import SyslogConfig
from services.ingest.syslog.framing import FrameDecoder, datagram_message
from services.ingest.syslog.handoff import Handoff

log = logging.getLogger(__name__)

RECV_BYTES = 256 * 1024
UDP_RCVBUF = 4 * 1024 * 1024
# Per loop turn at most: connections accepted, datagrams read.
ACCEPT_BATCH = 64
DATAGRAM_BATCH = 512
TICK_SEC = 0.5
# On stop, how long connections may still be read from (bounded by the grace period).
DRAIN_SEC = 1.0

DiedCallback = Callable[[str, BaseException | None], None]


class ServerObserver(Protocol):
    """What the reader reports; ``SyslogMetrics`` implements it."""

    def received(self, transport: str, count: int) -> None: ...
    def dropped(self, reason: str, count: int) -> None: ...
    def connection_opened(self) -> None: ...
    def connection_closed(self, reason: str) -> None: ...
    def paused(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class SyslogAddresses:
    host: str
    tcp_port: int
    udp_port: int

    @property
    def tcp_target(self) -> str:
        return f"{_bracketed(self.host)}:{self.tcp_port}"

    @property
    def udp_target(self) -> str:
        return f"{_bracketed(self.host)}:{self.udp_port}"


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Connection:
    __slots__ = ("decoder", "host", "last", "sock")

    def __init__(self, sock: socket.socket, host: str, max_frame: int, now: float) -> None:
        self.sock = sock
        self.host = host
        self.decoder = FrameDecoder(max_frame)
        self.last = now


def peer_host(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    """The peer's IP address as text; an IPv4-mapped IPv6 address as plain IPv4."""
    host = address[0]
    return host[7:] if host.startswith("::ffff:") and "." in host else host


class SyslogServer:
    """Binds in :meth:`bind`, serves on a thread from :meth:`start`."""

    def __init__(
        self,
        cfg: SyslogConfig,
        handoff: Handoff,
        observer: ServerObserver,
        on_died: DiedCallback | None = None,
    ) -> None:
        self.cfg = cfg
        self._handoff = handoff
        self._observer = observer
        self._on_died = on_died
        self._selector = selectors.DefaultSelector()
        self._conns: dict[int, _Connection] = {}
        self._stopping = threading.Event()
        self._drain_until = 0.0
        self._accepting = True
        self._thread: threading.Thread | None = None
        self._tcp: socket.socket | None = None
        self._udp: socket.socket | None = None

    @property
    def connections(self) -> int:
        return len(self._conns)

    def bind(self) -> SyslogAddresses:
        """Bind TCP, then UDP on the same port number (port 0: a free one for TCP; UDP
        takes the same number when it is free, else one of its own)."""
        family = socket.AF_INET6 if ":" in self.cfg.host else socket.AF_INET
        host = self.cfg.host.strip("[]")
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, self.cfg.port))
            tcp.listen(min(self.cfg.max_connections, socket.SOMAXCONN))
            tcp_port = tcp.getsockname()[1]
            udp = _bind_udp(family, host, tcp_port, self.cfg.port == 0)
        except OSError:
            tcp.close()
            raise
        tcp.setblocking(False)
        self._tcp, self._udp = tcp, udp
        self._selector.register(tcp, selectors.EVENT_READ, None)
        self._selector.register(udp, selectors.EVENT_READ, None)
        return SyslogAddresses(host, tcp_port, udp.getsockname()[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="syslog-reader", daemon=True)
        self._thread.start()

    def stop(self, grace: float) -> None:
        """Stop accepting, read what connections hold for up to ``DRAIN_SEC`` (within
        ``grace``), close them, then close the hand-off."""
        self._drain_until = time.monotonic() + min(DRAIN_SEC, grace)
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=grace + 2)
        self._handoff.close()

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self._serve()
            self._drain()
        except BaseException as exc:  # reported, then the gateway stops
            error = exc
            log.exception("syslog reader failed", extra={"event": "front_died"})
        finally:
            self._close_all("shutdown")
        if (error is not None or not self._stopping.is_set()) and self._on_died is not None:
            self._on_died("syslog", error)

    def _serve(self) -> None:
        next_tick = time.monotonic() + TICK_SEC
        while not self._stopping.is_set():
            if not self._handoff.has_room():
                self._wait_for_room()
                continue
            for key, _ in self._selector.select(TICK_SEC):
                self._ready(key)
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + TICK_SEC
                self._close_idle(now)
                self._resume_accepting()

    def _ready(self, key: selectors.SelectorKey) -> None:
        conn: _Connection | None = key.data
        if conn is not None:
            self._read(conn)
        elif key.fileobj is self._udp:
            self._read_datagrams()
        else:
            self._accept()

    def _wait_for_room(self) -> None:
        """Backpressure: read nothing until the batchers have taken some; the time spent
        waiting does not count against the connections' idle timeout."""
        started = time.monotonic()
        while not self._handoff.wait_room(TICK_SEC) and not self._stopping.is_set():
            pass
        now = time.monotonic()
        self._observer.paused(now - started)
        for conn in self._conns.values():
            conn.last = max(conn.last, now)

    def _accept(self) -> None:
        assert self._tcp is not None
        for _ in range(ACCEPT_BATCH):
            try:
                sock, address = self._tcp.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # EMFILE and friends: the listener stays readable, so stop watching it
                # until the next tick instead of spinning on it.
                log.warning("syslog accept failed: %s", exc, extra={"event": "accept_failed"})
                self._selector.unregister(self._tcp)
                self._accepting = False
                return
            if len(self._conns) >= self.cfg.max_connections:
                # Counted before the close, so a peer that sees it closed sees it counted.
                self._observer.connection_closed("over_cap")
                sock.close()
                continue
            sock.setblocking(False)
            conn = _Connection(
                sock, peer_host(address), self.cfg.max_message_bytes, time.monotonic()
            )
            self._conns[sock.fileno()] = conn
            self._selector.register(sock, selectors.EVENT_READ, conn)
            self._observer.connection_opened()

    def _resume_accepting(self) -> None:
        if not self._accepting and self._tcp is not None:
            self._selector.register(self._tcp, selectors.EVENT_READ, None)
            self._accepting = True

    def _read(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn, "error")
            return
        if not data:
            self._finish(conn, "eof")
            return
        conn.last = time.monotonic()
        decoded = conn.decoder.feed(data)
        self._deliver(conn, decoded.frames)
        if decoded.oversized:
            self._observer.dropped("oversized", decoded.oversized)
        if decoded.error is not None:
            log.warning(
                "syslog connection closed: %s",
                decoded.error,
                extra={"event": "syslog_framing", "peer": conn.host},
            )
            self._close(conn, "framing")

    def _deliver(self, conn: _Connection, frames: list[bytes]) -> None:
        if frames:
            self._handoff.put(conn.host, "tcp", frames)
            self._observer.received("tcp", len(frames))

    def _read_datagrams(self) -> None:
        assert self._udp is not None
        by_peer: dict[str, list[bytes]] = {}
        oversized = 0
        limit = self.cfg.max_message_bytes
        for _ in range(DATAGRAM_BATCH):
            try:
                data, address = self._udp.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # ICMP errors surface here on some systems: not ours to stop on
                break
            msg = datagram_message(data, limit)
            if msg is None:
                oversized += len(data) > limit
                continue
            by_peer.setdefault(peer_host(address), []).append(msg)
        for host, frames in by_peer.items():
            self._handoff.put(host, "udp", frames)
            self._observer.received("udp", len(frames))
        if oversized:
            self._observer.dropped("oversized", oversized)

    def _close_idle(self, now: float) -> None:
        idle = self.cfg.idle_timeout_sec
        if idle <= 0:
            return
        for conn in [c for c in self._conns.values() if now - c.last > idle]:
            self._finish(conn, "idle")

    def _drain(self) -> None:
        """Stopping: no new connections; read what is buffered until the connections are
        quiet or the drain time is up, keeping every complete message."""
        self._close_listeners()
        while self._conns and time.monotonic() < self._drain_until:
            if not self._handoff.has_room():
                self._handoff.wait_room(0.05)
                continue
            ready = self._selector.select(0.05)
            if not ready:
                break
            for key, _ in ready:
                if key.data is not None:
                    self._read(key.data)
        for conn in list(self._conns.values()):
            self._finish(conn, "shutdown")

    def _close_listeners(self) -> None:
        if self._tcp is not None and self._accepting:
            self._selector.unregister(self._tcp)
        self._accepting = False
        if self._udp is not None:
            self._selector.unregister(self._udp)
        for sock in (self._tcp, self._udp):
            if sock is not None:
                sock.close()

    def _finish(self, conn: _Connection, reason: str) -> None:
        """Close ``conn``, keeping an unterminated last line; a counted frame cut short
        is lost and counted."""
        end = conn.decoder.finish()
        self._deliver(conn, end.frames)
        if end.oversized:
            self._observer.dropped("oversized", end.oversized)
        if end.error is not None:
            self._observer.dropped("truncated", 1)
        self._close(conn, reason)

    def _close(self, conn: _Connection, reason: str) -> None:
        fd = conn.sock.fileno()
        if self._conns.pop(fd, None) is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        self._observer.connection_closed(reason)  # before the peer can see the close
        conn.sock.close()

    def _close_all(self, reason: str) -> None:
        for conn in list(self._conns.values()):
            self._close(conn, reason)
        for sock in (self._tcp, self._udp):
            if sock is not None and sock.fileno() >= 0:
                sock.close()
        self._selector.close()


def _bind_udp(family: int, host: str, port: int, any_port: bool) -> socket.socket:
    udp = socket.socket(family, socket.SOCK_DGRAM)
    try:
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
        try:
            udp.bind((host, port))
        except OSError:
            if not any_port:
                raise
            udp.bind((host, 0))
    except OSError:
        udp.close()
        raise
    udp.setblocking(False)
    return udp
