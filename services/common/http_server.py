"""Runs a WSGI app on waitress in a background thread: hardened, watched, stopped gracefully.

The server is waitress's, with the channel of :mod:`services.common.http_channel`
(deadlines for a request's head and body, JSON refusals, lingering close) and three
changes of its own: the loop uses ``poll()``, so no descriptor number stops it (``select()``
fails past 1023); POSTs beyond the in-flight cap are answered 503 at once instead of
queueing behind the workers; and at the connection cap, idle keep-alive connections are
closed to make room, as nginx does. If the loop thread dies anyway, ``on_died`` is called,
so the gateway never stays half alive.

waitress has no stop call of its own: :meth:`HttpServer.stop` closes the listening
socket, waits (up to the grace period) for tasks in progress and their responses to
drain, then closes the remaining connections, which ends waitress's loop. Sockets are
closed on the loop's own thread, through waitress's trigger.
"""

from __future__ import annotations

import logging
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

from waitress.server import TcpWSGIServer

from services.common.config import ConnectionsConfig, LimitsConfig, ListenConfig
from services.common.errors import LogOpsError
from services.common.http_channel import ChannelPolicy, HardenedChannel

log = logging.getLogger(__name__)

# Chunked bodies are counted by waitress on the wire, framing included: room for it (the
# parser refuses the decoded body at the exact limit).
_CHUNK_FRAMING_SLACK = 64 * 1024
# Idle connections closed per second at the connection cap (nginx closes up to 32).
_ROOM_PER_TICK = 32
# Connections accepted per loop turn at most.
_ACCEPT_BATCH = 64

DiedCallback = Callable[[str, BaseException | None], None]


class HardenedServer(TcpWSGIServer):  # type: ignore[misc]
    channel_class = HardenedChannel

    def __init__(
        self,
        app: Any,
        policy: ChannelPolicy,
        max_queued: int,
        on_refused: Callable[[LogOpsError], None] | None,
        **adjustments: Any,
    ):
        self.policy = policy
        self.on_refused = on_refused
        self.max_queued = max_queued
        super().__init__(app, **adjustments)

    def maintenance(self, now: float) -> None:
        """Deadlines for every connection, then room at the cap (loop thread, each second)."""
        channels = list(self.active_channels.values())
        for channel in channels:
            channel.check(now)
        if len(self._map) >= self.adj.connection_limit:
            idle = sorted((c for c in channels if c.idle()), key=lambda c: c.last_activity)
            for channel in idle[:_ROOM_PER_TICK]:
                channel.close_now()

    def handle_accept(self) -> None:
        """Accept every pending connection, up to a batch (nginx's ``multi_accept``):
        waitress takes one a loop turn, so a burst of hostile connections would queue
        good clients behind it for seconds."""
        for _ in range(_ACCEPT_BATCH):
            if len(self._map) >= self.adj.connection_limit:
                return
            try:
                accepted = self.accept()
                if accepted is None:
                    return  # no more pending
                conn, addr = accepted
                self.set_socket_options(conn)
            except OSError:
                # A peer gone before accept, or out of descriptors: try on the next turn.
                return
            self.channel_class(self, conn, self.fix_addr(addr), self.adj, map=self._map)

    def add_task(self, channel: HardenedChannel) -> None:
        td = self.task_dispatcher
        if channel.sheddable() and len(td.queue) + td.active_count >= self.max_queued:
            channel.shed()
            return
        super().add_task(channel)


def connection_cap(wanted: int) -> int:
    """HTTP connections allowed: as configured, within half the descriptor limit (the
    rest is for gRPC connections and files)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or wanted <= soft // 2:
        return wanted
    cap = max(64, soft // 2)
    log.warning(
        "HTTP connection cap lowered to fit the file-descriptor limit",
        extra={"event": "connection_cap", "wanted": wanted, "cap": cap, "nofile": soft},
    )
    return cap


RECV_BYTES = 64 * 1024


class HttpServer:
    def __init__(
        self,
        app: Any,
        listen: ListenConfig,
        threads: int,
        limits: LimitsConfig,
        connections: ConnectionsConfig,
        on_died: DiedCallback | None = None,
        on_refused: Callable[[LogOpsError], None] | None = None,
    ) -> None:
        """``on_refused`` hears of the refusals made before the app sees a request:
        shed pushes, missed deadlines, bad framing, oversized heads and bodies."""
        policy = ChannelPolicy(
            body_limit=limits.max_body_bytes,
            header_timeout=connections.header_timeout_sec,
            body_timeout=connections.body_timeout_sec,
            idle_timeout=connections.idle_timeout_sec,
            retry_after=limits.retry_after_sec,
            linger_bytes=2 * limits.max_body_bytes,
        )
        self._server = HardenedServer(
            app,
            policy,
            # Queued and running pushes together: past the in-flight cap, shed.
            max_queued=limits.max_inflight,
            on_refused=on_refused,
            host=listen.host,
            port=listen.port,
            threads=threads,
            max_request_body_size=limits.max_body_bytes + _CHUNK_FRAMING_SLACK,
            connection_limit=connection_cap(connections.max_connections),
            # Our channel enforces its deadlines; waitress's own check runs each second.
            channel_timeout=connections.idle_timeout_sec,
            cleanup_interval=1,
            # waitress reads 8 KiB a turn of its loop: a 200 KB batch took 25 turns, each
            # waiting for the GIL. 64 KiB (below malloc's mmap threshold) cut the CPU of
            # both gateways on http->auth->http by about a fifth (tests/bench/README.md).
            recv_bytes=RECV_BYTES,
            asyncore_use_poll=True,
            ident="logops",
            clear_untrusted_proxy_headers=True,
        )
        self._on_died = on_died
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def host(self) -> str:
        return str(self._server.effective_host)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self._server.run()
        except BaseException as exc:  # the loop is gone whatever it was
            error = exc
        if self._stopping:
            return
        log.critical(
            "HTTP front stopped serving",
            exc_info=error,
            extra={"event": "front_died", "front": "http"},
        )
        if self._on_died is not None:
            self._on_died("http", error)

    def stop(self, grace: float) -> None:
        if self._stopping:
            return
        self._stopping = True
        self._in_loop(self._stop_accepting)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self._busy():
            time.sleep(0.02)
        # Closing the trigger too empties waitress's map, which ends its loop.
        self._in_loop(self._close_all)
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _in_loop(self, work: Callable[[], None]) -> None:
        """Run ``work`` on waitress's loop thread: a socket closed from another thread
        while the loop sits in select() makes select fail (EBADF) in that thread."""
        if self._thread is None or not self._thread.is_alive():
            work()
            return
        done = threading.Event()

        def run() -> None:
            try:
                work()
            finally:
                done.set()

        try:
            self._server.trigger.pull_trigger(run)
        except OSError:
            # The trigger is closed: the loop has closed its sockets and is ending, so
            # nothing polls any more and the work can run here.
            work()
            return
        done.wait(timeout=2)

    def _stop_accepting(self) -> None:
        # Stop accepting, but keep the trigger so the loop still wakes up for responses.
        server = self._server
        server.accepting = False
        server.del_channel()
        server.socket.close()

    def _close_all(self) -> None:
        for channel in list(self._server._map.values()):
            getattr(channel, "close_now", channel.handle_close)()

    def _busy(self) -> bool:
        td = self._server.task_dispatcher
        if td.active_count or td.queue:
            return True
        return any(
            getattr(ch, "total_outbufs_len", 0) or getattr(ch, "requests", None)
            for ch in list(self._server._map.values())
        )
