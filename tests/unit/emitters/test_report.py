"""report.html: self-contained, every run string escaped, the charts' data from the timeline."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from emitters.report import MAX_POINTS, ReportInputError, charts, write_report
from emitters.report_assets import JS
from tests.unit.emitters.runfolder import HOSTILE, write_finished_run

EVIL = "api-" + HOSTILE


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text outside scripts and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self._raw = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._raw += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._raw -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._raw:
            self.text.append(data)


def _report(tmp_path: Path) -> tuple[str, _Tags]:
    run_dir = tmp_path / "20261201T120000Z-abc123"
    write_finished_run(run_dir, ["web", EVIL])
    page = write_report(run_dir).read_text(encoding="utf-8")
    tags = _Tags()
    tags.feed(page)
    return page, tags


def _data(page: str) -> Any:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page)
    assert match is not None
    return json.loads(match.group(1))


def test_hostile_names_stay_text(tmp_path: Path) -> None:
    page, tags = _report(tmp_path)
    # Only the page's own elements: the names made no <img>, closed no <script>.
    assert {tag for tag, _ in tags.tags} <= {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "h1",
        "h2",
        "p",
        "span",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "figure",
        "figcaption",
        "div",
        "noscript",
        "script",
        "code",
    }
    assert [t for t, _ in tags.tags].count("script") == 2
    assert not any("onerror" in attrs for _, attrs in tags.tags)
    text = "".join(tags.text)
    # Read back as text, each hostile string is what the run said.
    assert EVIL in text and ("alerts are not checked yet " + HOSTILE) in text
    assert "rate_limited: 8, " + HOSTILE + ": 2" in text
    assert html.escape(EVIL) in page


def test_the_data_block_cannot_end_its_script(tmp_path: Path) -> None:
    page, _ = _report(tmp_path)
    match = re.search(r'id="report-data">(.*?)</script>', page, re.S)
    assert match is not None
    block = match.group(1)
    assert "<" not in block and ">" not in block and "\u2028" not in block
    names = {s["name"] for c in _data(page)["charts"] for s in c["series"]}
    assert f"{EVIL} achieved" in names and HOSTILE in names


def test_nothing_is_fetched_and_only_the_own_script_may_run(tmp_path: Path) -> None:
    page, tags = _report(tmp_path)
    for _, attrs in tags.tags:
        assert not {"src", "href", "action"} & set(attrs)
    assert "url(" not in page and "@import" not in page
    (csp,) = [
        a["content"] for t, a in tags.tags if a.get("http-equiv") == "Content-Security-Policy"
    ]
    digest = base64.b64encode(hashlib.sha256(JS.encode()).digest()).decode()
    assert csp is not None and "default-src 'none'" in csp
    assert f"script-src 'sha256-{digest}'" in csp
    assert f"<script>{JS}</script>" in page


def test_tables_say_ok_failed_and_not_checked(tmp_path: Path) -> None:
    page, _ = _report(tmp_path)
    assert '<td class="failed">failed</td>' in page
    assert '<td class="ok">ok</td>' in page
    assert '<td class="unchecked">not checked</td>' in page
    assert "delivered ratio 99.967%" in page
    # Ratios keep their digits: 0.9985 against ">= 0.999" does not show as 1.00.
    assert "<td>0.9985</td>" in page and "<td>99.6</td>" in page and "<td>12,345,679</td>" in page
    assert '<span class="verdict failed">failed</span>' in page


def test_chart_series_from_the_timeline(tmp_path: Path) -> None:
    page, _ = _report(tmp_path)
    eps, rtt, rejections = _data(page)["charts"]
    assert [c["id"] for c in (eps, rtt, rejections)] == ["eps", "rtt", "rejections"]
    target = next(s for s in eps["series"] if s["name"] == "web target")
    assert target["dash"] == "dash" and target["points"][9:11] == [[9, 100.0], [10, 150.0]]
    p95 = next(s for s in rtt["series"] if s["name"] == "web p95")
    styles = {s["name"]: s["dash"] for s in rtt["series"]}
    assert (styles["web p50"], styles["web p95"], styles["web p99"]) == ("dot", "", "dash")
    assert p95["points"][5] == [5, None]  # a second without answers: a gap, not a zero
    limited = next(s for s in rejections["series"] if s["name"] == "rate_limited")
    # Both emitters' rejections of the second add up; seconds without any are zero.
    assert limited["points"][3] == [3, 6.0] and limited["points"][4] == [4, 0.0]
    assert len(limited["points"]) == 30  # the torn last timeline line is left out


def test_a_long_timeline_is_thinned() -> None:
    rows = [{"t": t, "emitter": "e", "target_eps": 10.0, "sent": t % 2} for t in range(10_000)]
    (target, achieved), _, _ = (c["series"] for c in charts(rows))
    assert len(achieved["points"]) <= MAX_POINTS
    # Buckets of 9 seconds: t 0..8 averaged, sent 0,1,0,1,0,1,0,1,0.
    assert achieved["points"][0] == [4.0, pytest.approx(4 / 9)]
    assert target["points"][-1][1] == 10.0


def test_a_run_without_summary_or_timeline(tmp_path: Path) -> None:
    run_dir = tmp_path / "r1"
    run_dir.mkdir()
    with pytest.raises(ReportInputError):
        write_report(run_dir)
    (run_dir / "run.json").write_text(json.dumps({"run_id": "r1", "scenario": "quiet"}))
    page = write_report(run_dir).read_text()
    assert "<h1>Run r1</h1>" in page and "No totals" in page and "Not verified" in page
    assert all(c["series"] == [] for c in _data(page)["charts"])
