"""The minimal format: the seed's ``{"msg": ...}`` record, and what Ingest fills in for it."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emitters.content import ContentOptions, app_record
from emitters.formats import FORMATS
from emitters.formats.base import FormatError
from emitters.formats.minimal import MinimalFormat
from services.common.config import PiiConfig
from services.common.model import Batch
from services.ingest.normalize import Normaliser
from tests.unit.emitters.golden_lines import NOW, check_golden, golden_lines

MINIMAL = MinimalFormat()
INGEST_MS = 1_710_252_400_123


def test_golden() -> None:
    check_golden("minimal", golden_lines(MINIMAL))


def test_seed_record() -> None:
    # What the seed's emitter_minimal sent, one record per line.
    assert MINIMAL.parse('{"msg": "minimal #1"}') == {"msg": "minimal #1"}
    assert MINIMAL.render({"msg": "minimal #1"}) == '{"msg":"minimal #1"}'


def test_render_keeps_only_msg_and_loss_accounting() -> None:
    rec = app_record(random.Random(1), ContentOptions(), NOW) | {"run_id": "r1", "seq": 7}
    line = MINIMAL.render(rec)
    assert json.loads(line) == {"msg": rec["msg"], "run_id": "r1", "seq": 7}
    assert MINIMAL.render({"level": "INFO"}) == '{"msg":""}'
    assert MINIMAL.render({"msg": {"nested": 1}}) == '{"msg":"{\\"nested\\":1}"}'


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"msg": "x", "level": "info"}', "not 'level'"),
        ('{"ts": "2024-03-12T14:05:09Z", "msg": "x"}', "not 'ts'"),
        ('{"msg": 42}', "msg as a string"),
        ("{}", "msg as a string"),
        ('["msg"]', "must be a JSON object"),
        ('{"msg": "cut', "invalid JSON"),
        ("minimal #1", "invalid JSON"),
    ],
)
def test_refuses(line: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        MINIMAL.parse(line)


def test_looks_like_only_minimal_lines() -> None:
    assert MINIMAL.looks_like('{"msg":"minimal #1"}')
    assert MINIMAL.looks_like('{"msg":"x","run_id":"r","stream":"s","seq":1}')
    assert MINIMAL.looks_like('{"msg": "as the seed wrote it"}')
    for line in (
        '{"msg":"x","level":"info"}',
        '{"ts":"2024-03-12T14:05:09.482Z","msg":"x"}',
        '{"message": "msg"}',
        "msg=x",
        "",
    ):
        assert not MINIMAL.looks_like(line), line


@given(
    st.text(),
    st.one_of(st.none(), st.text()),
    st.one_of(st.none(), st.integers(0, 2**64 - 1)),
)
def test_round_trip(msg: str, stream: str | None, seq: int | None) -> None:
    rec: dict[str, Any] = {"msg": msg}
    if stream is not None:
        rec["stream"] = stream
    if seq is not None:
        rec["seq"] = seq
    line = MINIMAL.render(rec | {"level": "ERROR", "service": "x"})
    assert "\n" not in line and "\r" not in line
    assert MINIMAL.parse(line) == rec
    assert json.loads(line) == rec


def test_json_module_reads_10000_lines() -> None:
    rng = random.Random(3)
    opts = ContentOptions()
    for n in range(10_000):
        rec = MINIMAL.sample(rng, opts, NOW + n)
        line = MINIMAL.render(rec)
        assert json.loads(line) == rec
        assert list(rec) == ["msg"] and rec["msg"]


def test_ingest_fills_and_counts_what_minimal_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.ingest.normalize.FORMATS", dict(FORMATS) | {"minimal": MINIMAL})
    rng = random.Random(4)
    lines = [MINIMAL.render(MINIMAL.sample(rng, ContentOptions(), NOW)) for _ in range(50)]
    batch = Batch(
        records=[{"raw": line, "seq": n, "stream": "s"} for n, line in enumerate(lines)],
        batch_id="b",
        run_id="r",
        default_format="minimal",
    )
    result = Normaliser(PiiConfig(mode="off"), 1 << 20).normalise_batch(batch, INGEST_MS)
    assert result.rejections == [] and result.accepted == 50
    assert result.missing.to_dict() == {
        "ts_absent": 50,
        "ts_invalid": 0,
        "level_absent": 50,
        "level_invalid": 0,
    }
    for line, stored in zip(lines, result.data.splitlines(), strict=True):
        out = json.loads(stored)
        assert (out["ts"], out["level"], out["format"]) == (
            "2024-03-12T14:06:40.123Z",
            "INFO",
            "minimal",
        )
        assert out["msg"] == json.loads(line)["msg"]
        assert (out["ts_missing"], out["level_missing"]) == (True, True)


def test_render_writes_what_orjson_refuses() -> None:
    line = MINIMAL.render({"msg": "a\ud800b", "seq": 2**70})
    assert json.loads(line) == {"msg": "a\ufffdb", "seq": str(2**70)}
