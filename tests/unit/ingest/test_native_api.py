"""The extension's types and functions are safe on any arguments: a hostile call raises.

The gateway calls them only as ``native.py`` does (a span that ``scan_json`` framed, an
``IdTable`` made by its constructor, orjson as ``dumps``), but they are public: many of
these calls read out of bounds, through a null pointer or from freed memory before the
extension checked for them. ``make sanitize`` runs this module under AddressSanitizer
and UBSan, where a read one byte past a buffer fails too: bodies are handed over in
buffers of exactly their size for that (``exact``).
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from logops.v1 import logs_pb2

from services.ingest import native
from services.ingest.levels import ALIASES, LEVELS, canonical_level
from services.ingest.normalize import FIXED_KEYS

pytestmark = pytest.mark.skipif(not native.AVAILABLE, reason="the C extension is not built")

if native.AVAILABLE:
    from services.ingest import _native  # type: ignore[attr-defined]

INGEST_TS = "2024-03-12T14:06:40.123Z"
DIGEST = bytes(range(16))


def exact(data: bytes) -> Any:
    """``data`` in a buffer of its own size (bytes objects carry a spare NUL byte)."""
    return (ctypes.c_char * len(data)).from_buffer_copy(data)


def engine_settings(**changes: Any) -> dict[str, Any]:
    return {
        **{"levels": dict(ALIASES), "level_names": LEVELS, "level_fn": canonical_level},
        **{"mask_mode": 0, "hash_fn": lambda text: "<hash>", "mask_fn": lambda text: text},
        **{"dumps": orjson.dumps, "loads": orjson.loads, "reserved": frozenset(FIXED_KEYS)},
        "max_chars": 1000,
        **changes,
    }


def engine(**changes: Any) -> Any:
    return _native.Engine(**engine_settings(**changes))


def _slow(rec: Any) -> tuple[Any, ...]:
    return None, "invalid_record", "left to Python"


def ctx(
    ts_fn: Callable[[Any], Any] = lambda value: None,
    slow: Callable[[Any], Any] = _slow,
) -> tuple[Any, ...]:
    tail = b'"batch_id":"b","ingest_ts":"%s"' % INGEST_TS.encode()
    return (
        b'"emitter":"e","scenario_id":"","run_id":"",',
        tail,
        b'"structured"',
        INGEST_TS,
        ts_fn,
        slow,
    )


def normalise_json(eng: Any, body: bytes, end: int | None = None) -> Any:
    end = len(body) if end is None else end
    return eng.normalise_json(exact(body[:end]), 0, end, ctx(), orjson.loads)


# --- JSON spans that scan_json did not check ---------------------------------------------

UNCHECKED_SPANS = [
    pytest.param(b'[{"msg":"\\q"}]', id="unknown-escape"),
    pytest.param(b'[{"msg":"\\u12"}]', id="short-unicode-escape"),
    pytest.param(b'[{"msg":"\\u12', id="unicode-escape-at-the-end"),
    pytest.param(b'[{"msg":"\\', id="backslash-at-the-end"),
    pytest.param(b'[{"msg":"\\ud83d\\ude0"}]', id="short-low-surrogate"),
    pytest.param(b'[{"msg":"\\ud83d"}]', id="lone-high-surrogate"),
    pytest.param(b'[{"msg":"\\u0000\\', id="escape-then-backslash-at-the-end"),
    pytest.param(b'[{"fields":{"k":"\\x"}}]', id="unknown-escape-in-fields"),
    pytest.param(b'[{"k":1e999}]', id="number-out-of-range"),
    pytest.param(b'[{"k":"\xff"}]', id="invalid-utf8"),
    pytest.param(b'[{"k":"\x01"}]', id="control-character"),
    pytest.param(b'[{"msg":"a"}', id="array-not-closed"),
    pytest.param(b'[{"msg":"a"}] [', id="text-after-the-array"),
    pytest.param(b'[{"msg":"a"},]', id="trailing-comma"),
    pytest.param(b"[5]", id="record-not-an-object"),
    pytest.param(b'[{"a":' + b"[" * 600 + b"]" * 600 + b"}]", id="nested-too-deep"),
]


@pytest.mark.parametrize("body", UNCHECKED_SPANS)
def test_normalise_json_refuses_what_scan_json_would_not_frame(body: bytes) -> None:
    assert native.scan_json(body) is None
    with pytest.raises(ValueError, match="records"):
        normalise_json(engine(), body)


def test_every_truncation_of_a_records_array_is_refused() -> None:
    body = rb'[{"msg":"\u00e9\ud83d\ude00 q\"\\","k":"\/","fields":{"a":[1.5,-0,true,null]}}]'
    eng = engine()
    assert normalise_json(eng, body)[1] == 1
    for end in range(2, len(body)):
        with pytest.raises(ValueError):
            normalise_json(eng, body, end)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=40), start=st.integers(-2, 42), end=st.integers(-2, 42))
def test_any_bytes_and_span_give_lines_or_an_error(body: bytes, start: int, end: int) -> None:
    with contextlib.suppress(ValueError):
        engine().normalise_json(exact(body), start, end, ctx(), orjson.loads)


def test_normalise_json_checks_its_arguments() -> None:
    eng = engine()
    with pytest.raises(TypeError):
        eng.normalise_json("[]", 0, 2, ctx(), orjson.loads)
    for start, end in ((-1, 2), (0, 3), (1, 0), (0, 1)):
        with pytest.raises(ValueError):
            eng.normalise_json(b"[]", start, end, ctx(), orjson.loads)
    with pytest.raises(TypeError):
        eng.normalise_json(b"[]", 0, 2, ("not", "a", "ctx"), orjson.loads)


def test_normalise_wire_refuses_bytes_that_are_no_log_batch() -> None:
    with pytest.raises(ValueError, match="LogBatch"):
        engine().normalise_wire(b"\x2a\x05ab", False, ctx())


# --- Objects made without __init__, or whose __init__ failed -----------------------------


def test_an_id_table_without_init_refuses_every_method() -> None:
    table = _native.IdTable.__new__(_native.IdTable)
    with pytest.raises(RuntimeError):
        table.get(DIGEST)
    with pytest.raises(RuntimeError):
        table.put(DIGEST, 1, 2)
    assert len(table) == 0
    assert table.nbytes == 0
    table.__init__(4)
    table.put(DIGEST, 1, 2)
    assert table.get(DIGEST) == (1, 2)


def test_an_id_table_checks_its_arguments() -> None:
    table = _native.IdTable(4)
    for bad in (b"short", "a str of sixteen", DIGEST + b"x", None):
        with pytest.raises(ValueError):
            table.get(bad)
        with pytest.raises(ValueError):
            table.put(bad, 1, 2)
    with pytest.raises(ValueError):
        _native.IdTable(0)


def test_an_engine_without_init_refuses_every_method() -> None:
    eng = _native.Engine.__new__(_native.Engine)
    with pytest.raises(RuntimeError):
        eng.normalise_dicts([{"msg": ""}], ctx())
    with pytest.raises(RuntimeError):
        eng.normalise_json(b"[{}]", 0, 4, ctx(), orjson.loads)
    with pytest.raises(RuntimeError):
        eng.normalise_wire(b"", False, ctx())


def test_an_engine_whose_init_failed_refuses_every_method() -> None:
    eng = engine()
    with pytest.raises(TypeError):
        eng.__init__(**engine_settings(level_names=(1, 2, 3, 4, 5, 6)))
    with pytest.raises(RuntimeError):
        eng.normalise_dicts([{"msg": ""}], ctx())


def test_an_engine_cannot_be_set_up_again_while_it_runs() -> None:
    eng = engine()

    def ts_fn(value: Any) -> None:
        eng.__init__(**engine_settings())

    with pytest.raises(RuntimeError, match="runs"):
        eng.normalise_dicts([{"ts": "not canonical"}], ctx(ts_fn=ts_fn))
    assert eng.normalise_dicts([{"msg": "m"}], ctx())[1] == 1


# --- Callbacks that answer with the wrong type --------------------------------------------


@pytest.mark.parametrize(
    ("answer", "error"),
    [("[1]", TypeError), (bytearray(b"[1]"), TypeError), (b"", ValueError), (b"[1", ValueError)],
)
def test_dumps_must_return_a_json_array_as_bytes(answer: Any, error: type[Exception]) -> None:
    eng = engine(dumps=lambda value: answer)
    with pytest.raises(error, match="dumps"):
        eng.normalise_dicts([{"msg": "m", "k": [1]}], ctx())


def test_ts_fn_must_return_str_or_none() -> None:
    with pytest.raises(TypeError, match="ts_fn"):
        engine().normalise_dicts([{"ts": "12/Mar/2024"}], ctx(ts_fn=lambda value: 5))
    body = b'[{"ts":"12/Mar/2024"}]'
    with pytest.raises(TypeError, match="ts_fn"):
        engine().normalise_json(body, 0, len(body), ctx(ts_fn=lambda value: b"x"), orjson.loads)


def test_mask_and_hash_fns_must_return_str() -> None:
    with pytest.raises(TypeError, match="mask_fn"):
        engine(mask_mode=1, mask_fn=lambda text: None).normalise_dicts([{"msg": "é@x.de"}], ctx())
    with pytest.raises(TypeError, match="hash_fn"):
        engine(mask_mode=2, hash_fn=lambda text: b"h").normalise_dicts([{"msg": "a@b.co"}], ctx())


def test_level_fn_must_return_a_level_or_none() -> None:
    for answer, error in (("BOGUS", ValueError), (5, TypeError)):
        with pytest.raises(error):
            engine(level_fn=lambda value, answer=answer: answer).normalise_dicts(
                [{"level": "no such level"}], ctx()
            )


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("line", TypeError),
        ((b"line",), TypeError),
        (("line", "INFO", 0), TypeError),
        ((b"line", "BOGUS", 0), ValueError),
        ((b"line", "INFO", "flags"), TypeError),
    ],
)
def test_slow_must_return_a_line_level_and_flags(answer: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        engine().normalise_dicts([{"raw": "k=v"}], ctx(slow=lambda rec: answer))


# --- Callbacks that change the record while its line is written ---------------------------


def _fresh(text: str) -> str:
    """A str that only the record holds (literals live as long as the code does)."""
    return "".join(list(text))


def _record() -> dict[str, Any]:
    return {
        "ts": _fresh("not a time"),
        "level": _fresh("no level"),
        "msg": _fresh("a message"),
        "service": _fresh("svc"),
        "host": _fresh("host"),
        "stream": _fresh("s"),
        "format": _fresh("fmt"),
        "k": [_fresh("v")],
        "j": [_fresh("w")],
    }


@pytest.mark.parametrize("callback", ["ts_fn", "level_fn", "dumps"])
def test_a_callback_that_empties_the_record_cannot_crash_the_engine(callback: str) -> None:
    rec = _record()
    reals: dict[str, Callable[[Any], Any]] = {
        "ts_fn": lambda value: None,
        "level_fn": canonical_level,
        "dumps": orjson.dumps,
    }

    def emptying(value: Any) -> Any:
        rec.clear()
        return reals[callback](value)

    eng = engine(**{callback: emptying}) if callback != "ts_fn" else engine()
    run = ctx(ts_fn=emptying) if callback == "ts_fn" else ctx()
    data, accepted, *_ = eng.normalise_dicts([rec], run)
    assert accepted == 1
    assert orjson.loads(data)["service"] == "svc"


@pytest.mark.parametrize("filler", [b"\\", b"\xff", b"\x0a", b"\x2a"], ids=repr)
def test_a_callback_that_rewrites_the_body_cannot_crash_the_engine(filler: bytes) -> None:
    # A bytearray keeps its size while it is read, not its bytes: a callback may change
    # them between the check and the reading of the records after it.
    records = [{"ts": "12/Mar/2024", "msg": "m\u00e9\\n", "k": 1, "fields": {"a": "b"}}] * 3
    json_body = bytearray(orjson.dumps(records))
    wire_body = bytearray(
        logs_pb2.LogBatch(
            records=[logs_pb2.LogRecord(ts="12/Mar/2024", msg="m")] * 3
        ).SerializeToString()
    )

    def rewriting(body: bytearray) -> Callable[[Any], None]:
        def ts_fn(value: Any) -> None:
            body[:] = filler * len(body)

        return ts_fn

    eng = engine()
    json_ctx, wire_ctx = ctx(rewriting(json_body)), ctx(rewriting(wire_body))
    with contextlib.suppress(ValueError):
        eng.normalise_json(json_body, 0, len(json_body), json_ctx, orjson.loads)
    with contextlib.suppress(ValueError):
        eng.normalise_wire(wire_body, False, wire_ctx)
