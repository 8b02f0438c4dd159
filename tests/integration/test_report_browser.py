"""report.html in a real browser: headless Chromium runs the page's script and draws the charts.

Needs Debian's ``chromium`` package (in the Makefile's DEBS); skipped, saying so, without it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from emitters.report import write_report
from tests.unit.emitters.runfolder import HOSTILE, write_finished_run

pytestmark = pytest.mark.slow

EMITTERS = ["web", "api-" + HOSTILE]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (Debian package chromium, in the Makefile's DEBS)")
    return found


def _browse(tmp_path: Path, page: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars",
            *flags,
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class _Dom(HTMLParser):
    """The elements under each chart holder, and every element's tag."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.charts: dict[str, list[tuple[str, dict[str, str | None]]]] = {}
        self.title: list[str] = []
        self._in: list[str | None] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        holder = a.get("id") if tag == "div" and (a.get("id") or "").startswith("chart-") else None
        current = next((h for h in reversed(self._in) if h), None)
        if current:
            self.charts[current].append((tag, a))
        if holder:
            self.charts[holder] = []
        if tag not in ("meta", "br", "img", "input", "link", "path", "line", "circle"):
            self._in.append(holder)
        self._in_title = tag == "title" and not current

    def handle_endtag(self, tag: str) -> None:
        if tag not in ("meta", "br", "img", "input", "link", "path", "line", "circle") and self._in:
            self._in.pop()
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)


def test_chromium_draws_every_chart_and_runs_no_name(tmp_path: Path) -> None:
    run_dir = tmp_path / "20261201T120000Z-abc123"
    write_finished_run(run_dir, EMITTERS)
    page = write_report(run_dir)
    done = _browse(tmp_path, page, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = _Dom()
    dom.feed(done.stdout)
    assert 'data-charts="drawn"' in done.stdout.split(">", 2)[1], "the chart script did not finish"
    # A line per series that has data: 2 per emitter (target, achieved), 3 per emitter
    # (p50, p95, p99), and 2 reasons.
    for holder, series in (("chart-eps", 4), ("chart-rtt", 6), ("chart-rejections", 2)):
        paths = [a for tag, a in dom.charts[holder] if tag == "path"]
        assert len(paths) == series, holder
        for a in paths:
            # Drawn lines: many points each, inside the plot.
            points = re.findall(r"[ML](-?[\d.]+) (-?[\d.]+)", a["d"] or "")
            assert len(points) >= 20
            assert all(0 <= float(x) <= 900 and 0 <= float(y) <= 280 for x, y in points)
        assert sum(1 for tag, _ in dom.charts[holder] if tag == "li") == series
    # The hostile names were shown as text: no element of theirs, no script of theirs ran.
    assert "img" not in dom.tags
    assert "".join(dom.title) == "LogOps run 20261201T120000Z-abc123"
    assert "api-&lt;img src=x onerror=" in done.stdout


def test_chromium_screenshot_is_not_blank(tmp_path: Path) -> None:
    run_dir = tmp_path / "20261201T120000Z-abc123"
    write_finished_run(run_dir, EMITTERS)
    page = write_report(run_dir)
    shot = tmp_path / "report.png"
    done = _browse(tmp_path, page, "--window-size=1000,1600", f"--screenshot={shot}")
    assert done.returncode == 0, done.stderr[-2000:]
    colours = _png_colours(shot.read_bytes())
    # The palette's blue and red lines are on the page, not only text greys and white.
    assert any(r < 80 and 100 < g < 140 and b > 160 for r, g, b in colours), "no blue line"
    assert any(r > 190 and g < 70 and b < 70 for r, g, b in colours), "no red line"


def _png_colours(data: bytes) -> set[tuple[int, int, int]]:
    """The distinct RGB colours of an 8-bit RGB or RGBA PNG (what Chromium writes)."""
    import struct
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + size]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6)
            channels = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + size
    raw = zlib.decompress(idat)
    stride = width * channels
    prev = bytearray(stride)
    colours: set[tuple[int, int, int]] = set()
    for row in range(height):
        start = row * (stride + 1)
        ftype, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, ul = prev[i], prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + left) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + up) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif ftype == 4:
                p = left + up - ul
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else ul
                line[i] = (line[i] + pred) & 0xFF
        colours.update((line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels * 2))
        prev = line
    return colours
