"""The runner's reading of the Auth Gateway's spool depth, from a real ``/metrics``
endpoint (prometheus_client's own server on a free port, the gateway's metric names)."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from emitters.spool_watch import spool_depth, wait_spool_empty


@pytest.fixture
def auth_metrics() -> Iterator[tuple[str, Gauge]]:
    registry = CollectorRegistry()
    # The bound beside the depth, as the Auth Gateway exports both: only the depth is read.
    Gauge("logops_auth_spool_limit_batches", "bound", registry=registry).set(1000)
    depth = Gauge("logops_auth_spool_batches", "depth", registry=registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{server.server_port}", depth
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_depth_is_read_from_the_gauge(auth_metrics: tuple[str, Gauge]) -> None:
    url, depth = auth_metrics
    depth.set(7)
    assert spool_depth(url) == 7.0
    assert spool_depth(url + "/") == 7.0


def test_no_answer_or_no_series_is_none() -> None:
    with socket.socket() as sock:  # bound, never listening: the connection is refused
        sock.bind(("127.0.0.1", 0))
        assert spool_depth(f"http://127.0.0.1:{sock.getsockname()[1]}") is None
    registry = CollectorRegistry()
    Gauge("logops_ingest_inflight_requests", "other", registry=registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        assert spool_depth(f"http://127.0.0.1:{server.server_port}") is None
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_page_that_is_not_metrics_is_none() -> None:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>{not metrics</html>\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert spool_depth(f"http://127.0.0.1:{server.server_port}") is None
    finally:
        server.shutdown()
        server.server_close()


def test_waits_until_the_spool_drains(auth_metrics: tuple[str, Gauge]) -> None:
    url, depth = auth_metrics
    depth.set(3)
    drain = threading.Timer(0.5, depth.set, (0,))
    drain.start()
    assert wait_spool_empty(url, timeout=30.0, stop=threading.Event())
    drain.join()


def test_gives_up_at_the_timeout_or_on_stop(auth_metrics: tuple[str, Gauge]) -> None:
    url, depth = auth_metrics
    depth.set(3)
    assert not wait_spool_empty(url, timeout=0.6, stop=threading.Event())
    stop = threading.Event()
    stop.set()
    assert not wait_spool_empty(url, timeout=30.0, stop=stop)
