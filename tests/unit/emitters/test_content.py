"""Generated content is reproducible from a seed and follows the run's ratios."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from emitters.content import ContentOptions, app_record, pick_level, rfc3339_ms

NOW = 1_710_252_309.482


def test_same_seed_same_records() -> None:
    opts = ContentOptions()
    first = [app_record(random.Random(7), opts, NOW) for _ in range(3)]
    again = [app_record(random.Random(7), opts, NOW) for _ in range(3)]
    other = [app_record(random.Random(8), opts, NOW) for _ in range(3)]
    assert first == again
    assert first != other


def test_rfc3339_ms() -> None:
    assert rfc3339_ms(NOW) == "2024-03-12T14:05:09.482Z"
    assert rfc3339_ms(0) == "1970-01-01T00:00:00.000Z"


@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_error_ratio_holds(ratio: float) -> None:
    rng = random.Random(1)
    opts = ContentOptions(error_ratio=ratio)
    levels = Counter(pick_level(rng, opts) for _ in range(20_000))
    share = (levels["ERROR"] + levels["FATAL"]) / 20_000
    assert share == pytest.approx(ratio, abs=0.015)


def test_level_mix_only_names_given_levels() -> None:
    rng = random.Random(2)
    opts = ContentOptions(error_ratio=0.0, level_mix={"WARN": 1.0})
    assert {pick_level(rng, opts) for _ in range(200)} == {"WARN"}


def test_missing_ratios_drop_fields() -> None:
    rng = random.Random(3)
    opts = ContentOptions(missing_ts_ratio=0.25, missing_level_ratio=1.0)
    recs = [app_record(rng, opts, NOW) for _ in range(8_000)]
    assert all("level" not in r for r in recs)
    assert sum("ts" not in r for r in recs) / len(recs) == pytest.approx(0.25, abs=0.02)
    assert all(r["msg"] and r["service"] and r["host"] for r in recs)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"error_ratio": 1.5}, "error_ratio"),
        ({"missing_ts_ratio": -0.1}, "missing_ts_ratio"),
        ({"level_mix": {"LOUD": 1.0}}, "LOUD"),
        ({"level_mix": {"INFO": 0.0}}, "not all zero"),
    ],
)
def test_bad_options_name_the_problem(kwargs: dict, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        ContentOptions(**kwargs)


def test_every_format_samples_what_it_renders() -> None:
    from emitters.formats import FORMATS

    for fmt in FORMATS.values():
        rec = fmt.sample(random.Random(5), ContentOptions(), NOW)
        assert fmt.sample(random.Random(5), ContentOptions(), NOW) == rec, fmt.name
        line = fmt.render(rec)
        assert "\n" not in line, fmt.name
        if fmt.name != "noise":  # broken lines on purpose
            assert fmt.parse(line), fmt.name
