"""The pieces of the gateway outage test: throwaway keys, the two gateways as processes that
can be killed and restarted on the same ports, a signed client stream that writes down
every answer, and the sink's account of what it holds.
"""

from __future__ import annotations

import secrets
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from clients.launcher import GatewayProcess, GatewayStartError
from clients.retry import RetryingTransport
from clients.signed import Signer
from clients.transports import GrpcTransport, HttpTransport, Transport
from services.common.errors import LogOpsError
from services.common.model import Batch, PushResult

CLIENT_KEY_ID, CLIENT_EMITTER = "outage-client", "outage-emitter"
HOP_KEY_ID = "auth-hop"
# The hop gives up on a missing Ingest within a couple of seconds and tries it again every
# half second, so spooling and draining both start quickly.
AUTH_SETTINGS: dict[str, Any] = {
    "forward": {
        "attempt_timeout_sec": 1.0,
        "deadline_sec": 2.0,
        "max_attempts": 3,
        "backoff_max_sec": 0.2,
        "breaker_fail_max": 3,
        "breaker_reset_sec": 0.5,
    },
    # The stream is not what this test limits.
    "requests_per_key": {"per_sec": 10_000, "burst": 10_000},
    "shutdown_grace_sec": 2.0,
}
# A push is retried for this long: longer than any restart on this machine takes.
CLIENT_DEADLINE_SEC = 90.0
RESTART_TIMEOUT_SEC = 60.0


@dataclass(frozen=True)
class OutageKeys:
    """Files for both gateways: the Auth Gateway's client keys and its config (the hop key
    and the fast forwarding settings), Ingest's keys (the hop key, as a forwarder)."""

    client_secret: str
    auth_keys: Path
    auth_config: Path
    ingest_keys: Path

    def signer(self) -> Signer:
        return Signer(CLIENT_KEY_ID, self.client_secret)


def _private(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def write_keys(folder: Path) -> OutageKeys:
    client, hop = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    folder.mkdir(parents=True, exist_ok=True)
    auth_keys = {"keys": {CLIENT_KEY_ID: {"emitter": CLIENT_EMITTER, "secrets": [client]}}}
    ingest_keys = {
        "keys": {HOP_KEY_ID: {"emitter": "auth-gateway", "secrets": [hop], "role": "forwarder"}}
    }
    secret_file = _private(folder / "hop.secret", hop + "\n")
    forward = {**AUTH_SETTINGS["forward"], "key_id": HOP_KEY_ID, "secret_file": str(secret_file)}
    config = {"auth": {**AUTH_SETTINGS, "forward": forward}}
    # JSON is YAML.
    return OutageKeys(
        client_secret=client,
        auth_keys=_private(folder / "auth-keys.yaml", orjson.dumps(auth_keys).decode()),
        auth_config=_private(folder / "auth.yaml", orjson.dumps(config).decode()),
        ingest_keys=_private(folder / "ingest-keys.yaml", orjson.dumps(ingest_keys).decode()),
    )


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` when it does not in time."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {timeout:g} s: {what}")
        time.sleep(0.05)


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


class Pipeline:
    """``logops ingest`` (with the hop key) and ``logops auth`` forwarding to it over gRPC,
    each a child process; the first start picks free ports, a restart takes them again."""

    def __init__(self, folder: Path, keys: OutageKeys) -> None:
        self.sink, self.spool = folder / "sink", folder / "spool"
        self._keys = keys
        self.started: list[GatewayProcess] = []

    def start(self) -> None:
        self.ingest = self._start(self._ingest_args(0, 0))
        self.auth = self._start(self._auth_args(0, 0))

    # -- the processes -----------------------------------------------------------------

    def _ingest_args(self, http_port: int, grpc_port: int) -> list[str]:
        return [
            "ingest", "--http-port", str(http_port), "--grpc-port", str(grpc_port),
            "--sink-dir", str(self.sink), "--keys-file", str(self._keys.ingest_keys),
        ]

    def _auth_args(self, http_port: int, grpc_port: int) -> list[str]:
        return [
            "auth", "--config", str(self._keys.auth_config),
            "--http-port", str(http_port), "--grpc-port", str(grpc_port),
            "--keys-file", str(self._keys.auth_keys), "--spool-dir", str(self.spool),
            "--forward", f"grpc://{self.ingest.grpc_target}",
        ]

    def _start(self, args: list[str]) -> GatewayProcess:
        # Keys from the environment would be another process's; these come from files.
        env = {"LOGOPS_AUTH_KEYS_FILE": "", "LOGOPS_AUTH_KEYS": ""}
        gw = GatewayProcess(args, env=env)
        self.started.append(gw)
        return gw.start(timeout=RESTART_TIMEOUT_SEC)

    def _restart(
        self, old: GatewayProcess, args: Callable[[int, int], list[str]]
    ) -> GatewayProcess:
        """The same gateway again on the ports ``old`` had (a supervisor's restart)."""
        ports = _port(old.http_url), _port(old.grpc_target)
        deadline = time.monotonic() + RESTART_TIMEOUT_SEC
        while True:
            try:
                return self._start(args(*ports))
            except GatewayStartError as exc:
                # A port still held by the dead process's sockets: a supervisor tries again.
                if "in use" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def kill_ingest(self) -> None:
        self.ingest.kill()

    def restart_ingest(self) -> None:
        self.ingest = self._restart(self.ingest, self._ingest_args)

    def kill_auth(self) -> None:
        self.auth.kill()

    def restart_auth(self) -> None:
        self.auth = self._restart(self.auth, self._auth_args)

    def stop(self) -> list[int]:
        """SIGTERM every process still running (Auth first, so its spool is quiet);
        their exit codes."""
        return [gw.stop() for gw in reversed(self.started) if gw.proc and gw.proc.poll() is None]

    # -- what the Auth Gateway says ----------------------------------------------------

    def metric(self, sample: str, gateway: GatewayProcess | None = None) -> float | None:
        """One sample (name and labels as exported) from the ``/metrics`` of ``gateway``,
        the Auth Gateway by default."""
        gw = gateway or self.auth
        with urllib.request.urlopen(gw.http_url + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
        for line in text.splitlines():
            if line.startswith(sample + " "):
                return float(line.split()[1])
        return None

    def spool_batches(self) -> float:
        value = self.metric("logops_auth_spool_batches")
        assert value is not None, "logops_auth_spool_batches is not exported"
        return value

    def client(self, front: str) -> Transport:
        signer = self._keys.signer()
        if front == "grpc":
            return GrpcTransport(self.auth.grpc_target, timeout=5, signer=signer)
        return HttpTransport(self.auth.http_url, timeout=5, signer=signer)


# -- the client side -------------------------------------------------------------------

OUTCOMES = ("accepted", "duplicate", "spooled", "failed")


@dataclass
class Sent:
    """One batch as the client saw it: the seqs it carried, the answer, the retries."""

    batch_id: str
    seqs: range
    outcome: str
    retries: int
    error: str = ""

    @property
    def acknowledged(self) -> bool:
        return self.outcome != "failed"


def outcome_of(result: PushResult, records: int) -> str:
    if result.spooled:
        return "spooled"
    if result.duplicate:
        return "duplicate"
    assert (result.accepted, result.rejected) == (records, 0), result
    return "accepted"


class Stream(threading.Thread):
    """Pushes numbered batches through ``transport`` with retries until stopped, writing
    down every batch's answer. ``stream`` and ``seq`` on each record, ``run_id`` on the
    batch: what loss accounting counts by."""

    def __init__(
        self, name: str, transport: Transport, run_id: str, size: int = 50, pause: float = 0.01
    ) -> None:
        super().__init__(name=f"stream-{name}", daemon=True)
        self.stream, self.run_id, self.size, self.pause = name, run_id, size, pause
        self.sent: list[Sent] = []
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._retries = 0
        self._halt = threading.Event()
        self._client = RetryingTransport(
            transport, max_attempts=10_000, base_sec=0.05, cap_sec=0.5,
            deadline_sec=CLIENT_DEADLINE_SEC, sleep=self._backoff,
        )

    def _backoff(self, seconds: float) -> None:
        self._retries += 1
        time.sleep(seconds)

    def count(self, outcome: str) -> int:
        with self._lock:
            return self._counts[outcome]

    def halt(self) -> None:
        self._halt.set()

    def run(self) -> None:
        n = 0
        try:
            while not self._halt.is_set():
                self._push(n)
                n += 1
                self._halt.wait(self.pause)
        finally:
            self._client.close()

    def _push(self, n: int) -> None:
        seqs = range(n * self.size, (n + 1) * self.size)
        batch = Batch(
            records=[{"msg": f"{self.stream} record {s}", "stream": self.stream, "seq": s}
                     for s in seqs],
            batch_id=f"{self.run_id}-{self.stream}-{n}",
            emitter=CLIENT_EMITTER,
            run_id=self.run_id,
        )
        self._retries, error = 0, ""
        try:
            outcome = outcome_of(self._client.send(batch), self.size)
        except LogOpsError as exc:
            outcome, error = "failed", f"{exc.reason}: {exc.message}"
        with self._lock:
            self.sent.append(Sent(batch.batch_id, seqs, outcome, self._retries, error))
            self._counts[outcome] += 1


def total(streams: Iterable[Stream], outcome: str) -> int:
    return sum(s.count(outcome) for s in streams)


# -- the sink's account ----------------------------------------------------------------


@dataclass
class Account:
    """What the sink holds against what the clients were told."""

    answers: Counter[str] = field(default_factory=Counter)
    batches_retried: int = 0
    retries: int = 0
    stored_records: int = 0
    lost: dict[str, list[int]] = field(default_factory=dict)
    doubled: list[tuple[str, int]] = field(default_factory=list)
    torn: dict[str, int] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    failed_stored: int = 0

    def summary(self) -> str:
        answers = ", ".join(f"{k} {self.answers[k]}" for k in OUTCOMES)
        return (
            f"batches {sum(self.answers.values())} ({answers}); "
            f"retried {self.batches_retried} batches, {self.retries} retries; "
            f"records stored {self.stored_records}; unacknowledged batches stored "
            f"{self.failed_stored}"
        )


def account(sent: list[Sent], lines: list[dict[str, Any]], run_id: str) -> Account:
    """Every record of every acknowledged batch must be stored once, and nothing twice.

    A batch that was never acknowledged may be stored (the answer was lost), but whole.
    """
    acc = Account()
    copies = Counter((line["batch_id"], line["seq"]) for line in lines if line["run_id"] == run_id)
    acc.stored_records = sum(copies.values())
    acc.doubled = sorted(key for key, n in copies.items() if n > 1)
    held: defaultdict[str, set[int]] = defaultdict(set)
    for batch_id, seq in copies:
        held[batch_id].add(seq)
    by_id = {s.batch_id: s for s in sent}
    acc.unknown = sorted(set(held) - set(by_id))
    for s in sent:
        acc.answers[s.outcome] += 1
        acc.batches_retried += s.retries > 0
        acc.retries += s.retries
        missing = sorted(set(s.seqs) - held.get(s.batch_id, set()))
        if s.acknowledged and missing:
            acc.lost[s.batch_id] = missing
        elif not s.acknowledged and s.batch_id in held:
            acc.failed_stored += 1
            if missing:
                acc.torn[s.batch_id] = len(missing)
    return acc
