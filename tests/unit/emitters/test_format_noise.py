"""The noise format: chaotic lines whose every record Ingest must count as the sample said."""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emitters.content import ContentOptions
from emitters.formats import FORMATS
from emitters.formats.base import FormatError
from emitters.formats.noise import LINE_KEY, NoiseFormat, NoiseSample, draw
from services.common.config import PiiConfig
from services.common.model import Batch
from services.ingest.normalize import Normaliser
from services.ingest.timeparse import format_ts
from tests.unit.emitters.golden_lines import NOW, check_golden, golden_lines

NOISE = NoiseFormat()
INGEST_MS = 1_710_252_400_123


def draws(count: int, seed: int, **opts: Any) -> list[NoiseSample]:
    rng = random.Random(seed)
    options = ContentOptions(**opts)
    return [draw(rng, options, NOW) for _ in range(count)]


def test_golden() -> None:
    # Each line as a JSON string: the lines hold NULs, escapes and a BOM on purpose.
    check_golden("noise", golden_lines(NOISE, encode=lambda line: json.dumps(line)))


def test_sample_is_the_drawn_record() -> None:
    rng, again = random.Random(5), random.Random(5)
    opts = ContentOptions()
    for _ in range(200):
        assert NOISE.sample(rng, opts, NOW) == draw(again, opts, NOW).record


# --- Ingest counts what each sample said: 10,000 records ------------------------------


@pytest.fixture
def normaliser(monkeypatch: pytest.MonkeyPatch) -> Normaliser:
    """The real normaliser, with ``noise`` known to it by name."""
    monkeypatch.setattr("services.ingest.normalize.FORMATS", dict(FORMATS) | {"noise": NOISE})
    return Normaliser(PiiConfig(), 1 << 20)


@pytest.mark.parametrize(
    ("seed", "opts"),
    [(1, {}), (2, {"missing_ts_ratio": 0.5, "missing_level_ratio": 0.05, "error_ratio": 0.4})],
)
def test_ingest_counts_10000_records_as_sampled(
    normaliser: Normaliser, seed: int, opts: dict[str, Any]
) -> None:
    samples = draws(10_000, seed, **opts)
    records: list[dict[str, Any] | None] = [
        {"raw": NOISE.render(s.record), "seq": n} for n, s in enumerate(samples)
    ]
    batch = Batch(
        records=records, batch_id="b", emitter="noise", run_id="r", default_format="noise"
    )
    result = normaliser.normalise_batch(batch, INGEST_MS)

    broken = [n for n, s in enumerate(samples) if s.broken]
    assert [r.index for r in result.rejections] == broken
    assert {r.reason for r in result.rejections} == {"parse_error"}
    assert all(r.message.startswith("noise: ") for r in result.rejections)
    kept = [s for s in samples if not s.broken]
    assert result.accepted == len(kept) == 10_000 - len(broken)
    expected = Counter(f"ts_{s.ts}" for s in kept) + Counter(f"level_{s.level}" for s in kept)
    assert result.missing.to_dict() == {
        key: expected[key] for key in ("ts_absent", "ts_invalid", "level_absent", "level_invalid")
    }
    stored = [json.loads(line) for line in result.data.splitlines()]
    ingest_ts = format_ts(INGEST_MS)
    for sample, out in zip(kept, stored, strict=True):
        assert (out["ts_missing"], out["level_missing"]) == (
            sample.ts != "valid",
            sample.level != "valid",
        ), sample
        assert (out["ts"] == ingest_ts) == (sample.ts != "valid") and out["format"] == "noise"
    # Every kind of trouble is in there, in numbers worth counting.
    assert min(expected.values()) > 200 and len(expected) == 6
    assert {s.broken for s in samples} == {"", "truncated", "binary", "blank", "not_object"}


def test_documented_proportions() -> None:
    samples = draws(20_000, 3)
    lines = Counter(s.broken or "object" for s in samples)
    for kind, share in {"object": 0.8, "truncated": 0.07, "binary": 0.05, "blank": 0.04}.items():
        assert lines[kind] / 20_000 == pytest.approx(share, abs=0.01), kind
    kept = [s for s in samples if not s.broken]
    ts = Counter(s.ts for s in kept)
    level = Counter(s.level for s in kept)
    assert ts["absent"] / len(kept) == pytest.approx(0.25, abs=0.015)
    assert ts["valid"] / len(kept) == pytest.approx(0.75 * 11 / 15, abs=0.015)
    assert level["absent"] / len(kept) == pytest.approx(0.25, abs=0.015)
    assert level["invalid"] / len(kept) == pytest.approx(0.75 / 5, abs=0.015)
    absent = Counter(s.ts for s in draws(5000, 4, missing_ts_ratio=0.6) if not s.broken)
    assert absent["absent"] / sum(absent.values()) == pytest.approx(0.6, abs=0.03)


# --- the json module agrees on which lines are records --------------------------------


def test_json_module_agrees_on_10000_lines() -> None:
    for sample in draws(10_000, 6):
        line = NOISE.render(sample.record)
        assert "\n" not in line and "\r" not in line
        try:
            value = json.loads(line.strip(" \t\ufeff"))
        except ValueError:
            value = None
        if sample.broken:
            assert not isinstance(value, dict), line
            with pytest.raises(FormatError):
                NOISE.parse(line)
        else:
            assert isinstance(value, dict), line
            assert NOISE.parse(line) == value
            if LINE_KEY not in sample.record:
                assert value == sample.record


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "a blank line is not a record"),
        (" \t ", "a blank line is not a record"),
        ("\x00\x01PK", "binary data: U\\+0000 at character 0"),
        ('{"msg": "a\x1bb"}', "binary data: U\\+001B at character 10"),
        ('{"msg": "cut', "truncated JSON: the line ends at character 12"),
        ('{"lvl":', "truncated JSON"),
        ('{"a" 1}', "invalid JSON at character 5"),
        ('{"a": 1}}', "invalid JSON at character 8"),
        ("[1, 2]", "a record must be a JSON object, not an array"),
        ('"text"', "not a string"),
        ("42", "not a number"),
        ("null", "not a literal"),
    ],
)
def test_refuses_broken_lines_precisely(line: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        NOISE.parse(line)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('\ufeff{"lvl": 3}', {"lvl": 3}),
        ('  {"message": {"text": "x"}}\t', {"message": {"text": "x"}}),
        ('{"time": "yesterday", "severity": true}', {"time": "yesterday", "severity": True}),
    ],
)
def test_parse_is_lenient(line: str, expected: dict[str, Any]) -> None:
    assert NOISE.parse(line) == expected


def test_looks_like_never_claims_a_line() -> None:
    for sample in draws(300, 7):
        assert not NOISE.looks_like(NOISE.render(sample.record))


def test_written_lines_stay_one_line() -> None:
    assert NOISE.render({LINE_KEY: "a\nb\rc", "seq": 3}) == "a b c"
    odd: dict[Any, Any] = {1: "x", "k": {"n": [1, None]}}
    assert NOISE.render(odd) == '{"1":"x","k":{"n":[1,null]}}'


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.text().filter(lambda k: k != LINE_KEY), JSON_VALUES, max_size=6))
def test_round_trip(rec: dict[str, Any]) -> None:
    line = NOISE.render(rec)
    assert NOISE.parse(line) == rec == orjson.loads(line)


def test_render_writes_what_orjson_refuses() -> None:
    odd: dict[Any, Any] = {"msg": "\udfff", 2: 2**65, "deep": [[[]]]}
    line = NOISE.render(odd)
    assert NOISE.parse(line) == {"msg": "\ufffd", "2": str(2**65), "deep": [[[]]]}
