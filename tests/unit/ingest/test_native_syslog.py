"""The C reader of RFC 5424 syslog messages against its Python reference (lines without
structured data here; ``test_native_syslog_sd.py`` has the structured data).

``_native.syslog5424(frame)`` must give exactly what ``native.syslog5424_reference``
gives (the ``syslog5424`` format's record, or None for what the C path leaves to
Python): the same keys in the same order, the same values and types. Checked on
generated lines around every bound of the grammar, on mutated real lines and on hand-picked
ones, each of which also says whether the C path takes it, so that a reader that takes
nothing cannot pass. ``make sanitize`` runs this module under ASan and UBSan, with every
frame in a buffer of exactly its size.
"""

from __future__ import annotations

import ctypes
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.model import Record
from services.ingest import native
from services.ingest.syslog.framing import FrameDecoder, octet_prefix
from tests.unit.ingest.native_strategies import assert_listener_same

pytestmark = pytest.mark.skipif(not native.AVAILABLE, reason="the C extension is not built")

if native.AVAILABLE:
    from services.ingest import _native  # type: ignore[attr-defined]

LOGGEN = (
    b"<38>1 2026-12-01T21:27:28+00:00 localhost prg00000 1234 - - \xef\xbb\xbfseq: 0000000000,"
    b" thread: 0000, runid: 1796160448, stamp: 2026-12-01T21:27:28 PADDPADDPADD\n"
)


def exact(data: bytes) -> Any:
    """``data`` in a buffer of its own size (bytes objects carry a spare NUL byte)."""
    return (ctypes.c_char * len(data)).from_buffer_copy(data)


def same(frame: bytes) -> Record | None:
    """The C record for ``frame``, after checking it against the reference."""
    ours: Record | None = _native.syslog5424(exact(frame))
    ref = native.syslog5424_reference(frame)
    if ref is None:
        assert ours is None, frame
        return None
    assert ours is not None, frame
    assert list(ours.items()) == list(ref.items()), frame
    assert [type(v) for v in ours.values()] == [type(v) for v in ref.values()], frame
    return ours


# --- generated lines, piece by piece around the grammar's bounds -------------------------

PRI = st.one_of(
    st.integers(0, 200).map(str),
    st.sampled_from(["", "0", "00", "000", "007", "038", "191", "0191", "192", "999", "1000", "x"]),
)
VERSION = st.sampled_from(["1", "1", "1", "1", "2", "11", ""])
TWO = st.integers(0, 61).map(lambda n: f"{n:02d}")
FRACTION = st.one_of(st.just(""), st.integers(0, 8).map(lambda k: "." + "1234567890"[:k]))
ZONE = st.one_of(
    st.sampled_from(["Z", "z", "", "+00:00", "-23:59", "+24:00", "+23:60", "+1:00", "+01:0"]),
    st.tuples(st.sampled_from("+-"), TWO, TWO).map(lambda t: f"{t[0]}{t[1]}:{t[2]}"),
)
TIMESTAMP = st.one_of(
    st.just("-"),
    st.builds(
        lambda year, month, day, clock, fraction, zone: (
            f"{year}-{month}-{day}T{clock}{fraction}{zone}"
        ),
        st.sampled_from(["0000", "1900", "2000", "2023", "2024", "9999", "202", "20245"]),
        st.integers(0, 13).map(lambda n: f"{n:02d}"),
        st.integers(0, 32).map(lambda n: f"{n:02d}"),
        st.tuples(st.integers(0, 24), st.integers(0, 60), st.integers(0, 60)).map(
            lambda t: f"{t[0]:02d}:{t[1]:02d}:{t[2]:02d}"
        ),
        FRACTION,
        ZONE,
    ),
)


def field(limit: int) -> st.SearchStrategy[str]:
    printable = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
    return st.one_of(
        st.just("-"),
        st.text(printable, min_size=1, max_size=8),
        st.integers(limit - 1, limit + 1).map(lambda n: "h" * n),
        st.text(st.characters(min_codepoint=0x1F, max_codepoint=0xFF), max_size=4),
        st.integers(0, 10**20).map(str),
        st.integers(17, 20).map(lambda n: "0" * n),
    )


SD = st.sampled_from(["-", "-", "-", '[a b="c"]', '[meta sequenceId="4"]', "-x", "", "--"])
MSG = st.one_of(
    st.none(),
    st.just(""),
    st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass").decode("latin-1")),
    st.text(max_size=30).map(lambda t: "\ufeff" + t),
    st.just("\ufeff"),
)
TAIL = st.sampled_from([b"", b"", b"\n", b"\r\n", b"\n\r\r", b"\xff", b"\xed\xa0\x80", b"\xc0\x80"])


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    head = f"<{draw(PRI)}>{draw(VERSION)} {draw(TIMESTAMP)} {draw(field(255))} "
    head += f"{draw(field(48))} {draw(field(128))} {draw(field(32))} {draw(SD)}"
    msg = draw(MSG)
    text = head.encode("utf-8", "surrogatepass")
    if msg is not None:
        raw = msg.encode("latin-1") if not msg.startswith("\ufeff") else msg.encode("utf-8")
        text += b" " + raw
    return text + draw(TAIL)


GOOD_TIMESTAMP = st.one_of(
    st.just("-"),
    st.datetimes().map(lambda t: t.isoformat(timespec="microseconds") + "Z"),
    st.datetimes().map(lambda t: t.isoformat(timespec="seconds") + "+05:30"),
)
GOOD_FIELD = st.one_of(
    st.just("-"),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=32),
)


@st.composite
def good_lines(draw: st.DrawFn) -> bytes:
    """Lines that mostly follow the grammar, so the C path's records are compared too."""
    pri = draw(st.integers(0, 191))
    fields = " ".join(draw(GOOD_FIELD) for _ in range(4))
    head = f"<{pri}>1 {draw(GOOD_TIMESTAMP)} {fields} -"
    msg = draw(MSG)
    text = head.encode()
    if msg is not None:
        text += b" " + msg.encode("utf-8", "surrogatepass")
    return text + draw(TAIL)


@settings(max_examples=3000)
@given(st.one_of(lines(), good_lines()))
def test_generated_lines_are_read_as_the_format_reads_them(frame: bytes) -> None:
    same(frame)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(LOGGEN)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["set", "insert", "delete"]))
        byte = draw(st.sampled_from(b'<>1 -0123456789:TZ+.[]="\\ab\x00\x7f\x80\xef\xff\r\n'))
        if kind == "insert" or not data:
            data.insert(at, byte)
        elif kind == "set":
            data[min(at, len(data) - 1)] = byte
        else:
            del data[min(at, len(data) - 1)]
    return bytes(data[: draw(st.integers(0, len(data)))]) if draw(st.booleans()) else bytes(data)


@settings(max_examples=3000)
@given(mutated())
def test_mutated_loggen_lines_are_read_as_the_format_reads_them(frame: bytes) -> None:
    same(frame)


@settings(max_examples=500)
@given(st.binary(max_size=80))
def test_random_bytes_are_read_as_the_format_reads_them(frame: bytes) -> None:
    same(frame)


# --- hand-picked lines: what the C path takes, and what it leaves --------------------------

TAKEN = [
    pytest.param(LOGGEN, id="loggen"),
    pytest.param(b"<0>1 - - - - - -", id="all-nil-pri-0"),
    pytest.param(b"<191>1 - h a p m -", id="largest-pri"),
    pytest.param(b"<038>1 - h a p m -", id="pri-with-leading-zero"),
    pytest.param(b"<000>1 - h a p m - x", id="pri-three-zeros"),
    pytest.param(b"<14>1 2024-02-29T00:00:00Z h a p m - leap", id="leap-day"),
    pytest.param(b"<14>1 2000-02-29T00:00:00Z h a p m - leap", id="leap-day-400"),
    pytest.param(b"<14>1 0000-02-29T23:59:59Z h a p m - leap", id="year-zero"),
    pytest.param(b"<14>1 2024-12-31T23:59:59.123456+23:59 h a p m -", id="six-digits-and-offset"),
    pytest.param(b"<14>1 2024-01-31T00:00:00.1-00:00 h a p m - x", id="one-digit-negative-zero"),
    pytest.param(
        b"<14>1 - " + b"h" * 255 + b" " + b"a" * 48 + b" " + b"p" * 128 + b" " + b"m" * 32 + b" -",
        id="every-field-at-its-limit",
    ),
    pytest.param(b"<14>1 - h a 000000000000000012 m -", id="pid-of-18-digits-is-an-int"),
    pytest.param(b"<14>1 - h a 0000000000000000012 m -", id="pid-of-19-digits-is-text"),
    pytest.param(b"<14>1 - h a -12 m -", id="signed-pid-is-text"),
    pytest.param(b"<14>1 - -- a p m -", id="double-dash-is-a-value"),
    pytest.param(b"<14>1 - h a p m - ", id="empty-msg"),
    pytest.param(b"<14>1 - h a p m - \xef\xbb\xbf", id="bom-only"),
    pytest.param(b"<14>1 - h a p m - \xef\xbb\xbf\xef\xbb\xbfx", id="two-boms-one-dropped"),
    pytest.param(b"<14>1 - h a p m - \xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80", id="utf8-msg"),
    pytest.param(b"<14>1 - h a p m - a\x00b\rc\nd", id="controls-inside-msg"),
    pytest.param(b"<14>1 - h a p m - x\r\n\n\r", id="trailing-cr-lf-removed"),
    pytest.param(b"<14>1 - h a p m -  two spaces", id="msg-starting-with-space"),
    pytest.param(b'<14>1 - h a p m [a b="c"] x', id="structured-data"),
    pytest.param(b'<14>1 - h a p m [a b="c"]', id="structured-data-without-msg"),
]

LEFT = [
    pytest.param(b"", id="empty"),
    pytest.param(b"<192>1 - h a p m -", id="pri-over-191"),
    pytest.param(b"<0191>1 - h a p m -", id="four-digit-pri"),
    pytest.param(b"<>1 - h a p m -", id="no-pri"),
    pytest.param(b"<14>2 - h a p m -", id="version-2"),
    pytest.param(b"<14>1 2023-02-29T00:00:00Z h a p m -", id="no-leap-day"),
    pytest.param(b"<14>1 1900-02-29T00:00:00Z h a p m -", id="no-leap-day-1900"),
    pytest.param(b"<14>1 2024-04-31T00:00:00Z h a p m -", id="april-31"),
    pytest.param(b"<14>1 2024-01-01T24:00:00Z h a p m -", id="hour-24"),
    pytest.param(b"<14>1 2024-01-01T00:00:60Z h a p m -", id="second-60"),
    pytest.param(b"<14>1 2024-01-01T00:00:00.1234567Z h a p m -", id="seven-digits"),
    pytest.param(b"<14>1 2024-01-01T00:00:00.Z h a p m -", id="dot-without-digits"),
    pytest.param(b"<14>1 2024-01-01T00:00:00 h a p m -", id="no-zone"),
    pytest.param(b"<14>1 2024-01-01T00:00:00+24:00 h a p m -", id="offset-24"),
    pytest.param(b"<14>1 2024-01-01T00:00:00z h a p m -", id="lower-z"),
    pytest.param(b"<14>1 - " + b"h" * 256 + b" a p m -", id="host-over-255"),
    pytest.param(b"<14>1 - h " + b"a" * 49 + b" p m -", id="app-over-48"),
    pytest.param(b"<14>1 - h a " + b"p" * 129 + b" m -", id="pid-over-128"),
    pytest.param(b"<14>1 - h a p " + b"m" * 33 + b" -", id="msgid-over-32"),
    pytest.param(b"<14>1 - h a p m", id="no-sd"),
    pytest.param(b"<14>1 - h a p m -x", id="sd-dash-then-text"),
    pytest.param(b'<14>1 - h a p m [a b="c"][a d="e"] x', id="sd-id-twice"),
    pytest.param(b"<14>1 - h\xc3\xa9 a p m -", id="non-ascii-host"),
    pytest.param(b"<14>1 - h a p m - \xff", id="invalid-utf8-msg"),
    pytest.param(b"<14>1 - h a p m - \xed\xa0\x80", id="surrogate-in-msg"),
    pytest.param(b"<14>1  - h a p m -", id="double-space"),
    pytest.param(b"<14>Mar  2 04:05:06 web01 sshd[4412]: x", id="rfc3164"),
]


@pytest.mark.parametrize("frame", TAKEN)
def test_common_lines_are_taken_by_the_c_path(frame: bytes) -> None:
    assert same(frame) is not None


@pytest.mark.parametrize("frame", LEFT)
def test_other_lines_are_left_to_python(frame: bytes) -> None:
    assert same(frame) is None


def test_the_loggen_record() -> None:
    assert same(LOGGEN) == {
        "ts": "2026-12-01T21:27:28+00:00",
        "level": "<38>",
        "syslog_facility": 4,
        "syslog_severity": 6,
        "host": "localhost",
        "service": "prg00000",
        "pid": 1234,
        "msg": "seq: 0000000000, thread: 0000, runid: 1796160448, stamp: 2026-12-01T21:27:28 "
        "PADDPADDPADD",
    }


@pytest.mark.parametrize("arg", ["<14>1 - h a p m -", None, 5])
def test_only_bytes_like_frames(arg: Any) -> None:
    with pytest.raises(TypeError):
        _native.syslog5424(arg)


# --- the listener's records: the same with and without the C path -------------------------


@settings(max_examples=300)
@given(st.lists(st.one_of(lines(), good_lines(), mutated(), st.just(LOGGEN)), max_size=20))
def test_the_listener_stores_the_same_lines_with_or_without_the_c_path(
    frames: list[bytes],
) -> None:
    assert_listener_same(frames)


# --- octet-counted frames ----------------------------------------------------------------

FRAME_PIECES = st.one_of(
    st.binary(min_size=1, max_size=40).map(lambda m: b"%d %s" % (len(m), m)),
    st.binary(max_size=6).map(lambda m: b"%d %s\r\n" % (len(m) + 2, m)),
    st.sampled_from([b"1 \n", b"2 \r\n", b"1 \r", b"0 ", b"01 x", b"12", b"3 ab", b" ", b"\n"]),
    st.sampled_from([b"9999999999 ", b"99999999999 ", b"1000000000 x", b"4294967297 x"]),
    st.binary(max_size=10),
)


def same_frames(data: bytes, pos: int, limit: int) -> tuple[list[bytes], int]:
    ours = _native.octet_frames(exact(data), pos, limit)
    assert ours == octet_prefix(data, pos, limit), (data, pos, limit)
    return ours  # type: ignore[no-any-return]


@settings(max_examples=2000)
@given(st.lists(FRAME_PIECES, max_size=12).map(b"".join), st.integers(0, 60), st.data())
def test_octet_frames_are_cut_as_the_python_decoder_cuts_them(
    data: bytes, limit: int, draw: st.DataObject
) -> None:
    same_frames(data, draw.draw(st.integers(0, len(data))), limit)


@pytest.mark.parametrize(
    ("data", "limit", "expected"),
    [
        (b"5 hello5 world", 64, ([b"hello", b"world"], 14)),
        (b"5 hello5 wor", 64, ([b"hello"], 7)),
        (b"5 hello6 world!", 5, ([b"hello"], 7)),
        (b"6 hello\n7 hello\r\n", 64, ([b"hello", b"hello"], 17)),
        (b"1 \n2 \r\n1 x", 64, ([b"x"], 10)),
        (b"1 \r", 64, ([b"\r"], 3)),
        (b"05 hello", 64, ([], 0)),
        (b"5  hell", 64, ([b" hell"], 7)),
        (b"1000000000 x", 2**40, ([], 0)),
        (b"12345678901 x", 2**40, ([], 0)),
        (b"", 64, ([], 0)),
    ],
)
def test_octet_frames_edges(data: bytes, limit: int, expected: tuple[list[bytes], int]) -> None:
    assert same_frames(data, 0, limit) == expected


@pytest.mark.parametrize("pos", [-1, 4])
def test_octet_frames_refuse_a_position_outside_the_data(pos: int) -> None:
    with pytest.raises(ValueError, match="pos"):
        _native.octet_frames(b"1 x", pos, 64)


def decoded(stream: bytes, cuts: list[int], limit: int, native_path: bool) -> tuple[Any, ...]:
    dec = FrameDecoder(limit, native=native_path)
    frames: list[bytes] = []
    oversized, errors = 0, []
    start = 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        part = dec.feed(stream[start:cut])
        frames += part.frames
        oversized += part.oversized
        errors.append(part.error)
        start = max(start, cut)
    end = dec.finish()
    return frames + end.frames, oversized + end.oversized, [*errors, end.error]


@settings(max_examples=1000)
@given(st.lists(FRAME_PIECES, max_size=12).map(b"".join), st.integers(1, 60), st.data())
def test_the_decoder_gives_the_same_with_or_without_the_c_path(
    stream: bytes, limit: int, draw: st.DataObject
) -> None:
    cuts = draw.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    assert decoded(stream, cuts, limit, True) == decoded(stream, cuts, limit, False)
