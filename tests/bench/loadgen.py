"""The load generator: client processes, each with a few sender threads, closed or open loop.

The clients run in their own processes (``spawn``), so they never share the gateway's GIL
nor each other's. Each pass goes: the parent sends a :class:`LoadSpec` to every client;
a client builds its request bodies, opens its connections and answers ``ready``; the
parent sends one schedule (start, measure, end on the shared monotonic clock); the
client sends until ``end`` and reports every request completed inside the window.

With ``LoadSpec.keys`` (the Auth Gateway), each sender signs every request with its own
key (id = its emitter name) and a fresh nonce, inside the loop but before its clock starts:
signed headers cannot be made ahead, since a nonce is good for one request only.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import signal
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import orjson
from logops.v1 import logs_pb2

from clients.transports import HttpTransport
from services.common.signing import GRPC_MEDIA_TYPE, sign_headers
from tests.bench.payloads import batch_ids, body_templates, check_body

PUSH_METHOD = "/logops.v1.LogService/Push"
MAX_MESSAGE = 16 * 1024 * 1024


@dataclass(frozen=True)
class LoadSpec:
    front: str  # "grpc" or "http"
    target: str  # host:port for gRPC, base URL for HTTP
    batch_size: int
    senders: int  # threads per client process
    run_tag: str
    rate: float = 0.0  # requests/s over all clients for an open loop; 0 is closed loop
    # (key id, secret) pairs: a sender whose emitter name is a key id signs with it.
    keys: tuple[tuple[str, str], ...] = ()


@dataclass
class SenderStats:
    """What one sender thread saw; merged across threads and processes."""

    latencies: array[float] = field(default_factory=lambda: array("d"))
    ok_records: int = 0  # accepted records of requests completed inside the window
    all_ok_records: int = 0  # accepted records of every request, for the sink check
    errors: Counter[str] = field(default_factory=Counter)
    late: int = 0  # open loop: sends that started behind their schedule by > 1 ms

    def merge(self, other: SenderStats) -> None:
        self.latencies.extend(other.latencies)
        self.ok_records += other.ok_records
        self.all_ok_records += other.all_ok_records
        self.errors.update(other.errors)
        self.late += other.late


# (body, signature headers or None) -> (accepted records, error code or "")
Send = Callable[[bytes, dict[str, str] | None], tuple[int, str]]


def grpc_sender(target: str, batch_size: int) -> tuple[Send, Callable[[], None]]:
    channel = grpc.insecure_channel(
        target,
        options=[
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            # One connection per sender, as separate clients would have.
            ("grpc.use_local_subchannel_pool", 1),
        ],
    )
    push = channel.unary_unary(
        PUSH_METHOD,
        request_serializer=None,
        response_deserializer=logs_pb2.PushResponse.FromString,
    )

    def send(body: bytes, signed: dict[str, str] | None) -> tuple[int, str]:
        try:
            resp = push(body, timeout=30, metadata=tuple(signed.items()) if signed else None)
        except grpc.RpcError as err:
            return 0, f"grpc:{err.code().name}"
        return _outcome(resp.accepted, resp.rejected, resp.duplicate, batch_size)

    return send, channel.close


def http_sender(base_url: str, batch_size: int) -> tuple[Send, Callable[[], None]]:
    transport = HttpTransport(base_url, timeout=30)
    headers = {"Content-Type": "application/json"}

    def send(body: bytes, signed: dict[str, str] | None) -> tuple[int, str]:
        try:
            status, _, data = transport.post(body, headers | signed if signed else headers)
        except OSError as exc:
            return 0, f"http:{type(exc).__name__}"
        if status != 200:
            return 0, f"http:{status}"
        doc = orjson.loads(data)
        return _outcome(
            doc.get("accepted", 0), doc.get("rejected", 0), doc.get("duplicate"), batch_size
        )

    return send, transport.close


def _outcome(accepted: int, rejected: int, duplicate: Any, batch_size: int) -> tuple[int, str]:
    if duplicate:
        return 0, "duplicate"
    if rejected or accepted != batch_size:
        return accepted, "partial"
    return accepted, ""


class Sender(threading.Thread):
    def __init__(self, spec: LoadSpec, worker: int, workers: int, index: int) -> None:
        super().__init__(name=f"sender-{index}", daemon=True)
        self.spec, self.stats = spec, SenderStats()
        self.total_senders = workers * spec.senders
        # Open loop: the senders take turns, evenly spread over one interval.
        self.phase = (worker * spec.senders + index) / self.total_senders
        make = grpc_sender if spec.front == "grpc" else http_sender
        self.send, self.close = make(spec.target, spec.batch_size)
        variants = 4 if spec.batch_size >= 1000 else 16
        emitter = f"bench-w{worker}-t{index}"
        self.templates = body_templates(
            spec.front, spec.batch_size, variants, emitter, worker * 100 + index
        )
        self.ids = batch_ids(f"{spec.run_tag}-w{worker:02d}-t{index:02d}-")
        self.secret = dict(spec.keys).get(emitter, "")
        if spec.keys and not self.secret:
            raise RuntimeError(f"no key for {emitter}")
        self.key_id = emitter
        self.media_type = GRPC_MEDIA_TYPE if spec.front == "grpc" else "application/json"
        self.schedule = (0.0, 0.0, 0.0)
        self.failure = ""

    def body(self, n: int) -> bytes:
        return self.templates[n % len(self.templates)].body(next(self.ids))

    def signed(self, body: bytes) -> dict[str, str] | None:
        """Fresh signature headers (new nonce, current time), or None when unsigned."""
        if not self.secret:
            return None
        return sign_headers((self.key_id, self.secret), body, self.media_type)

    def probe(self) -> None:
        """One checked request before timing, so a broken setup fails early."""
        batch_id = next(self.ids)
        body = self.templates[0].body(batch_id)
        check_body(self.spec.front, body, batch_id, self.spec.batch_size)
        accepted, err = self.send(body, self.signed(body))
        self.stats.all_ok_records += accepted
        if err and err != "partial":
            raise RuntimeError(f"first {self.spec.front} request failed: {err}")

    def run(self) -> None:
        try:
            if self.spec.rate > 0:
                self._open_loop()
            else:
                self._closed_loop()
        except Exception as exc:  # reported to the parent, which prints it
            self.failure = repr(exc)
        finally:
            self.close()

    def _record(self, began: float, done: float, accepted: int, err: str) -> None:
        _, measure, end = self.schedule
        self.stats.all_ok_records += accepted
        if measure <= done <= end:
            self.stats.latencies.append(done - began)
            self.stats.ok_records += accepted
            if err:
                self.stats.errors[err] += 1

    def _closed_loop(self) -> None:
        start, _, end = self.schedule
        _sleep_until(start)
        n = 0
        while True:
            body = self.body(n)
            signed = self.signed(body)
            began = time.monotonic()
            if began >= end:
                return
            accepted, err = self.send(body, signed)
            self._record(began, time.monotonic(), accepted, err)
            n += 1

    def _open_loop(self) -> None:
        # Latency counts from the planned send time, so a stall is not hidden (no coordinated
        # omission): a request that has to wait for the previous one carries the wait.
        start, _, end = self.schedule
        interval = self.total_senders / self.spec.rate
        n = 0
        while (planned := start + self.phase * interval + n * interval) < end:
            body = self.body(n)
            signed = self.signed(body)
            _sleep_until(planned)
            if time.monotonic() - planned > 0.001:
                self.stats.late += 1
            accepted, err = self.send(body, signed)
            self._record(planned, time.monotonic(), accepted, err)
            n += 1


def _sleep_until(deadline: float) -> None:
    left = deadline - time.monotonic()
    if left > 0:
        time.sleep(left)


def client_main(worker: int, workers: int, commands: Any, results: Any) -> None:
    """Entry point of one client process; serves passes until it receives ``None``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent cleans up on Ctrl-C
    while (spec := commands.get()) is not None:
        try:
            senders = [Sender(spec, worker, workers, i) for i in range(spec.senders)]
            for s in senders:
                s.probe()
        except Exception as exc:
            results.put(("failed", worker, repr(exc)))
            continue
        results.put(("ready", worker, None))
        schedule = commands.get()
        for s in senders:
            s.schedule = schedule
            s.start()
        total = SenderStats()
        for s in senders:
            s.join()
            total.merge(s.stats)
        failures = [s.failure for s in senders if s.failure]
        results.put(("done", worker, (total, failures)))


class ClientPool:
    """``count`` long-lived client processes."""

    def __init__(self, count: int) -> None:
        ctx = mp.get_context("spawn")
        self.count = count
        self._results = ctx.Queue()
        self._commands = [ctx.Queue() for _ in range(count)]
        self.procs = [
            ctx.Process(
                target=client_main,
                args=(i, count, self._commands[i], self._results),
                name=f"bench-client-{i}",
                daemon=True,
            )
            for i in range(count)
        ]
        for p in self.procs:
            p.start()

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(p.pid for p in self.procs if p.pid is not None)

    def prepare(self, spec: LoadSpec, timeout: float = 120) -> None:
        """Every client builds its bodies and checks one request; raises if any cannot."""
        for q in self._commands:
            q.put(spec)
        answers = self._collect(self.count, timeout)
        problems = sorted({msg for kind, _, msg in answers if kind == "failed"})
        if problems:
            # The clients that are ready wait for a schedule: give them an empty one.
            ready = [w for kind, w, _ in answers if kind == "ready"]
            for w in ready:
                self._commands[w].put((0.0, 0.0, 0.0))
            self._collect(len(ready), timeout)
            raise RuntimeError("; ".join(problems))

    def go(self, start: float, measure: float, end: float) -> None:
        for q in self._commands:
            q.put((start, measure, end))

    def finish(self, timeout: float) -> tuple[SenderStats, list[str]]:
        total, failures = SenderStats(), []
        for _, _, (stats, errs) in self._collect(self.count, timeout):
            total.merge(stats)
            failures.extend(errs)
        return total, failures

    def _collect(self, count: int, timeout: float) -> list[tuple[str, int, Any]]:
        deadline = time.monotonic() + timeout
        out: list[tuple[str, int, Any]] = []
        while len(out) < count:
            try:
                out.append(self._results.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() > deadline or not all(p.is_alive() for p in self.procs):
                    raise RuntimeError("a client process did not answer") from None
        return out

    def close(self) -> None:
        for q in self._commands:
            q.put(None)
        # One grace period for all: a client interrupted mid-pass does not read the None.
        deadline = time.monotonic() + 3
        for p in self.procs:
            p.join(timeout=max(0.0, deadline - time.monotonic()))
        for p in self.procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=3)
