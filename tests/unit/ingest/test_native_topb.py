"""``_native.push_request_json`` writes the PushRequest the Python reference writes.

The reference is what the Auth Gateway did before the C path: ``codecs.decode_body``
(orjson, ``flatten``, the header names) then ``hop._converted`` (``pb_codec.record_to_pb``
per record, refusals by original index). Both are run on the same body:

- "the same" is the same parsed ``PushRequest`` (``==``, and byte-identical deterministic
  serialisations), with the same refused indices. Byte identity of the raw output cannot
  be asked for: upb writes map entries in its hash table's order, which is not even the
  same after a parse and a new serialisation. The C code writes them in the record's
  order (the order Ingest stores them in from a JSON body), which is checked on the wire;
  and a batch whose records have at most one map entry is byte-identical;
- the C code may decline a body (None): the reference then decides. Bodies without the
  few shapes it leaves to Python (a known key holding an object or array, a string seq,
  a repeated name inside a nested object, more than 256 members) are never declined.

Bodies are written as text, so escapes, number spellings and repeated names occur as a
client would send them; a fuzz test mutates bytes and spans. ``make sanitize`` runs this
file under AddressSanitizer and UBSan.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from logops.v1 import logs_pb2

from services.auth.hop import _converted
from services.common.codecs import decode_body
from services.common.errors import BadRequest
from services.ingest import native

pytestmark = pytest.mark.skipif(not native.AVAILABLE, reason="the C extension is not built")
C: Any = native._native

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KNOWN = ("ts", "level", "msg", "service", "host", "stream", "raw", "format")
NAMES = ("batch_id", "emitter", "scenario_id", "run_id")


def c_path(body: bytes, meta: Mapping[str, str]) -> tuple[bytes, tuple[int, ...]] | None:
    """What the hop does with the extension: scan_json, names as decode_body fills them."""
    scanned = C.scan_json(body)
    if scanned is None:
        return None
    *own, fmt, _count, start, end = scanned
    names = tuple(v or meta.get(k, "") for v, k in zip(own, NAMES, strict=True))
    out: tuple[bytes, tuple[int, ...]] | None = C.push_request_json(
        body, start, end, names, fmt or meta.get("format", "")
    )
    return out


def reference(body: bytes, meta: Mapping[str, str]) -> tuple[bytes, tuple[int, ...]]:
    prepared = _converted(decode_body("json", body, meta))
    return prepared.body, tuple(r.index for r in prepared.refused)


def map_keys_on_wire(request: bytes) -> list[list[str]]:
    """The ``fields`` keys of each record, in the order they are written."""

    def fields(data: bytes) -> list[tuple[int, bytes]]:
        out, pos = [], 0
        while pos < len(data):
            key, pos = varint(data, pos)
            if key & 7 == 0:
                _, pos = varint(data, pos)
                continue
            size, pos = varint(data, pos)
            out.append((key >> 3, data[pos : pos + size]))
            pos += size
        return out

    def varint(data: bytes, pos: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = data[pos]
            value |= (byte & 0x7F) << shift
            pos, shift = pos + 1, shift + 7
            if byte < 0x80:
                return value, pos

    [(_, batch)] = fields(request)
    records = [data for number, data in fields(batch) if number == 5]
    return [
        [fields(entry)[0][1].decode() for number, entry in fields(rec) if number == 6]
        for rec in records
    ]


def assert_same(body: bytes, meta: Mapping[str, str], must_take: bool = False) -> None:
    got = c_path(body, meta)
    try:
        want = reference(body, meta)
    except BadRequest:
        assert got is None, "the C path took a body the reference refuses"
        return
    if got is None:
        assert not must_take, f"declined: {body[:200]!r}"
        return
    mine, theirs = (logs_pb2.PushRequest.FromString(b) for b in (got[0], want[0]))
    assert mine == theirs
    assert mine.SerializeToString(deterministic=True) == theirs.SerializeToString(
        deterministic=True
    )
    assert got[1] == want[1]
    batch = decode_body("json", body, meta)
    kept = [r for i, r in enumerate(batch.records) if r is not None and i not in got[1]]
    assert map_keys_on_wire(got[0]) == [[k for k in r if k not in (*KNOWN, "seq")] for r in kept]
    if all(len(r.fields) <= 1 for r in theirs.batch.records):
        assert got[0] == want[0]


# -- JSON text, written as clients write it --------------------------------------------

SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                 "\t": "\\t", "/": "\\/"}  # fmt: skip
HOSTILE = ["", " ", "\x00", "\u2028", "\ufeff", "😀", "é", "\\", '"', "ts", "fields", "\x7f",
           "a\u0000b", "𝄞x", "\U0010ffff"]  # fmt: skip


def escape_char(ch: str, how: int) -> str:
    if ch in SHORT_ESCAPES and (how == 0 or ch in '"\\'):
        return SHORT_ESCAPES[ch]
    if how == 1 or ord(ch) < 0x20 or ch in '"\\':
        code = ord(ch)
        if code >= 0x10000:
            code -= 0x10000
            return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04X}"
        return f"\\u{code:04x}"
    return ch


@st.composite
def json_string(draw: st.DrawFn, alphabet: str | None = None) -> str:
    chars = st.text(max_size=10) if alphabet is None else st.text(alphabet, max_size=10)
    text = draw(st.one_of(chars, st.sampled_from(HOSTILE)))
    hows = draw(st.lists(st.integers(0, 2), min_size=len(text), max_size=len(text)))
    return '"' + "".join(escape_char(c, h) for c, h in zip(text, hows, strict=True)) + '"'


def number_text() -> st.SearchStrategy[str]:
    ints = st.one_of(
        st.integers(-(2**70), 2**70),
        st.sampled_from([0, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]),
    ).map(str)
    floats = st.floats(allow_nan=False, allow_infinity=False).map(repr)
    spelled = st.tuples(
        st.sampled_from(["-", ""]),
        st.sampled_from(["0", "1", "12", "9007199254740993", "123456789012345678901"]),
        st.sampled_from(["", ".0", ".5", ".000", ".25"]),
        st.sampled_from(["", "e5", "E+2", "e-7", "e300", "e-320", "E0", "e16", "e-5"]),
    ).map("".join)
    return st.one_of(ints, floats, spelled, st.just("-0"), st.just("-0.0"))


def scalar_text() -> st.SearchStrategy[str]:
    return st.one_of(json_string(), number_text(), st.sampled_from(["true", "false", "null"]))


def container_text(unique_names: bool) -> st.SearchStrategy[str]:
    def objects(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        names = json_string(alphabet="abc")
        members = st.lists(st.tuples(names, children), max_size=4)
        if unique_names:
            members = members.map(
                lambda ms: list({orjson.loads(k): (k, v) for k, v in ms}.values())
            )
        return members.map(lambda ms: "{" + ",".join(f"{k}:{v}" for k, v in ms) + "}")

    def arrays(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.lists(children, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]")

    return st.recursive(
        scalar_text(), lambda c: st.one_of(objects(c), arrays(c)), max_leaves=8
    ).filter(lambda t: t[0] in "[{")


@st.composite
def record_text(draw: st.DrawFn, plain: bool) -> str:
    """A record object; ``plain``: none of the shapes the C path leaves to Python."""
    key_pool = st.one_of(
        st.sampled_from([*KNOWN, "seq", "fields", "fields", "region", "trace_id"]).map(
            lambda k: f'"{k}"'
        ),
        json_string(),
    )
    members = []
    for _ in range(draw(st.integers(0, 7))):
        key = draw(key_pool)
        name = orjson.loads(key)
        if name == "fields" and draw(st.booleans()):
            inner = draw(st.lists(st.tuples(key_pool, scalar_text()), max_size=4))
            value = "{" + ",".join(f"{k}:{v}" for k, v in inner) + "}"
        elif name == "seq":
            value = draw(seq_text(plain))
        elif name in KNOWN or (plain and name == "fields"):
            value = draw(
                scalar_text() if plain else st.one_of(scalar_text(), container_text(False))
            )
        else:
            value = draw(st.one_of(scalar_text(), container_text(plain)))
        members.append(f"{key}:{value}")
    if plain:  # a "fields" object's members may name known keys too
        members = [m for m in members if not _left_to_python(m)]
    return "{" + ",".join(members) + "}"


def _left_to_python(member: str) -> bool:
    """A known key holding an object or array, a string seq, or a numeric format (whether
    it is false decides if the batch's format replaces it), in a "fields" object too."""
    try:
        record = orjson.loads("{" + member + "}")
    except orjson.JSONDecodeError:
        return False  # the body is unreadable: scan_json leaves it to Python
    inner = record.get("fields")
    merged = inner if isinstance(inner, dict) else record
    return any(
        (k in KNOWN and isinstance(v, dict | list))
        or (k == "seq" and isinstance(v, str))
        or (k == "format" and type(v) in (int, float))
        for k, v in merged.items()
    )


def seq_text(plain: bool) -> st.SearchStrategy[str]:
    choices = [number_text(), st.sampled_from(["true", "false", "null", "{}", "[1]"])]
    if not plain:
        choices.append(st.sampled_from(['"12"', '" 7 "', '"x"', '"1_000"']))
    return st.one_of(*choices)


@st.composite
def body_and_meta(draw: st.DrawFn, plain: bool = False) -> tuple[bytes, dict[str, str]]:
    records = draw(st.lists(record_text(plain), max_size=6))
    array = "[" + ",".join(records) + "]"
    if draw(st.booleans()):
        names = [
            f'"{name}":{draw(json_string(alphabet="xyz-"))}'
            for name in (*NAMES, "format")
            if draw(st.booleans())
        ]
        text = "{" + ",".join([*names, f'"records":{array}']) + "}"
    else:
        text = array
    meta = draw(
        st.dictionaries(st.sampled_from([*NAMES, "format"]), st.sampled_from(["", "m", "csv"]))
    )
    return text.encode("utf-8", "surrogatepass"), meta


@SETTINGS
@given(body_and_meta())
def test_any_body_converts_as_the_reference_does(case: tuple[bytes, dict[str, str]]) -> None:
    assert_same(*case)


@SETTINGS
@given(body_and_meta(plain=True))
def test_a_body_of_common_shapes_is_never_declined(case: tuple[bytes, dict[str, str]]) -> None:
    body, meta = case
    if C.scan_json(body) is not None:
        assert_same(body, meta, must_take=True)


SEQS = [b"-1", b"-0", b"0", b"1.5", b"-0.5", b"-1.0", b"1e3", b"1e300", b"18446744073709551615",
        b"18446744073709551616", b"-9223372036854775808", b"-9223372036854775809",
        b"99999999999999999999999", b"true", b"false", b"null", b"{}", b"[]", b"4.9e-324",
        b"18446744073709549568.0", b"18446744073709551615.5"]  # fmt: skip


@pytest.mark.parametrize("seq", SEQS)
def test_seq_is_carried_or_refused_by_index_as_int_would(seq: bytes) -> None:
    body = b'[{"msg":"a","seq":1},{"msg":"b","seq":' + seq + b'},{"msg":"c"}]'
    assert_same(body, {}, must_take=True)
    assert c_path(body, {}) is not None


@pytest.mark.parametrize(
    "record",
    [
        b'{"ts":null,"level":30,"msg":1.5,"host":true,"service":false,"stream":1e20}',
        b'{"ts":-0,"level":-0.0,"msg":100000000000000000000,"raw":1e-7,"format":0.1}',
        b'{"ts":"","level":"","msg":"","service":"","host":"","stream":"","seq":0}',
        b'{"msg":"a","msg":"b","x":1,"x":{"y":[1,2.50,"\\u00e9"]},"ts":"t"}',
        b'{"fields":{"ts":"inner","x":1,"msg":"m"},"msg":"outer","x":2}',
        b'{"x":2,"fields":{"x":1,"fields":{"deep":true}}}',
        b'{"fields":{"q":1},"fields":"now a string"}',
        b'{"fields":"a string","fields":{"q":1}}',
        b'{"fi\\u0065lds":{"\\ud83d\\ude00":"\\ud83d\\ude00"},"\\u0000":"\\u001f\\u007f"}',
        b'{"v":"\\"\\\\\\/\\b\\f\\n\\r\\t","w":["\\u2028",{"":null}],"z":{}}',
        b'{"raw":"line"}',
        b'{"raw":"line","format":""}',
        b'{"raw":null}',
        b'{"n":1E400}',
        b'{"n":[1e-400,-1e-400,5e-324,1.7976931348623157e308,0.00001,1e-6,1e15,1e16]}',
        b'{ "spaced" : [ 1 , { "a" : "b" } ] , "msg" : "m" }',
        b"{}",
    ],
)
def test_hostile_records_convert_as_the_reference_does(record: bytes) -> None:
    for meta in ({}, {"format": "apache_combined", "batch_id": "h", "emitter": "e"}):
        assert_same(b"[" + record + b"," + record + b"]", meta)
        assert_same(b'{"format":"logfmt","run_id":"r","records":[' + record + b"]}", meta)


@pytest.mark.parametrize(
    "record",
    [
        b'{"msg":{"a":1}}',
        b'{"ts":[1]}',
        b'{"fields":{"level":{}}}',
        b'{"seq":"12"}',
        b'{"x":{"k":1,"k":2}}',
        b'{"x":[{"k":1,"\\u006b":2}]}',
        b"{" + b",".join(b'"k%d":%d' % (i, i) for i in range(257)) + b"}",
    ],
)
def test_what_only_python_decides_is_declined(record: bytes) -> None:
    body = b"[" + record + b"]"
    assert C.scan_json(body) is not None
    assert c_path(body, {}) is None
    reference(body, {})  # and the reference takes it


def test_a_realistic_batch_is_byte_identical_but_for_map_order() -> None:
    records = [
        {
            "ts": f"2024-03-12T14:06:40.{i % 1000:03d}Z",
            "level": "INFO",
            "msg": f"GET /api/v1/orders/{i} answered 200 for anna@example.com",
            "service": "checkout",
            "host": "web-01",
            "stream": "s1",
            "seq": i,
            "fields": {"region": "eu-west-1", "trace_id": f"{i:016x}"},
        }
        for i in range(1000)
    ]
    body = orjson.dumps({"batch_id": "b-1", "emitter": "e", "records": records})
    assert_same(body, {}, must_take=True)
    got = c_path(body, {})
    assert got is not None and len(got[0]) == len(reference(body, {})[0])


# -- misuse and fuzzing ----------------------------------------------------------------

BASE = b'{"batch_id":"b","records":[{"msg":"a\\u00e9","seq":1,"x":[1,2.5]},{"raw":"r"}]}'
S, E = BASE.index(b"["), len(BASE) - 1  # the records array, as scan_json frames it


def call(*args: Any) -> Any:
    return C.push_request_json(*args)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((BASE, -1, E, ("",) * 4, ""), ValueError),
        ((BASE, S, len(BASE) + 1, ("",) * 4, ""), ValueError),
        ((BASE, 0, len(BASE), ("",) * 4, ""), ValueError),  # not at '['
        ((BASE, S, S + 1, ("",) * 4, ""), ValueError),
        ((BASE, S, E, ("",) * 3, ""), TypeError),
        ((BASE, S, E, ("", "", "", b""), ""), TypeError),
        ((BASE, S, E, ["", "", "", ""], ""), TypeError),
        (("text", 0, 2, ("",) * 4, ""), TypeError),
        ((BASE, S, E, ("",) * 4, b""), TypeError),
    ],
)
def test_bad_arguments_are_refused(args: tuple[Any, ...], error: type[Exception]) -> None:
    with pytest.raises(error):
        call(*args)


def test_names_that_are_not_utf8_are_left_to_python() -> None:
    assert C.scan_json(BASE)[-2:] == (S, E)
    assert call(BASE, S, E, ("\ud800", "", "", ""), "") is None
    assert call(BASE, S, E, ("", "", "", ""), "\udfff") is None
    assert call(bytearray(BASE), S, E, ("", "", "", ""), "") is not None
    assert call(memoryview(BASE), S, E, ("", "", "", ""), "") is not None


def mutate(body: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    data = bytearray(body)
    for kind, where, byte in edits:
        pos = where % (len(data) + 1)
        if kind == 0 and pos < len(data):
            data[pos] = byte
        elif kind == 1:
            data[pos:pos] = bytes([byte])
        elif pos < len(data):
            del data[pos]
    return bytes(data)


SEEDS = [BASE, b'[{"fields":{"a":"\\ud83d\\ude00","ts":1},"seq":-3,"n":-0.0e-0}]',
         b'[{"x":{"y":[[],{},"\\"",1e-7,18446744073709551616]},"msg":"m"}]']  # fmt: skip
EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 400), st.integers(0, 255)), max_size=6)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SEEDS), EDITS)
@example(BASE, [(2, 40, 0)])
def test_mutated_bodies_never_crash_and_agree_when_taken(
    seed: bytes, edits: list[tuple[int, int, int]]
) -> None:
    body = mutate(seed, edits)
    assert_same(body, {"format": "f"})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 300), st.integers(0, 300))
def test_any_bytes_and_span_are_read_safely(data: bytes, start: int, length: int) -> None:
    body = b"[" + data
    end = min(len(body), start + length)
    for frame in ((0, len(body)), (0, end), (min(start, len(body)), end)):
        s, e = frame
        if e - s < 2 or body[s : s + 1] != b"[":
            with pytest.raises(ValueError):
                call(body, s, e, ("",) * 4, "")
            continue
        out = call(body, s, e, ("",) * 4, "")
        assert out is None or (isinstance(out[0], bytes) and isinstance(out[1], tuple))


def test_floats_in_fields_are_written_as_orjson_writes_them() -> None:
    values = [0.1, 1e-5, 1e-6, 1.5e16, 1e15, 123456.789, 5e-324, -2.5e-8, 1e22, 2.0**60]
    values += [math.ldexp(1.0, e) * 1.1 for e in range(-1070, 1020, 37)]
    body = orjson.dumps([{"f": v} for v in values])
    got = c_path(body, {})
    assert got is not None
    records = logs_pb2.PushRequest.FromString(got[0]).batch.records
    assert [r.fields["f"] for r in records] == [orjson.dumps(v).decode() for v in values]


def test_threads_converting_at_once_get_their_own_answers() -> None:
    """A bytes body is converted without the GIL: threads run side by side, and a float
    takes the GIL back for a moment; each thread must still get its own body's answer."""
    bodies = [
        orjson.dumps(
            [{"msg": f"t{n}-{i}", "seq": -1 if i % 97 == 0 else i, "f": i / (n + 3),
              "fields": {"k": [n, i, "é"]}} for i in range(400)]
        )
        for n in range(6)
    ]  # fmt: skip
    want = [c_path(b, {"batch_id": "x"}) for b in bodies]
    assert all(w is not None for w in want)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for _ in range(15):
                assert c_path(bodies[n], {"batch_id": "x"}) == want[n]
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert_same(bodies[0], {"batch_id": "x"}, must_take=True)
