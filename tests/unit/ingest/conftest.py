"""Fixtures of the sink tests: a sink folder and a factory of opened sinks, closed after."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.common.config import SinkConfig
from services.ingest.sink import NdjsonSink
from tests.unit.ingest.sink_testing import Clock, FsyncLog, Recorder, SinkFactory


@pytest.fixture
def sink_dir(tmp_path: Path) -> Path:
    return tmp_path / "sink"


@pytest.fixture
def make_sink(sink_dir: Path) -> Iterator[SinkFactory]:
    opened: list[NdjsonSink] = []

    def make(
        clock: Clock | None = None, observer: Recorder | None = None, **cfg: Any
    ) -> NdjsonSink:
        sink = NdjsonSink(SinkConfig(dir=str(sink_dir), **cfg), observer, clock or Clock())
        sink.open()
        opened.append(sink)
        return sink

    yield make
    for sink in opened:
        sink.close()


@pytest.fixture
def fsyncs(sink_dir: Path, monkeypatch: pytest.MonkeyPatch) -> FsyncLog:
    """Every fsync (and rename) from here on, by the path it was for."""
    log = FsyncLog(sink_dir.parent)
    monkeypatch.setattr(os, "fsync", log.fsync)
    monkeypatch.setattr(os, "replace", log.replace)
    return log
