"""``logops report RUN_ID``: (re)write a run folder's report.html and print its path.

Exit codes: 0 written, 2 bad input (unknown run, nothing in the folder to report).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from emitters.report import ReportInputError, write_report
from emitters.verify import VerifyInputError
from emitters.verify_cli import DEFAULT_RUNS_DIR, run_folder


def add_parser(sub: Any) -> None:
    """Register ``logops report`` on the ``logops`` subcommands."""
    p = sub.add_parser(
        "report",
        help="write a scenario run's report.html (charts, expectations, verify account)",
        description="Build RUN_ID's report.html from its summary.json, timeline.jsonl and "
        "run.json: one self-contained page (nothing is fetched when it is viewed). "
        "Exit codes: 0 written, 2 bad input.",
    )
    p.add_argument("run_id", metavar="RUN_ID", help="the run's folder name under --runs-dir")
    p.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS_DIR, help="default data/runs")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    try:
        path = write_report(run_folder(args.runs_dir, args.run_id))
    except (VerifyInputError, ReportInputError, OSError) as exc:
        print(f"logops report: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0
