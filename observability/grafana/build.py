"""Render the LogOps dashboards to the JSON Grafana provisions, or check the committed JSON.

    python -m observability.grafana.build            # write observability/grafana/dashboards/
    python -m observability.grafana.build --check    # exit 1 if the committed JSON differs

Also lists every query of the dashboards, for the tests that parse them and evaluate them
against a real Prometheus.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.loki import Dataquery as LokiQuery
from grafana_foundation_sdk.models.prometheus import Dataquery as PromQuery

from observability.grafana import overview, scenario_run

DASHBOARDS_DIR = Path(__file__).resolve().parent / "dashboards"
# File name (the dashboard's uid) -> the function that builds it.
DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    f"{overview.UID}.json": overview.build,
    f"{scenario_run.UID}.json": scenario_run.build,
}
DIFF_LINES = 40


def finish(builder: Dashboard) -> model.Dashboard:
    """Build, numbering the panels 1, 2, ... in layout order (Grafana wants unique ids)."""
    board = builder.build()
    for number, panel in enumerate(_panels(board), start=1):
        panel.id_val = number
    return board


def _panels(board: model.Dashboard) -> Iterator[model.Panel | model.RowPanel]:
    for panel in board.panels or []:
        yield panel
        if isinstance(panel, model.RowPanel):
            yield from panel.panels


def render(board: model.Dashboard) -> str:
    return JSONEncoder(sort_keys=True, indent=2).encode(board) + "\n"


def rendered() -> dict[str, str]:
    return {name: render(finish(build())) for name, build in DASHBOARDS.items()}


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def differences(out: Path) -> list[str]:
    """What ``write(out)`` would change: a short unified diff per file, stale files named."""
    fresh = rendered()
    report: list[str] = []
    for name, text in fresh.items():
        path = out / name
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        if old == text:
            continue
        diff = list(
            difflib.unified_diff(
                old.splitlines(),
                text.splitlines(),
                f"committed/{name}",
                f"generated/{name}",
                lineterm="",
                n=1,
            )
        )
        more = len(diff) - DIFF_LINES
        report.extend(diff[:DIFF_LINES] + ([f"... {more} more diff lines"] if more > 0 else []))
    for path in sorted(out.glob("*.json")):
        if path.name not in fresh:
            report.append(f"{path}: no dashboard generates this file (stale)")
    return report


def _queries(board: model.Dashboard) -> Iterator[tuple[str, object]]:
    for panel in _panels(board):
        if isinstance(panel, model.Panel):
            for target in panel.targets or []:
                yield panel.title or "", target


def prometheus_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana's variables) of every Prometheus query."""
    return [
        (title, query.expr)
        for build in DASHBOARDS.values()
        for title, query in _queries(finish(build()))
        if isinstance(query, PromQuery)
    ]


def logql_queries() -> list[tuple[str, str]]:
    """(panel title, LogQL with Grafana's variables) of every Loki query."""
    return [
        (title, query.expr)
        for build in DASHBOARDS.values()
        for title, query in _queries(finish(build()))
        if isinstance(query, LokiQuery)
    ]


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    if match is None:
        raise ValueError(f"not a duration like 15s or 1m: {duration!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    return float(match.group(1)) * scale


def substitute(expr: str, scrape_interval: str = "15s", time_range: str = "1h") -> str:
    """Replace Grafana's variables as Grafana would: every emitter and level ("All"),
    ``$__rate_interval`` at its floor of four scrape intervals, ``$__range`` as given."""
    millis = round(4 * _seconds(scrape_interval) * 1000)
    rate_interval = f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"
    values = {
        "$__rate_interval": rate_interval,
        "$__range": time_range,
        "$emitter": ".*",
        "$level": ".*",
    }
    # Longest names first, so $__range never eats part of a longer name.
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace(name, values[name])
    if "$" in expr:
        raise ValueError(f"a Grafana variable is left unsubstituted: {expr}")
    return expr


def promql_expressions(
    scrape_interval: str = "15s", time_range: str = "1h"
) -> list[tuple[str, str]]:
    """(panel title, PromQL ready for Prometheus) of every Prometheus query."""
    return [
        (title, substitute(expr, scrape_interval, time_range))
        for title, expr in prometheus_queries()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DASHBOARDS_DIR, help="dashboards folder")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the JSON in --out differs"
    )
    args = parser.parse_args(argv)
    if args.check:
        report = differences(args.out)
        for line in report:
            print(line)
        if report:
            print(
                f"dashboards in {args.out} are not up to date: run "
                "python -m observability.grafana.build",
                file=sys.stderr,
            )
            return 1
        return 0
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
