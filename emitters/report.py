"""report.html of a scenario run: one self-contained page from summary.json and timeline.jsonl.

Nothing is fetched when the page is viewed: the style sheet and the chart script
(:mod:`emitters.report_assets`) are inline, and a Content-Security-Policy allows no
network and only that script (by its hash). The charts are drawn as SVG by the script from
a JSON data block; the tables are written here. Every string from the run (emitter names,
reasons, expressions, notes) is escaped: in the tables as HTML text, in the data block as
JSON with ``<``, ``>`` and ``&`` as ``\\u`` escapes, and the script only ever sets text.

Charts: target vs achieved EPS per emitter, client round-trip latency (p50, p95, p99) per
emitter, rejections by reason (records per second, all emitters). Tables: the expectations
(ok / failed / not checked), the totals, the emitters and the verify account.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from emitters.report_assets import CSS, JS

REPORT_NAME = "report.html"
# Timelines longer than this are averaged into as many buckets per series.
MAX_POINTS = 1200
_TOTAL_KEYS = ("sent", "accepted", "rejected", "failed", "late", "rate_error_pct")
_EMITTER_KEYS = ("target_eps", "achieved_eps", "sent", "accepted", "rejected", "failed", "late")
_STREAM_KEYS = ("acknowledged", "stored", "missing", "duplicated", "unexpected", "out_of_order")
# How each percentile's line is drawn: p95 solid, p50 dotted, p99 dashed.
_PERCENTILES = {"p50": "dot", "p95": "", "p99": "dash"}


class ReportInputError(Exception):
    """The run folder holds neither summary.json nor run.json: nothing to report."""


def write_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` and return its path."""
    summary = _load_json(run_dir / "summary.json")
    run = _load_json(run_dir / "run.json")
    if summary is None and run is None:
        raise ReportInputError(f"neither summary.json nor run.json in {run_dir}")
    page = render(summary or {}, run or {}, read_timeline(run_dir / "timeline.jsonl"))
    path = run_dir / REPORT_NAME
    tmp = path.with_name(f".{REPORT_NAME}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_timeline(path: Path) -> list[dict[str, Any]]:
    """The readable lines of timeline.jsonl (a torn or odd line is left out)."""
    rows: list[dict[str, Any]] = []
    try:
        fh = path.open("rb")
    except OSError:
        return rows
    with fh:
        for raw in fh:
            try:
                row = json.loads(raw)
            except ValueError:
                continue
            if isinstance(row, dict) and _num(row.get("t")) is not None:
                row["emitter"] = str(row.get("emitter", ""))
                rows.append(row)
    return rows


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def render(summary: dict[str, Any], run: dict[str, Any], timeline: list[dict[str, Any]]) -> str:
    """The page, as text."""
    run_id = str(summary.get("run_id") or run.get("run_id") or "")
    scenario = str(summary.get("scenario") or run.get("scenario") or "")
    data = {"charts": charts(timeline)}
    script_hash = base64.b64encode(hashlib.sha256(JS.encode("utf-8")).digest()).decode()
    csp = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{script_hash}'"
    )
    body = [
        _header(summary, run_id, scenario),
        _section("Expectations", _expectations(summary.get("expectations"))),
        _section("Totals", _totals(summary.get("totals"))),
        _section("Emitters", _emitters(summary.get("emitters"))),
        "<h2>Over time</h2>",
        _figure("eps", "Target vs achieved events per second, per emitter"),
        _figure("rtt", "Client round-trip latency per emitter (p50, p95, p99)"),
        _figure("rejections", "Rejections by reason (records per second, all emitters)"),
        _section("Verify: the run against the NDJSON sink", _verify(summary.get("verify"))),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>LogOps run {_e(run_id)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + '\n<noscript><p class="note">The charts need JavaScript; the tables hold the numbers.'
        "</p></noscript>\n"
        f'<script type="application/json" id="report-data">{_json_block(data)}</script>\n'
        f"<script>{JS}</script>\n</body>\n</html>\n"
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _json_block(data: object) -> str:
    """JSON that cannot end its ``<script>`` element nor open a comment in it."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for raw, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(raw, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _fmt(value: object) -> str:
    num = _num(value)
    if num is None:
        return "-" if value is None else _e(value)
    if num.is_integer() or abs(num) >= 1e5:
        return f"{num:,.0f}"
    # Six significant digits: a ratio of 0.9985 must not read as 1.00 beside ">= 0.999".
    return f"{num:,.6g}"


def _header(summary: dict[str, Any], run_id: str, scenario: str) -> str:
    code = summary.get("exit_code")
    verdict, css = {0: ("passed", "ok"), 1: ("failed", "failed")}.get(
        code if isinstance(code, int) else -1, ("unknown", "unknown")
    )
    if code == 2:
        verdict, css = "bad input", "failed"
    started = _num(summary.get("started_at"))
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if started else "-"
    duration = _num(summary.get("duration_sec"))
    length = f"{duration:.1f} s" if duration is not None else "-"
    return (
        f"<h1>Run {_e(run_id)}</h1>\n"
        f'<p class="meta">scenario {_e(scenario)} · started {when} · duration {length} · '
        f'exit code {_fmt(code)} <span class="verdict {css}">{verdict}</span></p>'
    )


def _section(title: str, content: str) -> str:
    return f"<h2>{_e(title)}</h2>\n{content}"


def _figure(chart_id: str, caption: str) -> str:
    return (
        f"<figure><figcaption>{_e(caption)}</figcaption>"
        f'<div class="chart" id="chart-{chart_id}"></div></figure>'
    )


Cell = str | tuple[str, str]


def _table(
    head: Iterable[str], rows: Iterable[Iterable[Cell]], names: int = 1, text: int = -1
) -> str:
    """Cells are markup already escaped, or (class, markup); the first ``names`` columns
    and column ``text`` are text (left-aligned), the others numbers."""
    out = ["<table><thead><tr>"]
    out += [
        f'<th class="name">{_e(h)}</th>' if i < names or i == text else f"<th>{_e(h)}</th>"
        for i, h in enumerate(head)
    ]
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            plain = "name" if i < names or i == text else ""
            css, markup = cell if isinstance(cell, tuple) else (plain, cell)
            cells.append(f'<td class="{css}">{markup}</td>' if css else f"<td>{markup}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _expectations(items: object) -> str:
    if not isinstance(items, list) or not items:
        return '<p class="note">The scenario states no expectations.</p>'
    rows: list[list[Cell]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        ok = item.get("ok")
        word, css = (
            ("ok", "ok")
            if ok is True
            else ("failed", "failed")
            if ok is False
            else ("not checked", "unchecked")
        )
        rows.append(
            [
                _e(item.get("expr", "")),
                _fmt(item.get("actual")),
                (css, word),
                _e(item.get("note") or ""),
            ]
        )
    return _table(("expectation", "actual", "result", "note"), rows, text=3)


def _totals(totals: object) -> str:
    if not isinstance(totals, dict):
        return '<p class="note">No totals: the run did not finish its summary.</p>'
    return _table(_TOTAL_KEYS, [[_fmt(totals.get(k)) for k in _TOTAL_KEYS]], names=0)


def _emitters(emitters: object) -> str:
    if not isinstance(emitters, dict) or not emitters:
        return '<p class="note">No emitter accounts.</p>'
    rows = []
    for name, acc in emitters.items():
        acc = acc if isinstance(acc, dict) else {}
        reasons = acc.get("rejected_by_reason")
        why = ", ".join(
            f"{_e(r)}: {_fmt(n)}" for r, n in (reasons.items() if isinstance(reasons, dict) else ())
        )
        rows.append([_e(name), *(_fmt(acc.get(k)) for k in _EMITTER_KEYS), why or "-"])
    cols = ("emitter", *_EMITTER_KEYS, "rejected by reason")
    return _table(cols, rows, text=len(cols) - 1)


def _verify(report: object) -> str:
    if not isinstance(report, dict):
        return (
            '<p class="note">Not verified: the Ingest sink was not local to the run. '
            "Run <code>logops verify RUN_ID --sink-dir DIR</code> where it is.</p>"
        )
    totals = _dict(report.get("totals"))
    ratio = _num(totals.get("delivered_ratio"))
    verdict = "nothing lost or duplicated" if report.get("ok") else "loss or duplicates"
    head = (
        f'<p><span class="verdict {"ok" if report.get("ok") else "failed"}">{verdict}</span> '
        f"delivered ratio {'-' if ratio is None else f'{ratio * 100:.3f}%'} · sink "
        f"{_e(report.get('sink_dir', ''))} · {_fmt(report.get('files_read'))} files read</p>"
    )
    rows = [_stream_row(s) for s in _list(report.get("streams")) if isinstance(s, dict)]
    rows.append(["total", "", *_stream_cells(totals), ""])
    heads = (key.replace("_", " ") for key in _STREAM_KEYS)
    cols = ("emitter", "stream", *heads, "latency ms p50 / p95 / p99 / max", "missing seqs")
    return head + _table(cols, rows, names=2, text=len(cols) - 1)


def _stream_cells(acc: dict[str, Any]) -> list[str]:
    lat = acc.get("latency_ms")
    latency = (
        " / ".join(_fmt(lat.get(k)) for k in ("p50", "p95", "p99", "max"))
        if isinstance(lat, dict)
        else "-"
    )
    return [*(_fmt(acc.get(k)) for k in _STREAM_KEYS), latency]


def _stream_row(acc: dict[str, Any]) -> list[str]:
    text = ", ".join(
        _e(r[0]) if r[0] == r[1] else f"{_e(r[0])}-{_e(r[1])}"
        for r in _list(acc.get("missing_ranges"))
        if isinstance(r, list) and len(r) == 2
    )
    return [_e(acc.get("emitter", "")), _e(acc.get("stream", "")), *_stream_cells(acc), text]


def charts(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The three charts' series from the timeline rows: ``{id, title, unit, empty,
    series: [{name, color, dash ("", "dash" or "dot"), points: [[t, value or null], ...]}]}``."""
    emitters = list(dict.fromkeys(row["emitter"] for row in timeline))
    eps: list[dict[str, Any]] = []
    rtt: list[dict[str, Any]] = []
    for color, name in enumerate(emitters):
        rows = [row for row in timeline if row["emitter"] == name]
        eps.append(_series(f"{name} target", color, "dash", rows, lambda r: r.get("target_eps")))
        eps.append(_series(f"{name} achieved", color, "", rows, lambda r: r.get("sent")))
        for p, dash in _PERCENTILES.items():
            rtt.append(_series(f"{name} {p}", color, dash, rows, _rtt(p)))
    return [
        {
            "id": "eps",
            "title": "events per second",
            "unit": "events/s",
            "series": eps,
            "empty": "No timeline: nothing to draw.",
        },
        {
            "id": "rtt",
            "title": "round-trip latency",
            "unit": "ms",
            "series": rtt,
            "empty": "No round-trip times (no acknowledged sends, or transports without answers).",
        },
        {
            "id": "rejections",
            "title": "rejections",
            "unit": "records/s",
            "series": _rejections(timeline),
            "empty": "No rejections.",
        },
    ]


def _rtt(p: str) -> Any:
    def get(row: dict[str, Any]) -> object:
        rtt = row.get("rtt_ms")
        return rtt.get(p) if isinstance(rtt, dict) else None

    return get


def _series(
    name: str, color: int, dash: str, rows: list[dict[str, Any]], get: Any
) -> dict[str, Any]:
    points = [[_num(row["t"]), _num(get(row))] for row in rows]
    points.sort(key=lambda p: p[0] or 0.0)
    return {"name": name, "color": color, "dash": dash, "points": _thin(points)}


def _rejections(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seconds = sorted({_num(row["t"]) or 0.0 for row in timeline})
    per_reason: dict[str, dict[float, float]] = {}
    for row in timeline:
        rejected = row.get("rejected")
        if not isinstance(rejected, dict):
            continue
        for reason, n in rejected.items():
            count = _num(n)
            if count:
                by_t = per_reason.setdefault(str(reason), {})
                t = _num(row["t"]) or 0.0
                by_t[t] = by_t.get(t, 0.0) + count
    return [
        {
            "name": reason,
            "color": i,
            "dash": "",
            "points": _thin([[t, by_t.get(t, 0.0)] for t in seconds]),
        }
        for i, (reason, by_t) in enumerate(sorted(per_reason.items()))
    ]


def _thin(points: list[list[float | None]]) -> list[list[float | None]]:
    """At most :data:`MAX_POINTS` points: consecutive ones averaged (gaps kept as null)."""
    if len(points) <= MAX_POINTS:
        return points
    size = math.ceil(len(points) / MAX_POINTS)
    out: list[list[float | None]] = []
    for i in range(0, len(points), size):
        chunk = points[i : i + size]
        values = [p[1] for p in chunk if p[1] is not None]
        ts = [p[0] for p in chunk if p[0] is not None]
        out.append(
            [
                sum(ts) / len(ts) if ts else None,
                sum(values) / len(values) if values else None,
            ]
        )
    return out
