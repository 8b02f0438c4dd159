"""The shipped Prometheus configuration sped up: every time in the rules divided by a factor.

The shipped rules are paced for production: ``for: 2m``, five-minute rate windows, a
15-second scrape. A scenario lasts seconds, so against those rules almost no alert can
fire within a run. :func:`write_overlay` writes a copy of ``prometheus.yml`` and its rule
files into another folder with

- every ``for:`` divided by ``factor`` (``2m`` at 30 is ``4s``);
- every range window, subquery range and step, and ``offset`` in the expressions divided
  by ``factor``, but a range window never below ``min_range`` seconds: ``rate()`` needs two
  samples in its window, so a window must span a few scrapes (``[1m]`` at 30 is ``[3s]``,
  not ``[2s]``);
- the scrape and evaluation intervals divided by ``factor``, at least ``min_interval``
  seconds (and the scrape timeout no longer than the scrape interval);
- ``file_sd_configs`` pointing at ``targets_dir`` (the shipped ``targets/`` unless told).

Thresholds, labels, annotations, job names, the Alertmanager discovery and the rules'
logic are left as shipped, so what fires is what the shipped rules would fire, sooner.
``logops obs-up --rules-scale F`` (services/obs_stack.py) runs this overlay for scenario
work; tests/obs_support.py runs it for the end-to-end alert test. ``promtool check rules``
passes on the rewritten files (checked there).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "observability" / "prometheus"
UNIT_SEC = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
            "y": 31536000.0}
_PART = r"\d+(?:ms|[smhdwy])"
_DURATION = re.compile(rf"(?:{_PART})+")
_ONE = re.compile(r"(\d+)(ms|[smhdwy])")
_RANGE = re.compile(rf"\[\s*({_PART}(?:{_PART})*)\s*(?::\s*((?:{_PART})+)?\s*)?\]")
_OFFSET = re.compile(rf"\boffset\s+(-?)((?:{_PART})+)")


def seconds(duration: str) -> float:
    """``1h30m`` -> 5400.0 (Prometheus's duration syntax); ``ValueError`` otherwise."""
    text = duration.strip()
    if not _DURATION.fullmatch(text):
        raise ValueError(f"{duration!r} is not a Prometheus duration")
    return sum(int(n) * UNIT_SEC[unit] for n, unit in _ONE.findall(text))


def duration(sec: float) -> str:
    """Seconds as a Prometheus duration: whole seconds when exact, else milliseconds."""
    ms = max(1, round(sec * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def scale(text: str, factor: float, floor: float = 0.0) -> str:
    """A duration divided by ``factor``, at least ``floor`` seconds."""
    return duration(max(seconds(text) / factor, floor))


def scale_expr(expr: str, factor: float, min_range: float) -> str:
    """Range windows, subqueries and offsets of a PromQL expression divided by ``factor``."""

    def window(m: re.Match[str]) -> str:
        rng = scale(m[1], factor, min_range)
        if m.group(0).count(":") == 0:
            return f"[{rng}]"
        return f"[{rng}:{scale(m[2], factor) if m[2] else ''}]"

    def offset(m: re.Match[str]) -> str:
        return f"offset {m[1]}{scale(m[2], factor)}"

    return _OFFSET.sub(offset, _RANGE.sub(window, expr))


def scale_rules(doc: dict[str, Any], factor: float, min_range: float) -> dict[str, Any]:
    """A rule file (parsed) with its times divided by ``factor`` (see the module docstring)."""
    groups = []
    for group in doc.get("groups") or []:
        g = dict(group)
        if "interval" in g:
            g["interval"] = scale(str(g["interval"]), factor, 1.0)
        rules = []
        for rule in g.get("rules") or []:
            r = dict(rule)
            r["expr"] = scale_expr(str(r["expr"]), factor, min_range)
            if "for" in r:
                r["for"] = scale(str(r["for"]), factor)
            rules.append(r)
        g["rules"] = rules
        groups.append(g)
    return {**doc, "groups": groups}


def _file_sd_to(config: dict[str, Any], targets_dir: Path, factor: float,
                min_interval: float) -> None:
    jobs = config.get("scrape_configs") or []
    for job in jobs:  # a job's own intervals, when it has them
        for key in ("scrape_interval", "scrape_timeout"):
            if key in job:
                job[key] = scale(str(job[key]), factor, min_interval)
    sd_lists = [job.get("file_sd_configs") or [] for job in jobs]
    alerting = (config.get("alerting") or {}).get("alertmanagers") or []
    sd_lists += [am.get("file_sd_configs") or [] for am in alerting]
    for sds in sd_lists:
        for sd in sds:
            sd["files"] = [str(targets_dir / Path(f).name) for f in sd.get("files") or []]


class _Dumper(yaml.SafeDumper):
    """Multi-line expressions stay readable blocks (``|``) in the rewritten files."""


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)


def _dump(doc: dict[str, Any]) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=1000)


def write_overlay(dest: Path, factor: float, *, source_dir: Path = SHIPPED_DIR,
                  targets_dir: Path | None = None, min_interval: float = 1.0,
                  min_range: float = 3.0) -> Path:
    """``dest/prometheus.yml`` and ``dest/rules/*.yml``, the shipped ones sped up by
    ``factor``; the path of the new ``prometheus.yml``."""
    if not (math.isfinite(factor) and factor >= 1):
        raise ValueError("the rules' scale factor must be 1 or more")
    dest = dest.resolve()  # Prometheus reads relative paths against the config's folder
    config = yaml.safe_load((source_dir / "prometheus.yml").read_text(encoding="utf-8"))
    glob = config.setdefault("global", {})
    interval = max(seconds(str(glob.get("scrape_interval", "1m"))) / factor, min_interval)
    glob["scrape_interval"] = duration(interval)
    glob["evaluation_interval"] = duration(
        max(seconds(str(glob.get("evaluation_interval", "1m"))) / factor, min_interval))
    glob["scrape_timeout"] = duration(interval)
    rules_dir = dest / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    for pattern in config.get("rule_files") or []:
        for path in sorted(source_dir.glob(pattern)):
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
            scaled = scale_rules(doc, factor, min_range)
            (rules_dir / path.name).write_text(
                f"# {path.name} with every time divided by {factor:g} (services/obs_rules.py)\n"
                + _dump(scaled), encoding="utf-8")
    config["rule_files"] = [str(rules_dir / "*.yml")]
    _file_sd_to(config, (targets_dir or source_dir / "targets").resolve(), factor, min_interval)
    out = dest / "prometheus.yml"
    out.write_text(_dump(config), encoding="utf-8")
    return out
