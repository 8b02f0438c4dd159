"""The log shippers' configs against each other and against what the Ingest sink writes.

Structural: no Alloy, Promtail or Loki binary runs here (none is packaged for Debian), so
the configs are read the way the shippers read them (logs_pipeline_labels.py, with a
reader of Alloy's syntax in alloy_syntax.py) and checked against real NDJSON lines written
by the Ingest core, so renaming a sink field breaks this test before it breaks Loki.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from services.common.config import load_config
from services.common.model import Batch
from services.ingest.batch_index import INDEX_DIR, data_name
from services.ingest.core import IngestCore
from services.ingest.levels import LEVELS
from services.ingest.metrics import IngestMetrics
from services.ingest.sink import NdjsonSink
from tests.unit.observability.alloy_syntax import AlloySyntaxError, Block, Ref, parse
from tests.unit.observability.logs_pipeline_labels import (
    ALLOY_CONFIG,
    PROMTAIL_CONFIG,
    Pipeline,
    alloy_pipeline,
    loki_labels,
    promtail_pipeline,
    record_fields,
)

SHIPPERS = {"alloy": alloy_pipeline, "promtail": promtail_pipeline}
# Where compose mounts the sink (observability/docker-compose.yml).
SINK_MOUNT = "/var/log/logops"
# Go's time.RFC3339Nano as a parser: fraction optional, Z or a numeric offset.
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")


@pytest.fixture(params=sorted(SHIPPERS))
def pipeline(request: pytest.FixtureRequest) -> Pipeline:
    return SHIPPERS[request.param]()


def test_loki_stream_labels_are_job_emitter_level_and_format_only() -> None:
    assert loki_labels() == {"job", "emitter", "level", "format"}


def test_run_scenario_and_batch_ids_are_structured_metadata(pipeline: Pipeline) -> None:
    assert pipeline.structured_metadata == {"scenario_id", "run_id", "batch_id"}
    assert not pipeline.structured_metadata & pipeline.labels


def test_both_shippers_send_the_same_entries() -> None:
    alloy, promtail = alloy_pipeline(), promtail_pipeline()
    assert alloy == promtail


def test_labels_and_metadata_come_from_the_record(pipeline: Pipeline) -> None:
    # Every stage reads a name the JSON stage extracted; the timestamp is the record's ts.
    assert pipeline.sources <= set(pipeline.extracted)
    assert pipeline.sources == (pipeline.labels | pipeline.structured_metadata) - {"job"}
    source, layout = pipeline.timestamp
    assert pipeline.extracted[source] == "ts"
    assert layout == "RFC3339Nano"


def test_the_job_label_is_logops() -> None:
    (match,) = [b for b in parse(ALLOY_CONFIG.read_text()) if b.name == "local.file_match"]
    (target,) = match.attrs["path_targets"]
    assert {k: v for k, v in target.items() if k != "__path__"} == {"job": "logops"}
    (scrape,) = yaml.safe_load(PROMTAIL_CONFIG.read_text())["scrape_configs"]
    (static,) = scrape["static_configs"]
    assert {k: v for k, v in static["labels"].items() if k != "__path__"} == {"job": "logops"}


def test_both_push_to_loki_in_compose_by_default(pipeline: Pipeline) -> None:
    assert pipeline.push_url == "http://loki:3100/loki/api/v1/push"


def test_alloy_reads_the_sink_folder_from_the_environment() -> None:
    moved = alloy_pipeline(env={"LOGOPS_SINK_DIR": "/srv/logops/ingest"})
    assert moved.path == "/srv/logops/ingest/*.ndjson"
    assert alloy_pipeline().path == f"{SINK_MOUNT}/*.ndjson"


@pytest.fixture
def sink_lines(tmp_path: Path) -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """Lines the Ingest core stored: dict records (Python path) and a JSON body (the C
    path when built), with and without ts and level, structured and raw formats."""
    sink = tmp_path / "sink"
    cfg = load_config(env={}, overrides={"ingest.sink.dir": str(sink)}).ingest
    metrics = IngestMetrics(CollectorRegistry())
    core = IngestCore(cfg, NdjsonSink(cfg.sink, observer=metrics), metrics)
    core.start()
    try:
        core.push(
            Batch(
                records=[
                    {"ts": "2026-12-01T10:00:00+02:00", "level": "warning", "msg": "a"},
                    {"msg": "neither ts nor level"},
                    {"raw": 'ts=2026-12-01T10:00:01Z level=error msg="boom"', "format": "logfmt"},
                    {"raw": "<34>1 2026-12-01T10:00:02Z h app 1 ID47 - hi", "format": "syslog5424"},
                ],
                batch_id="b-python", emitter="web", scenario_id="spike", run_id="r1",
            )
        )  # fmt: skip
        ids = {"batch_id": "b-json", "emitter": "api", "scenario_id": "spike", "run_id": "r1"}
        records: list[dict[str, Any] | None] = [
            {"ts": 1764583200, "lvl": "err", "message": "x"}, {"msg": "bare"}
        ]  # fmt: skip
        # Left undecoded for the C path when it is built; decoded here otherwise.
        batch = core.json_batch(json.dumps({**ids, "records": records}).encode())
        if batch is None:
            batch = Batch(
                records, ids["batch_id"], ids["emitter"], ids["scenario_id"], ids["run_id"]
            )
        core.push(batch)
    finally:
        core.close()
    lines = [json.loads(line) for p in sorted(sink.glob("*.ndjson")) for line in p.open()]
    assert len(lines) == 6
    yield sink, lines


def test_every_field_the_shippers_read_is_in_every_sink_line(
    sink_lines: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, lines = sink_lines
    for line in lines:
        missing = record_fields() - set(line)
        assert not missing, (missing, line)


def test_sink_values_fit_loki(sink_lines: tuple[Path, list[dict[str, Any]]]) -> None:
    _, lines = sink_lines
    for line in lines:
        assert RFC3339.fullmatch(line["ts"]), line["ts"]
        # Label values are strings from bounded sets; the level is canonical.
        assert line["level"] in LEVELS
        for name in loki_labels() - {"job"}:
            assert isinstance(line[name], str) and line[name], (name, line)
        for name in alloy_pipeline().structured_metadata:
            assert isinstance(line[name], str), (name, line)
    assert {line["emitter"] for line in lines} == {"web", "api"}
    assert {line["run_id"] for line in lines} == {"r1"}


def test_the_glob_takes_every_sink_file_and_not_the_index(
    pipeline: Pipeline, sink_lines: tuple[Path, list[dict[str, Any]]]
) -> None:
    sink, _ = sink_lines
    assert pipeline.path == f"{SINK_MOUNT}/*.ndjson"
    written = sorted(p.relative_to(sink) for p in sink.rglob("*") if p.is_file())
    tailed = [p for p in written if fnmatch.fnmatch(f"{SINK_MOUNT}/{p}", pipeline.path)]
    assert [p.name for p in tailed] == [data_name(p.name[:8], 0) for p in tailed] != []
    assert all(p.parts[0] == INDEX_DIR for p in written if p not in tailed)
    # Rotated files too: the tailer picks up 20250301.2.ndjson without a restart.
    assert fnmatch.fnmatch(f"{SINK_MOUNT}/{data_name('20250301', 2)}", pipeline.path)
    assert not fnmatch.fnmatch(f"{SINK_MOUNT}/{INDEX_DIR}/20250301.idx", pipeline.path)


# The reader itself: what it takes, and that it refuses what it does not understand.


def test_reader_takes_blocks_comments_strings_calls_and_references() -> None:
    (block,) = parse(
        """
        /* a block comment
           over lines */
        loki.write "out" { // a line comment
          endpoint {
            url = coalesce(sys.env("X"), "http://a\\"b") + `raw\\n`
            tries = 3
            on = true
          }
          external_labels = {"k" = "v", other = null}
          to = [loki.process.p.receiver,]
        }
        """
    )
    assert (block.name, block.label) == ("loki.write", "out")
    (endpoint,) = block.children("endpoint")
    assert isinstance(endpoint, Block) and endpoint.attrs["tries"] == 3
    assert endpoint.attrs["on"] is True
    assert block.attrs["external_labels"] == {"k": "v", "other": None}
    assert block.attrs["to"] == [Ref("loki.process.p.receiver")]


@pytest.mark.parametrize(
    "text",
    [
        'a "x" { b = 1 * 2 }',  # an operator it does not know
        'a "x" { b = c == d }',
        'a "x" { b = 1 b = 2 }',  # repeated attribute
        'a "x" { b.c = 1 }',
        "top = 1",
        'a "x" { b = 1',  # unclosed
        'a "x" { b = "unterminated }',
    ],
)
def test_reader_refuses_what_it_does_not_understand(text: str) -> None:
    with pytest.raises(AlloySyntaxError):
        parse(text)
