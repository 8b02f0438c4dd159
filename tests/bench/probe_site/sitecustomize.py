"""Probes for ``tests.bench.latency_probe``, loaded by a gateway whose PYTHONPATH names this
folder; they do nothing unless ``LOGOPS_PROBE_OUT`` is set.

They record every garbage collection (``gc.callbacks``) and time the calls where a push
spends its time (``LOGOPS_PROBE_ROLE``: ``auth`` or ``ingest``), with the thread that made
them, and write the events to ``LOGOPS_PROBE_OUT`` (JSON) every second. A few
``LOGOPS_PROBE_*`` knobs change the process for an A/B: ``SWITCH`` (GIL switch interval,
s), ``RECV`` (waitress ``recv_bytes``), ``NODELAY`` (TCP_NODELAY on http.client
connections: the HTTP hop), ``NONATIVE`` (the hop converts JSON in Python), ``NATIVE_DIR``
(a folder searched first for ``services.ingest._native``: another build).
"""

from __future__ import annotations

import os
from typing import Any


def _install(out: str) -> None:
    import gc
    import json
    import threading
    import time

    events: list[tuple[str, float, float, int]] = []
    started: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            started["gc"] = now
            return
        begin = started.get("gc", now)
        events.append((f"gc{info['generation']}", begin, now - begin, 0))

    gc.callbacks.append(on_gc)

    def timed(owner: Any, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            begin = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                events.append((label, begin, time.perf_counter() - begin, threading.get_ident()))

        setattr(owner, name, wrapper)

    _knobs()
    role = os.environ.get("LOGOPS_PROBE_ROLE")
    if role == "auth":
        from services.auth import core, hop

        timed(core.AuthCore, "handle", "handle")
        timed(hop._ConnectionPool, "post", "hop")
        timed(hop._GrpcHop, "send", "hop")
        timed(hop._GrpcHop, "prepare", "prepare")
    elif role == "ingest":
        from services.ingest import core as ingest_core
        from services.ingest import sink

        timed(ingest_core.IngestCore, "handle", "handle")
        timed(sink.NdjsonSink, "append", "append")

    def dump() -> None:
        while True:
            time.sleep(1.0)
            with open(out + ".tmp", "w", encoding="utf-8") as f:
                json.dump(list(events), f)
            os.replace(out + ".tmp", out)

    threading.Thread(target=dump, name="probe-dump", daemon=True).start()


def _knobs() -> None:
    env = os.environ.get
    if env("LOGOPS_PROBE_NATIVE_DIR"):
        import services.ingest as pkg

        pkg.__path__.insert(0, os.environ["LOGOPS_PROBE_NATIVE_DIR"])
    if env("LOGOPS_PROBE_NONATIVE"):
        from services.auth import hop

        hop._native = None
    if env("LOGOPS_PROBE_SWITCH"):
        import sys

        sys.setswitchinterval(float(os.environ["LOGOPS_PROBE_SWITCH"]))
    if env("LOGOPS_PROBE_RECV"):
        from services.common import http_server

        http_server.RECV_BYTES = int(os.environ["LOGOPS_PROBE_RECV"])
    if env("LOGOPS_PROBE_NODELAY"):
        import http.client
        import socket

        connect = http.client.HTTPConnection.connect

        def nodelay(self: http.client.HTTPConnection) -> None:
            connect(self)
            if self.sock is not None:
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        http.client.HTTPConnection.connect = nodelay  # type: ignore[method-assign]


if os.environ.get("LOGOPS_PROBE_OUT"):
    _install(os.environ["LOGOPS_PROBE_OUT"])
