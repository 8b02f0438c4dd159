"""Reading the NDJSON sink for one run: every data file in ingest order, the run's lines only.

The sink writes ``YYYYMMDD.ndjson``, then ``YYYYMMDD.1.ndjson``, ``.2`` ... when a file is
full, and housekeeping may gzip any of them to ``<name>.gz`` (services/ingest/sink*.py,
housekeeping.py). Ingest order is day, then suffix, then line order within a file. A
file present both plain and gzipped (housekeeping stopped between writing the archive and
removing the original) is read once, plain.

Files are read in blocks and searched for the run id as bytes before anything is parsed,
so the lines of other runs cost a byte search and nothing else; memory is one block plus
the longest line.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import orjson

from services.ingest.batch_index import DATA_NAME

# The sink's own name for data files, and housekeeping's ``.gz`` archives of them.
_DATA = re.compile(DATA_NAME.pattern + r"(\.gz)?")
_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class SinkFile:
    """One data file of the sink, plain or gzipped."""

    path: Path
    day: str
    suffix: int
    gz: bool


def sink_files(sink_dir: Path, first_day: str = "") -> list[SinkFile]:
    """The sink's data files in ingest order; days before ``first_day`` (``YYYYMMDD``) left out."""
    found: dict[tuple[str, int], SinkFile] = {}
    for entry in sorted(sink_dir.iterdir()):
        match = _DATA.fullmatch(entry.name)
        if not match or not entry.is_file():
            continue
        day, suffix, gz = match.group(1), int(match.group(2) or 0), bool(match.group(3))
        if day < first_day:
            continue
        key = (day, suffix)
        if key not in found or not gz:
            found[key] = SinkFile(entry, day, suffix, gz)
    return [found[key] for key in sorted(found)]


def run_needle(run_id: str) -> bytes:
    """The bytes a stored line holds for this run id (orjson writes UTF-8, not ``\\u`` escapes)."""
    return json.dumps(run_id, ensure_ascii=False)[1:-1].encode("utf-8")


@dataclass(slots=True)
class ReadStats:
    """How much was read: files, bytes (uncompressed), lines naming the run that were not
    JSON objects (a torn line, a hand-edited file)."""

    files: int = 0
    bytes: int = 0
    bad_lines: int = 0


def run_lines(files: list[SinkFile], run_id: str, stats: ReadStats) -> Iterator[dict[str, Any]]:
    """The lines whose ``run_id`` is ``run_id``, parsed, in ingest order."""
    needle = run_needle(run_id)
    for sf in files:
        stats.files += 1
        with _open(sf) as fh:
            for block in _blocks(fh, stats):
                yield from _matching(block, needle, run_id, stats)


def _open(sf: SinkFile) -> BinaryIO:
    if sf.gz:
        return cast(BinaryIO, gzip.open(sf.path, "rb"))
    return sf.path.open("rb")


def _blocks(fh: BinaryIO, stats: ReadStats) -> Iterator[bytes]:
    """Blocks of whole lines; the last one may lack its line break."""
    carry = b""
    while True:
        chunk = fh.read(_BLOCK)
        if not chunk:
            break
        stats.bytes += len(chunk)
        cut = chunk.rfind(b"\n")
        if cut < 0:
            carry += chunk
            continue
        yield carry + chunk[: cut + 1]
        carry = chunk[cut + 1 :]
    if carry:
        yield carry


def _matching(
    block: bytes, needle: bytes, run_id: str, stats: ReadStats
) -> Iterator[dict[str, Any]]:
    pos = block.find(needle)
    while pos >= 0:
        start = block.rfind(b"\n", 0, pos) + 1
        end = block.find(b"\n", pos)
        if end < 0:
            end = len(block)
        try:
            line = orjson.loads(block[start:end])
        except orjson.JSONDecodeError:
            line = None
        if not isinstance(line, dict):
            stats.bad_lines += 1
        elif line.get("run_id") == run_id:
            yield line
        pos = block.find(needle, end)
