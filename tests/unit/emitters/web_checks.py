"""What the Apache and nginx format tests share: golden files, nasty text, Ingest's view."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from hypothesis import strategies as st

from emitters.content import ContentOptions
from emitters.formats import FORMATS
from emitters.formats.base import LogFormat
from services.common.config import PiiConfig
from services.common.model import Batch
from services.ingest.normalize import Normaliser
from tests.unit.emitters import golden_lines as golden

NOW = golden.NOW
INGEST_MS = 1_710_252_400_000

# Text that breaks naive log formats: quotes, backslashes, brackets, separators, line
# breaks and other controls, and any unicode a UTF-8 sender can write.
NASTY = st.lists(
    st.one_of(
        st.sampled_from(list('"\\[]=|,:() \n\r\t\x00\x1b\x7f')),
        st.sampled_from([", client: ", ", referer: ", "AH00128: ", "[client ", "\\x41", "*1 "]),
        st.characters(codec="utf-8"),
    ),
    max_size=30,
).map("".join)

# One line of each other format, and one of each web format, for detection tests.
OTHER_LINES = [
    '{"ts":"2024-03-12T14:05:09.482Z","msg":"hi"}',
    "2024-03-12T14:05:09.482Z web01 checkout[4412]: ERROR payment declined",
    "<34>Mar  2 04:05:06 web01 sshd[4412]: Failed password for root",
    "<165>1 2024-03-12T14:05:09.482113Z app7 billing 8812 PAY01 - charge captured",
    'ts=2024-03-12T14:05:09.482Z level=error msg="upstream timeout"',
    '2024-03-12T14:05:09Z,ERROR,"timeout, retrying"',
    "CEF:0|LogOps|emitter|1.0|auth-fail|Failed login|7|src=192.0.2.44",
    "2024/03/12 14:05:09 [error] 2231#2231: *1 open() failed, client: 192.0.2.1",
    '198.51.100.7 - - [12/Mar/2024:14:05:09 +0000] "GET / HTTP/1.1" 200 0 "-" "curl/8.5.0"',
]


def check_golden(fmt: LogFormat) -> None:
    """Compare ``fmt``'s first 20 seeded lines with ``golden/<name>.txt`` (golden_lines.py)."""
    golden.check_golden(fmt.name, golden.golden_lines(fmt))


def samples(fmt: LogFormat, count: int, seed: int = 7, **opts: Any) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    options = ContentOptions(**opts)
    return [fmt.sample(rng, options, NOW + n / 100) for n in range(count)]


def carried(rec: dict[str, Any]) -> dict[str, Any]:
    """A sampled record less what travels beside the line rather than in it."""
    return {k: v for k, v in rec.items() if k not in ("host", "service")}


def ingest(monkeypatch: pytest.MonkeyPatch, fmt: LogFormat, lines: list[str]) -> list[Any]:
    """What the real Ingest normaliser stores for ``lines`` sent as raw ``fmt`` lines."""
    # The registry does not list these formats yet; the normaliser gets them by name.
    monkeypatch.setattr("services.ingest.normalize.FORMATS", dict(FORMATS) | {fmt.name: fmt})
    batch = Batch(
        records=[{"raw": line} for line in lines],
        batch_id="b-1",
        emitter="em",
        scenario_id="",
        run_id="r-1",
        default_format=fmt.name,
    )
    result = Normaliser(PiiConfig(mode="off"), 1 << 20).normalise_batch(batch, INGEST_MS)
    assert result.rejections == [], result.rejections
    return [orjson.loads(line) for line in result.data.splitlines()]
