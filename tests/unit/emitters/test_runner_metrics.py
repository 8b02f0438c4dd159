"""The runner's own metrics on a real registry: the send counters and
``logops_emitter_target_records_per_second``, set by a real run as its schedule changes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from emitters.run_account import Counts
from emitters.runner import RunOptions, ScenarioRunner
from emitters.runner_metrics import RunnerMetrics
from emitters.scenario import load

TARGET = "logops_emitter_target_records_per_second"

SCENARIO = """\
name: target-gauge
duration_sec: 2.4
emitters:
  - name: stepped
    transport: file
    target: {out}/stepped.log
    stages:
      - {{duration_sec: 0.6, eps: 0}}
      - {{duration_sec: 0.8, eps: 50}}
      - {{duration_sec: 1.0, eps: 0}}
  - name: ramped
    transport: file
    target: {out}/ramped.log
    stages:
      - {{duration_sec: 1.6, eps: 100, ramp: true}}
      - {{duration_sec: 0.8, eps: 100}}
"""


def test_the_target_rate_follows_the_schedule_and_is_zero_outside_the_run(
    tmp_path: Path,
) -> None:
    registry = CollectorRegistry()
    metrics = RunnerMetrics(registry)
    seen: dict[str, list[float | None]] = {"stepped": [], "ramped": []}

    def on_target(emitter: str, eps: float) -> None:
        metrics.set_target(emitter, eps)
        # What a scrape would read right now.
        seen[emitter].append(registry.get_sample_value(TARGET, {"emitter": emitter}))

    file = tmp_path / "s.yaml"
    file.write_text(SCENARIO.format(out=tmp_path))
    scenario, _ = load(file)
    opts = RunOptions(run_id="gauge", runs_dir=tmp_path / "runs", on_send=metrics,
                      on_target=on_target)
    result = ScenarioRunner(scenario, opts).run()

    stepped, ramped = seen["stepped"], seen["ramped"]
    assert stepped[0] == 0.0 and ramped[0] == 0.0  # before the start
    assert stepped[-1] == 0.0 and ramped[-1] == 0.0  # after the end
    assert 50.0 in stepped
    # 0 during the first stage, 50 during the second, 0 again in the third.
    first_50, last_50 = stepped.index(50.0), len(stepped) - 1 - stepped[::-1].index(50.0)
    assert first_50 > 1 and set(stepped[1:first_50]) == {0.0}
    assert set(stepped[first_50:last_50 + 1]) == {50.0}
    assert 0.0 in stepped[last_50 + 1 : -1]
    # The ramp rises through values between its ends, never back, then holds at 100 until
    # the emitter's loop ends (0 from then on).
    during = [v for v in ramped[1:-1] if v is not None]
    while during and during[-1] == 0.0:
        during.pop()
    assert any(0.0 < v < 100.0 for v in during) and 100.0 in during
    assert during == sorted(during)
    assert registry.get_sample_value(TARGET, {"emitter": "stepped"}) == 0.0
    # The counters saw the same run.
    sent = registry.get_sample_value("logops_emitter_sent_records_total", {"emitter": "stepped"})
    assert sent == result.summary["emitters"]["stepped"]["sent"] > 0


def test_counters_and_the_gauge_are_exposed_with_their_labels() -> None:
    registry = CollectorRegistry()
    metrics = RunnerMetrics(registry)
    refused = Counter({"replay": 3})
    metrics("web", Counts(sent=10, accepted=7, rejected=3, rejected_by_reason=refused))
    metrics.set_target("web", 12.5)
    text = generate_latest(registry).decode()
    assert f'{TARGET}{{emitter="web"}} 12.5' in text
    assert 'logops_emitter_rejected_records_total{emitter="web",reason="replay"} 3.0' in text
    assert 'logops_emitter_accepted_records_total{emitter="web"} 7.0' in text
