"""Scenario files: the shipped ones load, bad ones say every problem with its line and column."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from emitters.expect import AlertExpectation, Expectation
from emitters.scenario import Scenario, ScenarioError, load, loads

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ("default", "quiet", "spike", "burst", "high-errors", "ramp-up", "ramp-down",
           "burst-then-ramp", "chaos", "all-formats", "auth-abuse", "outage")

BAD = """\
name: bad name
duration_sec: 30
colour: blue
emitters:
  - name: a
    format: jsn
    transport: carrier-pigeon
    eps: 100000
    args: {error_ratio: 2, wobble: 1}
  - name: a
    stages:
      - {duration_sec: 0, eps: 5}
expect:
  - lost = 0
  - emitter.nobody.lost == 0
  - {alert: X, state: maybe, within_sec: 10}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        loads(text, "x.yaml")
    return str(info.value).splitlines()


def test_every_shipped_scenario_is_there_and_loads_with_expectations() -> None:
    names = {p.stem for p in (ROOT / "scenarios").glob("*.yaml")}
    assert set(SHIPPED) <= names
    for name in SHIPPED:
        scenario, warnings = load(ROOT / "scenarios" / f"{name}.yaml")
        assert scenario.name == name
        assert warnings == []
        assert scenario.expect, name
        for spec in scenario.emitters:
            schedule = spec.schedule(scenario.duration_sec)
            assert schedule.total is not None and schedule.total > 0


def test_shipped_scenarios_choose_transports_per_emitter() -> None:
    transports = set()
    for name in SHIPPED:
        scenario, _ = load(ROOT / "scenarios" / f"{name}.yaml")
        transports |= {e.transport for e in scenario.emitters}
    assert {"grpc", "http", "syslog+tcp", "syslog+udp"} <= transports


def test_all_errors_at_once_each_with_line_and_column() -> None:
    lines = problems_of(BAD)
    expected = [
        ("1:7", "name may hold"),
        ("3:1", "unknown key 'colour'"),
        ("6:13", "format 'jsn'"),
        ("7:16", "transport 'carrier-pigeon'"),
        ("8:10", "eps must be above 0 and at most 50000"),
        ("9:25", "error_ratio must be at least 0 and at most 1"),
        ("9:28", "warning: args.wobble"),
        ("10:11", "emitter name 'a' is used twice"),
        ("12:24", "duration_sec must be above 0"),
        ("14:5", "is not 'METRIC OP NUMBER'"),
        ("15:5", "no emitter is named 'nobody'"),
        ("16:5", "state must be one of firing, resolved"),
    ]
    assert len(lines) == len(expected)
    for line, (where, text) in zip(lines, expected, strict=True):
        assert line.startswith(f"x.yaml:{where}: "), line
        assert text in line


def test_missing_required_keys_are_named() -> None:
    lines = problems_of("description: nothing else\n")
    assert any("name is required" in x for x in lines)
    assert any("duration_sec is required" in x for x in lines)
    assert any("emitters is required" in x for x in lines)


def test_yaml_syntax_error_has_its_position() -> None:
    lines = problems_of("name: x\nemitters: [\n  {name: a\n")
    assert len(lines) == 1
    assert re.match(r"x\.yaml:\d+:\d+: not valid YAML", lines[0])


def test_duplicate_keys_are_refused_not_silently_overwritten() -> None:
    text = "name: a\nname: b\nduration_sec: 5\nemitters: [{name: e, eps: 1}]\n"
    assert any(x.startswith("x.yaml:2:1: 'name' is given twice") for x in problems_of(text))


def test_a_schedule_that_does_not_fit_the_run_is_an_error_at_the_schedule() -> None:
    text = ("name: a\nduration_sec: 10\nemitters:\n  - name: e\n    eps: 5\n"
            "    schedule: {start_after_sec: 6, ramp_up_sec: 6}\n")
    (line,) = problems_of(text)
    assert line.startswith("x.yaml:6:15: schedule: start_after_sec + ramp_up_sec")


def test_partial_ratio_needs_a_transport_carrying_fields() -> None:
    text = ("name: a\nduration_sec: 10\nemitters:\n  - name: e\n    eps: 5\n"
            "    transport: syslog+tcp\n    args: {partial_ratio: 0.1}\n")
    (line,) = problems_of(text)
    assert line.startswith("x.yaml:7:27: partial_ratio needs a grpc or http")


def test_seed_project_files_still_load() -> None:
    seed = ("name: seed-mix\nduration_sec: 60\ntick_sec: 1\nemitters:\n"
            "  - name: app\n    eps: 5\n    args: {level_weights: {INFO: 3, ERROR: 1}}\n"
            "    schedule: {start_after_sec: 2}\n"
            "  - name: burst\n    eps: 50\n    args: {}\n"
            "    schedule: [{duration_sec: 10, eps: 5}, {duration_sec: 5, eps: 50}]\n")
    scenario, warnings = loads(seed)
    assert scenario.tick_sec == 1.0
    app, burst = scenario.emitters
    assert (app.format, app.transport, app.eps) == ("json", "grpc", 5.0)
    assert app.profile is not None and app.profile.start_after_sec == 2.0
    assert app.args.extra == {"level_weights": {"INFO": 3, "ERROR": 1}}
    assert [w.message for w in warnings] == [
        "args.level_weights is not a knob the runner knows; kept, unused"
    ]
    # A list under schedule is read as stages.
    assert [(s.duration_sec, s.eps) for s in burst.stages] == [(10.0, 5.0), (5.0, 50.0)]
    assert burst.schedule(60).total == 50 + 250


def test_expectations_are_parsed() -> None:
    text = ("name: a\nduration_sec: 10\nemitters: [{name: web-1, eps: 5}]\nexpect:\n"
            "  - lost == 0\n  - emitter.web-1.p95_latency_ms < 500\n"
            "  - emitter.web-1.rejected.bad_signature >= 1\n"
            "  - {alert: LogOpsNoTraffic, state: resolved, within_sec: 30}\n")
    scenario, _ = loads(text)
    lost, p95, reason, alert = scenario.expect
    assert lost == Expectation("lost == 0", "lost", "==", 0.0)
    assert p95 == Expectation("emitter.web-1.p95_latency_ms < 500", "p95_latency_ms", "<",
                              500.0, "web-1")
    assert isinstance(reason, Expectation) and reason.metric == "rejected.bad_signature"
    assert alert == AlertExpectation("LogOpsNoTraffic", "resolved", 30.0)


def test_scaling_shortens_every_duration_and_offset_but_not_rates() -> None:
    scenario, _ = load(ROOT / "scenarios" / "outage.yaml")
    short = scenario.scaled(0.2)
    assert short.duration_sec == pytest.approx(scenario.duration_sec * 0.2)
    assert [s.at_sec for s in short.steps] == pytest.approx([s.at_sec * 0.2
                                                              for s in scenario.steps])
    assert [e.eps for e in short.emitters] == [e.eps for e in scenario.emitters]
    spike, _ = load(ROOT / "scenarios" / "spike.yaml")
    stages = spike.scaled(0.5).emitters[1].stages
    assert [s.duration_sec for s in stages] == [5.0, 2.5, 7.5]
    with pytest.raises(ValueError):
        scenario.scaled(0)


@pytest.mark.parametrize("name", SHIPPED)
def test_the_scenario_as_run_reads_back_the_same(name: str) -> None:
    scenario, _ = load(ROOT / "scenarios" / f"{name}.yaml")
    short = scenario.scaled(0.2)
    again, _ = loads(yaml.safe_dump(short.to_dict(), sort_keys=False))
    assert again == short
    assert isinstance(again, Scenario)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, check=False)


def test_validate_command_exit_codes(tmp_path: Path) -> None:
    ok = run_cli("scenario", "validate", "scenarios/default.yaml")
    assert ok.returncode == 0, ok.stderr
    assert "is valid" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    out = run_cli("scenario", "validate", str(bad))
    assert out.returncode == 2
    assert f"{bad}:6:13: format 'jsn'" in out.stderr
    assert "11 error(s)" in out.stderr
    missing = run_cli("scenario", "validate", str(tmp_path / "none.yaml"))
    assert missing.returncode == 2


def test_short_uses_the_scenarios_own_scale_unless_one_is_given() -> None:
    import argparse

    from emitters.scenario_cli import SCALE_ENV, SHORT_SCALE, scale_of

    def ns(short: bool, scale: float | None = None) -> argparse.Namespace:
        return argparse.Namespace(short=short, scale=scale)

    assert scale_of(ns(False), {}, 0.5) == 1.0
    assert scale_of(ns(True), {}, None) == SHORT_SCALE
    assert scale_of(ns(True), {}, 0.5) == 0.5
    assert scale_of(ns(True), {SCALE_ENV: "0.1"}, 0.5) == 0.1
    assert scale_of(ns(True, 0.3), {SCALE_ENV: "0.1"}, 0.5) == 0.3
    with pytest.raises(ValueError, match=SCALE_ENV):
        scale_of(ns(False), {SCALE_ENV: "fast"}, None)
    outage, _ = load(ROOT / "scenarios" / "outage.yaml")
    assert outage.short_scale == 0.5
