"""``logops scenario validate FILE`` and ``logops scenario run FILE``.

``validate`` prints every problem of a scenario file as ``FILE:LINE:COLUMN: message`` and
exits 2 when there is any error (warnings alone exit 0). ``run`` drives the scenario's
emitters against the gateways (docs/scenarios.md), writes the run folder, and exits 0 when
every expectation holds, 1 when one fails, 2 on bad input (the file, the flags, a target
that does not answer at the start).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from emitters.scenario import ScenarioError, load


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
