"""The C reader of RFC 5424 lines with structured data against the ``syslog5424`` format.

``_native.syslog5424(frame)`` must give what ``native.syslog5424_reference`` gives: the
format's record (``sd`` nested, repeated names as lists, escapes undone, the
``logops@32473`` element's run_id/stream/seq and meta's sequenceId lifted out) or None
for a line the format refuses. Checked on generated structured data full of what breaks
readers (quotes, backslashes, ``]``, unicode, invalid UTF-8, huge values, truncation), on
mutated lines as the emitters write them, and on hand-picked lines that each say whether
the C path takes them. ``make sanitize`` runs this module under ASan and UBSan.
"""

from __future__ import annotations

import ctypes
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emitters.content import ContentOptions
from emitters.formats import get_format
from emitters.source import Accounting, EventSource
from services.common.config import PiiConfig
from services.common.model import Batch, Record
from services.ingest import native
from services.ingest.syslog.records import RecordBuilder

pytestmark = pytest.mark.skipif(not native.AVAILABLE, reason="the C extension is not built")

if native.AVAILABLE:
    from services.ingest import _native  # type: ignore[attr-defined]


def exact(data: bytes) -> Any:
    """``data`` in a buffer of its own size (bytes objects carry a spare NUL byte)."""
    return (ctypes.c_char * len(data)).from_buffer_copy(data)


def same(frame: bytes) -> Record | None:
    ours: Record | None = _native.syslog5424(exact(frame))
    ref = native.syslog5424_reference(frame)
    if ref is None:
        assert ours is None, frame
        return None
    assert ours is not None, frame
    assert repr(list(ours.items())) == repr(list(ref.items())), frame
    return ours


def emitted_lines(count: int = 40) -> list[bytes]:
    source = EventSource(
        get_format("syslog5424"), ContentOptions(), Accounting("run-7", "em-1"), seed=3
    )
    return [source.line(i, 1_710_252_309.0 + i).encode() for i in range(count)]


EMITTED = emitted_lines()

GOOD_NAMES = st.sampled_from(
    ["logops@32473", "meta", "origin", "a", "x@1", "run_id", "stream", "seq", "sequenceId"]
)
# Mostly names the grammar takes, so that most lines are read and compared whole.
SD_NAMES = st.one_of(
    *[GOOD_NAMES] * 12,
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=4),
    st.integers(31, 33).map(lambda n: "n" * n),
    st.sampled_from(["", "a=b", 'a"b', "a]b", "a b", "é", "a\x00"]),
)
VALUE_TEXT = st.one_of(
    st.text(max_size=12),
    st.text(st.sampled_from('"\\]ab [=\x00\n\u00e9\U0001f600'), max_size=12),
    st.sampled_from(
        ["", "0", "7", "007", "2147483647", "2147483648", "1" * 20, "9" * 20, "1" * 21]
    ),
    st.sampled_from(["١٢", "²", " 5", "5 ", "-5", "+5"]),
)


def escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


VALUE = st.one_of(
    *[VALUE_TEXT.map(escaped)] * 8,
    VALUE_TEXT,  # unescaped: quotes, backslashes and ] where the grammar forbids them
    st.sampled_from(["\\n", "\\", "a\\", "\\\\\\", "\\é", "\\\U0001f600"]),
)


@st.composite
def elements(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        params = "".join(
            f' {draw(SD_NAMES)}="{draw(VALUE)}"' for _ in range(draw(st.integers(0, 3)))
        )
        parts.append(f"[{draw(SD_NAMES)}{params}]")
    return "".join(parts)


TAIL = st.sampled_from(
    [
        b"",
        b"",
        b" msg",
        b" m\xc3\xa9",
        b" \xef\xbb\xbfmsg",
        b" ",
        b"\n",
        b"x",
        b"\xff",
        b" \xed\xa0\x80",
    ]
)


@st.composite
def sd_lines(draw: st.DrawFn) -> bytes:
    head = draw(st.sampled_from(["<14>1 - h a p m ", "<165>1 2024-03-12T14:05:09.482Z h a 12 m "]))
    data = (head + draw(elements())).encode("utf-8", "surrogatepass") + draw(TAIL)
    if draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


@settings(max_examples=3000, deadline=None)
@given(sd_lines())
def test_generated_structured_data_is_read_as_the_format_reads_it(frame: bytes) -> None:
    same(frame)


NAME_TEXT = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E).filter(lambda c: c not in '= ]"'),
    min_size=1,
    max_size=32,
)


@st.composite
def good_sd_lines(draw: st.DrawFn) -> bytes:
    """Structured data the grammar takes (SD-IDs may still repeat): compared whole."""
    ids = draw(st.lists(st.one_of(GOOD_NAMES, NAME_TEXT), min_size=1, max_size=4))
    names = st.one_of(GOOD_NAMES, NAME_TEXT)
    parts = [
        f"[{sd_id}"
        + "".join(
            f' {draw(names)}="{escaped(draw(VALUE_TEXT))}"' for _ in range(draw(st.integers(0, 4)))
        )
        + "]"
        for sd_id in ids
    ]
    msg = draw(st.one_of(st.none(), st.text(max_size=20)))
    line = "<14>1 - h a p m " + "".join(parts) + ("" if msg is None else " " + msg)
    return line.encode()


@settings(max_examples=2000, deadline=None)
@given(good_sd_lines())
def test_structured_data_the_grammar_takes_is_read_as_the_format_reads_it(frame: bytes) -> None:
    same(frame)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(EMITTED)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["set", "insert", "delete"]))
        byte = draw(st.sampled_from(b'<>1 -0123456789[]="\\@ab\x00\x7f\x80\xef\xff\r\n'))
        if kind == "insert" or not data:
            data.insert(at, byte)
        elif kind == "set":
            data[min(at, len(data) - 1)] = byte
        else:
            del data[min(at, len(data) - 1)]
    return bytes(data[: draw(st.integers(0, len(data)))]) if draw(st.booleans()) else bytes(data)


@settings(max_examples=3000, deadline=None)
@given(mutated())
def test_mutated_emitter_lines_are_read_as_the_format_reads_them(frame: bytes) -> None:
    same(frame)


@pytest.mark.parametrize("frame", EMITTED[:10])
def test_emitter_lines_are_taken_by_the_c_path(frame: bytes) -> None:
    rec = same(frame)
    assert rec is not None
    assert (rec["run_id"], rec["stream"]) == ("run-7", "em-1")
    assert "logops@32473" not in rec["sd"]


TAKEN = [
    pytest.param(b'<14>1 - h a p m [a b="c"]', id="one-element-no-msg"),
    pytest.param(b'<14>1 - h a p m [a b="c"] ', id="one-element-empty-msg"),
    pytest.param(b"<14>1 - h a p m [a]", id="element-without-params"),
    pytest.param(b'<14>1 - h a p m [a b="" c="d"][e f="g"] x', id="two-elements"),
    pytest.param(b'<14>1 - h a p m [a b="1" b="2" b="3"]', id="repeated-name-is-a-list"),
    pytest.param(rb'<14>1 - h a p m [a b="q\"b\\s\]e"]', id="escapes-undone"),
    pytest.param(rb'<14>1 - h a p m [a b="\n\t\x"]', id="other-pairs-kept"),
    pytest.param('<14>1 - h a p m [a b="\\é ☃ \U0001f600"] é'.encode(), id="unicode"),
    pytest.param(b'<14>1 - h a p m [a b="x\ny\x00"]', id="controls-in-value"),
    pytest.param(
        b'<14>1 - h a p m [logops@32473 run_id="r" stream="s" seq="18446744073709551616"]',
        id="seq-over-64-bits-still-an-int",
    ),
    pytest.param(
        b'<14>1 - h a p m [logops@32473 run_id="r" run_id="t" seq="x"]',
        id="repeated-run-id-stays",
    ),
    pytest.param(b'<14>1 - h a p m [meta sequenceId="0"]', id="sequence-id-zero-stays"),
    pytest.param(b'<14>1 - h a p m [meta sequenceId="2147483648"]', id="sequence-id-too-big"),
    pytest.param(
        b'<14>1 - h a p m [meta sequenceId="9"][logops@32473 seq="4"]', id="seq-beats-meta"
    ),
    pytest.param(b'<14>1 - h a p m [meta sequenceId="9" x="1"]', id="meta-kept-with-others"),
    pytest.param(b"<14>1 - h a p m [" + b"n" * 32 + b"]", id="name-of-32"),
    pytest.param(b'<14>1 - h a p m [a b="' + b"v" * 100_000 + b'"]', id="huge-value"),
    pytest.param(b"<14>1 - h a p m [a" + b' b="1"' * 5000 + b"]", id="many-params"),
]

LEFT = [
    pytest.param(b'<14>1 - h a p m [a b="c"][a d="e"]', id="sd-id-twice"),
    pytest.param(b'<14>1 - h a p m [a b="c"]x', id="text-right-after-sd"),
    pytest.param(b'<14>1 - h a p m [a b="c"', id="truncated-element"),
    pytest.param(b'<14>1 - h a p m [a b="c]', id="truncated-value"),
    pytest.param(b'<14>1 - h a p m [a b="c\\"]', id="escaped-closing-quote"),
    pytest.param(b'<14>1 - h a p m [a b="c\\', id="backslash-at-the-end"),
    pytest.param(b'<14>1 - h a p m [a b="c]d"]', id="bare-bracket-in-value"),
    pytest.param(b"<14>1 - h a p m [a b=c]", id="unquoted-value"),
    pytest.param(b'<14>1 - h a p m [a  b="c"]', id="two-spaces"),
    pytest.param(b'<14>1 - h a p m [a b="c" ]', id="space-before-bracket"),
    pytest.param(b"<14>1 - h a p m []", id="empty-element"),
    pytest.param(b"<14>1 - h a p m [" + b"n" * 33 + b"]", id="name-of-33"),
    pytest.param(b'<14>1 - h a p m [a=b c="d"]', id="equals-in-id"),
    pytest.param('<14>1 - h a p m [é b="c"]'.encode(), id="non-ascii-id"),
    pytest.param(b'<14>1 - h a p m [a b="\xff"]', id="invalid-utf8-value"),
    pytest.param(b'<14>1 - h a p m [a b="\xed\xa0\x80"]', id="surrogate-in-value"),
    pytest.param(b'<14>1 - h a p m -[a b="c"]', id="dash-then-element"),
]


@pytest.mark.parametrize("frame", TAKEN)
def test_structured_lines_are_taken_by_the_c_path(frame: bytes) -> None:
    assert same(frame) is not None


@pytest.mark.parametrize("frame", LEFT)
def test_lines_the_format_refuses_are_left_to_python(frame: bytes) -> None:
    assert same(frame) is None


def test_an_emitted_record() -> None:
    frame = (
        b'<165>1 2024-03-12T14:05:09.482Z app7 billing 8812 PAY01 [logops@32473 run_id="r1"'
        b' stream="s1" seq="1042"][meta sequenceId="1042"][origin ip="10.0.0.1"]'
        b" \xef\xbb\xbfcharge \xc3\xa9"
    )
    assert same(frame) == {
        "ts": "2024-03-12T14:05:09.482Z",
        "level": "<165>",
        "syslog_facility": 20,
        "syslog_severity": 5,
        "host": "app7",
        "service": "billing",
        "pid": 8812,
        "msgid": "PAY01",
        "run_id": "r1",
        "stream": "s1",
        "seq": 1042,
        "sd": {"origin": {"ip": "10.0.0.1"}},
        "msg": "charge é",
    }


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(sd_lines(), good_sd_lines(), mutated()), max_size=20))
def test_the_listener_stores_the_same_lines_with_or_without_the_c_path(
    frames: list[bytes],
) -> None:
    frames = [f for f in frames if f]
    items = [("192.0.2.7", "tcp", frames)]
    fast = RecordBuilder(native=True).records(items)
    slow = RecordBuilder(native=False).records(items)
    assert repr(fast) == repr(slow)
    normaliser = native.make_normaliser(PiiConfig(), 256 * 1024)
    stored = [
        normaliser.normalise_batch(Batch(records=recs, batch_id="b", emitter="syslog"), 10**12)
        for recs in (fast, slow)
    ]
    assert stored[0].data == stored[1].data
