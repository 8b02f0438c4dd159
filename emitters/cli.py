"""``logops emit``: one format, one transport, one rate; an account at the end.

``logops emit FORMAT --transport T --target URL --rate EPS (--count N | --duration S)``
(PRODUCT.md section 6). The run prints live progress on stderr once a second (``--quiet``
turns it off) and a final account (``--json`` as one JSON object). Ctrl-C or SIGTERM
stops it cleanly: what had fallen due is sent, then the account says what was sent; a
second Ctrl-C aborts at once. Exit codes: 0 when every record sent was accepted, 1 when
some were rejected or failed, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import secrets
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from clients.files import FSYNC_MODES
from clients.signed import Signer
from clients.syslog import DEFAULT_MAX_DATAGRAM, FRAMINGS
from clients.targets import DEFAULT_TARGETS, TRANSPORTS, TransportSpec, open_transport
from clients.transports import HTTP_BODIES
from emitters.content import ContentOptions
from emitters.emit import EmitLoop, EmitOptions, EmitResult, RetryCounter, stderr_progress
from emitters.formats import FORMATS, get_format
from emitters.rate import MAX_EPS, Schedule
from emitters.source import Accounting, EventSource
from services.devkeys import CLIENT_KEY_ID

# The client key `logops up` (make up) writes for local runs, relative to the folder it ran in.
DEV_SECRET = Path("data/run/keys/demo.secret")
# Gateways get full batches; line transports go out every few milliseconds, so a syslog
# receiver sees a steady flow rather than bursts.
DEFAULT_LINGER_MS = {"grpc": 200.0, "http": 200.0}
LINE_LINGER_MS = 5.0


class UsageError(ValueError):
    """Flags that do not make a run (exit 2)."""


def add_parser(sub: Any) -> None:
    """Register ``logops emit`` on the ``logops`` subcommands."""
    p = sub.add_parser(
        "emit",
        help="send generated logs in one format over one transport at a steady rate",
        description="Generate realistic log lines in FORMAT and send them over a transport at "
        "--rate events per second (open model: a slow receiver makes events late, it never "
        "slows the schedule). Every record carries run_id, stream and seq for loss accounting. "
        "Exit codes: 0 every record accepted, 1 some rejected or failed, 2 bad usage.",
        epilog=f"Default targets: {', '.join(f'{k} {v}' for k, v in DEFAULT_TARGETS.items())}.",
    )
    p.add_argument("format", metavar="FORMAT", help=f"log format ({', '.join(FORMATS)}, ...)")
    p.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="stdout",
        help="where the lines go (default stdout)",
    )
    p.add_argument(
        "--target",
        default="",
        metavar="URL",
        help="HOST:PORT (grpc, syslog+tcp, syslog+udp), http://HOST:PORT (http) or "
        "a path (file); default: the gateways of `logops up`",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=10.0,
        metavar="EPS",
        help=f"events per second, 1 to {MAX_EPS:.0f} (default 10)",
    )
    limit = p.add_mutually_exclusive_group()
    limit.add_argument("--count", type=int, metavar="N", help="stop after N events")
    limit.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    _add_batch_flags(p)
    _add_content_flags(p)
    _add_transport_flags(p)
    p.add_argument("--quiet", action="store_true", help="no live progress on stderr")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the final account as JSON (on stdout; on stderr with --transport stdout)",
    )
    p.set_defaults(func=cmd_emit)


def _add_batch_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--batch-size",
        type=int,
        default=100,
        metavar="B",
        help="records per batch at most (default 100)",
    )
    p.add_argument(
        "--linger-ms",
        type=float,
        metavar="MS",
        help="longest wait for a batch to fill (default 200 for grpc/http, 5 for "
        "the line transports)",
    )
    p.add_argument(
        "--late-ms",
        type=float,
        default=10.0,
        metavar="MS",
        help="an event sent more than MS behind its planned time counts as late (default 10)",
    )


def _add_content_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, help="seed for reproducible content")
    p.add_argument(
        "--error-ratio",
        type=float,
        default=0.05,
        metavar="R",
        help="share of ERROR/FATAL records (default 0.05)",
    )
    p.add_argument(
        "--missing-ts-ratio",
        type=float,
        default=0.0,
        metavar="R",
        help="share of records without a timestamp (default 0)",
    )
    p.add_argument(
        "--missing-level-ratio",
        type=float,
        default=0.0,
        metavar="R",
        help="share of records without a level (default 0)",
    )
    p.add_argument("--run-id", help="run id on every record (default: time and random)")
    p.add_argument(
        "--emitter",
        help="emitter name (default emit-FORMAT; the Auth Gateway replaces it by the key's)",
    )
    p.add_argument("--stream", help="stream name for seq (default: the emitter name)")
    p.add_argument(
        "--first-seq",
        type=int,
        default=0,
        metavar="N",
        help="seq of the first record (default 0; then one more per record)",
    )
    p.add_argument("--scenario-id", default="", help="scenario id on the batches")
    p.add_argument(
        "--structured",
        action="store_true",
        help="json over grpc/http: send records as fields instead of raw lines",
    )
    p.add_argument(
        "--pool-size",
        type=int,
        default=1024,
        metavar="N",
        help="distinct records sampled up front and reused (default 1024)",
    )


def _add_transport_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--key-id",
        help="sign pushes with this key id (grpc/http; default towards "
        f"the default target: {CLIENT_KEY_ID!r} with {DEV_SECRET} when present)",
    )
    p.add_argument("--secret-file", help="file holding the key's secret")
    p.add_argument(
        "--http-body",
        choices=tuple(HTTP_BODIES),
        default="json",
        help="HTTP body kind (default json)",
    )
    p.add_argument("--gzip", action="store_true", help="gzip HTTP bodies")
    p.add_argument(
        "--framing",
        choices=FRAMINGS,
        default="octet",
        help="syslog+tcp framing: octet counting (RFC 6587, default) or lf",
    )
    p.add_argument(
        "--max-datagram",
        type=int,
        default=DEFAULT_MAX_DATAGRAM,
        metavar="BYTES",
        help=f"syslog+udp: longest message sent (default {DEFAULT_MAX_DATAGRAM})",
    )
    p.add_argument(
        "--fsync",
        choices=FSYNC_MODES,
        default="none",
        help="file: fsync after every batch (batch) or only at the end (none)",
    )


def cmd_emit(args: argparse.Namespace) -> int:
    try:
        loop, spec = build(args)
    except (UsageError, ValueError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else exc
        print(f"logops emit: {message}", file=sys.stderr)
        return 2
    notes = sys.stderr
    if not args.quiet:
        _note_accounting(loop, spec, notes)
    stop = threading.Event()
    progress = None if args.quiet else stderr_progress(sys.stderr)
    try:
        with stop_on_signals(stop):
            result = loop.run(stop, progress)
    except KeyboardInterrupt:
        # A second Ctrl-C: the batch in flight is abandoned; the account says so.
        result = loop.result
        result.stop_reason = "aborted"
    finally:
        loop.transport.close()
    _account(result, args, spec)
    return 0 if result.ok and result.stop_reason != "aborted" else 1


def build(args: argparse.Namespace) -> tuple[EmitLoop, TransportSpec]:
    """The loop the flags describe; ``UsageError``/``ValueError`` when they do not add up."""
    try:
        fmt = get_format(args.format)
    except KeyError:
        raise UsageError(
            f"unknown format {args.format!r}; use one of {', '.join(FORMATS)}"
        ) from None
    if args.count is not None and args.count < 1:
        raise UsageError("--count must be at least 1")
    if args.rate < 1:
        raise UsageError(f"--rate must be between 1 and {MAX_EPS:.0f}")
    spec = TransportSpec(
        args.transport,
        args.target,
        http_body=args.http_body,
        framing=args.framing,
        max_datagram=args.max_datagram,
        fsync=args.fsync,
        compress=args.gzip,
    )
    signer = _signer(args, spec)
    emitter = args.emitter or f"emit-{fmt.name}"
    accounting = Accounting(args.run_id or new_run_id(), args.stream or emitter, args.first_seq)
    opts = ContentOptions(
        error_ratio=args.error_ratio,
        missing_ts_ratio=args.missing_ts_ratio,
        missing_level_ratio=args.missing_level_ratio,
    )
    source = EventSource(
        fmt,
        opts,
        accounting,
        seed=args.seed,
        pool_size=args.pool_size,
        line_keys=spec.line_keys,
    )
    schedule = Schedule.constant(args.rate, count=args.count, duration=args.duration)
    linger_ms = args.linger_ms
    if linger_ms is None:
        linger_ms = DEFAULT_LINGER_MS.get(spec.name, LINE_LINGER_MS)
    emit_opts = EmitOptions(
        emitter,
        batch_size=args.batch_size,
        linger_sec=linger_ms / 1000.0,
        late_after_sec=args.late_ms / 1000.0,
        batched=spec.batched,
        structured=args.structured and fmt.name == "json",
        scenario_id=args.scenario_id,
    )
    retries = RetryCounter()
    transport = open_transport(spec, signer, retry_sleep=retries)
    loop = EmitLoop(
        source, schedule, transport, emit_opts, transport_name=spec.name, retries=retries
    )
    return loop, spec


def _signer(args: argparse.Namespace, spec: TransportSpec) -> Signer | None:
    """The key that signs grpc/http pushes: ``--key-id``/``--secret-file``; else, towards the
    default Auth Gateway, the throwaway ``demo`` key of ``logops up`` when it is here."""
    if bool(args.key_id) != bool(args.secret_file):
        raise UsageError("--key-id and --secret-file go together")
    if not args.key_id:
        if spec.batched and not args.target and DEV_SECRET.is_file():
            if not args.quiet:
                print(
                    f"note: signing with the {CLIENT_KEY_ID!r} key of `logops up` ({DEV_SECRET})",
                    file=sys.stderr,
                )
            return Signer.from_file(CLIENT_KEY_ID, DEV_SECRET)
        return None
    if not spec.batched:
        raise UsageError(f"--key-id signs grpc/http pushes; {spec.name} is not signed")
    return Signer.from_file(args.key_id, args.secret_file)


def new_run_id() -> str:
    """``YYYYmmddTHHMMSSZ-xxxxxx``: sortable by time, unique enough for one machine."""
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{now}-{secrets.token_hex(3)}"


def _note_accounting(loop: EmitLoop, spec: TransportSpec, out: Any) -> None:
    """Say so when the format cannot carry the accounting keys its transport needs in the
    line (a CSV line over syslog has no room for seq)."""
    if not spec.line_keys:
        return
    src = loop.source
    rec = src.record(0, 0.0)
    bare = {k: v for k, v in rec.items() if k not in spec.line_keys}
    if src.fmt.render(rec) == src.fmt.render(bare):
        out.write(
            f"note: {src.fmt.name} lines have no room for {', '.join(spec.line_keys)}; "
            f"over {spec.name} downstream loss accounting will not see them\n"
        )


@contextmanager
def stop_on_signals(stop: threading.Event, second_aborts: bool = True) -> Iterator[None]:
    """SIGINT/SIGTERM set ``stop`` (a clean stop: what fell due is sent, the account
    written); with ``second_aborts`` a second one raises KeyboardInterrupt."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if second_aborts and stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _account(result: EmitResult, args: argparse.Namespace, spec: TransportSpec) -> None:
    out = sys.stderr if spec.name == "stdout" else sys.stdout
    if args.json:
        out.write(json.dumps(result.to_dict(), sort_keys=False) + "\n")
        out.flush()
        return
    d = result.to_dict()
    last = f"{d['first_seq']}..{d['last_seq']}" if result.sent else "none"
    sys.stderr.write(
        f"emitted {result.sent} {result.format} records over {result.transport} in "
        f"{d['elapsed_sec']} s ({d['stop_reason']}): target {d['target_eps']} eps, achieved "
        f"{d['achieved_eps']} eps\n"
        f"  accepted {result.accepted}, rejected {result.rejected}, failed {result.failed}, "
        f"spooled {result.spooled}, retries {result.retries}, duplicates {result.duplicates}\n"
        f"  late {result.late} (over {d['late_threshold_ms']} ms; max {d['lateness_max_ms']} "
        f"ms, p99 {d['lateness_p99_ms']} ms)\n"
        f"  run_id {result.run_id}, stream {result.stream}, seq {last}\n"
    )
    for label, reasons in (("rejected", result.rejections), ("failed", result.errors)):
        if reasons:
            listed = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
            sys.stderr.write(f"  {label}: {listed}\n")
    sys.stderr.flush()
