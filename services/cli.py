"""The ``logops`` command: run the gateways and the maintenance jobs.

The only module that reads the environment and parses flags. Exit codes: 0 success,
1 runtime failure, 2 bad input (flags or configuration).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.common.config import Config, ConfigError, load_config
from services.common.keys import KeyRing
from services.common.logs import configure_logging
from services.common.process import (
    enable_stack_dumps,
    freeze_start_up_objects,
    raise_fd_limit,
    wait_for_stop,
)

log = logging.getLogger("logops")


def _config(args: argparse.Namespace, overrides: dict[str, Any]) -> Config:
    return load_config(args.config, env=os.environ, overrides=overrides)


def _add_config_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        default=os.environ.get("LOGOPS_CONFIG"),
        help="YAML config file (env LOGOPS_CONFIG); LOGOPS_* variables override it",
    )


def cmd_ingest(args: argparse.Namespace) -> int:
    from services.ingest.wiring import IngestGateway

    cfg = _config(
        args,
        {
            "ingest.http.host": args.host,
            "ingest.grpc.host": args.host,
            "ingest.syslog.host": args.host,
            "ingest.http.port": args.http_port,
            "ingest.grpc.port": args.grpc_port,
            "ingest.syslog.port": args.syslog_port,
            "ingest.syslog.enabled": False if args.no_syslog else None,
            "ingest.sink.dir": args.sink_dir,
            "ingest.sink.durability": args.durability,
            "ingest.keys_file": args.keys_file,
        },
    )
    configure_logging(cfg.logging.level)
    nofile = raise_fd_limit()
    enable_stack_dumps()
    stop = threading.Event()
    # Only keys given to Ingest itself (--keys-file, ingest.keys_file): the Auth Gateway's
    # client keys, often in the same environment, are not Ingest's to trust. A file that
    # cannot be read or is invalid is a ConfigError: exit 2.
    gateway = IngestGateway(cfg.ingest, on_failure=stop.set)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        gateway.start()
    except OSError as exc:
        log.error("cannot start: %s", exc, extra={"event": "start_failed"})
        return 1
    log.info("file-descriptor limit", extra={"event": "nofile", "nofile": nofile})
    freeze_start_up_objects()
    wait_for_stop(stop)
    gateway.stop()
    # A front that stopped serving on its own: exit non-zero so a supervisor restarts us.
    return 1 if gateway.failure else 0


def cmd_auth(args: argparse.Namespace) -> int:
    from services.auth.spool import SpoolError
    from services.auth.wiring import AuthGateway

    cfg = _config(
        args,
        {
            "auth.http.host": args.host,
            "auth.grpc.host": args.host,
            "auth.http.port": args.http_port,
            "auth.grpc.port": args.grpc_port,
            "auth.keys_file": args.keys_file,
            "auth.forward.target": args.forward,
            "auth.spool.dir": args.spool_dir,
            "auth.redis": args.redis,
            "auth.mode": args.mode,
        },
    )
    configure_logging(cfg.logging.level)
    nofile = raise_fd_limit()
    enable_stack_dumps()
    stop = threading.Event()
    gateway = AuthGateway(cfg.auth, _auth_keys(args, cfg.auth.keys_file), on_failure=stop.set)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        gateway.start()
    except (OSError, SpoolError) as exc:
        log.error("cannot start: %s", exc, extra={"event": "start_failed"})
        return 1
    log.info("file-descriptor limit", extra={"event": "nofile", "nofile": nofile})
    freeze_start_up_objects()
    wait_for_stop(stop)
    gateway.stop()
    return 1 if gateway.failure else 0


def _auth_keys(args: argparse.Namespace, configured: str) -> KeyRing | None:
    """Keys from --keys-file, else the environment (a file or inline YAML), else the
    config file's auth.keys_file; None when there are none (fine in mode none)."""
    from services.common.keys import keys_from_env, load_keys_file

    if args.keys_file:
        return load_keys_file(args.keys_file)
    from_env = keys_from_env(os.environ)
    if from_env is None and configured:
        return load_keys_file(configured)
    return from_env


def cmd_housekeeping(args: argparse.Namespace) -> int:
    from services.ingest.housekeeping import run_housekeeping

    cfg = _config(
        args,
        {
            "ingest.sink.dir": args.sink_dir,
            "ingest.housekeeping.retention_days": args.retention_days,
            "ingest.housekeeping.action": args.action,
        },
    )
    configure_logging(cfg.logging.level)
    hk = cfg.ingest.housekeeping
    actions = run_housekeeping(cfg.ingest.sink.dir, hk.retention_days, hk.action, args.dry_run)
    verb = "would" if args.dry_run else "did"
    for action in actions:
        print(
            f"{verb} {action.action}: {action.path} "
            f"({action.age_days:.1f} days, {action.bytes} bytes)"
        )
    print(f"{len(actions)} file(s); retention {hk.retention_days:g} days, action {hk.action}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from services.up import run_up

    configure_logging("INFO")
    return run_up(args, os.environ)


def cmd_demo(args: argparse.Namespace) -> int:
    from services.demo import run_demo, scenario_scale

    return run_demo(scenario_scale(os.environ))


# Test hooks only: a fixed clock and nonce make `logops sign` output reproducible.
SIGN_TIME_ENV, SIGN_NONCE_ENV = "LOGOPS_SIGN_TIME", "LOGOPS_SIGN_NONCE"


class SignInputError(ValueError):
    """A missing or unusable body or secret for ``logops sign``."""


def cmd_sign(args: argparse.Namespace) -> int:
    from services.common.keys import MIN_SECRET_BYTES
    from services.common.signing import sign_headers

    try:
        body, secret = _sign_body(args), _sign_secret(args)
        if len(secret) < MIN_SECRET_BYTES:
            raise SignInputError(f"the secret is shorter than {MIN_SECRET_BYTES} bytes")
        clock = os.environ.get(SIGN_TIME_ENV)
        now = (float(clock) if clock else time.time()) + args.ts_offset
        headers = sign_headers(
            (args.key_id, secret),
            body,
            args.media_type,
            now=now,
            nonce=os.environ.get(SIGN_NONCE_ENV) or None,
        )
    except (OSError, ValueError) as exc:
        print(f"logops sign: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(headers, indent=2))
        return 0
    pairs = [("Content-Type", args.media_type), *headers.items()]
    if args.format == "curl":
        print(" ".join(f"-H {shlex.quote(f'{name}: {value}')}" for name, value in pairs))
    else:
        print("\n".join(f"{name}: {value}" for name, value in pairs))
    return 0


def _sign_body(args: argparse.Namespace) -> bytes:
    if args.data is not None:
        return str(args.data).encode("utf-8")
    if args.file is not None and args.file != "-":
        return Path(args.file).read_bytes()
    if args.file is None and sys.stdin.isatty():
        raise SignInputError("give the body with --data, --file or on standard input")
    return sys.stdin.buffer.read()


def _sign_secret(args: argparse.Namespace) -> bytes:
    if args.secret_file:
        # The file's text without its final line break, as `echo secret > file` writes it.
        return Path(args.secret_file).read_bytes().rstrip(b"\r\n")
    secret = os.environ.get("LOGOPS_SECRET", "")
    if not secret:
        raise SignInputError("no secret: give --secret-file F or set LOGOPS_SECRET")
    return secret.encode("utf-8")


def _add_sign_parser(sub: Any) -> None:
    sign = sub.add_parser(
        "sign",
        help="print LOGOPS1-HMAC-SHA256 signature headers for a request body",
        description="Sign a body the way the gateways verify it (docs/signing.md). "
        "Every run makes a fresh nonce: signed headers are good for one request only.",
    )
    body = sign.add_mutually_exclusive_group()
    body.add_argument("--data", help="the body as text (UTF-8)")
    body.add_argument("--file", help="the body from a file, byte for byte ('-' is stdin)")
    sign.add_argument("--key-id", required=True, help="the key id (x-logops-key-id)")
    sign.add_argument("--secret-file", help="file holding the secret (default: env LOGOPS_SECRET)")
    sign.add_argument(
        "--media-type",
        default="application/json",
        help="Content-Type the request is sent with (default application/json)",
    )
    sign.add_argument(
        "--ts-offset",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="shift the timestamp, e.g. -400 to see a clock_skew refusal",
    )
    sign.add_argument(
        "--format",
        choices=("http", "curl", "json"),
        default="http",
        help="http: header lines; curl: -H arguments; json: the five headers",
    )
    sign.set_defaults(func=cmd_sign)


def _add_auth_parser(sub: Any) -> None:
    auth = sub.add_parser(
        "auth",
        help="run the Auth Gateway (gRPC + HTTP): checks signatures and limits, forwards to Ingest",
        description="Verify LOGOPS1-HMAC-SHA256 signatures (docs/signing.md), apply per-key "
        "rate limits and forward pushes to the Ingest Gateway; while Ingest is down, keep "
        "them in a durable spool and deliver them later.",
    )
    _add_config_flag(auth)
    auth.add_argument("--host", help="address for both fronts (default 127.0.0.1)")
    auth.add_argument("--http-port", type=int, help="HTTP port (default 8081; 0 picks one)")
    auth.add_argument("--grpc-port", type=int, help="gRPC port (default 50052; 0 picks one)")
    auth.add_argument(
        "--keys-file",
        help="YAML keys file (default: env LOGOPS_AUTH_KEYS_FILE, "
        "or the keys inline in LOGOPS_AUTH_KEYS)",
    )
    auth.add_argument(
        "--forward",
        metavar="URL",
        help="the Ingest Gateway: grpc://HOST:PORT (default "
        "grpc://127.0.0.1:50051) or http://HOST:PORT",
    )
    auth.add_argument("--spool-dir", help="durable spool folder (default data/spool)")
    auth.add_argument(
        "--redis",
        metavar="URL",
        help="redis://HOST:PORT/DB: nonces and rate limits shared by replicas",
    )
    auth.add_argument(
        "--mode",
        choices=("hmac", "none"),
        help="hmac (default): every push signed; none: open, for local use only",
    )
    auth.set_defaults(func=cmd_auth)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logops",
        description="LogOps: a development environment for log pipelines.",
        epilog="Exit codes: 0 success, 1 runtime failure, 2 bad flags or configuration.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="run the Ingest Gateway (gRPC + HTTP + syslog)")
    _add_config_flag(ingest)
    ingest.add_argument("--host", help="address for every front (default 127.0.0.1)")
    ingest.add_argument("--http-port", type=int, help="HTTP port (default 8080; 0 picks one)")
    ingest.add_argument("--grpc-port", type=int, help="gRPC port (default 50051; 0 picks one)")
    ingest.add_argument(
        "--syslog-port", type=int, help="syslog TCP and UDP port (default 5514; 0 picks one)"
    )
    ingest.add_argument(
        "--no-syslog",
        action="store_true",
        help="no syslog listener (env LOGOPS_INGEST_SYSLOG_ENABLED=false)",
    )
    ingest.add_argument("--sink-dir", help="NDJSON sink folder (default data/ingest)")
    ingest.add_argument("--durability", choices=("batch", "interval", "none"))
    ingest.add_argument(
        "--keys-file",
        help="verify LOGOPS1-HMAC-SHA256 signatures with these keys, e.g. the Auth Gateway's "
        "hop key (env LOGOPS_INGEST_KEYS_FILE, else LOGOPS_AUTH_KEYS_FILE/LOGOPS_AUTH_KEYS; "
        "default: none, every push is taken unsigned)",
    )
    ingest.set_defaults(func=cmd_ingest)

    _add_auth_parser(sub)

    from services.up import add_parser as add_up_parser

    add_up_parser(sub, cmd_up)

    from emitters.cli import add_parser as add_emit_parser

    add_emit_parser(sub)

    from emitters.scenario_cli import add_parser as add_scenario_parser

    add_scenario_parser(sub)

    from emitters.verify_cli import add_parser as add_verify_parser

    add_verify_parser(sub)

    from emitters.report_cli import add_parser as add_report_parser

    add_report_parser(sub)

    hk = sub.add_parser("housekeeping", help="delete or archive sink files past retention")
    _add_config_flag(hk)
    hk.add_argument("--sink-dir")
    hk.add_argument("--retention-days", type=float)
    hk.add_argument("--action", choices=("delete", "archive"))
    hk.add_argument("--dry-run", action="store_true", help="only say what would be done")
    hk.set_defaults(func=cmd_housekeeping)

    demo = sub.add_parser(
        "demo",
        help="both gateways on free ports: signed pushes, a refusal, a spooled batch delivered",
    )
    demo.set_defaults(func=cmd_demo)

    _add_sign_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"logops: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
