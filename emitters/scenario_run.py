"""``logops scenario run``: flags to a :class:`~emitters.runner.ScenarioRunner`, the live
view, the runner's own metrics, the summary and the exit code.

Steps of the ``outage`` kind (``stop_ingest``/``start_ingest``) act on the Ingest Gateway
of ``make up``: its pid is in ``logops up``'s log (``data/run/up.log``), and it is frozen
(SIGSTOP) and resumed (SIGCONT) rather than killed, because ``logops up`` stops both
gateways when one of them exits. To the Auth Gateway a frozen Ingest is an outage all the
same: no answer, retries time out, the breaker opens, batches go to the spool.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clients.signed import secret_file
from clients.targets import host_port
from emitters.alerts import DEFAULT_URL, URL_ENV
from emitters.cli import DEV_SECRET, new_run_id, stop_on_signals
from emitters.progress import LiveView, print_summary
from emitters.runner import BadInput, RunOptions, ScenarioRunner, Targets
from emitters.scenario import ScenarioError
from emitters.scenario_cli import load_for_run
from services.devkeys import CLIENT_KEY_ID

UP_LOG = Path("data/run/up.log")
DEFAULT_SINK = Path("data/ingest")
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})


class UpIngest:
    """Stops and starts the Ingest Gateway of ``make up`` (see the module docstring)."""

    def __init__(self, log_file: Path = UP_LOG) -> None:
        self.log_file = log_file

    def pid(self) -> int:
        try:
            lines = self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as exc:
            raise RuntimeError(f"no {self.log_file}: is `make up` running?") from exc
        for line in reversed(lines):
            if '"event":"up"' in line or '"event": "up"' in line:
                pid = int(json.loads(line)["pids"]["ingest"])
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if b"ingest" not in cmdline:
                    break
                return pid
        raise RuntimeError(f"no running Ingest Gateway of `make up` in {self.log_file}")

    def perform(self, action: str) -> str:
        pid = self.pid()
        sig = {"stop_ingest": signal.SIGSTOP, "start_ingest": signal.SIGCONT}[action]
        os.kill(pid, sig)
        return f"Ingest Gateway (pid {pid}) {'frozen' if sig == signal.SIGSTOP else 'resumed'}"


def options_from(args: argparse.Namespace) -> RunOptions:
    """The runner's options from the flags; ``BadInput`` when they do not add up."""
    if bool(args.key_id) != bool(args.secret_file):
        raise BadInput("--key-id and --secret-file go together")
    key = None
    try:
        if args.key_id:
            key = (args.key_id, secret_file(args.secret_file))
        elif DEV_SECRET.is_file():
            key = (CLIENT_KEY_ID, secret_file(DEV_SECRET))
    except OSError as exc:
        raise BadInput(f"cannot read the secret: {exc}") from exc
    targets = Targets(args.ingest_http, args.ingest_grpc, args.syslog, args.auth_http,
                      args.auth_grpc)
    return RunOptions(
        run_id=args.run_id or new_run_id(),
        targets=targets,
        key=key,
        runs_dir=Path(args.runs_dir),
        sink_dir=None if args.no_verify else _sink_dir(args, targets),
        steps=UpIngest(),
        alertmanager=args.alertmanager or os.environ.get(URL_ENV) or DEFAULT_URL,
    )


def _sink_dir(args: argparse.Namespace, targets: Targets) -> Path | None:
    if args.sink_dir:
        return Path(args.sink_dir)
    host, _ = host_port(targets.ingest_grpc, 0)
    return DEFAULT_SINK if host in LOCAL_HOSTS and DEFAULT_SINK.is_dir() else None


def run_command(args: argparse.Namespace) -> int:
    try:
        scenario = load_for_run(args)
        opts = options_from(args)
        if args.metrics_port is not None:
            from emitters.runner_metrics import serve_metrics

            metrics = serve_metrics(args.metrics_port)
            opts.on_send, opts.on_target = metrics, metrics.set_target
        runner = ScenarioRunner(scenario, opts)
        runner.prepare()
    except ScenarioError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (BadInput, ValueError, OSError) as exc:
        print(f"logops scenario run: {exc}", file=sys.stderr)
        return 2
    # Emitters writing to stdout keep it to themselves; the view goes to stderr then.
    out = sys.stderr if any(e.transport == "stdout" for e in scenario.emitters) else sys.stdout
    view = LiveView(scenario.name, out, plain=True if args.plain else None)
    if not args.quiet:
        opts.on_tick = view.update
    with stop_on_signals(opts.stop, second_aborts=False), view if not args.quiet else _nothing():
        result = runner.run()
    print_summary(result.summary, str(result.path), out, view.plain)
    if result.report is not None:
        print(f"report: {result.report}", file=out)
    return result.exit_code


@contextmanager
def _nothing() -> Iterator[None]:
    yield
