"""What the NDJSON sink receives for each pushed record, and what the push reports."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emitters.formats import FORMAT_NAMES
from services.common.config import PiiConfig
from services.common.model import Batch, Rejection
from services.ingest.levels import LEVELS
from services.ingest.normalize import FIXED_KEYS, REJECT_REASONS, NormalisedBatch, Normaliser

INGEST_MS = 1_710_252_400_123
INGEST_TS = "2024-03-12T14:06:40.123Z"
MAX_BYTES = 1024
NORMALISER = Normaliser(PiiConfig(fields=("client_ip", "contact")), MAX_BYTES)
HEAD = list(FIXED_KEYS[:13])
TAIL = ["ts_missing", "level_missing"]
TYPICAL = {
    "ts": "2024-03-12T14:05:09.482Z",
    "level": "info",
    "msg": "order placed",
    "service": "checkout",
    "host": "web01",
    "stream": "s1",
    "seq": 1042,
    "order_id": 42,
    "region": "eu",
}


def run(
    records: list[Any], normaliser: Normaliser = NORMALISER, **batch: Any
) -> tuple[list[dict[str, Any]], NormalisedBatch]:
    meta = {"batch_id": "b-1", "emitter": "em", "scenario_id": "sc", "run_id": "r-1"} | batch
    result = normaliser.normalise_batch(Batch(records=records, **meta), INGEST_MS)
    return [orjson.loads(line) for line in result.data.splitlines()], result


def one(rec: dict[str, Any], **batch: Any) -> dict[str, Any]:
    lines, result = run([rec], **batch)
    assert result.rejections == [], result.rejections
    return lines[0]


def test_typical_record_exact_line() -> None:
    _, result = run([TYPICAL])
    assert result.data == (
        b'{"ts":"2024-03-12T14:05:09.482Z","level":"INFO","msg":"order placed","emitter":"em",'
        b'"scenario_id":"sc","run_id":"r-1","service":"checkout","host":"web01",'
        b'"format":"structured","stream":"s1","seq":1042,"batch_id":"b-1",'
        b'"ingest_ts":"2024-03-12T14:06:40.123Z","order_id":42,"region":"eu",'
        b'"ts_missing":false,"level_missing":false}\n'
    )
    assert result.accepted == 1
    assert result.level_counts == {"INFO": 1}


def test_fixed_keys_always_present_in_order() -> None:
    out = one({"z": 1, "a": 2})
    assert list(out) == [*HEAD, "z", "a", *TAIL]
    assert out | {"z": 1, "a": 2} == out
    assert (out["msg"], out["service"], out["host"], out["stream"], out["seq"]) == (
        *("", "", "", ""),
        None,
    )
    assert out["format"] == "structured"


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2024-03-12T16:05:09.482+02:00", "2024-03-12T14:05:09.482Z"),
        ("2024-03-12 14:05:09", "2024-03-12T14:05:09.000Z"),
        ("2024-03-12T14:05:09.482113Z", "2024-03-12T14:05:09.482Z"),
        (1710252309, "2024-03-12T14:05:09.000Z"),
        (1710252309482, "2024-03-12T14:05:09.482Z"),
        ("12/Mar/2024:14:05:09 +0000", "2024-03-12T14:05:09.000Z"),
        # RFC 3164 has no year: the one nearest to the ingest time is taken.
        ("Mar 12 14:05:09", "2024-03-12T14:05:09.000Z"),
        ("Dec 31 23:59:59", "2023-12-31T23:59:59.000Z"),
    ],
)
def test_timestamps(ts: object, expected: str) -> None:
    out = one({"ts": ts})
    assert out["ts"] == expected
    assert out["ts_missing"] is False


@pytest.mark.parametrize(
    ("rec", "expected"),
    [
        ({"level": "warning"}, "WARN"),
        ({"level": "ERR"}, "ERROR"),
        ({"level": 50}, "ERROR"),
        ({"level": "3"}, "WARN"),
        ({"level": "<3>"}, "ERROR"),
        ({"syslog_severity": 3}, "ERROR"),
        ({"level": "fatal", "syslog_severity": 7}, "FATAL"),
    ],
)
def test_levels(rec: dict[str, Any], expected: str) -> None:
    out = one(rec)
    assert out["level"] == expected
    assert out["level_missing"] is False


def test_absent_and_invalid_are_counted_apart() -> None:
    records = [
        {"msg": "nothing"},
        {"ts": None, "level": ""},
        {"ts": "yesterday", "level": "loud"},
        {"ts": "2024-02-30T00:00:00Z", "level": "info"},
        TYPICAL,
    ]
    lines, result = run(records)
    assert result.missing.to_dict() == {
        "ts_absent": 2,
        "ts_invalid": 2,
        "level_absent": 2,
        "level_invalid": 1,
    }
    assert [(o["ts_missing"], o["level_missing"]) for o in lines] == [
        (True, True),
        (True, True),
        (True, True),
        (True, False),
        (False, False),
    ]
    assert {o["ts"] for o in lines[:4]} == {INGEST_TS}
    assert [o["level"] for o in lines] == ["INFO"] * 5
    # What could not be parsed is kept beside the replacement.
    assert (lines[2]["src_ts"], lines[2]["src_level"]) == ("yesterday", "loud")
    assert "src_ts" not in lines[0] and "src_level" not in lines[3]


def test_partial_success_keeps_good_records() -> None:
    records = [
        TYPICAL | {"seq": 1},
        TYPICAL | {"seq": "x"},
        TYPICAL | {"seq": 3},
        None,
        {"msg": "x" * (MAX_BYTES + 1)},
        "not an object",
        TYPICAL | {"seq": 6},
    ]
    earlier = Rejection(3, "parse_error", "line 4: not JSON")
    lines, result = run(records, rejections=[earlier])
    assert [o["seq"] for o in lines] == [1, 3, 6]
    assert result.accepted == 3
    assert [(r.index, r.reason) for r in result.rejections] == [
        (1, "invalid_record"),
        (3, "parse_error"),
        (4, "record_too_large"),
        (5, "invalid_record"),
    ]
    assert "seq" in result.rejections[0].message
    assert result.rejections[1] is earlier
    assert result.data.count(b"\n") == 3 and result.data.endswith(b"\n")


def test_size_limit_counts_utf8_bytes() -> None:
    fits = "é" * (MAX_BYTES // 2)  # exactly MAX_BYTES bytes
    too_big = fits + "é"
    _, result = run(
        [{"msg": fits}, {"msg": too_big}, {"raw": too_big}, {"raw": "a" * MAX_BYTES}, {"msg": "ok"}]
    )
    assert result.accepted == 3
    assert [(r.index, r.reason) for r in result.rejections] == [
        (1, "record_too_large"),
        (2, "record_too_large"),
    ]
    assert f"over {MAX_BYTES} bytes" in result.rejections[0].message


def test_pii_in_msg_and_configured_fields() -> None:
    out = one(
        {
            "msg": "login by john.doe@example.com from 83.11.45.6",
            "client_ip": "83.11.45.6",
            "contact": "mail jane@example.org",
            "note": "jane@example.org",
            "port_ip": 8080,
        }
    )
    assert out["msg"] == "login by j***@example.com from 83.11.x.x"
    assert out["client_ip"] == "83.11.x.x"
    assert out["contact"] == "mail j***@example.org"
    assert out["note"] == "jane@example.org"
    assert out["port_ip"] == 8080


def test_pii_modes() -> None:
    rec = {"msg": "from 83.11.45.6", "client_ip": "83.11.45.6"}
    off = Normaliser(PiiConfig(mode="off", fields=("client_ip",)), MAX_BYTES)
    assert (one_with(off, rec)["msg"], one_with(off, rec)["client_ip"]) == (
        "from 83.11.45.6",
        "83.11.45.6",
    )
    hashed = Normaliser(PiiConfig(mode="hash", fields=("client_ip",), hash_salt="k"), MAX_BYTES)
    out = one_with(hashed, rec)
    assert re.fullmatch(r"from <hash:[0-9a-f]{12}>", out["msg"])
    assert out["client_ip"] == out["msg"].removeprefix("from ")


def one_with(normaliser: Normaliser, rec: dict[str, Any]) -> dict[str, Any]:
    lines, _ = run([rec], normaliser)
    return lines[0]


@pytest.mark.parametrize(
    ("rec", "field", "value"),
    [
        ({"timestamp": "2024-03-12T14:05:09Z"}, "ts", "2024-03-12T14:05:09.000Z"),
        ({"time": 1710252309}, "ts", "2024-03-12T14:05:09.000Z"),
        ({"@timestamp": "2024-03-12T14:05:09Z"}, "ts", "2024-03-12T14:05:09.000Z"),
        ({"lvl": "debug"}, "level", "DEBUG"),
        ({"severity": "ERROR"}, "level", "ERROR"),
        ({"message": "hello"}, "msg", "hello"),
        ({"log": "hello"}, "msg", "hello"),
        ({"text": "hello"}, "msg", "hello"),
    ],
)
def test_aliases_are_consumed(rec: dict[str, Any], field: str, value: str) -> None:
    out = one(rec)
    assert out[field] == value
    assert not set(rec) - set(FIXED_KEYS) & set(out)


def test_first_present_alias_wins_and_the_rest_stay() -> None:
    out = one(
        {
            "ts": "",
            "timestamp": "2024-03-12T14:05:09Z",
            "time": "other",
            "level": None,
            "lvl": "warn",
            "msg": "primary",
            "message": "secondary",
        }
    )
    assert (out["ts"], out["level"], out["msg"]) == ("2024-03-12T14:05:09.000Z", "WARN", "primary")
    assert (out["time"], out["message"]) == ("other", "secondary")
    assert "timestamp" not in out and "lvl" not in out


def test_renamed_fields_do_not_depend_on_key_order() -> None:
    # A protobuf map has no order: the names must follow from the names alone.
    first = one({"src_emitter": "already", "emitter": "spoofed"})
    second = one({"emitter": "spoofed", "src_emitter": "already"})
    assert first == second
    assert (first["src_emitter"], first["src_src_emitter"]) == ("already", "spoofed")


def test_fields_named_like_fixed_keys_are_prefixed() -> None:
    out = one(
        {
            "emitter": "spoofed",
            "batch_id": "b-9",
            "ingest_ts": "never",
            "ts_missing": "maybe",
            "src_emitter": "already",
        }
    )
    assert (out["emitter"], out["batch_id"], out["ingest_ts"]) == ("em", "b-1", INGEST_TS)
    # A field already called src_emitter keeps its name; the spoofed one moves further.
    assert out["src_emitter"] == "already"
    assert out["src_src_emitter"] == "spoofed"
    assert (out["src_batch_id"], out["src_ingest_ts"], out["src_ts_missing"]) == (
        "b-9",
        "never",
        "maybe",
    )
    assert list(out)[-2:] == TAIL and out["ts_missing"] is True


@pytest.mark.parametrize(
    ("rec", "field", "value"),
    [
        ({"msg": {"a": [1, 2]}}, "msg", '{"a":[1,2]}'),
        ({"msg": 42}, "msg", "42"),
        ({"msg": True}, "msg", "true"),
        ({"service": 5}, "service", "5"),
        ({"host": None}, "host", ""),
        ({"stream": ["a"]}, "stream", '["a"]'),
        ({"seq": "42"}, "seq", 42),
        ({"seq": None}, "seq", None),
        ({"seq": 2**64 - 1}, "seq", 2**64 - 1),
        ({"seq": 0}, "seq", 0),
        (TYPICAL | {"seq": 0}, "seq", 0),
        ({"format": "csv"}, "format", "csv"),
        ({"format": ""}, "format", "structured"),
    ],
)
def test_value_types(rec: dict[str, Any], field: str, value: object) -> None:
    assert one(rec)[field] == value


@pytest.mark.parametrize(
    ("rec", "message"),
    [
        ({"seq": 3.0}, "seq"),
        ({"seq": True}, "seq"),
        ({"seq": -1}, "seq"),
        ({"seq": 2**64}, "seq"),
        ({"seq": "4x"}, "seq"),
        ({1: "x"}, "field names must be strings"),
        ({"format": 7}, "format must be a string"),
        ({"raw": 7}, "raw must be a string"),
        ({"big": 2**70}, "cannot be stored as JSON"),
        ({"msg": "\ud800"}, "cannot be stored as JSON"),
        ({"msg": 2**70}, "msg cannot be written as JSON"),
        ({"service": {"n": 2**64}}, "service cannot be written as JSON"),
        ({"host": [2**64]}, "host cannot be written as JSON"),
        ({"stream": [2**64]}, "stream cannot be written as JSON"),
    ],
)
def test_invalid_records(rec: dict[Any, Any], message: str) -> None:
    _, result = run([rec])
    assert result.accepted == 0
    assert result.rejections[0].reason == "invalid_record"
    assert message in result.rejections[0].message


def test_default_format_labels_structured_records() -> None:
    assert one({"msg": "x"}, default_format="csv")["format"] == "csv"


SYSLOG_LINE = "2024-03-12T14:05:09.482Z web01 checkout[4412]: ERROR payment declined"


def test_raw_syslog_line() -> None:
    out = one({"raw": SYSLOG_LINE + "\r\n", "stream": "s1", "seq": 7}, default_format="syslog")
    assert out == {
        "ts": "2024-03-12T14:05:09.482Z",
        "level": "ERROR",
        "msg": "payment declined",
        "emitter": "em",
        "scenario_id": "sc",
        "run_id": "r-1",
        "service": "checkout",
        "host": "web01",
        "format": "syslog",
        "stream": "s1",
        "seq": 7,
        "batch_id": "b-1",
        "ingest_ts": INGEST_TS,
        "pid": 4412,
        "ts_missing": False,
        "level_missing": False,
    }


def test_line_values_win_and_record_fields_fill_gaps() -> None:
    out = one(
        {
            "raw": '{"service": "from-line", "msg": "m", "raw": "r", "format": "f"}',
            "format": "json",
            "service": "from-record",
            "host": "h1",
            "ts": "2024-03-12T14:05:09Z",
            "msg": "ignored",
            "extra": 1,
        }
    )
    assert (out["service"], out["host"], out["msg"]) == ("from-line", "h1", "m")
    assert out["ts"] == "2024-03-12T14:05:09.000Z"
    assert (out["format"], out["src_raw"], out["src_format"], out["extra"]) == ("json", "r", "f", 1)


@pytest.mark.parametrize(
    ("rec", "batch_format", "fmt", "msg"),
    [
        ({"raw": SYSLOG_LINE}, "", "syslog", "payment declined"),
        ({"raw": '{"msg": "j"}'}, "", "json", "j"),
        ({"raw": "level=warn msg=lf"}, "", "logfmt", "lf"),
        ({"raw": "2024-03-12T14:05:09Z,INFO,c"}, "", "csv", "c"),
        ({"raw": "2024-03-12T14:05:09Z,INFO,c", "format": "auto"}, "syslog", "csv", "c"),
        ({"raw": "plain words"}, "", "text", "plain words"),
        ({"raw": "{not json"}, "", "text", "{not json"),
        ({"raw": SYSLOG_LINE, "format": "text"}, "", "text", SYSLOG_LINE),
        ({"raw": "level=warn msg=lf", "format": "logfmt"}, "syslog", "logfmt", "lf"),
        ({"raw": "", "msg": "empty raw"}, "syslog", "syslog", "empty raw"),
    ],
)
def test_raw_format_choice(rec: dict[str, Any], batch_format: str, fmt: str, msg: str) -> None:
    out = one(rec, default_format=batch_format)
    assert (out["format"], out["msg"]) == (fmt, msg)


def test_text_lines_have_no_ts_or_level() -> None:
    lines, result = run([{"raw": "plain words"}])
    assert (lines[0]["ts"], lines[0]["ts_missing"], lines[0]["level_missing"]) == (
        INGEST_TS,
        True,
        True,
    )
    assert result.missing.ts_absent == 1 and result.missing.level_absent == 1


@pytest.mark.parametrize(
    ("rec", "batch_format", "reason", "message"),
    [
        ({"raw": "x"}, "yaml", "unknown_format", "unknown format 'yaml'"),
        ({"raw": "x", "format": "yaml"}, "json", "unknown_format", "known: json, csv"),
        ({"raw": "[1]", "format": "json"}, "", "parse_error", "json: a JSON line must be"),
        ({"raw": "nonsense"}, "syslog", "parse_error", "syslog: not a syslog line"),
        ({"raw": 'a="open'}, "logfmt", "parse_error", "logfmt: invalid logfmt"),
    ],
)
def test_raw_rejections(rec: dict[str, Any], batch_format: str, reason: str, message: str) -> None:
    _, result = run([rec, TYPICAL], default_format=batch_format)
    assert result.accepted == 1
    assert (result.rejections[0].index, result.rejections[0].reason) == (0, reason)
    assert message in result.rejections[0].message


def test_level_counts_and_empty_batch() -> None:
    _, result = run([{"level": "warn"}, {"level": "WARNING"}, {"level": "x"}, {}])
    assert result.level_counts == {"WARN": 2, "INFO": 2}
    _, empty = run([])
    assert (empty.data, empty.accepted, empty.rejections, empty.level_counts) == (b"", 0, [], {})


# --- whatever arrives, each record gives one stored line or one rejection -------------

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
KEYS = st.one_of(
    st.sampled_from(
        [
            *FIXED_KEYS,
            *("raw", "timestamp", "time", "@timestamp", "lvl", "severity", "message", "log"),
            *("text", "syslog_severity", "src_emitter", "client_ip", "contact"),
        ]
    ),
    st.text(max_size=8),
)
TS_VALUES = st.sampled_from(
    ["2024-03-12T14:05:09.482Z", "Mar  2 04:05:06", "1710252309", "", "2024-02-30T00:00:00Z"]
)
RECORDS = st.one_of(
    st.dictionaries(KEYS, st.one_of(VALUES, TS_VALUES), max_size=8),
    st.dictionaries(st.one_of(KEYS, st.integers()), VALUES, max_size=4),
    st.fixed_dictionaries(
        {"raw": st.text(max_size=60)},
        optional={
            "format": st.sampled_from(["", "json", "csv", "syslog", "logfmt", "text", "auto", "?"])
        },
    ),
    # None is where a decoder already rejected a record; any other value is fair game.
    VALUES.filter(lambda value: value is not None),
)
CANONICAL_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RECORDS, max_size=8), st.sampled_from(["", "json", "syslog", "logfmt", "zz"]))
def test_never_raises_and_accounts_for_every_record(records: list[Any], fmt: str) -> None:
    lines, result = run(records, default_format=fmt)
    assert result.accepted + len(result.rejections) == len(records)
    assert len(lines) == result.accepted == sum(result.level_counts.values())
    indexes = [r.index for r in result.rejections]
    assert indexes == sorted(set(indexes))
    assert {r.reason for r in result.rejections} <= set(REJECT_REASONS)
    for out in lines:
        keys = list(out)
        assert keys[:13] == HEAD and keys[-2:] == TAIL
        assert CANONICAL_TS.fullmatch(out["ts"]) and out["level"] in LEVELS
        assert all(type(out[k]) is str for k in ("msg", "service", "host", "format", "stream"))
        assert out["seq"] is None or type(out["seq"]) is int
        assert isinstance(out["ts_missing"], bool) and isinstance(out["level_missing"], bool)


def test_record_aliases_beside_a_raw_line_do_not_depend_on_key_order() -> None:
    # Both aliases come along when the line sets no timestamp; precedence picks one.
    first = one({"raw": "hello", "format": "text", "ts": "", "timestamp": "1710252309"})
    second = one({"raw": "hello", "format": "text", "timestamp": "1710252309", "ts": ""})
    assert first == second
    assert first["ts"] == "2024-03-12T14:05:09.000Z"


def test_a_record_that_names_its_run_is_stored_under_it() -> None:
    """Syslog streams and relays mix runs in one batch: the record's run_id wins."""
    lines, _ = run(
        [
            {"msg": "a", "run_id": "run-7", "stream": "s", "seq": 1},
            {"msg": "b"},
            {"msg": "c", "run_id": ""},
            {"msg": "d", "run_id": 42},
        ],
        run_id="",
    )
    assert [line["run_id"] for line in lines] == ["run-7", "", "", ""]
    assert "src_run_id" not in lines[0] and "src_run_id" not in lines[2]
    assert lines[3]["src_run_id"] == 42  # not text: kept as the source wrote it
    assert one({"msg": "e", "run_id": "run-8"})["run_id"] == "run-8"  # over the batch's r-1


def test_a_text_as_long_in_characters_as_the_limit_is_measured_in_bytes() -> None:
    # MAX_BYTES characters fit only if each is one byte.
    _, result = run([{"msg": "a" * MAX_BYTES}, {"msg": "é" * MAX_BYTES}, {"raw": "é" * MAX_BYTES}])
    assert result.accepted == 1
    assert [(r.index, r.reason, r.message) for r in result.rejections] == [
        (1, "record_too_large", f"msg is over {MAX_BYTES} bytes (at least {2 * MAX_BYTES})"),
        (2, "record_too_large", f"raw is over {MAX_BYTES} bytes (at least {2 * MAX_BYTES})"),
    ]


def test_a_seq_given_as_text_is_read_as_the_integer_it_spells() -> None:
    # Syslog 5424 carries seq="..." as text: the 20 digits of 2**64-1 at most.
    assert one({"seq": "18446744073709551615"})["seq"] == 2**64 - 1
    assert one({"seq": "0"})["seq"] == 0
    for text in ("18446744073709551616", "0" * 20 + "1", "9" * 5000, "-1", "٣", " 1"):
        _, result = run([{"seq": text}])
        assert [(r.reason, r.message) for r in result.rejections] == [
            ("invalid_record", "seq must be an integer from 0 to 2**64-1")
        ], text


def test_one_record_as_the_c_path_hands_it_over() -> None:
    """The C path gives ``one`` each record it leaves to Python: the line a batch would
    store, its level and the missing-field bits it counts by (ts absent 1, invalid 2,
    level absent 4, invalid 8), or ``(None, reason, message)``."""
    batch = Batch(records=[], batch_id="b-1", emitter="em", scenario_id="sc", run_id="r-1")
    ctx = NORMALISER.context(batch, INGEST_MS)
    cases = [
        (TYPICAL, "INFO", 0),
        ({"raw": SYSLOG_LINE, "format": "syslog"}, "ERROR", 0),
        ({"ts": "yesterday", "level": "loud"}, "INFO", 2 | 8),
        ({"msg": "m"}, "INFO", 1 | 4),
    ]
    for rec, level, flags in cases:
        _, result = run([rec])
        assert NORMALISER.one(rec, ctx) == (result.data, level, flags)
    assert NORMALISER.one({"seq": -1}, ctx) == (
        None,
        "invalid_record",
        "seq must be an integer from 0 to 2**64-1",
    )
    assert NORMALISER.one("text", ctx) == (None, "invalid_record", "a record must be an object")
    assert NORMALISER.one({"raw": "x", "format": "yaml"}, ctx)[:2] == (None, "unknown_format")


def test_only_what_could_not_be_read_is_kept_beside_its_replacement() -> None:
    level_only = one({"ts": "2024-03-12T14:05:09Z", "level": "loud"})
    assert (level_only["ts"], level_only["src_level"]) == ("2024-03-12T14:05:09.000Z", "loud")
    assert "src_ts" not in level_only
    ts_only = one({"ts": "yesterday", "level": "warn"})
    assert (ts_only["ts"], ts_only["level"], ts_only["src_ts"]) == (INGEST_TS, "WARN", "yesterday")
    assert "src_level" not in ts_only


def test_msg_named_among_the_pii_fields_is_masked_once_as_always() -> None:
    # Masking twice is not masking once: a***@b.co@c.com would lose b.co's letters too.
    rec = {"msg": "mail a@b.co@c.com", "contact": "a@b.co@c.com"}
    plain = one_with(Normaliser(PiiConfig(fields=("contact",)), MAX_BYTES), rec)
    named = one_with(Normaliser(PiiConfig(fields=("msg", "contact")), MAX_BYTES), rec)
    assert named == plain
    assert named["msg"] == "mail " + named["contact"]


def test_a_record_alias_the_line_already_sets_is_not_stored_beside_it() -> None:
    # The line's timestamp, level and message win; the record's other names for them
    # are not kept as fields either (what the line holds wins, whole).
    out = one(
        {
            "raw": SYSLOG_LINE,
            "format": "syslog",
            "timestamp": "2020-01-01T00:00:00Z",
            "lvl": "debug",
            "message": "from the record",
            "region": "eu",
        }
    )
    assert (out["ts"], out["level"], out["msg"]) == (
        "2024-03-12T14:05:09.482Z",
        "ERROR",
        "payment declined",
    )
    assert not {"timestamp", "lvl", "message"} & set(out)
    assert out["region"] == "eu"


def test_a_batch_left_serialized_is_refused_with_what_to_do() -> None:
    # Only the C path reads a body left undecoded: Python refuses it, not store it empty.
    batch = Batch(records=[], batch_id="b-1", wire=b"[]", wire_kind="json")
    with pytest.raises(
        ValueError, match=r"^a serialized batch needs the C path; decode it instead$"
    ):
        NORMALISER.normalise_batch(batch, INGEST_MS)


@pytest.mark.parametrize(
    ("rec", "message"),
    [
        ({"format": 7}, "format must be a string"),
        ({"raw": "x", "format": 7}, "format must be a string"),
        ({"raw": 7}, "raw must be a string"),
        ({1: "x"}, "field names must be strings"),
        (["x"], "a record must be an object"),
    ],
)
def test_a_refusal_says_what_is_wrong_in_so_many_words(rec: Any, message: str) -> None:
    _, result = run([rec])
    assert [(r.reason, r.message) for r in result.rejections] == [("invalid_record", message)]


def test_an_unknown_format_is_refused_with_the_names_that_are_known() -> None:
    known = ", ".join(FORMAT_NAMES)
    _, result = run([{"raw": "x", "format": "yaml"}, {"raw": "x", "format": "y" * 100}])
    assert [(r.reason, r.message) for r in result.rejections] == [
        ("unknown_format", f"unknown format 'yaml' (known: {known}, text, auto)"),
        ("unknown_format", f"unknown format '{'y' * 64}' (known: {known}, text, auto)"),
    ]


def test_only_the_line_end_is_cut_from_a_raw_line() -> None:
    assert one({"raw": "flag XX\r\n", "format": "text"})["msg"] == "flag XX"
    assert one({"raw": " padded \t\n", "format": "text"})["msg"] == " padded \t"


def test_a_level_given_by_the_syslog_severity_leaves_nothing_counted_missing() -> None:
    lines, result = run([{"ts": "2024-03-12T14:05:09Z", "syslog_severity": 3}])
    assert (lines[0]["level"], lines[0]["ts_missing"], lines[0]["level_missing"]) == (
        "ERROR",
        False,
        False,
    )
    assert result.missing.to_dict() == dict.fromkeys(
        ("ts_absent", "ts_invalid", "level_absent", "level_invalid"), 0
    )


def test_field_names_are_case_sensitive() -> None:
    # TS, Level, MSG... are fields of their own, never read as ts, level, msg...
    twins = {key.upper(): f"upper {key}" for key in ("ts", "level", "msg", "service")}
    twins |= {key.upper(): f"upper {key}" for key in ("host", "stream", "seq")}
    twins |= {"Level": "debug", "Msg": "title case"}
    out, alone = one(TYPICAL | twins), one(TYPICAL)
    assert {key: out[key] for key in alone} == alone
    assert {key: out[key] for key in twins} == twins


@pytest.mark.parametrize(
    ("empty", "alias", "field", "value"),
    [
        ("ts", {"timestamp": "2024-03-12T16:00:00Z"}, "ts", "2024-03-12T16:00:00.000Z"),
        ("level", {"lvl": "error"}, "level", "ERROR"),
        ("msg", {"message": "from the alias"}, "msg", "from the alias"),
    ],
)
def test_an_empty_fixed_field_gives_way_to_its_alias_in_a_full_record(
    empty: str, alias: dict[str, str], field: str, value: str
) -> None:
    # A record with every fixed key, one of them "": the alias is read, and consumed.
    out = one(TYPICAL | {empty: ""} | alias)
    assert out[field] == value
    assert not set(alias) & set(out)
    assert (out["ts_missing"], out["level_missing"]) == (False, False)


def test_a_timestamp_is_taken_as_written_only_when_it_is_exactly_the_stored_form() -> None:
    for text in ("2024-03-12T14:05:09X.482Z", "2024-03-12T14:05:09.482ZZ"):
        out = one({"ts": text})
        assert (out["ts"], out["src_ts"], out["ts_missing"]) == (INGEST_TS, text, True)


@pytest.mark.parametrize("field", ["service", "host", "stream"])
def test_a_service_host_or_stream_that_is_not_text_is_stored_as_text_in_a_full_record(
    field: str,
) -> None:
    out = one(TYPICAL | {field: 7})
    assert out[field] == "7"
    assert {k: out[k] for k in ("service", "host", "stream")} == {
        "service": "checkout",
        "host": "web01",
        "stream": "s1",
    } | {field: "7"}
