"""The style sheet and the chart script that report.html carries inline (no network at view time).

The script draws each chart as SVG from the data block (``<script type="application/json"
id="report-data">``): it builds elements with ``createElementNS`` and sets every text
from the run with ``textContent``, never as markup, and takes colours from its own
palette by index. When done it sets ``data-charts="drawn"`` on ``<html>``.
"""

from __future__ import annotations

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; --ok: #1a7f37; --bad: #c62828;
  --nc: #8a6d00; --bg: #fff; --panel: #f6f7f9; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); margin: 0 auto; max-width: 1100px; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
.meta { color: var(--muted); margin: 0 0 8px; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 10px; font-weight: 600;
  color: #fff; }
.verdict.ok { background: var(--ok); } .verdict.failed { background: var(--bad); }
.verdict.unknown { background: var(--nc); }
table { border-collapse: collapse; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right;
  vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.name, th.name { text-align: left; min-width: 6em; max-width: 320px; overflow-wrap: anywhere; }
td.ok { color: var(--ok); font-weight: 600; } td.failed { color: var(--bad); font-weight: 600; }
td.unchecked { color: var(--nc); }
figure { margin: 12px 0 24px; }
figcaption { font-weight: 600; margin-bottom: 4px; }
.chart svg { width: 100%; max-width: 900px; height: auto; background: var(--panel);
  border: 1px solid var(--line); }
.chart.empty { color: var(--muted); font-style: italic; }
.axis text { font-size: 11px; fill: var(--muted); }
.grid line { stroke: var(--line); }
ul.legend { list-style: none; padding: 0; margin: 4px 0; display: flex; flex-wrap: wrap;
  gap: 4px 16px; }
ul.legend li { overflow-wrap: anywhere; }
.swatch { display: inline-block; width: 18px; height: 3px; vertical-align: middle;
  margin-right: 6px; }
.swatch.dash { background-image: linear-gradient(90deg, transparent 60%, #fff 60%);
  background-size: 7px 3px; }
.swatch.dot { background-image: linear-gradient(90deg, transparent 50%, #fff 50%);
  background-size: 4px 3px; }
.note { color: var(--muted); }
"""

JS = r"""
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                 "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
  var W = 900, H = 280, L = 62, R = 14, T = 14, B = 34;
  var DASHES = { dash: "6 4", dot: "2 3" };

  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (parent) { parent.appendChild(e); }
    return e;
  }

  function niceStep(span, n) {
    var raw = span / n;
    var mag = Math.pow(10, Math.floor(Math.log(raw) / Math.LN10));
    var f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
  }

  function fmt(v) {
    var a = Math.abs(v);
    if (a >= 1e6) { return (v / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M"; }
    if (a >= 1e3) { return (v / 1e3).toFixed(a >= 1e4 ? 0 : 1) + "k"; }
    return String(Math.round(v * 100) / 100);
  }

  function extent(series) {
    var x0 = Infinity, x1 = -Infinity, y1 = 0, n = 0;
    series.forEach(function (s) {
      s.points.forEach(function (p) {
        if (p[0] < x0) { x0 = p[0]; }
        if (p[0] > x1) { x1 = p[0]; }
        if (p[1] !== null) { n += 1; if (p[1] > y1) { y1 = p[1]; } }
      });
    });
    return { x0: x0, x1: x1 > x0 ? x1 : x0 + 1, y1: y1 > 0 ? y1 * 1.08 : 1, n: n };
  }

  function axes(svg, ext, unit) {
    var g = el("g", { "class": "grid" }, svg), a = el("g", { "class": "axis" }, svg);
    var sy = niceStep(ext.y1, 5), sx = niceStep(ext.x1 - ext.x0, 8), v;
    for (v = 0; v <= ext.y1 + 1e-9; v += sy) {
      var y = T + (H - T - B) * (1 - v / ext.y1);
      el("line", { x1: L, x2: W - R, y1: y, y2: y }, g);
      el("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, a).textContent = fmt(v);
    }
    for (v = Math.ceil(ext.x0 / sx) * sx; v <= ext.x1 + 1e-9; v += sx) {
      var x = L + (W - L - R) * (v - ext.x0) / (ext.x1 - ext.x0);
      el("line", { x1: x, x2: x, y1: T, y2: H - B }, g);
      el("text", { x: x, y: H - B + 15, "text-anchor": "middle" }, a).textContent = fmt(v) + " s";
    }
    var label = el("text", { x: 12, y: T + (H - T - B) / 2, "text-anchor": "middle",
                             transform: "rotate(-90 12 " + (T + (H - T - B) / 2) + ")" }, a);
    label.textContent = unit;
  }

  function line(svg, ext, s) {
    var color = PALETTE[s.color % PALETTE.length], d = "", run = 0, lone = [];
    var px = function (p) { return L + (W - L - R) * (p[0] - ext.x0) / (ext.x1 - ext.x0); };
    var py = function (p) { return T + (H - T - B) * (1 - p[1] / ext.y1); };
    s.points.forEach(function (p, i) {
      if (p[1] === null) { if (run === 1) { lone.push(s.points[i - 1]); } run = 0; return; }
      d += (run ? "L" : "M") + px(p).toFixed(1) + " " + py(p).toFixed(1);
      run += 1;
    });
    if (run === 1) { lone.push(s.points[s.points.length - 1]); }
    var g = el("g", { "class": "series" }, svg);
    el("title", {}, g).textContent = s.name;
    if (d) {
      el("path", { d: d, fill: "none", stroke: color, "stroke-width": s.dash ? 1.5 : 2,
                   "stroke-dasharray": DASHES[s.dash] || "none", "stroke-linejoin": "round" }, g);
    }
    lone.forEach(function (p) { el("circle", { cx: px(p), cy: py(p), r: 2.5, fill: color }, g); });
  }

  function legend(holder, series) {
    var ul = document.createElement("ul");
    ul.className = "legend";
    series.forEach(function (s) {
      var li = document.createElement("li"), sw = document.createElement("span");
      sw.className = DASHES[s.dash] ? "swatch " + s.dash : "swatch";
      sw.style.backgroundColor = PALETTE[s.color % PALETTE.length];
      li.appendChild(sw);
      li.appendChild(document.createTextNode(s.name));
      ul.appendChild(li);
    });
    holder.appendChild(ul);
  }

  function draw(holder, chart) {
    var ext = extent(chart.series);
    if (!ext.n) {
      holder.classList.add("empty");
      holder.textContent = chart.empty;
      return;
    }
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img" }, null);
    el("title", {}, svg).textContent = chart.title;
    axes(svg, ext, chart.unit);
    chart.series.forEach(function (s) { line(svg, ext, s); });
    holder.appendChild(svg);
    legend(holder, chart.series);
  }

  var data = JSON.parse(document.getElementById("report-data").textContent);
  data.charts.forEach(function (chart) {
    var holder = document.getElementById("chart-" + chart.id);
    if (holder) { draw(holder, chart); }
  });
  document.documentElement.setAttribute("data-charts", "drawn");
})();
"""
