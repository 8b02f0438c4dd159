"""RFC 6587 framing: what a syslog TCP stream yields, however it is split into reads."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.ingest.syslog.framing import (
    MAX_HEADER_DIGITS,
    Decoded,
    FrameDecoder,
    datagram_message,
)

MAX = 64
# Messages as senders write them: no LF/NUL inside (LF framing could not carry them).
messages = st.lists(
    st.binary(min_size=1, max_size=MAX).filter(
        lambda m: b"\n" not in m and b"\0" not in m and not m.endswith(b"\r")
    ),
    max_size=20,
)


def decode(stream: bytes, cuts: list[int], max_frame: int = MAX) -> Decoded:
    """Everything the decoder yields for ``stream`` read in pieces ending at ``cuts``."""
    dec = FrameDecoder(max_frame)
    total = Decoded()
    start = 0
    for cut in [*sorted(set(cuts)), len(stream)]:
        for part in (dec.feed(stream[start:cut]),):
            total.frames += part.frames
            total.oversized += part.oversized
            total.error = total.error or part.error
        start = max(start, cut)
    end = dec.finish()
    total.frames += end.frames
    total.oversized += end.oversized
    total.error = total.error or end.error
    return total


def octet_stream(msgs: list[bytes]) -> bytes:
    return b"".join(b"%d %s" % (len(m), m) for m in msgs)


def splits(stream: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(0, len(stream)), max_size=12)


@given(messages, st.data())
def test_octet_counting_gives_each_message_back_whatever_the_reads(
    msgs: list[bytes], data: st.DataObject
) -> None:
    stream = octet_stream(msgs)
    got = decode(stream, data.draw(splits(stream)))
    assert got.error is None and got.oversized == 0
    assert got.frames == msgs


@given(messages, st.sampled_from([b"\n", b"\r\n", b"\0"]), st.data())
def test_lf_framing_gives_each_line_back_whatever_the_reads(
    msgs: list[bytes], end: bytes, data: st.DataObject
) -> None:
    lines = [b"<13>" + m[: MAX - 4] for m in msgs]
    stream = b"".join(line + end for line in lines)
    got = decode(stream, data.draw(splits(stream)))
    assert got.error is None and got.oversized == 0
    assert got.frames == lines


@given(st.binary(max_size=400), st.data(), st.integers(1, 40))
def test_any_bytes_give_the_same_result_however_they_are_split(
    stream: bytes, data: st.DataObject, max_frame: int
) -> None:
    whole = decode(stream, [], max_frame)
    split = decode(stream, data.draw(splits(stream)), max_frame)
    assert split.frames == whole.frames
    assert split.oversized == whole.oversized
    assert (split.error is None) == (whole.error is None)
    assert all(0 < len(f) <= max_frame for f in whole.frames)


pieces = st.one_of(
    st.binary(min_size=1, max_size=MAX * 2).map(lambda m: b"%d %s" % (len(m), m)),
    st.sampled_from([b"\n", b"\r\n", b"\0", b" ", b"0 ", b"12", b"<13>", b"99999999999 "]),
    st.binary(max_size=30),
)


@given(st.lists(pieces, max_size=12).map(b"".join), st.data(), st.integers(1, MAX))
def test_streams_of_frames_and_junk_give_the_same_result_however_split(
    stream: bytes, data: st.DataObject, max_frame: int
) -> None:
    whole = decode(stream, [], max_frame)
    split = decode(stream, data.draw(splits(stream)), max_frame)
    assert (split.frames, split.oversized) == (whole.frames, whole.oversized)
    assert (split.error is None) == (whole.error is None)


def test_the_first_byte_decides_the_framing() -> None:
    octets = FrameDecoder(MAX)
    assert octets.feed(b"5 hello3 abc").frames == [b"hello", b"abc"]
    assert octets.octet_counting is True
    lines = FrameDecoder(MAX)
    assert lines.feed(b"<13>one\n5 two\n").frames == [b"<13>one", b"5 two"]
    assert lines.octet_counting is False


def test_the_lf_loggen_puts_inside_a_counted_frame_is_not_part_of_the_message() -> None:
    dec = FrameDecoder(MAX)
    assert dec.feed(b"6 hello\n7 hello\r\n").frames == [b"hello", b"hello"]


def test_an_oversized_counted_frame_is_skipped_and_the_stream_stays_in_sync() -> None:
    big = b"x" * (MAX + 1)
    stream = octet_stream([b"before", big, b"after"])
    for cuts in ([], [3], [12, 40, 60], list(range(len(stream)))):
        got = decode(stream, cuts)
        assert got.frames == [b"before", b"after"]
        assert got.oversized == 1 and got.error is None


def test_an_oversized_line_is_dropped_up_to_its_lf() -> None:
    big = b"y" * (MAX + 10)
    stream = b"<13>first\n" + big + b"\n<13>second\n" + big
    for cuts in ([], [15], [20, 30, 80], list(range(len(stream)))):
        got = decode(stream, cuts)
        assert got.frames == [b"<13>first", b"<13>second"]
        assert got.oversized == 2 and got.error is None


def test_a_line_of_exactly_the_limit_is_kept_with_or_without_cr() -> None:
    line = b"<" + b"z" * (MAX - 1)
    assert decode(line + b"\r\n" + line + b"\n" + line, [MAX]).frames == [line] * 3


def test_a_bad_header_is_fatal_after_the_frames_before_it() -> None:
    dec = FrameDecoder(MAX)
    got = dec.feed(b"3 abc12x hello")
    assert got.frames == [b"abc"]
    assert got.error is not None and "octet-counting header" in got.error
    assert dec.feed(b"3 abc").error == got.error
    assert dec.feed(b"").frames == []


def test_a_header_with_a_leading_zero_or_too_many_digits_is_fatal() -> None:
    assert FrameDecoder(MAX).feed(b"5 hello05 hello").error is not None
    long_header = b"1" + b"0" * MAX_HEADER_DIGITS
    assert FrameDecoder(MAX).feed(long_header).error is not None
    assert FrameDecoder(MAX).feed(long_header[:-1]).error is None  # may still be a length


def test_a_stream_that_ends_inside_a_counted_frame_is_an_error() -> None:
    dec = FrameDecoder(MAX)
    assert dec.feed(b"10 short").frames == []
    end = dec.finish()
    assert end.error is not None and "ended inside a frame" in end.error


def test_the_last_line_without_a_terminator_is_kept_at_end_of_stream() -> None:
    dec = FrameDecoder(MAX)
    assert dec.feed(b"<13>a\n<13>b").frames == [b"<13>a"]
    assert dec.finish().frames == [b"<13>b"]
    assert dec.finish().frames == []


def test_held_bytes_stay_bounded_by_the_frame_limit() -> None:
    dec = FrameDecoder(MAX)
    for _ in range(100):
        dec.feed(b"w" * 50)
        assert dec.pending <= MAX + 1
    octets = FrameDecoder(MAX)
    octets.feed(b"100000 ")
    for _ in range(100):
        octets.feed(b"v" * 500)
        assert octets.pending == 0


def test_a_datagram_is_one_message() -> None:
    assert datagram_message(b"<13>one\n", MAX) == b"<13>one"
    assert datagram_message(b"<13>a\nb", MAX) == b"<13>a\nb"
    assert datagram_message(b"\n\0", MAX) is None
    assert datagram_message(b"x" * (MAX + 1), MAX) is None
    assert datagram_message(b"", MAX) is None


def test_a_datagram_loses_an_octet_count_only_when_it_counts_the_rest() -> None:
    assert datagram_message(b"8 <13>one\n", MAX) == b"<13>one"
    assert datagram_message(b"7 <13>one", MAX) == b"<13>one"
    assert datagram_message(b"9 <13>one", MAX) == b"9 <13>one"
    assert datagram_message(b"3 apples", MAX) == b"3 apples"
