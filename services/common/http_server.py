"""Runs a WSGI app on waitress in a background thread, with a graceful stop.

waitress has no stop call of its own: :meth:`HttpServer.stop` closes the listening
socket, waits (up to the grace period) for tasks in progress and their responses to
drain, then closes the remaining connections, which ends waitress's loop. Sockets are
closed on the loop's own thread, through waitress's trigger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from waitress.server import create_server

log = logging.getLogger(__name__)


class HttpServer:
    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        threads: int,
        max_body_bytes: int,
    ) -> None:
        self._server = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            # waitress buffers whole bodies before dispatch: cap them near our own limit
            # (the app still answers the precise 413 for anything over its limit).
            max_request_body_size=max_body_bytes + 1024 * 1024,
            connection_limit=1000,
            channel_timeout=60,
            ident="logops",
            clear_untrusted_proxy_headers=True,
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def host(self) -> str:
        return str(self._server.effective_host)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)
        self._thread.start()

    def stop(self, grace: float) -> None:
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

        self._server.trigger.pull_trigger(run)
        done.wait(timeout=2)

    def _stop_accepting(self) -> None:
        # Stop accepting, but keep the trigger so the loop still wakes up for responses.
        server = self._server
        server.accepting = False
        server.del_channel()
        server.socket.close()

    def _close_all(self) -> None:
        for channel in list(self._server._map.values()):
            channel.handle_close()

    def _busy(self) -> bool:
        td = self._server.task_dispatcher
        if td.active_count or td.queue:
            return True
        return any(
            getattr(ch, "total_outbufs_len", 0) or getattr(ch, "requests", None)
            for ch in list(self._server._map.values())
        )
