"""The seed-era formats read by parsers that are not ours, on 10,000 sampled lines each.

- ``json``: the standard library's ``json`` (a different implementation from orjson).
- ``csv``: the standard library's ``csv`` reader (RFC 4180 quoting).
- ``logfmt``: the ``logfmt`` package from PyPI, a Python port of kr/logfmt's scanner (the
  Go reference that named the format). It has no escapes beyond ``\\"`` and drops a bare
  key at the very end of a line, so it reads realistic content, not hostile text; the
  round trip of hostile text is ``test_formats.py``'s.
- ``syslog`` (the seed's syslog-like text) has no reader anywhere else: the grammar below is
  written from its documented layout ``TS HOST APP[PID]: LEVEL MSG``.

Each sampled line must parse with the outside reader to the same values ours gives.
"""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Iterator
from typing import Any

import logfmt
import pytest

from emitters.content import ContentOptions
from emitters.formats import get_format

LINES = 10_000
COLUMNS = ("ts", "level", "msg")
NOW = 1_710_252_309.482


def sampled(name: str, seed: int) -> Iterator[tuple[dict[str, Any], str]]:
    fmt = get_format(name)
    rng = random.Random(seed)
    opts = ContentOptions(error_ratio=0.1, missing_ts_ratio=0.05, missing_level_ratio=0.05)
    for i in range(LINES):
        rec = fmt.sample(rng, opts, NOW + i / 100)
        yield rec, fmt.render(rec)


def test_json_lines_read_by_the_standard_library() -> None:
    json_format = get_format("json")
    for rec, line in sampled("json", 1):
        assert json.loads(line) == rec == json_format.parse(line)


def test_csv_lines_read_by_the_csv_module() -> None:
    csv_format = get_format("csv")
    for rec, line in sampled("csv", 2):
        (row,) = list(csv.reader([line], strict=True))
        assert row == [rec.get("ts", ""), rec.get("level", ""), rec["msg"]]
        assert csv_format.parse(line) == {k: v for k, v in zip(COLUMNS, row, strict=True) if v}


def test_logfmt_lines_read_by_the_reference_scanner() -> None:
    ours = get_format("logfmt")
    for _rec, line in sampled("logfmt", 3):
        assert logfmt.parse_line(line) == ours.parse(line), line


# TS HOST APP[PID]: LEVEL MSG, every token without spaces, brackets or colons.
_SEED_SYSLOG = re.compile(
    r"(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z|-) (?P<host>[^ \[\]:]+) "
    r"(?P<app>[^ \[\]:]+)(?:\[(?P<pid>\d+)\])?: "
    r"(?:(?P<level>TRACE|DEBUG|INFO|WARN|ERROR|FATAL) )?(?P<msg>[ -~]*)"
)


@pytest.mark.parametrize("seed", [4])
def test_seed_syslog_lines_follow_the_documented_layout(seed: int) -> None:
    ours = get_format("syslog")
    for rec, line in sampled("syslog", seed):
        match = _SEED_SYSLOG.fullmatch(line)
        assert match is not None, line
        assert match["host"] == rec["host"] and match["app"] == rec["service"]
        assert match["msg"] == rec["msg"] == ours.parse(line)["msg"]
        assert match["level"] == rec.get("level")
        assert match["ts"] == rec.get("ts", "-")
