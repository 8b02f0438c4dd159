"""The C path reading whole request bodies (JSON text, protobuf wire) equals the Python one.

``test_native_equivalence.py`` covers records handed over as dicts; here the C code also
does the decoding, so every body is sent through both paths:

- C: ``NativeNormaliser.json_batch``/``wire_batch`` keep the body undecoded, the C code reads
  and normalises it;
- Python: ``codecs.decode_body``/``pb_codec`` decode it, the pure-Python
  ``Normaliser`` normalises the dicts.

Bodies are written in several ways (compact, ASCII-only escapes, indented) and mutated
at random: whatever the C reader accepts, the Python decoder must accept too, with the
same result; what it refuses is left to the Python decoder, which explains the error.
``make test`` builds the extension, so none of this is skipped there.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from logops.v1 import logs_pb2

from services.common import pb_codec
from services.common.codecs import decode_body
from services.common.config import PiiConfig
from services.common.errors import BadRequest
from services.common.model import Batch
from services.ingest import native
from services.ingest.native import make_normaliser
from services.ingest.normalize import NormalisedBatch

pytestmark = pytest.mark.skipif(not native.AVAILABLE, reason="the C extension is not built")

INGEST_MS = 1_710_252_400_123
MAX_BYTES = 4096
FAST = make_normaliser(PiiConfig(), MAX_BYTES)
SLOW = make_normaliser(PiiConfig(), MAX_BYTES, native=False)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "a@example.com from 10.1.2.3",
            'q"uote \\ back/slash',
            "tab\tnew\nline\x00",
            "😀 é \u2028",
            "2024-03-12T14:05:09.482Z",
            "warn",
            "ERROR",
            "",
        ]
    ),
)
SCALARS = st.one_of(
    TEXT,
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
KEYS = st.one_of(
    st.sampled_from(
        [
            *("ts", "level", "msg", "service", "host", "stream", "seq", "format", "raw"),
            *("timestamp", "lvl", "message", "syslog_severity", "src_ts", "emitter", "region"),
            *("user", "trace_id", "fields", "k\u00e9y", "ü"),
        ]
    ),
    st.text(min_size=1, max_size=6),
)
TS = st.one_of(
    st.sampled_from(
        ["2024-03-12T14:05:09.482Z", "2024-03-12 14:05:09+02:00", "Mar 12 14:05:09", "nope", ""]
    ),
    st.integers(0, 2 * 10**12),
    st.none(),
)
LEVEL = st.one_of(
    st.sampled_from(["info", "WARN", "err", "bogus", "", " Debug "]), st.integers(-1, 70)
)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    rec: dict[str, Any] = {}
    if draw(st.booleans()):
        rec["ts"] = draw(TS)
    if draw(st.booleans()):
        rec["level"] = draw(LEVEL)
    if draw(st.integers(0, 4)):
        rec["msg"] = draw(st.one_of(TEXT, VALUES))
    for key in draw(st.lists(KEYS, max_size=4)):
        rec[key] = draw(VALUES)
    if draw(st.integers(0, 3)) == 0:
        rec["fields"] = draw(st.dictionaries(KEYS, SCALARS, max_size=3))
    return rec


def render(doc: Any, style: int) -> bytes:
    """The same document as a client might write it."""
    if style == 0:  # compact, as orjson writes it (json also writes integers past 64 bits)
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
    if style == 1:  # escapes for everything past ASCII, surrogate pairs included
        return json.dumps(doc, ensure_ascii=True).encode()
    return json.dumps(doc, ensure_ascii=False, indent=1).encode()


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    recs = draw(st.lists(records(), max_size=8))
    if draw(st.booleans()):
        doc: Any = recs
    else:
        doc = {"records": recs}
        for key in ("batch_id", "emitter", "scenario_id", "run_id", "format"):
            if draw(st.booleans()):
                doc[key] = draw(st.sampled_from(["b-1", "emit\u00e9r", "", "csv", "x y"]))
        if draw(st.booleans()):
            doc["extra"] = draw(VALUES)
    return render(doc, draw(st.integers(0, 2)))


def same(fast: NormalisedBatch, slow: NormalisedBatch) -> None:
    assert fast.data == slow.data
    assert (fast.accepted, fast.rejections, fast.missing, fast.level_counts) == (
        slow.accepted,
        slow.rejections,
        slow.missing,
        slow.level_counts,
    )


def python_json(body: bytes) -> Batch | BadRequest:
    try:
        return decode_body("json", body, {})
    except BadRequest as exc:
        return exc


def check_json(body: bytes) -> None:
    taken = FAST.json_batch(body)
    expected = python_json(body)
    if taken is None:
        return  # left to the Python decoder: nothing for the C path to get wrong
    assert isinstance(expected, Batch), f"C took a body Python refuses: {expected}"
    assert taken.count() == len(expected.records)
    for key in ("batch_id", "emitter", "scenario_id", "run_id", "default_format"):
        assert getattr(taken, key) == getattr(expected, key), key
    same(FAST.normalise_batch(taken, INGEST_MS), SLOW.normalise_batch(expected, INGEST_MS))


@SETTINGS
@given(body=json_bodies())
def test_json_bodies_store_the_same_bytes(body: bytes) -> None:
    assert FAST.json_batch(body) is not None or python_json(body) is not None
    check_json(body)


@SETTINGS
@given(body=json_bodies(), data=st.data())
def test_mutated_json_is_taken_only_when_python_agrees(body: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(body)))
    junk = data.draw(st.binary(max_size=4))
    mutated = body[:cut] + junk + body[cut + data.draw(st.integers(0, 3)) :]
    check_json(mutated)


@pytest.mark.parametrize(
    "body",
    [
        b'[{"msg":"\\ud800"}]',  # a lone surrogate escape: orjson refuses it
        b'[{"msg":"a"},]',
        b'[{"ts":1E400}]',
        b"\xef\xbb\xbf[]",
        b'[{"msg":"\xed\xa0\x80"}]',  # a surrogate written as UTF-8
        b'[{"msg":"a\x01"}]',
        b"[" * 600 + b"]" * 600,
        b'{"records":[{}],"records":[]}',
        b'{"records":{}}',
        b'{"batch_id":7,"records":[]}',
        b'[{"msg":"x"}, 5]',
    ],
    ids=lambda b: repr(b[:24]),
)
def test_bodies_the_c_reader_leaves_to_python(body: bytes) -> None:
    assert FAST.json_batch(body) is None


def test_escapes_are_undone_and_written_as_orjson_writes_them() -> None:
    body = rb'[{"msg":"\u00e9\/\"\\\b\f\n\r\t\u0001\ud83d\ude00","k":"\u2028"}]'
    taken = FAST.json_batch(body)
    assert taken is not None
    line = orjson.loads(FAST.normalise_batch(taken, INGEST_MS).data)
    assert line["msg"] == 'é/"\\\b\f\n\r\t\x01😀'
    check_json(body)


def test_a_fields_object_lands_where_the_protobuf_map_does() -> None:
    rec = {"ts": "2024-03-12T14:05:09.482Z", "level": "info", "msg": "m", "seq": 3}
    fields = {"region": "eu", "trace_id": "ab"}
    body = orjson.dumps({"batch_id": "b", "records": [{**rec, "fields": fields}]})
    taken = FAST.json_batch(body)
    assert taken is not None
    over_http = FAST.normalise_batch(taken, INGEST_MS).data
    msg = logs_pb2.LogBatch(batch_id="b", records=[logs_pb2.LogRecord(**rec, fields=fields)])
    wire = FAST.wire_batch(msg.SerializeToString(), request=False)
    assert wire is not None
    over_grpc = FAST.normalise_batch(wire, INGEST_MS).data
    # The same line; only the order of the map's entries is protobuf's own.
    assert orjson.loads(over_http) == orjson.loads(over_grpc)
    assert orjson.loads(over_http)["region"] == "eu"


def test_record_keys_win_over_the_same_keys_in_fields() -> None:
    body = orjson.dumps([{"msg": "m", "region": "top", "fields": {"region": "inner", "a": 1}}])
    check_json(body)
    taken = FAST.json_batch(body)
    assert taken is not None
    line = orjson.loads(FAST.normalise_batch(taken, INGEST_MS).data)
    assert (line["region"], line["a"]) == ("top", 1)


# --- protobuf wire -------------------------------------------------------------------

PB_TEXT = st.one_of(st.text(max_size=10), st.sampled_from(["info", "2024-03-12T14:05:09.482Z"]))


@st.composite
def pb_records(draw: st.DrawFn) -> logs_pb2.LogRecord:
    rec = logs_pb2.LogRecord(
        msg=draw(PB_TEXT),
        service=draw(PB_TEXT),
        fields=draw(st.dictionaries(st.one_of(KEYS, st.text(max_size=4)), PB_TEXT, max_size=3)),
    )
    for name in ("ts", "level", "raw", "format", "host", "stream"):
        if draw(st.integers(0, 2)) == 0:
            setattr(rec, name, draw(PB_TEXT))
    if draw(st.booleans()):
        rec.seq = draw(st.integers(0, 2**64 - 1))
    return rec


def wire_lines(normalised: NormalisedBatch) -> list[dict[str, Any]]:
    # Map entries have no defined order in protobuf: compare the lines as objects.
    return [orjson.loads(line) for line in normalised.data.splitlines()]


def check_wire(body: bytes) -> None:
    taken = FAST.wire_batch(body, request=True)
    try:
        expected: Batch | None = pb_codec.batch_from_request_bytes(body)
    except BadRequest:
        expected = None
    if taken is None:
        return
    assert expected is not None, "C took bytes the protobuf runtime refuses"
    assert taken.count() == len(expected.records)
    assert (taken.batch_id, taken.emitter, taken.scenario_id, taken.run_id) == (
        expected.batch_id,
        expected.emitter,
        expected.scenario_id,
        expected.run_id,
    )
    fast = FAST.normalise_batch(taken, INGEST_MS)
    slow = SLOW.normalise_batch(expected, INGEST_MS)
    assert wire_lines(fast) == wire_lines(slow)
    assert (fast.accepted, fast.rejections, fast.missing, fast.level_counts) == (
        slow.accepted,
        slow.rejections,
        slow.missing,
        slow.level_counts,
    )


@SETTINGS
@given(recs=st.lists(pb_records(), max_size=6), data=st.data())
def test_mutated_protobuf_is_taken_only_when_upb_agrees(
    recs: list[logs_pb2.LogRecord], data: st.DataObject
) -> None:
    body = logs_pb2.PushRequest(
        batch=logs_pb2.LogBatch(batch_id="b", emitter="e", records=recs)
    ).SerializeToString()
    check_wire(body)
    cut = data.draw(st.integers(0, len(body)))
    junk = data.draw(st.binary(max_size=4))
    check_wire(body[:cut] + junk + body[cut + data.draw(st.integers(0, 3)) :])


@SETTINGS
@given(body=st.binary(max_size=64))
def test_random_bytes_never_crash_the_readers(body: bytes) -> None:
    check_wire(body)
    check_json(body)
    assert native.scan_wire(body, False) is None or pb_codec.batch_from_bytes(body) is not None


def test_the_c_path_refuses_fixed_keys_that_differ_from_its_own_table() -> None:
    # The flat path knows the fixed keys from csrc/flat.c; a drift must not go unnoticed.
    from services.ingest import _native  # type: ignore[attr-defined]
    from services.ingest.levels import ALIASES, LEVELS, canonical_level
    from services.ingest.normalize import FIXED_KEYS

    settings = {
        **{"levels": dict(ALIASES), "level_names": LEVELS, "level_fn": canonical_level},
        **{"mask_mode": 0, "hash_fn": None, "mask_fn": None, "max_chars": 10},
        **{"dumps": orjson.dumps, "loads": orjson.loads},
    }
    _native.Engine(reserved=frozenset(FIXED_KEYS), **settings)
    with pytest.raises(ValueError, match="KEY_KINDS"):
        _native.Engine(reserved=frozenset(FIXED_KEYS) | {"region"}, **settings)


def test_varints_at_the_64_bit_edge_are_read_as_upb_reads_them() -> None:
    """A seq of 2**64-1 takes ten bytes whose last is 0x01; a last byte above that
    overflows 64 bits, which upb refuses, so the C reader must refuse it too."""
    top = logs_pb2.PushRequest(
        batch=logs_pb2.LogBatch(batch_id="b", records=[logs_pb2.LogRecord(msg="m", seq=2**64 - 1)])
    ).SerializeToString()
    edge = b"\xff" * 9 + b"\x01"
    assert top.count(edge) == 1
    taken = FAST.wire_batch(top, request=True)
    assert taken is not None
    assert orjson.loads(FAST.normalise_batch(taken, INGEST_MS).data)["seq"] == 2**64 - 1
    for last in (0x02, 0x7F):
        check_wire(top.replace(edge, b"\xff" * 9 + bytes([last])))
        assert FAST.wire_batch(top.replace(edge, b"\xff" * 9 + bytes([last])), request=True) is None


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _request_of(record: bytes) -> bytes:
    """A PushRequest whose one LogRecord is ``record``, every enclosing length right."""
    return _len_field(1, _len_field(1, b"b") + _len_field(5, record))


@pytest.mark.parametrize(
    ("tail", "full"),
    [
        (_varint(20 << 3 | 1), 8),  # an unknown fixed64 field
        (_varint(21 << 3 | 5), 4),  # an unknown fixed32 field
        (_varint(22 << 3 | 2) + b"\x05", 5),  # an unknown length-delimited field
    ],
    ids=["fixed64", "fixed32", "len"],
)
def test_an_unknown_field_cut_short_inside_its_record_is_refused(tail: bytes, full: int) -> None:
    """The record's own length is right, but its last field runs past it by a byte."""
    record = logs_pb2.LogRecord(msg="m").SerializeToString() + tail
    whole = _request_of(record + b"x" * full)
    taken = FAST.wire_batch(whole, request=True)
    assert taken is not None and taken.count() == 1
    for short in (1, 2):
        body = _request_of(record + b"x" * (full - short))
        check_wire(body)
        assert FAST.wire_batch(body, request=True) is None


def test_every_truncation_of_a_request_is_read_as_upb_reads_it() -> None:
    body = logs_pb2.PushRequest(
        batch=logs_pb2.LogBatch(
            batch_id="b",
            run_id="r",
            records=[logs_pb2.LogRecord(msg="m", ts="t", seq=300, fields={"k": "v"})] * 2,
        )
    ).SerializeToString()
    for cut in range(len(body)):
        check_wire(body[:cut])


@pytest.mark.parametrize("escape", ["\\ud800", "\\udbff", "\\udc00", "\\udfff", "\\ud800\\u0041"])
def test_lone_surrogate_escapes_are_left_to_orjson(escape: str) -> None:
    body = ('[{"msg": "a' + escape + 'b"}]').encode()
    assert FAST.json_batch(body) is None
    check_json(body)


@pytest.mark.parametrize("code", range(0x20))
def test_raw_control_characters_inside_strings_are_left_to_orjson(code: int) -> None:
    body = b'[{"msg": "a' + bytes([code]) + b'b"}]'
    assert FAST.json_batch(body) is None
    check_json(body)


@pytest.mark.parametrize("space", [" ", "\t", "\n", "\r"])
def test_the_c_reader_takes_json_in_each_whitespace_character(space: str) -> None:
    """Pretty-printed bodies (tabs, CRLF) stay on the fast path."""
    body = '{"batch_id":"b","records":[{"msg":"m","seq":1}]}'
    for sep in ("{", "[", ",", ":", "}", "]"):
        body = body.replace(sep, f"{space}{sep}{space}")
    taken = FAST.json_batch(body.encode())
    assert taken is not None and taken.count() == 1
    check_json(body.encode())


EDGE_TIMESTAMPS = [
    *("1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00.000Z", "0000-01-01T00:00:00.000Z"),
    *("2024-00-10T00:00:00.000Z", "2024-12-31T23:59:59.999Z", "2024-13-01T00:00:00.000Z"),
    *("2024-01-00T00:00:00.000Z", "2024-04-31T00:00:00.000Z", "2024-01-32T00:00:00.000Z"),
    *("2000-02-29T12:00:00.000Z", "1900-02-29T12:00:00.000Z", "2100-02-29T12:00:00.000Z"),
    *("2024-02-29T12:00:00.000Z", "2023-02-29T12:00:00.000Z", "2024-02-30T12:00:00.000Z"),
    *("2024-03-12T24:00:00.000Z", "2024-03-12T23:60:00.000Z", "2024-03-12T23:59:60.000Z"),
]


@pytest.mark.parametrize("ts", EDGE_TIMESTAMPS)
def test_calendar_edges_are_judged_as_python_judges_them(ts: str) -> None:
    """The C path's canonical-timestamp test and timeparse.py agree on every edge."""
    body = orjson.dumps([{"ts": ts, "level": "info", "msg": "m"}])
    taken = FAST.json_batch(body)
    assert taken is not None
    fast = FAST.normalise_batch(taken, INGEST_MS)
    slow = SLOW.normalise_batch(python_json(body), INGEST_MS)  # type: ignore[arg-type]
    same(fast, slow)


ADDRESS_EDGES = [
    *("from 83.11.7.1 now", "255.255.255.255", "256.1.1.1", "1.256.1.1", "1.1.1.256", "1.1.1.255"),
    *("199.1.1.1", "300.1.1.1", "1.2.3.4.5", "11.2.3.4.5 build", "v1.2.3.4", "1.2.3.4."),
    ".1.2.3.4",
    *("1234.5.6.7", "1.2.3.4567", "01.02.03.04", "9.9.9.9:8080", "a1.2.3.4b", "1.2.3", "1..2.3.4"),
    *("x.1.2.3.4", "1.2.3.4.x", "version 10.0.0.1.2", "ip=10.0.0.1,10.0.0.2", "2.5.25.1.9.9"),
    *("@a.b", "a@b", "j@example.com.", "mail john.doe@example.com and x@y.z", "@@x.io"),
]


@pytest.mark.parametrize("msg", ADDRESS_EDGES)
def test_address_edges_are_masked_as_python_masks_them(msg: str) -> None:
    body = orjson.dumps([{"ts": "2024-03-12T14:05:09.482Z", "level": "info", "msg": msg}])
    taken = FAST.json_batch(body)
    assert taken is not None
    fast = FAST.normalise_batch(taken, INGEST_MS)
    same(fast, SLOW.normalise_batch(python_json(body), INGEST_MS))  # type: ignore[arg-type]
