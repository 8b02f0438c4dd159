"""The live view of a scenario run and its one-screen summary.

On a terminal, a ``rich`` live table refreshed once a second: per emitter the target and
achieved EPS, sent, accepted, rejected by reason, late and failed, and the steps done so
far. When stdout is not a terminal (CI, a pipe), one plain line per emitter per tick. At
the end, the same table for the whole run, the expectations with their verdict, and the
run folder's path.
"""

from __future__ import annotations

from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from emitters.run_account import Counts
from emitters.runner import Row, Snapshot

# Rates are events per second: the target of the schedule and what was actually sent.
COLUMNS = ("emitter", "transport", "target", "actual", "sent", "accepted", "rejected", "late",
           "failed")


def _reasons(c: Counts) -> str:
    if not c.rejected:
        return "0"
    parts = ", ".join(f"{k} {v}" for k, v in c.rejected_by_reason.most_common(3))
    return f"{c.rejected} ({parts})"


def _table(snap: Snapshot, title: str) -> Table:
    table = Table(title=title, title_justify="left", box=None, pad_edge=False,
                  expand=False, header_style="bold underline")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("emitter", "transport") else "right",
                         no_wrap=True)
    for r in snap.rows:
        c = r.counts
        table.add_row(r.name, r.transport, f"{r.target_eps:,.0f}", f"{r.window_eps:,.0f}",
                      f"{c.sent:,}", f"{c.accepted:,}", f"{c.rejected:,}", f"{c.late:,}",
                      f"{c.failed:,}")
    return table


def _refusals(rows: list[Row]) -> list[str]:
    """Rejections by reason, one line per emitter that had any."""
    return [f"{r.name} rejected: {_reasons(r.counts)}" for r in rows if r.counts.rejected]


class LiveView:
    """A rich live table (``terminal``) or plain lines, fed with snapshots."""

    def __init__(self, scenario: str, out: TextIO, *, plain: bool | None = None) -> None:
        self.scenario = scenario
        self.out = out
        self.console = Console(file=out)
        self.plain = not self.console.is_terminal if plain is None else plain
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        if not self.plain:
            self._live = Live(console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None

    def update(self, snap: Snapshot) -> None:
        if self._live is not None:
            title = (f"scenario {self.scenario}: {snap.elapsed_sec:5.1f} s of "
                     f"{snap.duration_sec:g} s (rates in events/s)")
            lines = _refusals(snap.rows) + snap.events[-4:]
            events = Text("\n".join(lines), style="dim")
            self._live.update(Group(_table(snap, title), events))
            return
        for r in snap.rows:
            c = r.counts
            self.out.write(
                f"scenario {snap.elapsed_sec:6.1f}s {r.name:<16} target {r.target_eps:8.0f} "
                f"eps achieved {r.window_eps:8.0f} eps sent {c.sent} accepted {c.accepted} "
                f"rejected {_reasons(c)} late {c.late} failed {c.failed}\n"
            )
        self.out.flush()


def print_summary(summary: dict[str, Any], path: str, out: TextIO, plain: bool) -> None:
    """The run's account on one screen: totals, per emitter, verify, expectations."""
    console = Console(file=out, no_color=plain, width=None if not plain else 120)
    t = summary["totals"]
    console.print(
        f"scenario {summary['scenario']} run {summary['run_id']}: "
        f"{summary['duration_sec']} s, sent {t['sent']:,}, accepted {t['accepted']:,}, "
        f"rejected {t['rejected']:,}, failed {t['failed']:,}, late {t['late']:,}, "
        f"rate error {t['rate_error_pct']} %"
    )
    table = Table(box=None, pad_edge=False, expand=False)
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("emitter", "transport") else "right",
                         no_wrap=True)
    refusals = []
    for name, e in summary["emitters"].items():
        table.add_row(name, e["transport"], f"{e['target_eps']:,.0f}",
                      f"{e['achieved_eps']:,.0f}", f"{e['sent']:,}", f"{e['accepted']:,}",
                      f"{e['rejected']:,}", f"{e['late']:,}", f"{e['failed']:,}")
        if e["rejected_by_reason"]:
            reasons = ", ".join(f"{k} {v}" for k, v in e["rejected_by_reason"].items())
            refusals.append(f"  {name} rejected: {reasons}")
    console.print(table)
    for line in refusals:
        console.print(line)
    _print_verify(summary.get("verify"), console)
    for e in summary["expectations"]:
        verdict = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[yellow]----[/]"}
        console.print(f"  {verdict[e['ok']]} {e['expr']}  (actual {e['actual']}; {e['note']})")
    word = "every expectation holds" if summary["exit_code"] == 0 else "an expectation failed"
    if summary.get("interrupted"):
        word = "interrupted"
    console.print(f"{word}; run folder {path}/ (exit {summary['exit_code']})")


def _print_verify(verify: dict[str, Any] | None, console: Console) -> None:
    if verify is None:
        console.print("verify: not run (the sink is not local, or --no-verify): lost and "
                      "duplicates not measured")
        return
    t = verify["totals"]
    lat = t.get("latency_ms") or {}
    console.print(
        f"verify: acknowledged {t['acknowledged']:,}, stored {t['stored']:,}, missing "
        f"{t['missing']:,}, duplicated {t['duplicated']:,}, unexpected {t['unexpected']:,}, "
        f"latency p50/p95/p99 {lat.get('p50')}/{lat.get('p95')}/{lat.get('p99')} ms"
    )
