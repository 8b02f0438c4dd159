"""``logops scenario validate FILE`` and ``logops scenario run FILE``.

``validate`` prints every problem of a scenario file as ``FILE:LINE:COLUMN: message`` and
exits 2 when there is any error (warnings alone exit 0). ``run`` drives the scenario's
emitters against the gateways (docs/scenarios.md), writes the run folder, and exits 0 when
every expectation holds, 1 when one fails, 2 on bad input (the file, the flags, a target
that does not answer at the start).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from emitters.scenario import Scenario, ScenarioError, load

# LOGOPS_SCENARIO_SCALE multiplies every duration; --short uses SHORT_SCALE unless it is set.
SCALE_ENV = "LOGOPS_SCENARIO_SCALE"
SHORT_SCALE = 0.2


def add_parser(sub: Any) -> None:
    """Register ``logops scenario`` (validate, run) on the ``logops`` subcommands."""
    p = sub.add_parser(
        "scenario",
        help="validate or run a scenario file (scenarios/*.yaml)",
        description="Scenario files describe emitters, their rate shapes and the run's "
        "expectations (docs/scenarios.md).",
    )
    actions = p.add_subparsers(dest="scenario_command", required=True)
    v = actions.add_parser("validate", help="check a scenario file; every problem with "
                           "its line and column (exit 2 on any error)")
    v.add_argument("file", metavar="FILE")
    v.set_defaults(func=cmd_validate)
    r = actions.add_parser(
        "run",
        help="run a scenario against the gateways and write data/runs/<run_id>/",
        description="Run every emitter of FILE on its own schedule, show live progress, "
        "write the run folder and check the expectations. Exit codes: 0 every expectation "
        "holds, 1 one fails, 2 bad input (file, flags, a target that does not answer).",
    )
    r.add_argument("file", metavar="FILE")
    _add_run_flags(r)
    r.set_defaults(func=cmd_run)


def _add_run_flags(r: argparse.ArgumentParser) -> None:
    r.add_argument("--ingest-http", metavar="URL", default="http://127.0.0.1:8080",
                   help="Ingest Gateway HTTP (default http://127.0.0.1:8080)")
    r.add_argument("--ingest-grpc", metavar="H:P", default="127.0.0.1:50051",
                   help="Ingest Gateway gRPC (default 127.0.0.1:50051)")
    r.add_argument("--syslog", metavar="H:P", default="127.0.0.1:5514",
                   help="Ingest's syslog listener, TCP and UDP (default 127.0.0.1:5514)")
    r.add_argument("--auth-http", metavar="URL", default="http://127.0.0.1:8081",
                   help="Auth Gateway HTTP (default http://127.0.0.1:8081)")
    r.add_argument("--auth-grpc", metavar="H:P", default="127.0.0.1:50052",
                   help="Auth Gateway gRPC (default 127.0.0.1:50052)")
    r.add_argument("--key-id", help="sign grpc/http pushes with this key (default: the "
                   "'demo' key of `logops up` when data/run/keys/demo.secret exists)")
    r.add_argument("--secret-file", help="file holding the key's secret")
    r.add_argument("--runs-dir", default="data/runs", metavar="D",
                   help="where run folders go (default data/runs)")
    r.add_argument("--run-id", metavar="ID", help="the run id (default: time and random)")
    r.add_argument("--sink-dir", metavar="D", help="Ingest's NDJSON sink, to verify the run "
                   "against (default data/ingest when Ingest is on this machine)")
    r.add_argument("--no-verify", action="store_true", help="do not reconcile with the sink")
    r.add_argument("--short", action="store_true",
                   help=f"the short version: every duration times the scenario's short_scale "
                   f"(default {SHORT_SCALE}); {SCALE_ENV} or --scale override it")
    r.add_argument("--scale", type=float, metavar="F",
                   help=f"scale every duration by F, 0 < F <= 1 (env {SCALE_ENV})")
    r.add_argument("--metrics-port", type=int, metavar="P",
                   help="serve the runner's own metrics (sent, late, failed by emitter) on P")
    r.add_argument("--alertmanager", metavar="URL",
                   help="Alertmanager to check the scenario's alert expectations against "
                   "(default $LOGOPS_ALERTMANAGER_URL, else http://127.0.0.1:9093)")
    r.add_argument("--plain", action="store_true",
                   help="plain progress lines even on a terminal")
    r.add_argument("--quiet", action="store_true", help="no live progress")


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        scenario, warnings = load(args.file)
    except ScenarioError as exc:
        errors = sum(1 for p in exc.problems if not p.warning)
        print(str(exc), file=sys.stderr)
        print(f"{args.file}: {errors} error(s)", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"logops scenario validate: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    for w in warnings:
        print(w.render(args.file), file=sys.stderr)
    print(f"{args.file}: scenario {scenario.name!r} is valid: {len(scenario.emitters)} "
          f"emitter(s), {scenario.duration_sec:g} s, {len(scenario.expect)} expectation(s)")
    return 0


def scale_of(args: argparse.Namespace, env: dict[str, str], short_scale: float | None) -> float:
    """The duration scale: --scale, else LOGOPS_SCENARIO_SCALE, else with --short the
    scenario's own short_scale (default SHORT_SCALE), else 1."""
    if args.scale is not None:
        return float(args.scale)
    raw = env.get(SCALE_ENV, "")
    if raw:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{SCALE_ENV}={raw!r} is not a number") from None
    if args.short:
        return SHORT_SCALE if short_scale is None else short_scale
    return 1.0


def load_for_run(args: argparse.Namespace) -> Scenario:
    """The scenario file, checked and scaled; ``ScenarioError``/``ValueError``/``OSError``."""
    scenario, warnings = load(args.file)
    for w in warnings:
        print(w.render(args.file), file=sys.stderr)
    return scenario.scaled(scale_of(args, dict(os.environ), scenario.short_scale))


def cmd_run(args: argparse.Namespace) -> int:
    from emitters.scenario_run import run_command

    return run_command(args)
