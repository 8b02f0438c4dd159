"""``logops verify RUN_ID``: the account of a scenario run against the NDJSON sink.

A table per emitter and stream and a one-line verdict (``--json``: the report as one JSON
object, the same that summary.json holds as ``verify``). Exit codes: 0 nothing missing or
duplicated, 1 loss or duplicates, 2 bad input (unknown run, unreadable folder).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from emitters.verify import Account, Latency, VerifyInputError, VerifyReport, verify_run

DEFAULT_RUNS_DIR = Path("data/runs")
_NAME_WIDTH = 24
_COLUMNS = ("sent", "acked", "stored", "missing", "dup", "unexp", "order")
_LATENCY = ("p50", "p95", "p99", "max")


def add_parser(sub: Any) -> None:
    """Register ``logops verify`` on the ``logops`` subcommands."""
    p = sub.add_parser(
        "verify",
        help="reconcile a scenario run with the NDJSON sink: lost, duplicated, late",
        description="Read a run folder's run.json and sends.jsonl and the NDJSON sink (rotated "
        "and gzipped files included) and say, per emitter and stream, what was acknowledged, "
        "stored, missing, duplicated, unexpected (stored, never acknowledged) and out of "
        "order, with end-to-end latency (ingest_ts minus the send time). "
        "Exit codes: 0 nothing lost or duplicated, 1 loss or duplicates, 2 bad input.",
    )
    p.add_argument("run_id", metavar="RUN_ID", help="the run's folder name under --runs-dir")
    p.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS_DIR, help="default data/runs")
    p.add_argument(
        "--sink-dir",
        type=Path,
        default=None,
        help="the NDJSON sink (default: the run's sink_dir, else data/ingest)",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=cmd_verify)


def run_folder(runs_dir: Path, run_id: str) -> Path:
    """The folder of ``run_id``; a name that is not a plain folder name is bad input."""
    if not run_id or run_id in (".", "..") or "/" in run_id or "\\" in run_id or "\0" in run_id:
        raise VerifyInputError(f"not a run id: {printable(run_id)}")
    run_dir = runs_dir / run_id
    if not run_dir.is_dir():
        raise VerifyInputError(f"no run {printable(run_id)} in {runs_dir}")
    return run_dir


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        report = verify_run(run_folder(args.runs_dir, args.run_id), args.sink_dir)
    except VerifyInputError as exc:
        print(f"logops verify: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_report(report, sys.stdout)
    return report.exit_code


def printable(text: str) -> str:
    """``text`` safe for a terminal: control and format characters as escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _name(text: str) -> str:
    text = printable(text)
    return text if len(text) <= _NAME_WIDTH else text[: _NAME_WIDTH - 1] + "~"


def _cells(acc: Account) -> list[str]:
    counts = (acc.sent, acc.acknowledged, acc.stored, acc.missing, acc.duplicated)
    cells = [str(n) for n in (*counts, acc.unexpected, acc.out_of_order)]
    lat: Latency | None = acc.latency_ms
    cells += ["-"] * 4 if lat is None else [str(v) for v in (lat.p50, lat.p95, lat.p99, lat.max)]
    return cells


def print_report(report: VerifyReport, out: TextIO) -> None:
    """The human account: a header, the table, the missing ranges, the verdict."""
    out.write(
        f"run {printable(report.run_id)}: sink {printable(report.sink_dir)} "
        f"({report.files_read} files, {report.bytes_read / 1e6:.1f} MB read)\n"
    )
    rows = [["emitter", "stream", *_COLUMNS, *(f"{c} ms" for c in _LATENCY)]]
    rows += [[_name(s.emitter), _name(s.stream), *_cells(s)] for s in report.streams]
    rows.append(["total", "", *_cells(report.totals)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        names = [cell.ljust(w) for cell, w in zip(row[:2], widths, strict=False)]
        numbers = [cell.rjust(w) for cell, w in zip(row[2:], widths[2:], strict=True)]
        out.write("  ".join([*names, *numbers]).rstrip() + "\n")
    for s in report.streams:
        if s.missing_ranges:
            ranges = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in s.missing_ranges)
            more = ", ..." if s.missing > sum(b - a + 1 for a, b in s.missing_ranges) else ""
            out.write(f"missing in {_name(s.stream)}: seq {ranges}{more}\n")
    for what, n in (
        ("lines naming the run that are not JSON", report.bad_lines),
        ("lines of the run without stream and seq", report.unaccounted_lines),
        ("unreadable lines in sends.jsonl", report.bad_send_lines),
    ):
        if n:
            out.write(f"note: {n} {what}\n")
    out.write(verdict(report) + "\n")


def verdict(report: VerifyReport) -> str:
    """One line: OK or FAILED, and the counts that decide it."""
    t = report.totals
    ratio = "n/a" if t.delivered_ratio is None else f"{t.delivered_ratio * 100:.3f}%"
    extra = "".join(
        f", {n} {what}"
        for what, n in (("unexpected", t.unexpected), ("out of order", t.out_of_order))
        if n
    )
    if report.ok:
        return (
            f"OK: {t.delivered} of {t.acknowledged} acknowledged records stored ({ratio}), "
            f"none duplicated{extra}"
        )
    return (
        f"FAILED: {t.missing} missing, {t.duplicated} duplicated of {t.acknowledged} "
        f"acknowledged ({ratio} delivered){extra}"
    )
