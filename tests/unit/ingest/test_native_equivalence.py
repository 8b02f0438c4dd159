"""The C hot path of the Ingest Gateway stores exactly what the pure-Python path stores.

Each test puts the same input through ``make_normaliser(..., native=True)`` and through
the reference ``native=False`` and compares the stored lines, the counts and the
rejections: record dicts (byte for byte), protobuf bodies taken as the fronts take them
(``wire_batch``, else ``pb_codec``; lines compared as objects, since a protobuf map has
no order) and JSON bodies (``json_batch``, else ``codecs``; byte for byte).
The module is skipped only where ``services.ingest._native`` is not built; ``make test``
builds it, so in CI it always runs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from functools import cache
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from logops.v1 import logs_pb2

from services.common import pb_codec
from services.common.codecs import decode_body
from services.common.config import PiiConfig
from services.common.errors import BadRequest
from services.common.model import Batch
from services.ingest import native
from services.ingest.native import make_normaliser
from services.ingest.normalize import FIXED_KEYS, BatchNormaliser, NormalisedBatch
from tests.unit.ingest.native_strategies import (
    DEFAULT_FORMATS,
    FIELD_NAMES,
    FORMAT_TEXT,
    HUGE_TEXT,
    INGEST_MS,
    INGEST_TIMES,
    JSON_VALUES,
    LEVEL_TEXT,
    MAX_BYTES,
    MAX_CHARS,
    META_TEXT,
    MSG_TEXT,
    RAW_JSON,
    RAW_LINES,
    REPEATED_NAME_RECORDS,
    TS_TEXT,
    TYPICAL,
    batches,
    nested,
    pairs,
)

pytestmark = pytest.mark.skipif(
    not native.AVAILABLE, reason="services.ingest._native is not built (make test builds it)"
)

PII_CONFIGS = [
    PiiConfig(mode=mode, fields=fields, hash_salt="pepper" if mode == "hash" else "")
    for mode in ("mask", "hash", "off")
    for fields in ((), ("user",))
] + [PiiConfig(fields=("msg",))]
FIXED = frozenset(FIXED_KEYS)


def examples(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@cache
def normaliser(pii: PiiConfig, max_bytes: int = MAX_BYTES, *, fast: bool) -> BatchNormaliser:
    return make_normaliser(pii, max_bytes, native=fast)


def _pii_id(pii: PiiConfig) -> str:
    return f"{pii.mode}-{'+'.join(pii.fields) or 'nofields'}"


# --- Comparison -------------------------------------------------------------------------


def _counts(result: NormalisedBatch) -> tuple[Any, ...]:
    return result.accepted, result.rejections, result.missing, result.level_counts


def _fixed_order(line: dict[str, Any]) -> list[str]:
    return [key for key in line if key in FIXED]


def assert_same(fast: NormalisedBatch, slow: NormalisedBatch, *, exact: bool = True) -> None:
    """Same counts and rejections; byte-identical data, or equal lines when ``exact`` is off."""
    assert _counts(fast) == _counts(slow)
    if exact:
        assert fast.data.splitlines(keepends=True) == slow.data.splitlines(keepends=True)
        return
    fast_lines = [orjson.loads(line) for line in fast.data.splitlines()]
    slow_lines = [orjson.loads(line) for line in slow.data.splitlines()]
    assert fast_lines == slow_lines
    assert [_fixed_order(x) for x in fast_lines] == [_fixed_order(x) for x in slow_lines]
    assert fast.data.endswith(b"\n") or not fast.data


def run_dict_batch(
    batch: Batch, pii: PiiConfig, ingest_ms: int, max_bytes: int = MAX_BYTES
) -> None:
    original = copy.deepcopy(batch)
    fast = normaliser(pii, max_bytes, fast=True).normalise_batch(copy.deepcopy(batch), ingest_ms)
    slow = normaliser(pii, max_bytes, fast=False).normalise_batch(copy.deepcopy(batch), ingest_ms)
    assert_same(fast, slow)
    # Same check on the very objects: the fast path must leave the batch as it found it.
    normaliser(pii, max_bytes, fast=True).normalise_batch(batch, ingest_ms)
    assert batch == original


def assert_native(pii: PiiConfig) -> None:
    """Where the C path should run, it does: else both sides would be the same code."""
    if pii.mode == "off" or set(pii.fields) <= {"msg"}:
        assert normaliser(pii, fast=True).native
    assert not normaliser(pii, fast=False).native


# --- 1. Record dicts (JSON, NDJSON, CSV bodies) -----------------------------------------


@pytest.mark.parametrize("pii", PII_CONFIGS, ids=_pii_id)
@examples(25)
@given(batch=batches(), ingest_ms=INGEST_TIMES)
def test_dict_batches_are_byte_identical(pii: PiiConfig, batch: Batch, ingest_ms: int) -> None:
    assert_native(pii)
    run_dict_batch(batch, pii, ingest_ms)


@examples(40)
@given(records=st.lists(TYPICAL, min_size=1, max_size=30), pii=st.sampled_from(PII_CONFIGS))
def test_typical_batches_are_byte_identical(records: list[Any], pii: PiiConfig) -> None:
    run_dict_batch(Batch(records=records, batch_id="b-1", emitter="em"), pii, INGEST_MS)


# --- 2. Protobuf bodies, scanned lazily by the extension --------------------------------


def _utf8_ok(text: str) -> bool:
    """Whether protobuf can carry ``text``: lone surrogates have no UTF-8 form."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


PB_TEXT = st.text(max_size=8)
PB_FIELD_VALUES = st.one_of(
    PB_TEXT, TS_TEXT, LEVEL_TEXT, MSG_TEXT, JSON_VALUES.map(lambda v: json.dumps(v, default=str))
)
PB_RECORDS = st.fixed_dictionaries(
    {},
    optional={
        "ts": TS_TEXT,
        "level": LEVEL_TEXT,
        "msg": st.one_of(MSG_TEXT, HUGE_TEXT),
        "service": PB_TEXT,
        "host": PB_TEXT,
        "stream": PB_TEXT,
        "seq": st.integers(0, 2**64 - 1),
        "raw": st.one_of(RAW_LINES, RAW_JSON).filter(_utf8_ok),
        "format": FORMAT_TEXT,
        "fields": st.dictionaries(
            st.one_of(FIELD_NAMES, st.sampled_from(["ts", "level", "msg", "seq", "service"])),
            PB_FIELD_VALUES,
            max_size=5,
        ),
    },
).map(lambda kw: logs_pb2.LogRecord(**kw))
PB_BATCHES = st.builds(
    logs_pb2.LogBatch,
    batch_id=META_TEXT,
    emitter=META_TEXT,
    scenario_id=META_TEXT,
    run_id=META_TEXT,
    records=st.lists(PB_RECORDS, max_size=20),
)


def decoded(body: bytes, wrapped: bool) -> Batch:
    """The body decoded by the protobuf runtime, as the fronts did before the C path."""
    return (pb_codec.batch_from_request_bytes if wrapped else pb_codec.batch_from_bytes)(body)


def received(body: bytes, wrapped: bool, norm: BatchNormaliser) -> Batch:
    """The body as the fronts take it: left serialized when the scanner reads it."""
    return norm.wire_batch(body, request=wrapped) or decoded(body, wrapped)


def _meta(batch: Batch) -> tuple[str, ...]:
    return batch.batch_id, batch.emitter, batch.scenario_id, batch.run_id


def _summary(
    decode: Callable[[], Batch], norm: BatchNormaliser, ingest_ms: int, exact: bool = False
) -> tuple[Any, ...]:
    """What a push of these bytes would report and store, or the BadRequest it would get."""
    try:
        batch = decode()
    except BadRequest as exc:
        return "refused", str(exc)
    result = norm.normalise_batch(batch, ingest_ms)
    if exact:
        return _meta(batch), batch.count(), *_counts(result), result.data.splitlines()
    lines = [orjson.loads(line) for line in result.data.splitlines()]
    order = [_fixed_order(line) for line in lines]
    return _meta(batch), batch.count(), *_counts(result), lines, order


def assert_same_push(body: bytes, wrapped: bool, pii: PiiConfig, ingest_ms: int) -> None:
    fast, slow = normaliser(pii, fast=True), normaliser(pii, fast=False)
    expected = _summary(lambda: decoded(body, wrapped), slow, ingest_ms)
    assert _summary(lambda: received(body, wrapped, fast), fast, ingest_ms) == expected


@examples(80)
@given(
    msg=PB_BATCHES,
    wrapped=st.booleans(),
    deterministic=st.booleans(),
    pii=st.sampled_from(PII_CONFIGS),
    ingest_ms=INGEST_TIMES,
)
def test_protobuf_batches_match(
    msg: logs_pb2.LogBatch, wrapped: bool, deterministic: bool, pii: PiiConfig, ingest_ms: int
) -> None:
    outer = logs_pb2.PushRequest(batch=msg) if wrapped else msg
    body = outer.SerializeToString(deterministic=deterministic)
    note(f"{body=}")
    fast_norm = normaliser(pii, fast=True)
    wire = fast_norm.wire_batch(body, request=wrapped)
    if fast_norm.native:
        assert wire is not None and wire.wire == body and wire.records == []
        assert wire.count() == len(msg.records)
        assert _meta(wire) == (msg.batch_id, msg.emitter, msg.scenario_id, msg.run_id)
    fast = fast_norm.normalise_batch(wire or decoded(body, wrapped), ingest_ms)
    # The reference reads the same bytes: upb orders a parsed map unlike a built one.
    slow = normaliser(pii, fast=False).normalise_batch(decoded(body, wrapped), ingest_ms)
    assert_same(fast, slow, exact=False)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(number: int, payload: bytes) -> bytes:
    """A length-delimited field: strings, messages and map entries."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _entry(key: bytes | None, value: bytes | None, extra: bytes = b"", swap: bool = False) -> bytes:
    parts = [b"" if key is None else _ld(1, key), b"" if value is None else _ld(2, value)]
    return _ld(6, b"".join(parts[::-1] if swap else parts) + extra)


UNKNOWN_FIELDS = [
    b"\x78\x05",
    _ld(99, b"zz"),
    b"\xa5\x01\x00\x00\x00\x00",
    b"\xad\x01" + bytes(8),
    b"\xb3\x01\xb4\x01",
    b"\xb3\x01\x08\x01\x12\x01x\xb4\x01",
    b"\xf8\xff\xff\xff\x0f\x00",
]
RECORD_ODDITIES = [
    # Explicit defaults: ts, level and seq become present; msg, service, raw stay absent.
    *(b"\x0a\x00", b"\x12\x00", b"\x1a\x00", b"\x22\x00", b"\x40\x00", b"\x4a\x00", b"\x52\x00"),
    # Known fields in the wrong wire type are unknown fields to protobuf.
    *(b"\x08\x05", b"\x42\x01x", b"\x30\x01", b"\x1d\x00\x00\x00\x00", b"\x2a\x01", b"\x50\x01"),
    # Overlong varints in a tag, a length and a value; the largest uint64.
    *(b"\x8a\x00\x01x", b"\x1a\x81\x00y", b"\x40\x81\x80\x80\x00", b"\x40" + b"\xff" * 9 + b"\x01"),
    _entry(b"k", b"v", swap=True),
    _entry(None, b"v"),
    _entry(b"k", None),
    _entry(b"k", b"v", extra=b"\x18\x01"),
    _entry(b"k", b"v") + _entry(b"k", b"w"),
    _entry(b"ts", b"2024-03-12T14:05:09.482Z") + b"\x0a\x03bad",
    _entry(b"emitter", b"x") + _entry(b"src_emitter", b"y"),
    _entry("é\u2028".encode(), "😀".encode()),
]
# Keys whose outcome depends on which comes first: a fixed key and its src_ form, or two
# aliases of one field beside a raw line.
COLLIDING_KEYS = [
    *("emitter", "src_emitter", "src_src_emitter", "batch_id", "src_batch_id", "time"),
    *("@timestamp", "timestamp", "lvl", "severity", "message", "log", "text", "ts", "src_ts"),
]
RECORD_CHUNKS = st.one_of(
    PB_RECORDS.map(lambda r: r.SerializeToString()),
    st.builds(
        lambda key, value, raw: _entry(key.encode(), value.encode()) + raw,
        st.sampled_from(COLLIDING_KEYS),
        PB_FIELD_VALUES,
        st.sampled_from([b"", _ld(9, b"k=v"), _ld(9, b"plain words")]),
    ),
    st.sampled_from(RECORD_ODDITIES),
    st.sampled_from(UNKNOWN_FIELDS),
)
BATCH_CHUNKS = st.one_of(
    st.lists(RECORD_CHUNKS, max_size=4).map(lambda chunks: _ld(5, b"".join(chunks))),
    st.tuples(st.integers(1, 4), META_TEXT).map(lambda f: _ld(f[0], f[1].encode())),
    st.sampled_from([*UNKNOWN_FIELDS, b"\x28\x01", _ld(5, b"")]),
)


@st.composite
def push_bodies(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A PushRequest whose batch may come in several parts (protobuf merges them) or a LogBatch."""
    parts = draw(st.lists(st.lists(BATCH_CHUNKS, max_size=6).map(b"".join), max_size=3))
    if draw(st.booleans()):
        return parts[0] if parts else b"", False
    body = [_ld(1, part) for part in parts] + draw(st.lists(st.sampled_from(UNKNOWN_FIELDS)))
    return b"".join(draw(st.permutations(body))), True


@examples(80)
@given(body=push_bodies(), pii=st.sampled_from(PII_CONFIGS))
def test_protobuf_wire_oddities_match(body: tuple[bytes, bool], pii: PiiConfig) -> None:
    note(f"{body=}")
    assert_same_push(*body, pii, INGEST_MS)


INVALID_UTF8 = [
    b"\xc3\x28",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"ok\xe2\x82",
    b"\xff",
]


def _overlong(value: int, size: int) -> bytes:
    """``value`` as a varint of exactly ``size`` bytes; upb reads tags and lengths in five."""
    return bytes((value >> 7 * i) & 0x7F | (0x80 if i < size - 1 else 0) for i in range(size))


SIZES = st.integers(1, 11)
BAD_FIELDS = st.one_of(
    st.builds(_ld, st.sampled_from([1, 2, 3, 4, 5, 7, 9, 10]), st.sampled_from(INVALID_UTF8)),
    st.sampled_from([_entry(bad, b"v") for bad in INVALID_UTF8]),
    st.sampled_from([_entry(b"k", bad) for bad in INVALID_UTF8]),
    st.builds(lambda size: _overlong(3 << 3 | 2, size) + b"\x01m", SIZES),
    st.builds(lambda size: b"\x1a" + _overlong(1, size) + b"m", SIZES),
    st.builds(lambda size: b"\x40" + _overlong(7, size), SIZES),
    st.builds(lambda size: _overlong(15 << 3, size) + b"\x00", SIZES),
)


@st.composite
def bad_field_bodies(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A valid batch with one field that protobuf may refuse, in a record or the batch."""
    field = draw(BAD_FIELDS)
    if draw(st.booleans()):
        field = _ld(5, field)
    body = draw(PB_BATCHES).SerializeToString() + field
    wrapped = draw(st.booleans())
    return (_ld(1, body) if wrapped else body), wrapped


@st.composite
def damaged_bodies(draw: st.DrawFn) -> tuple[bytes, bool]:
    body, wrapped = draw(push_bodies())
    if not body or draw(st.booleans()):
        return body[: draw(st.integers(0, max(len(body) - 1, 0)))], wrapped
    at = draw(st.integers(0, len(body) - 1))
    return body[:at] + bytes([draw(st.integers(0, 255))]) + body[at + 1 :], wrapped


def broken_bodies() -> st.SearchStrategy[tuple[bytes, bool]]:
    return st.one_of(
        bad_field_bodies(), damaged_bodies(), st.tuples(st.binary(max_size=40), st.booleans())
    )


@examples(120)
@given(body=broken_bodies())
def test_broken_protobuf_is_refused_alike(body: tuple[bytes, bool]) -> None:
    note(f"{body=}")
    assert_same_push(*body, PII_CONFIGS[0], INGEST_MS)


# --- 3. JSON bodies, read by the extension without decoding them ----------------------

JSON_RECORD_TEXTS = st.sampled_from(
    [
        *('{"ts":1,"ts":"2024-03-12T14:05:09.482Z"}', '{"a":1,"a":2}', '{"m\\u0073g":"k"}'),
        *('{"fields":{"a":1},"a":2}', '{"fields":{"a":1},"fields":{"b":2}}', '{"fields":5}'),
        *('{"fields":{"ts":"2024-03-12T14:05:09.482Z","fields":{}}}', '{"fields":{}}', "{}"),
        *('{"x":-0,"y":1E5,"z":1e-400,"w":1234567890123456789}', '{"x":-9223372036854775809}'),
        *('{"seq":-0}', '{"seq":18446744073709551615}', '{"seq":18446744073709551616}'),
        *('{"level":30,"ts":1710252309.5}', '{"msg":"\\u00e9\\ud83d\\ude00 a\\u0000b \\/"}'),
        '{"x":' + "[" * 254 + "]" * 254 + "}",
        '{"fields":{"emitter":"a","src_emitter":"b"}}',
    ]
)
# Each makes the whole body unreadable: refused by the Python decoder in both paths.
BAD_JSON_TEXTS = st.sampled_from(
    ['{"x":1e400}', '{"msg":"\\ud800"}', '{"x":[1,]}', '{"x":"\xff"}', '{"x":NaN}', "1"]
)
JSON_RECORDS = st.one_of(
    TYPICAL,
    st.builds(lambda base, extra: base | dict(extra), TYPICAL, pairs()),
    st.builds(lambda rec, fields: rec | {"fields": dict(fields)}, TYPICAL, pairs()),
    pairs().map(dict),
)


def _json_text(value: Any, ascii_only: bool, slash: bool, indent: int | None) -> str:
    """``value`` as JSON text; an infinity or a lone surrogate would spoil the whole body."""
    options: dict[str, Any] = {"default": str, "skipkeys": True, "allow_nan": False}
    try:
        json.dumps(value, ensure_ascii=False, **options).encode()
    except (ValueError, UnicodeEncodeError):
        value = {"replaced": "a value JSON cannot hold"}
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent, **options)
    # "/" only occurs inside strings, where "\\/" is a legal escape for it.
    return text.replace("/", "\\/") if slash else text


@st.composite
def json_bodies(draw: st.DrawFn) -> bytes:
    """An array of records or a batch object, each in one of the ways JSON can be written."""
    style = draw(st.tuples(st.booleans(), st.booleans(), st.sampled_from([None, 0, 2])))
    items = [_json_text(rec, *style) for rec in draw(st.lists(JSON_RECORDS, max_size=20))]
    items += draw(st.lists(JSON_RECORD_TEXTS, max_size=2))
    if draw(st.integers(0, 9)) == 0:
        items.append(draw(BAD_JSON_TEXTS))
    array = "[" + draw(st.sampled_from([",", ", ", ",\n "])).join(draw(st.permutations(items)))
    array += "]"
    if draw(st.booleans()):
        return array.encode("utf-8", "surrogatepass")
    meta = draw(st.dictionaries(st.sampled_from(["batch_id", "emitter", "format", "x"]), META_TEXT))
    members = [f"{json.dumps(k)}:{_json_text(v, *style)}" for k, v in meta.items()]
    members.append(f'"records":{array}')
    body = "{" + ",".join(draw(st.permutations(members))) + "}"
    return body.encode("utf-8", "surrogatepass")


JSON_HEADERS = st.fixed_dictionaries(
    {}, optional={"batch_id": META_TEXT, "emitter": META_TEXT, "format": DEFAULT_FORMATS}
)


def assert_same_json(body: bytes, headers: dict[str, str], pii: PiiConfig) -> None:
    fast, slow = normaliser(pii, fast=True), normaliser(pii, fast=False)
    expected = _summary(lambda: decode_body("json", body, headers), slow, INGEST_MS, exact=True)
    taken = _summary(
        lambda: decode_body("json", body, headers, json=fast.json_batch), fast, INGEST_MS, True
    )
    assert taken == expected


@examples(40)
@given(body=json_bodies(), headers=JSON_HEADERS, pii=st.sampled_from(PII_CONFIGS))
def test_json_bodies_are_byte_identical(
    body: bytes, headers: dict[str, str], pii: PiiConfig
) -> None:
    note(f"{body=}")
    assert_same_json(body, headers, pii)


REPEATED_NAME_TEXTS = [
    pytest.param('{"msg":"m","fields":{"a":1},"fields":"s"}', id="fields-object-then-string"),
    pytest.param('{"msg":"m","fields":"s","fields":{"a":1}}', id="fields-string-then-object"),
    pytest.param('{"fields":{"a":1},"msg":"m","fields":{"b":2}}', id="fields-object-twice"),
    pytest.param('{"fields":{"a":1},"fields":[1],"a":2}', id="fields-object-then-array"),
    pytest.param('{"fields":{"ts":"x"},"fields":null}', id="fields-object-then-null"),
    pytest.param('{"fields":"s","fields":{"a":1},"fields":"t"}', id="fields-three-times"),
    pytest.param('{"fields":{"a":1,"a":"2"},"msg":"m"}', id="name-twice-inside-fields"),
    pytest.param('{"fields":{"msg":"f","msg":""},"msg":"m"}', id="msg-twice-inside-fields"),
    pytest.param('{"fields":{"a":1},"a":2,"a":3}', id="fields-member-given-twice-on-top"),
    pytest.param('{"fields":{"fields":{"a":1}},"fields":{"b":2}}', id="fields-inside-fields"),
    pytest.param('{"msg":"a","msg":"b"}', id="msg-twice"),
    pytest.param('{"msg":"a","level":"info","msg":""}', id="msg-then-empty-msg"),
    pytest.param('{"ts":"2024-03-12T14:05:09.482Z","ts":"junk"}', id="ts-twice"),
    pytest.param('{"ts":"junk","src_ts":1,"ts":"2024-03-12T14:05:09.482Z"}', id="ts-src-ts"),
    pytest.param('{"level":"info","level":"bogus"}', id="level-twice"),
    pytest.param('{"message":"a","msg":"b"}', id="alias-and-msg"),
    pytest.param('{"message":"a","message":"b","msg":""}', id="alias-twice-msg-empty"),
    pytest.param('{"lvl":"warn","level":null,"lvl":"error"}', id="level-alias-twice"),
    pytest.param('{"timestamp":"x","ts":null,"timestamp":"2024-03-12T14:05:09.482Z"}'),
    pytest.param('{"emitter":"a","emitter":"b","src_emitter":"c"}', id="fixed-key-twice"),
    pytest.param('{"seq":1,"seq":"2"}', id="seq-twice"),
    pytest.param('{"raw":"k=v","raw":null,"msg":"m"}', id="raw-then-null"),
]


@pytest.mark.parametrize("text", REPEATED_NAME_TEXTS)
@pytest.mark.parametrize("pii", PII_CONFIGS[::2], ids=_pii_id)
def test_repeated_names_are_read_as_orjson_reads_them(text: str, pii: PiiConfig) -> None:
    # orjson keeps the last value of a repeated name, in the place of the first.
    body = f'[{text},{{"msg":"after"}}]'.encode()
    assert normaliser(pii, fast=True).json_batch(body) is not None
    assert_same_json(body, {}, pii)


@examples(150)
@given(
    records=st.lists(REPEATED_NAME_RECORDS, min_size=1, max_size=6),
    pii=st.sampled_from(PII_CONFIGS),
)
def test_repeated_names_in_generated_records_match(records: list[str], pii: PiiConfig) -> None:
    body = ("[" + ",".join(records) + "]").encode()
    note(f"{body=}")
    assert_same_json(body, {}, pii)


# --- 4. Sharp edges, one example each ---------------------------------------------------

EDGE_RECORDS = [
    pytest.param(
        {"level": "\x1cwarn\u3000", "ts": " 1710252309 "}, id="unicode-whitespace-trimmed"
    ),
    pytest.param({"level": "İnfo"}, id="dotted-capital-i-is-no-level"),
    pytest.param({"level": "<191>", "msg": "pri"}, id="largest-pri-is-a-level"),
    pytest.param({"level": "", "syslog_severity": " 3 "}, id="syslog-severity-text-padded"),
    pytest.param({"n": 2**64}, id="field-int-over-64-bits-rejected-with-orjson-text"),
    pytest.param(
        {"a": -(2**63), "b": 2**63 - 1, "c": 2**63, "d": 2**64 - 1, "e": 0, "f": -1, "pid": 7},
        id="field-ints-at-the-64-bit-edges",
    ),
    pytest.param({"n": -(2**63) - 1}, id="field-int-below-64-bits-rejected"),
    pytest.param({"msg": 2**70}, id="msg-int-over-64-bits-rejected"),
    pytest.param({"msg": "a\ud800"}, id="lone-surrogate-in-msg-rejected"),
    pytest.param({"\ud800": 1}, id="lone-surrogate-in-field-name-rejected"),
    pytest.param({1: "a", "msg": "m"}, id="non-string-field-name-rejected"),
    pytest.param({"k": {1: "a"}}, id="non-string-nested-key-rejected"),
    pytest.param({"service": float("nan"), "host": 2.5, "stream": True}, id="non-text-service"),
    pytest.param({"emitter": "x", "src_emitter": "y"}, id="fixed-key-collision-chain"),
    pytest.param({"ts": "junk", "src_ts": 1, "src_src_ts": 2}, id="src-ts-collision-chain"),
    pytest.param({"seq": "18446744073709551615"}, id="largest-seq-as-text"),
    pytest.param({"seq": "18446744073709551616"}, id="seq-text-over-range-rejected"),
    pytest.param({"seq": True}, id="bool-seq-rejected"),
    pytest.param({"msg": "x" * 65 + "@example.com"}, id="email-local-part-over-64"),
    pytest.param({"msg": "ab@@c@d.ef@g.hi"}, id="many-at-signs"),
    pytest.param({"msg": "é1.2.3.4 \u0661.2.3.4 1.2.3.4_ 1.2.3.4.5"}, id="ipv4-neighbours"),
    pytest.param({"msg": "😀" * (MAX_CHARS + 1)}, id="msg-of-4-byte-chars-over-limit"),
    pytest.param({"msg": "\ud800" * (MAX_BYTES // 3 + 1)}, id="surrogates-counted-as-3-bytes"),
    pytest.param({"raw": "k=v", "format": 0}, id="falsy-non-text-format-on-raw-line"),
    pytest.param({"format": 0}, id="falsy-non-text-format-rejected"),
    pytest.param({"raw": '{"raw":"r","format":"f"}', "format": "json"}, id="raw-keys-in-line"),
    pytest.param({"ts": "Feb 29 12:00:00"}, id="rfc3164-leap-day-needs-nearest-year"),
    pytest.param({"ts": 1e400, "level": 30.0}, id="infinite-epoch-and-float-level"),
    pytest.param({"x": (1, 2), "y": b"b"}, id="non-json-types"),
]


@pytest.mark.parametrize("rec", EDGE_RECORDS)
@pytest.mark.parametrize("pii", PII_CONFIGS[::2], ids=_pii_id)
def test_sharp_edge_records(rec: Any, pii: PiiConfig) -> None:
    run_dict_batch(Batch(records=[rec, dict(rec)], batch_id='b"1', emitter="é"), pii, INGEST_MS)


@pytest.mark.parametrize("max_bytes", [0, 1, 4, 7])
def test_tiny_record_limits(max_bytes: int) -> None:
    records: list[Any] = [{"msg": m} for m in ("", "a", "é", "😀", "abcdefgh", 5, [1])]
    records.append({"raw": "k=v"})
    run_dict_batch(Batch(records=records), PII_CONFIGS[0], INGEST_MS, max_bytes)


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(b"\x08\x05\x1a\x01m", id="ts-as-varint-is-ignored"),
        pytest.param(b"\x42\x01x\x1a\x01m", id="seq-as-bytes-is-ignored"),
        pytest.param(_entry(b"k", b"v") + _entry(b"k", b"w"), id="last-map-entry-wins"),
        pytest.param(b"\x0a\x01a\x0a\x01b", id="last-ts-wins"),
        pytest.param(b"\x0a\x00\x12\x00\x40\x00", id="explicit-empty-ts-level-zero-seq"),
        pytest.param(_entry(b"ts", b"1") + b"\x0a\x03bad", id="ts-field-and-ts-map-key"),
    ],
)
def test_wire_edge_records(record: bytes) -> None:
    body = _ld(1, _ld(1, b"b") + _ld(5, record))
    assert_same_push(body, True, PII_CONFIGS[0], INGEST_MS)


def test_batch_split_over_two_fields_is_merged() -> None:
    first = _ld(1, b"first") + _ld(5, _ld(3, b"one"))
    second = _ld(1, b"second") + _ld(5, _ld(3, b"two"))
    assert_same_push(_ld(1, first) + _ld(1, second), True, PII_CONFIGS[0], INGEST_MS)


@pytest.mark.parametrize("bad", INVALID_UTF8)
def test_invalid_utf8_is_refused_alike(bad: bytes) -> None:
    for field in (_ld(3, bad), _entry(bad, b"v"), _entry(b"k", bad)):
        assert_same_push(_ld(1, _ld(5, field)), True, PII_CONFIGS[0], INGEST_MS)
    assert_same_push(_ld(2, bad), False, PII_CONFIGS[0], INGEST_MS)


@pytest.mark.parametrize("size", range(6, 11))
@pytest.mark.parametrize("wrapped", [False, True], ids=["log-batch", "push-request"])
def test_varint_tag_longer_than_five_bytes_is_refused_alike(size: int, wrapped: bool) -> None:
    # upb reads a tag in at most five bytes, however many continuation bits follow.
    body = _overlong(3 << 3 | 2, size) + b"\x01s"
    assert_same_push(_ld(1, body) if wrapped else body, wrapped, PII_CONFIGS[0], INGEST_MS)


@pytest.mark.parametrize("size", range(6, 11))
def test_varint_length_longer_than_five_bytes_is_refused_alike(size: int) -> None:
    body = _ld(5, b"\x1a" + _overlong(1, size) + b"m")
    assert_same_push(body, False, PII_CONFIGS[0], INGEST_MS)


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([(b"emitter", b"x"), (b"src_emitter", b"y")], id="fixed-key-and-src-form"),
        pytest.param([(b"batch_id", b"x"), (b"src_src_batch_id", b"z"), (b"src_batch_id", b"y")]),
        pytest.param(
            [(b"@timestamp", b"1999"), (b"time", b"2024-01-01T00:00:00Z")], id="ts-aliases"
        ),
        pytest.param([(b"timestamp", b"x"), (b"ts", b"")], id="empty-ts-key-and-alias"),
        pytest.param([(b"lvl", b"warn"), (b"severity", b"error")], id="level-aliases"),
    ],
)
@pytest.mark.parametrize("raw", [b"", b"k=v"], ids=["no-raw", "raw-line"])
def test_map_entry_order_does_not_change_the_stored_line(
    entries: list[tuple[bytes, bytes]], raw: bytes
) -> None:
    # Protobuf leaves map order open, and upb iterates a parsed map in an order that
    # changes from process to process: only an order-free outcome can be equal.
    fast, slow = normaliser(PII_CONFIGS[0], fast=True), normaliser(PII_CONFIGS[0], fast=False)
    outcomes = []
    for order in (entries, entries[::-1]):
        record = b"".join(_entry(key, value) for key, value in order) + (raw and _ld(9, raw))
        body = _ld(5, record)
        expected = _summary(lambda body=body: decoded(body, False), slow, INGEST_MS)
        assert _summary(lambda body=body: received(body, False, fast), fast, INGEST_MS) == expected
        outcomes.append(expected)
    # Equal as objects: the order of the other fields in a line is the map's own.
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param(_entry(b"k", b"v", extra=b"\x18\x01"), id="varint-after"),
        pytest.param(_ld(6, _ld(3, b"z") + _ld(1, b"k") + _ld(2, b"v")), id="bytes-before"),
        pytest.param(_entry(b"k", b"v", extra=b"\x1d" + bytes(4)), id="fixed32"),
        pytest.param(_entry(b"k", b"v", extra=b"\x19" + bytes(8)), id="fixed64"),
        pytest.param(_entry(b"k", b"w") + _entry(b"k", b"v", extra=b"\x18\x01"), id="after-dup"),
    ],
)
def test_map_entry_with_unknown_field_is_left_out_like_upb(entries: bytes) -> None:
    # upb keeps such an entry among the record's unknown fields, not in the map.
    assert_same_push(_ld(5, entries + _ld(3, b"m")), False, PII_CONFIGS[0], INGEST_MS)


@pytest.mark.parametrize("depth", [253, 254, 255])
def test_value_nested_to_orjson_limit_is_judged_alike(depth: int) -> None:
    # orjson refuses a 255th level: the stored line itself is one of them.
    rec = {"ts": "2024-03-12T14:05:09.482Z", "level": "info", "msg": "m", "x": nested(depth)}
    run_dict_batch(Batch(records=[rec]), PII_CONFIGS[0], INGEST_MS)
    assert_same_json(json.dumps([rec]).encode(), {}, PII_CONFIGS[0])
