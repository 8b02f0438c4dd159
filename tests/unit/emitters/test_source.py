"""Generated events: a seeded pool, each event stamped with its own time and seq."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from emitters.content import ContentOptions, rfc3339_ms
from emitters.formats import FORMATS, get_format
from emitters.source import Accounting, EventSource, time_fields

ACC = Accounting("run-1", "web#1", first_seq=0)
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def test_the_time_fields_are_learnt_from_the_format() -> None:
    rng = random.Random(3)
    state = rng.getstate()
    assert time_fields(get_format("json"), ContentOptions(), rng, T0) == ("ts",)
    assert rng.getstate() == state


def test_each_event_carries_its_time_and_its_accounting_keys() -> None:
    src = EventSource(get_format("json"), ContentOptions(), ACC, seed=7, pool_size=16)
    fmt = get_format("json")
    for i in (0, 1, 15, 16, 40):
        rec = fmt.parse(src.line(i, T0 + i * 0.25))
        assert rec["ts"] == rfc3339_ms(T0 + i * 0.25)
        assert (rec["run_id"], rec["stream"], rec["seq"]) == ("run-1", "web#1", i)


def test_first_seq_shifts_every_seq() -> None:
    src = EventSource(get_format("logfmt"), ContentOptions(), Accounting("r", "s", 1), seed=1)
    assert get_format("logfmt").parse(src.line(0, T0))["seq"] == "1"


def test_line_keys_choose_what_the_line_carries() -> None:
    src = EventSource(
        get_format("json"), ContentOptions(), ACC, seed=7, line_keys=("stream", "seq")
    )
    rec = get_format("json").parse(src.line(3, T0))
    assert "run_id" not in rec
    assert (rec["stream"], rec["seq"]) == ("web#1", 3)
    bare = EventSource(get_format("json"), ContentOptions(), ACC, seed=7, line_keys=())
    assert not {"run_id", "stream", "seq"} & set(get_format("json").parse(bare.line(3, T0)))


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_the_same_seed_gives_the_same_lines(name: str) -> None:
    def lines(seed: int) -> list[str]:
        src = EventSource(get_format(name), ContentOptions(), ACC, seed=seed, pool_size=64)
        return [src.line(i, T0 + i) for i in range(100)]

    assert lines(5) == lines(5)
    assert lines(5) != lines(6)


def test_pool_content_repeats_but_time_and_seq_do_not() -> None:
    src = EventSource(get_format("json"), ContentOptions(), ACC, seed=2, pool_size=4)
    fmt = get_format("json")
    a, b = fmt.parse(src.line(1, T0)), fmt.parse(src.line(5, T0 + 1))
    assert a["msg"] == b["msg"]
    assert a["ts"] != b["ts"]
    assert (a["seq"], b["seq"]) == (1, 5)


def test_records_without_a_time_stay_without_one() -> None:
    opts = ContentOptions(missing_ts_ratio=1.0)
    src = EventSource(get_format("json"), opts, ACC, seed=2, pool_size=8)
    assert all("ts" not in get_format("json").parse(src.line(i, T0)) for i in range(8))


def test_the_error_ratio_shows_in_the_pool() -> None:
    src = EventSource(
        get_format("json"), ContentOptions(error_ratio=0.5), ACC, seed=9, pool_size=1000
    )
    levels = [get_format("json").parse(src.line(i, T0)).get("level") for i in range(1000)]
    errors = sum(level in ("ERROR", "FATAL") for level in levels)
    assert 400 < errors < 600


class SecondsFormat:
    """A format whose time has whole seconds, as Apache's and RFC 3164's have."""

    name = "seconds"

    def __init__(self) -> None:
        self.samples = 0

    def render(self, rec: dict[str, Any]) -> str:
        return f"[{rec.get('ts', '-')}] {rec['msg']}"

    def parse(self, line: str) -> dict[str, Any]:
        ts, _, msg = line[1:].partition("] ")
        return {"ts": ts, "msg": msg}

    def looks_like(self, line: str) -> bool:
        return line.startswith("[")

    def sample(self, rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
        self.samples += 1
        return {
            "ts": time.strftime("%d/%b/%Y:%H:%M:%S", time.gmtime(now)),
            "msg": f"GET /{rng.randrange(1000)}",
        }


def test_a_time_in_whole_seconds_is_stamped_once_a_second() -> None:
    fmt = SecondsFormat()
    src = EventSource(fmt, ContentOptions(), ACC, seed=1, pool_size=10)
    before = fmt.samples
    lines = [src.line(i, T0 + i * 0.001) for i in range(3000)]  # 3 s at 1000/s
    assert fmt.samples - before == 3
    assert lines[999].startswith("[01/Jan/2026:00:00:00]")
    assert lines[1000].startswith("[01/Jan/2026:00:00:01]")
    assert lines[2999].startswith("[01/Jan/2026:00:00:02]")
