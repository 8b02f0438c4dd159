"""The hostile phase's attacks on an Ingest Gateway, each run in client processes of its own.

Every attack is a function ``(target, end, part, counts, latencies)`` that attacks until the
monotonic time ``end`` and counts what it saw. :func:`attacker_main` is the entry point of
one attacker process (multiprocessing ``spawn``, so the attack never shares a GIL with the
gateway, the good client or the benchmark): it raises its file-descriptor limit, says
``ready``, waits for the start signal and reports its counts. The connection-holding attacks
keep their number of connections: one the server closes is counted and opened again, as a
real slowloris client would.
"""

from __future__ import annotations

import http.client
import multiprocessing as mp
import queue
import resource
import selectors
import socket
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from tests.bench.payloads import batch_ids, body_templates
from tests.bench.report import pct_ms

PUSH_METHOD = "/logops.v1.LogService/Push"
FD_CONNECTIONS = 1100
SLOWLORIS_CONNECTIONS = 1200
SLOWLORIS_DRIP_EVERY = 3.0
HOG_STREAMS = 150
HOG_IDLE_CONNECTIONS = 200
FLOOD_PROCESSES = 3
FLOOD_THREADS = 100  # per process: 300 requests in flight
FLOOD_BATCH = 1000
SLOW_BODY_CONNECTIONS = 200
SLOW_BODY_LENGTH = 1024 * 1024
SLOW_BODY_BYTES_PER_SEC = 4
CONNECT_TIMEOUT = 2.0
REOPEN_EVERY = 1.0
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class Target:
    http_host: str
    http_port: int
    grpc_host: str
    grpc_port: int

    @property
    def grpc(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"


Attack = Callable[[Target, float, int, Counter[str], "array[float]"], None]


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; returns the new soft limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    return {
        ConnectionRefusedError: "refused",
        ConnectionResetError: "reset",
        BrokenPipeError: "reset",
        http.client.RemoteDisconnected: "closed without answer",
    }.get(type(exc), type(exc).__name__)


class Holder:
    """Keeps ``count`` TCP connections to ``addr`` open until ``end``.

    ``head`` is sent once a connection is up; then ``drip`` (an endless byte source) feeds
    ``drip_share`` of them ``drip_bytes`` every ``drip_every`` seconds. Bytes the server
    sends back are read and counted; a connection it closes is counted and reopened.
    """

    def __init__(
        self,
        addr: tuple[str, int],
        count: int,
        counts: Counter[str],
        head: bytes = b"",
        drip: Callable[[], Iterator[bytes]] | None = None,
        drip_every: float = 1.0,
        drip_share: float = 1.0,
        drip_bytes: int = 1,
    ) -> None:
        self.addr, self.count, self.counts, self.head = addr, count, counts, head
        self.drip, self.drip_every, self.drip_bytes = drip, drip_every, drip_bytes
        self.drippers = int(count * drip_share) if drip is not None else 0
        self.sel = selectors.DefaultSelector()
        self.slots: list[socket.socket | None] = [None] * count
        self.feeds: dict[int, Iterator[bytes]] = {}

    def _open(self, slot: int) -> None:
        try:
            sock = socket.create_connection(self.addr, timeout=CONNECT_TIMEOUT)
            if self.head:
                sock.sendall(self.head)
        except OSError as exc:
            self.counts[f"connect failed: {failure_reason(exc)}"] += 1
            return
        sock.setblocking(False)
        self.counts["connections opened"] += 1
        self.slots[slot] = sock
        self.sel.register(sock, selectors.EVENT_READ, slot)
        if slot < self.drippers and self.drip is not None:
            self.feeds[slot] = self.drip()

    def _lost(self, slot: int, why: str) -> None:
        sock = self.slots[slot]
        if sock is None:
            return
        self.counts[f"closed by server ({why})"] += 1
        self.sel.unregister(sock)
        sock.close()
        self.slots[slot] = None

    def _read(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            slot = key.data
            try:
                data = key.fileobj.recv(65536)  # type: ignore[union-attr]
            except BlockingIOError:
                continue
            except OSError as exc:
                self._lost(slot, failure_reason(exc))
                continue
            if data:
                self.counts["bytes the server sent"] += len(data)
            else:
                self._lost(slot, "eof")

    def _drip(self) -> None:
        for slot, feed in self.feeds.items():
            sock = self.slots[slot]
            if sock is None:
                continue
            try:
                sock.send(b"".join(next(feed) for _ in range(self.drip_bytes)))
            except BlockingIOError:
                self.counts["drip sends blocked"] += 1
            except OSError as exc:
                self._lost(slot, failure_reason(exc))

    def _fill(self, end: float) -> None:
        for slot, sock in enumerate(self.slots):
            if sock is None and time.monotonic() < end:
                self._open(slot)

    def run(self, end: float) -> None:
        self._fill(end)
        self.counts["open after the first pass"] = sum(s is not None for s in self.slots)
        next_drip = time.monotonic() + self.drip_every
        next_fill = time.monotonic() + REOPEN_EVERY
        while (now := time.monotonic()) < end:
            self._read(max(0.0, min(next_drip, next_fill, end) - now))
            now = time.monotonic()
            if self.drippers and now >= next_drip:
                self._drip()
                next_drip += self.drip_every
            if now >= next_fill:
                self._fill(end)
                next_fill = now + REOPEN_EVERY
        self.counts["open at the end"] = sum(s is not None for s in self.slots)
        self.close()

    def close(self) -> None:
        for sock in self.slots:
            if sock is not None:
                sock.close()
        self.sel.close()


def _endless(prefix: bytes, filler: bytes) -> Callable[[], Iterator[bytes]]:
    def feed() -> Iterator[bytes]:
        for i in range(len(prefix)):
            yield prefix[i : i + 1]
        while True:
            yield filler

    return feed


def fd_exhaustion(
    t: Target, end: float, part: int, counts: Counter[str], lat: array[float]
) -> None:
    """Idle TCP connections to the gRPC port: they push the gateway's fd numbers past 1023."""
    Holder((t.grpc_host, t.grpc_port), FD_CONNECTIONS, counts).run(end)


def slowloris(t: Target, end: float, part: int, counts: Counter[str], lat: array[float]) -> None:
    """Connections to the HTTP port: half idle, half sending a head one byte every 3 s."""
    head = b"POST /v1/logs HTTP/1.1\r\nHost: gateway\r\nX-Slow: "
    Holder(
        (t.http_host, t.http_port),
        SLOWLORIS_CONNECTIONS,
        counts,
        drip=_endless(head, b"a"),
        drip_every=SLOWLORIS_DRIP_EVERY,
        drip_share=0.5,
    ).run(end)


def stream_hog(t: Target, end: float, part: int, counts: Counter[str], lat: array[float]) -> None:
    """One gRPC connection opening streams that send headers and never a message, plus idle
    TCP connections that never start the HTTP/2 handshake."""
    channel = grpc.insecure_channel(t.grpc, options=[("grpc.use_local_subchannel_pool", 1)])
    release = threading.Event()

    def never() -> Iterator[bytes]:
        release.wait()
        return
        yield b""

    call = channel.stream_unary(PUSH_METHOD, request_serializer=None, response_deserializer=None)
    timeout = end - time.monotonic() + 30
    calls = [call.future(never(), timeout=timeout) for _ in range(HOG_STREAMS)]
    counts["streams started"] = len(calls)
    Holder((t.grpc_host, t.grpc_port), HOG_IDLE_CONNECTIONS, counts).run(end)
    for c in calls:
        if c.done():
            counts[f"stream ended early: {c.code().name}"] += 1
        else:
            counts["streams still open at the end"] += 1
        c.cancel()
    release.set()
    channel.close()


def request_flood(
    t: Target, end: float, part: int, counts: Counter[str], lat: array[float]
) -> None:
    """Threads posting batches of 1000 records back to back, each on its own connection."""
    bodies = body_templates("http", FLOOD_BATCH, 2, f"flood-{part}", 7000 + part)
    if part == 0:  # the counts of all processes are added up
        counts["bytes per request body"] = len(bodies[0].body(b"x" * 48))
    lock = threading.Lock()

    def loop(n: int) -> None:
        ids = batch_ids(f"flood-{part}-{n}-{time.time_ns()}-")
        conn = http.client.HTTPConnection(t.http_host, t.http_port, timeout=30)
        headers = {"Content-Type": "application/json"}
        while (began := time.monotonic()) < end:
            try:
                conn.request("POST", "/v1/logs", bodies[n % 2].body(next(ids)), headers)
                resp = conn.getresponse()
                resp.read()
                retry = " + Retry-After" if resp.getheader("Retry-After") else ""
                what = f"http {resp.status}{retry}"
            except (OSError, http.client.HTTPException) as exc:
                what = f"failed: {failure_reason(exc)}"
                conn.close()
            with lock:
                counts[what] += 1
                lat.append(time.monotonic() - began)
        conn.close()

    threads = [threading.Thread(target=loop, args=(n,), daemon=True) for n in range(FLOOD_THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=max(0.0, end + 2 - time.monotonic()))
    with lock:
        counts["requests unfinished at the end"] = sum(th.is_alive() for th in threads)


def slow_body(t: Target, end: float, part: int, counts: Counter[str], lat: array[float]) -> None:
    """Complete heads announcing a 1 MB body, then the body at a few bytes a second."""
    head = (
        b"POST /v1/logs HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % SLOW_BODY_LENGTH
    )
    Holder(
        (t.http_host, t.http_port),
        SLOW_BODY_CONNECTIONS,
        counts,
        head=head,
        drip=_endless(b"[", b" "),
        drip_bytes=SLOW_BODY_BYTES_PER_SEC,
    ).run(end)


@dataclass(frozen=True)
class AttackSpec:
    run: Attack
    processes: int
    what: str


ATTACKS: dict[str, AttackSpec] = {
    "fd_exhaustion": AttackSpec(
        fd_exhaustion, 1, f"{FD_CONNECTIONS} idle TCP connections to the gRPC port"
    ),
    "slowloris": AttackSpec(
        slowloris,
        1,
        f"{SLOWLORIS_CONNECTIONS} HTTP connections, half idle, half a head byte "
        f"every {SLOWLORIS_DRIP_EVERY:g} s",
    ),
    "stream_hog": AttackSpec(
        stream_hog,
        1,
        f"{HOG_STREAMS} gRPC streams without a message on one connection "
        f"+ {HOG_IDLE_CONNECTIONS} idle TCP connections",
    ),
    "request_flood": AttackSpec(
        request_flood,
        FLOOD_PROCESSES,
        f"{FLOOD_PROCESSES * FLOOD_THREADS} concurrent HTTP "
        f"POSTs of {FLOOD_BATCH} records, back to back",
    ),
    "slow_body": AttackSpec(
        slow_body,
        1,
        f"{SLOW_BODY_CONNECTIONS} HTTP heads with Content-Length "
        f"{SLOW_BODY_LENGTH // 1024} KiB, body at {SLOW_BODY_BYTES_PER_SEC} bytes/s",
    ),
}


def attacker_main(name: str, part: int, target: Target, ready: Any, go: Any, results: Any) -> None:
    """Entry point of one attacker process: ready, wait for (start, end), attack, report."""
    counts: Counter[str] = Counter()
    lat: array[float] = array("d")
    try:
        raise_fd_limit()
    except (OSError, ValueError) as exc:
        counts[f"fd limit not raised: {exc}"] += 1
    ready.put(part)
    start, end = go.get()
    while (left := start - time.monotonic()) > 0:
        time.sleep(left)
    try:
        ATTACKS[name].run(target, end, part, counts, lat)
    except Exception as exc:  # reported to the parent, which prints it
        counts[f"attacker failed: {exc!r}"[:160]] += 1
    results.put((part, dict(counts), list(lat)))


def run_attackers(name: str, t: Target, window: float) -> tuple[float, float, dict[str, Any]]:
    """Start the attack's processes, let them attack for ``window`` seconds, collect counts."""
    spec, ctx = ATTACKS[name], mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    gos = [ctx.Queue() for _ in range(spec.processes)]
    procs = [
        ctx.Process(target=attacker_main, args=(name, i, t, ready, gos[i], results), daemon=True)
        for i in range(spec.processes)
    ]
    counts: Counter[str] = Counter()
    lat: list[float] = []
    start = end = time.monotonic()
    try:
        for p in procs:
            p.start()
        for _ in procs:
            ready.get(timeout=READY_TIMEOUT)
        start = time.monotonic() + 0.1
        end = start + window
        for q in gos:
            q.put((start, end))
        for _ in procs:
            _, c, part_lat = results.get(timeout=window + 60)
            counts.update(c)
            lat.extend(part_lat)
    except queue.Empty:
        counts["an attacker process did not answer"] += 1
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    attacker: dict[str, Any] = {"counts": dict(counts)}
    if lat:
        lat.sort()
        attacker.update(requests=len(lat), p50_ms=pct_ms(lat, 0.5), p99_ms=pct_ms(lat, 0.99))
    return start, end, attacker
