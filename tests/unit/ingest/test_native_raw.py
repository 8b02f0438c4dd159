"""Raw RFC 5424 lines on the C path store exactly what the pure-Python path stores.

The engine reads a record's raw line itself when it is RFC 5424 (named by the record's
``format``, by the batch's, or detected), merges the record's own fields as
``normalize.py`` does and writes the line; anything else goes to Python. Each test puts
the same records through ``make_normaliser(native=True)`` and the reference
``native=False``: record dicts (a text body, the syslog listener), JSON bodies and
protobuf bodies, with hostile lines (quotes, backslashes, ``]``, unicode, lone
surrogates, huge values, truncation) and hostile neighbours (aliases, a run_id of any
type, fields named like the line's). A test also counts the records handed to Python,
so that a C path which takes nothing cannot pass. ``make sanitize`` runs this module
under ASan and UBSan.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from logops.v1 import logs_pb2

from services.common.config import PiiConfig
from services.common.model import Batch
from services.ingest import native
from tests.unit.ingest.native_strategies import INGEST_MS, handed_to_python, json_safe
from tests.unit.ingest.test_native_equivalence import (
    PII_CONFIGS,
    assert_same_json,
    assert_same_push,
    examples,
    run_dict_batch,
)
from tests.unit.ingest.test_native_syslog_sd import (
    EMITTED,
    LEFT,
    TAKEN,
    good_sd_lines,
    mutated,
    sd_lines,
)

pytestmark = pytest.mark.skipif(not native.AVAILABLE, reason="the C extension is not built")

HAND_PICKED: list[bytes] = [bytes(p.values[0]) for p in (*TAKEN, *LEFT)]  # type: ignore[call-overload]
LINE_BYTES: st.SearchStrategy[bytes] = st.one_of(
    st.sampled_from(EMITTED),
    st.sampled_from(HAND_PICKED),
    sd_lines(),
    good_sd_lines(),
    mutated(),
)
# Lines as text: what a text body decodes, with \r\n left on, or with lone surrogates
# (a dict record from Python may hold any str).
LINES = st.one_of(
    LINE_BYTES.map(lambda b: b.decode("utf-8", "replace")),
    LINE_BYTES.map(lambda b: b.decode("utf-8", "replace") + "\r\n"),
    LINE_BYTES.map(lambda b: b.decode("utf-8", "surrogateescape")),
)
NAMES = st.sampled_from(["syslog5424", "auto", "", "syslog3164", "text", "json", "nope"])
TEXT = st.one_of(st.sampled_from(["", "r9", 'x"y\\z', "é"]), st.text(max_size=6))
NEIGHBOURS: dict[str, Any] = {
    "format": st.one_of(NAMES, st.sampled_from([None, 0, 5, ["x"]])),
    "run_id": st.one_of(TEXT, st.sampled_from([None, 7, ["r"], {"a": 1}])),
    "stream": st.one_of(TEXT, st.just(3)),
    "seq": st.one_of(st.integers(-1, 2**64), st.sampled_from([None, "5", 1.5])),
    "host": TEXT,
    "service": TEXT,
    "ts": st.sampled_from(["2024-03-12T14:05:09.482Z", "bad", "", None, 5]),
    "timestamp": st.sampled_from(["2024-03-12T14:05:09Z", "x"]),
    "level": st.sampled_from(["error", "x", "", 3]),
    "lvl": st.just("warn"),
    "severity": st.just("debug"),
    "syslog_severity": st.sampled_from([3, "x"]),
    "msg": st.one_of(TEXT, st.just(None)),
    "message": TEXT,
    "text": TEXT,
    "pid": st.just(9),
    "sd": st.just({"a": {"b": "c"}}),
    "user": TEXT,
    "emitter": TEXT,
    "src_ts": TEXT,
}


@st.composite
def raw_records(draw: st.DrawFn) -> dict[str, Any]:
    rec: dict[str, Any] = {"raw": draw(LINES)}
    names = draw(st.lists(st.sampled_from(sorted(NEIGHBOURS)), max_size=5, unique=True))
    for name in names:
        rec[name] = draw(NEIGHBOURS[name])
    if draw(st.booleans()):  # the raw line anywhere among the record's keys
        rec = dict(draw(st.permutations(list(rec.items()))))
    return rec


BATCH_FORMATS = st.sampled_from(["", "syslog5424", "auto", "structured", "text", "json"])


@examples(300)
@given(
    records=st.lists(raw_records(), min_size=1, max_size=8),
    default_format=BATCH_FORMATS,
    run_id=st.sampled_from(["", "batch-run", 'q"uote']),
    pii=st.sampled_from(PII_CONFIGS),
)
def test_raw_dict_records_are_byte_identical(
    records: list[Any], default_format: str, run_id: str, pii: PiiConfig
) -> None:
    batch = Batch(
        records=records, batch_id="b-1", emitter="em", run_id=run_id, default_format=default_format
    )
    run_dict_batch(batch, pii, INGEST_MS)


@examples(200)
@given(
    records=st.lists(raw_records().filter(json_safe), min_size=1, max_size=8),
    default_format=BATCH_FORMATS,
    pii=st.sampled_from(PII_CONFIGS),
)
def test_raw_json_bodies_are_byte_identical(
    records: list[Any], default_format: str, pii: PiiConfig
) -> None:
    body = orjson.dumps(
        {"batch_id": "b-1", "run_id": "batch-run", "format": default_format, "records": records}
    )
    note(f"{body=}")
    assert_same_json(body, {}, pii)


@st.composite
def pb_raw_batches(draw: st.DrawFn) -> logs_pb2.LogBatch:
    records = []
    for _ in range(draw(st.integers(1, 6))):
        line = draw(LINE_BYTES).decode("utf-8", "replace")
        fields = draw(
            st.dictionaries(st.sampled_from(["run_id", "user", "timestamp", "pid", "lvl"]), TEXT)
        )
        kw = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "format": NAMES,
                    "stream": TEXT,
                    "host": TEXT,
                    "seq": st.integers(0, 2**64 - 1),
                    "ts": st.just("2024-03-12T14:05:09.482Z"),
                },
            )
        )
        records.append(logs_pb2.LogRecord(raw=line, fields=fields, **kw))
    return logs_pb2.LogBatch(batch_id="b-1", run_id="batch-run", records=records)


@examples(150)
@given(msg=pb_raw_batches(), wrapped=st.booleans(), pii=st.sampled_from(PII_CONFIGS))
def test_raw_protobuf_bodies_match(msg: logs_pb2.LogBatch, wrapped: bool, pii: PiiConfig) -> None:
    outer = logs_pb2.PushRequest(batch=msg) if wrapped else msg
    assert_same_push(outer.SerializeToString(), wrapped, pii, INGEST_MS)


ALIAS_LINES = [
    '<14>1 2024-03-12T14:05:09.482Z h a p m [a b="c"] the message',
    "<14>1 - h a p m - the message",
    "<14>1 2024-03-12T14:05:09+02:00 h a p m -",
    "<14>1 - - - - - -",
]
ALIAS_KEYS = ["ts", "timestamp", "time", "@timestamp", "level", "lvl", "severity"]
ALIAS_KEYS += ["msg", "message", "log", "text", "syslog_severity", "host", "pid", "sd", "raw"]


@pytest.mark.parametrize("line", ALIAS_LINES)
@pytest.mark.parametrize("key", ALIAS_KEYS)
@pytest.mark.parametrize("value", ["2024-03-12T14:05:09.001Z", "warn", "", None, 3])
def test_the_record_fills_what_the_line_leaves_open(line: str, key: str, value: Any) -> None:
    records: list[Any] = [
        {"raw": line, key: value},
        {key: value, "raw": line, "timestamp": "2024-01-01T00:00:00Z", "message": "m"},
        {"raw": line, "ts": value, "time": "x", "lvl": "error", "log": "l", key: value},
    ]
    for pii in (PiiConfig(), PiiConfig(mode="off")):
        run_dict_batch(Batch(records=records, batch_id="b", run_id="r"), pii, INGEST_MS)
        body = orjson.dumps({"batch_id": "b", "records": records})
        assert_same_json(body, {}, pii)


# --- the C path takes the common lines itself ------------------------------------------


def handed_over(records: list[Any], default_format: str = "") -> int:
    """How many of ``records`` (all of which must be accepted) went to Python."""
    return handed_to_python(records, default_format, all_accepted=True)


def emitted(named: bool) -> list[Any]:
    if not named:
        return [{"raw": line.decode()} for line in EMITTED]
    return [
        {
            "raw": line.decode(),
            "format": "syslog5424",
            "run_id": "run-7",
            "stream": "em-1",
            "seq": i,
        }
        for i, line in enumerate(EMITTED)
    ]


def test_emitter_lines_named_or_detected_stay_in_c() -> None:
    assert handed_over(emitted(named=True)) == 0
    assert handed_over(emitted(named=False)) == 0
    assert handed_over(emitted(named=False), default_format="syslog5424") == 0
    assert handed_over(emitted(named=False), default_format="auto") == 0


def test_other_lines_go_to_python() -> None:
    assert handed_over([{"raw": line.decode()} for line in EMITTED], "text") == len(EMITTED)
    # RFC 3164 with an unpadded day is no format read in C (test_native_raw_layouts.py).
    assert handed_over([{"raw": "<14>Mar 2 04:05:06 h a: m"}]) == 1
    aliases: list[Any] = [{"raw": line.decode(), "timestamp": "x", "lvl": "y"} for line in EMITTED]
    assert handed_over(aliases) == 0
    refused: list[Any] = [{"raw": '<14>1 - h a p m [a b="c"][a d="e"]', "format": "syslog5424"}]
    norm = native.make_normaliser(PiiConfig(), 256 * 1024)
    result = norm.normalise_batch(Batch(records=refused, batch_id="b"), INGEST_MS)
    assert [r.message for r in result.rejections] == ["syslog5424: RFC 5424 SD-ID a appears twice"]


def test_an_emitter_line_is_stored_with_its_own_run() -> None:
    norm = native.make_normaliser(PiiConfig(), 256 * 1024)
    rec = {"raw": EMITTED[0].decode(), "format": "syslog5424", "run_id": "other"}
    line = orjson.loads(norm.normalise_batch(Batch(records=[rec], batch_id="b"), INGEST_MS).data)
    assert (line["run_id"], line["stream"], line["seq"]) == ("run-7", "em-1", 0)
    assert line["format"] == "syslog5424"
    assert "logops@32473" not in line["sd"]


# --- a record's own run_id, which the C path now writes itself -------------------------

RUN_IDS = st.one_of(TEXT, st.sampled_from([None, 7, ["r"], {"a": 1}, True, 1.5]))
OWN_RUN_RECORDS = st.fixed_dictionaries(
    {"msg": TEXT, "run_id": RUN_IDS},
    optional={
        "ts": st.sampled_from(["2024-03-12T14:05:09.482Z", "bad"]),
        "level": st.sampled_from(["error", "x"]),
        "src_run_id": TEXT,
        "stream": TEXT,
        "user": TEXT,
        "fields": st.dictionaries(st.sampled_from(["run_id", "user", "x"]), TEXT, max_size=2),
    },
)


@examples(200)
@given(
    records=st.lists(OWN_RUN_RECORDS, min_size=1, max_size=6),
    run_id=st.sampled_from(["", "batch-run", 'q"uote']),
    pii=st.sampled_from(PII_CONFIGS),
)
def test_records_with_their_own_run_id_are_byte_identical(
    records: list[Any], run_id: str, pii: PiiConfig
) -> None:
    run_dict_batch(Batch(records=records, batch_id="b", run_id=run_id), pii, INGEST_MS)
    if all(json_safe(rec) for rec in records):
        body = orjson.dumps({"batch_id": "b", "run_id": run_id, "records": records})
        assert_same_json(body, {}, pii)


@examples(100)
@given(
    runs=st.lists(st.one_of(st.none(), TEXT), min_size=1, max_size=6),
    batch_run=st.sampled_from(["", "batch-run"]),
)
def test_protobuf_records_with_a_run_id_field_match(runs: list[str | None], batch_run: str) -> None:
    records = [
        logs_pb2.LogRecord(msg="m", fields={} if run is None else {"run_id": run}) for run in runs
    ]
    msg = logs_pb2.LogBatch(batch_id="b", run_id=batch_run, records=records)
    assert_same_push(msg.SerializeToString(), False, PiiConfig(), INGEST_MS)


def test_structured_records_with_a_text_run_id_stay_in_c() -> None:
    records: list[Any] = [{"msg": "m", "run_id": f"run-{i}"} for i in range(5)]
    assert handed_over(records) == 0
    assert handed_over([{"msg": "m", "run_id": 7}]) == 1
    norm = native.make_normaliser(PiiConfig(), 256 * 1024)
    batch = Batch(records=[*records, {"msg": "m", "run_id": ""}], batch_id="b", run_id="r0")
    lines = norm.normalise_batch(batch, INGEST_MS).data.splitlines()
    expected = [f"run-{i}" for i in range(5)]
    assert [orjson.loads(line)["run_id"] for line in lines] == [*expected, "r0"]


def test_a_run_id_given_twice_in_json_is_decided_as_orjson_reads_it() -> None:
    body = b'{"batch_id":"b","records":[{"msg":"m","fields":{"run_id":"a"},"run_id":"b"},'
    body += b'{"msg":"m","run_id":"a","run_id":"b"}]}'
    assert_same_json(body, {}, PiiConfig())
