"""The shipped Prometheus configuration sped up (services/obs_rules.py): times divided,
windows kept wide enough for rate(), everything else as shipped, and promtool agrees."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services.obs_rules import SHIPPED_DIR, scale, scale_expr, seconds, write_overlay


@pytest.mark.parametrize(("text", "sec"), [("5m", 300.0), ("1h30m", 5400.0), ("250ms", 0.25),
                                           ("2d", 172800.0), ("15s", 15.0)])
def test_durations_read_as_prometheus_reads_them(text: str, sec: float) -> None:
    assert seconds(text) == sec


@pytest.mark.parametrize("bad", ["", "5", "m5", "5 m", "1.5m"])
def test_what_is_not_a_duration_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        seconds(bad)


def test_times_are_divided_and_range_windows_keep_a_floor() -> None:
    assert scale("2m", 30) == "4s"
    assert scale("45s", 30) == "1500ms"
    assert scale_expr("rate(x_total[5m])", 30, 3.0) == "rate(x_total[10s])"
    assert scale_expr("max_over_time(open[1m])", 30, 3.0) == "max_over_time(open[3s])"
    assert scale_expr("avg_over_time(r[1h:5m])", 30, 3.0) == "avg_over_time(r[120s:10s])"
    assert scale_expr("max_over_time(r[30m:])", 30, 3.0) == "max_over_time(r[60s:])"
    assert scale_expr("x offset 1h", 30, 3.0) == "x offset 120s"
    # Label values are not windows.
    text = 'sum(rate(c_total{code=~"[45]..", le="0.5"}[5m]))'
    assert scale_expr(text, 30, 3.0) == 'sum(rate(c_total{code=~"[45]..", le="0.5"}[10s]))'


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_the_overlay_keeps_the_rules_and_promtool_accepts_it(tmp_path: Path) -> None:
    targets = tmp_path / "targets"
    config = write_overlay(tmp_path / "fast", 30, targets_dir=targets)
    for rules in sorted((tmp_path / "fast" / "rules").glob("*.yml")):
        done = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True,
                              text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        shipped = yaml.safe_load((SHIPPED_DIR / "rules" / rules.name).read_text())
        fast = yaml.safe_load(rules.read_text())
        pairs = [(a, b) for ga, gb in zip(shipped["groups"], fast["groups"], strict=True)
                 for a, b in zip(ga["rules"], gb["rules"], strict=True)]
        for a, b in pairs:
            # Names, labels and annotations as shipped; only the times differ.
            assert {k: v for k, v in a.items() if k not in ("expr", "for")} == {
                k: v for k, v in b.items() if k not in ("expr", "for")}
            if "for" in a:
                assert seconds(b["for"]) == max(seconds(a["for"]) / 30, 0.001)
    doc = yaml.safe_load(config.read_text())
    assert doc["rule_files"] == [str(tmp_path.resolve() / "fast" / "rules" / "*.yml")]
    assert doc["global"]["scrape_interval"] == doc["global"]["evaluation_interval"] == "1s"
    files = [f for job in doc["scrape_configs"] for sd in job["file_sd_configs"]
             for f in sd["files"]]
    assert files and all(Path(f).parent == targets.resolve() for f in files)
    # promtool check config also reads the rule files it names.
    targets.mkdir()
    for f in files + doc["alerting"]["alertmanagers"][0]["file_sd_configs"][0]["files"]:
        Path(f).write_text("- targets: ['127.0.0.1:1']\n")
    done = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_factor_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="1 or more"):
        write_overlay(tmp_path, 0.5)
