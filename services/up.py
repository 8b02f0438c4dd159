"""``logops up``: the Ingest Gateway and the Auth Gateway in front of it, in one command.

Each gateway runs as a child process of its own (``logops ingest``, ``logops auth``), so
either can be killed and restarted on its own. Ingest starts first; the Auth Gateway
forwards to Ingest's gRPC address, its hop signed with the hop key, which Ingest knows as
a ``forwarder`` (``services/devkeys.py``). One line on stdout gives both addresses; the
children's JSON log lines pass through on stderr. SIGINT or SIGTERM stops the Auth Gateway
first (it drains into Ingest or its spool), then Ingest. If one child dies, the other is
stopped and ``logops up`` exits 1.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from clients.launcher import GatewayProcess, GatewayStartError
from services.common.config import load_config
from services.common.keys import ENV_KEYS_FILE, ENV_KEYS_INLINE
from services.devkeys import CLIENT_KEY_ID, DevKeys, ensure_keys

log = logging.getLogger(__name__)

# A child's log lines kept for error reports; older ones are dropped (it may run for days).
KEEP_LOG_LINES = 500
POLL_SEC = 0.2


class ChildGateway(GatewayProcess):
    """A gateway child whose log lines are also echoed to ``echo`` (when given), whole
    lines under ``lock``, which children echoing to the same stream share."""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        echo: TextIO | None = None,
        lock: threading.Lock | None = None,
    ) -> None:
        super().__init__(args, env=dict(env))
        self._echo = echo
        self._lock = lock or threading.Lock()
        self.name = args[0]

    def _read_logs(self) -> None:
        # The launcher's reader, plus the echo and a bound on what is kept.
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            if self._echo is not None:
                with self._lock:
                    self._echo.write(raw.decode(errors="replace"))
                    self._echo.flush()
            self._keep(raw)

    def _keep(self, raw: bytes) -> None:
        try:
            entry: Any = json.loads(raw)
        except ValueError:
            entry = {"msg": raw.decode(errors="replace").rstrip()}
        self.logs.append(entry)
        if len(self.logs) > 2 * KEEP_LOG_LINES:
            del self.logs[:KEEP_LOG_LINES]
        if isinstance(entry, dict) and entry.get("event") == "listening":
            self.listening = entry
            self._announced.set()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 8) -> str:
        shown = (e.get("msg", e) if isinstance(e, dict) else e for e in self.logs[-lines:])
        return "\n".join(f"  {line}" for line in shown)


def port_of(address: str) -> int:
    """The port of ``http://H:P`` or ``H:P``."""
    url = urllib.parse.urlsplit(address if "//" in address else f"//{address}")
    if url.port is None:
        raise ValueError(f"no port in {address!r}")
    return url.port


@dataclass
class StackOptions:
    """What both gateways need. A port of 0 binds a free one; None leaves it to the
    gateway's own configuration (8080, 50051, 8081, 50052 unless set otherwise)."""

    keys: DevKeys
    # The Auth Gateway's client keys file; None: it reads LOGOPS_AUTH_KEYS(_FILE) itself.
    auth_keys_file: str | None
    ingest_http_port: int | None = None
    ingest_grpc_port: int | None = None
    # Ingest's syslog listener (TCP and UDP; default 5514); 0 binds a free port.
    ingest_syslog_port: int | None = None
    auth_http_port: int | None = None
    auth_grpc_port: int | None = None
    sink_dir: str | None = None
    spool_dir: str | None = None
    env: dict[str, str] = field(default_factory=dict)


class Stack:
    """Ingest and the Auth Gateway as two child processes, started and stopped together."""

    def __init__(self, opts: StackOptions, echo: TextIO | None = None) -> None:
        self.opts = opts
        self._echo = echo
        self._echo_lock = threading.Lock()
        self.ingest: ChildGateway | None = None
        self.auth: ChildGateway | None = None

    def start(self) -> Stack:
        self.start_ingest()
        try:
            self.start_auth()
        except BaseException:
            self.stop()
            raise
        return self

    def start_ingest(self, http_port: int | None = None, grpc_port: int | None = None) -> None:
        """Start (or restart) Ingest; a restart passes the ports it had, which the Auth
        Gateway forwards to."""
        o = self.opts
        args = ["ingest", "--keys-file", str(o.keys.ingest_keys)]
        args += _flags(
            ("--http-port", o.ingest_http_port if http_port is None else http_port),
            ("--grpc-port", o.ingest_grpc_port if grpc_port is None else grpc_port),
            ("--syslog-port", o.ingest_syslog_port),
            ("--sink-dir", o.sink_dir),
        )
        self.ingest = ChildGateway(args, o.env, self._echo, self._echo_lock)
        self.ingest.start()

    def start_auth(self) -> None:
        assert self.ingest is not None
        o = self.opts
        args = ["auth", "--forward", f"grpc://{self.ingest.grpc_target}"]
        args += _flags(
            ("--http-port", o.auth_http_port),
            ("--grpc-port", o.auth_grpc_port),
            ("--keys-file", o.auth_keys_file),
            ("--spool-dir", o.spool_dir),
        )
        self.auth = ChildGateway(
            args, {**o.env, **o.keys.hop_env}, self._echo, self._echo_lock
        )
        self.auth.start()

    def restart_ingest(self) -> None:
        """Stop Ingest and start it again on the same ports."""
        assert self.ingest is not None
        http, grpc = port_of(self.ingest.http_url), port_of(self.ingest.grpc_target)
        self.ingest.stop()
        self.start_ingest(http, grpc)

    def children(self) -> list[ChildGateway]:
        return [gw for gw in (self.auth, self.ingest) if gw is not None]

    def dead(self) -> ChildGateway | None:
        """A child that exited on its own, if any."""
        return next((gw for gw in self.children() if not gw.running()), None)

    def stop(self) -> int:
        """Auth first (it hands what it holds to Ingest or its spool), then Ingest; the
        worst exit code (0 when both stopped cleanly)."""
        codes = [gw.stop() for gw in self.children()]
        return max((abs(c) for c in codes), default=0)

    def summary(self) -> str:
        assert self.auth is not None and self.ingest is not None
        a, i = self.auth, self.ingest
        return (
            f"LogOps up: Auth Gateway {a.http_url} gRPC {a.grpc_target} -> Ingest Gateway "
            f"{i.http_url} gRPC {i.grpc_target} (pids auth {a.pid}, ingest {i.pid}); "
            "Ctrl-C stops both"
        )


def _flags(*pairs: tuple[str, object]) -> list[str]:
    """``--flag value`` for each value that is set."""
    return [part for flag, value in pairs if value is not None for part in (flag, str(value))]


def client_keys_given(args: Any, env: Mapping[str, str]) -> bool:
    """The user has client keys for the Auth Gateway: flag, environment or config file."""
    if args.keys_file or env.get(ENV_KEYS_FILE) or env.get(ENV_KEYS_INLINE):
        return True
    return bool(load_config(env.get("LOGOPS_CONFIG"), env=env).auth.keys_file)


def options(args: Any, env: Mapping[str, str]) -> tuple[StackOptions, bool]:
    """The stack's options from ``logops up``'s flags; also whether keys were made."""
    given = client_keys_given(args, env)
    keys, made = ensure_keys(args.keys_dir, with_client=not given)
    opts = StackOptions(
        keys,
        args.keys_file or (str(keys.auth_keys) if keys.auth_keys else None),
        ingest_http_port=args.ingest_http_port,
        ingest_grpc_port=args.ingest_grpc_port,
        ingest_syslog_port=args.ingest_syslog_port,
        auth_http_port=args.auth_http_port,
        auth_grpc_port=args.auth_grpc_port,
        sink_dir=args.sink_dir,
        spool_dir=args.spool_dir,
    )
    return opts, made


def keys_note(keys: DevKeys, made: bool, auth_url: str) -> str:
    if keys.client_secret is None:
        return f"Client keys: yours. The hop key is in {keys.dir}/."
    state = "made" if made else "kept from an earlier run"
    return (
        f"Throwaway keys ({state}) in {keys.dir}/, chmod 600: client key {CLIENT_KEY_ID!r} "
        f"({keys.client_secret.name}) and the hop key ({keys.hop_secret.name}). Sign with:\n"
        f"  clients/hmac_curl.sh -u {auth_url}/v1/logs -k {CLIENT_KEY_ID} "
        f"--secret-file {keys.client_secret} -d '[{{\"level\":\"INFO\",\"msg\":\"hello\"}}]'"
    )


def run_up(args: Any, env: Mapping[str, str]) -> int:
    opts, made = options(args, env)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stack = Stack(opts, echo=sys.stderr)
    try:
        stack.start()
    except GatewayStartError as exc:
        # Its log lines have just been echoed above: name it, without repeating them.
        print(f"logops up: {str(exc).splitlines()[0]}", file=sys.stderr, flush=True)
        return 1
    assert stack.auth is not None and stack.ingest is not None
    print(stack.summary(), flush=True)
    print(keys_note(opts.keys, made, stack.auth.http_url), flush=True)
    log.info("both gateways listening", extra={
        "event": "up", "auth": stack.auth.listening, "ingest": stack.ingest.listening,
        "pids": {"auth": stack.auth.pid, "ingest": stack.ingest.pid},
    })
    return _supervise(stack, stop)


def _supervise(stack: Stack, stop: threading.Event) -> int:
    """Wait for a signal or a child's death; then stop what still runs."""
    dead = None
    while not stop.wait(POLL_SEC):
        dead = stack.dead()
        if dead is not None:
            break
    if dead is not None and not stop.is_set():
        assert dead.proc is not None
        print(
            f"logops up: the {dead.name} gateway exited (code {dead.proc.returncode}); "
            f"stopping the other. Its last lines:\n{dead.tail()}",
            file=sys.stderr, flush=True,
        )
        stack.stop()
        return 1
    code = stack.stop()
    print(f"logops up: both gateways stopped (exit {code})", flush=True)
    return 0 if code == 0 else 1


def add_parser(sub: Any, func: Any) -> None:
    up = sub.add_parser(
        "up",
        help="run both gateways: Auth (8081, 50052) in front of Ingest (8080, 50051)",
        description="Start the Ingest Gateway and the Auth Gateway forwarding to it over "
        "gRPC, the hop signed with a forwarder key. Without client keys (--keys-file, "
        "LOGOPS_AUTH_KEYS_FILE, LOGOPS_AUTH_KEYS), throwaway ones are made in --keys-dir. "
        "Ctrl-C or SIGTERM stops both; if one exits, the other is stopped (exit 1).",
    )
    up.add_argument("--keys-file", help="the Auth Gateway's client keys (YAML)")
    up.add_argument("--keys-dir", default=str(Path("data/run/keys")),
                    help="where the hop key (and throwaway client keys) live (default "
                    "data/run/keys)")
    for gateway, http, grpc in (("ingest", 8080, 50051), ("auth", 8081, 50052)):
        up.add_argument(f"--{gateway}-http-port", type=int, metavar="P",
                        help=f"{gateway.title()} HTTP port (default {http}; 0 picks one)")
        up.add_argument(f"--{gateway}-grpc-port", type=int, metavar="P",
                        help=f"{gateway.title()} gRPC port (default {grpc}; 0 picks one)")
    up.add_argument("--ingest-syslog-port", type=int, metavar="P",
                    help="Ingest's syslog port, TCP and UDP (default 5514; 0 picks one)")
    up.add_argument("--sink-dir", help="Ingest's NDJSON sink folder (default data/ingest)")
    up.add_argument("--spool-dir", help="the Auth Gateway's spool folder (default data/spool)")
    up.set_defaults(func=func)
