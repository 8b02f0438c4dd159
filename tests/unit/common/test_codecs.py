"""Body decoding: every content type, per-record errors, and bounded decompression."""

import gzip
import io
import itertools
import tracemalloc
import zlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.codecs import (
    MAX_GZIP_MEMBERS,
    MEDIA_TYPES,
    decode_body,
    decompress,
    media_kind,
)
from services.common.errors import BadRequest, LogOpsError, TooLarge, UnsupportedMediaType
from services.common.model import Batch


def test_media_types_and_parameters() -> None:
    assert media_kind("application/json; charset=utf-8") == "json"
    assert media_kind("Application/X-NDJSON") == "ndjson"
    assert media_kind("text/csv") == "csv"
    assert media_kind("text/plain") == "text"
    assert media_kind("application/x-protobuf") == "protobuf"
    for bad in (None, "", "application/xml", "image/png"):
        with pytest.raises(UnsupportedMediaType):
            media_kind(bad)


def test_json_array_keeps_good_records_and_rejects_non_objects() -> None:
    batch = decode_body("json", b'[{"msg":"a"}, 3, {"msg":"b"}, "x"]', {"emitter": "e1"})
    assert batch.records == [{"msg": "a"}, None, {"msg": "b"}, None]
    assert [(r.index, r.reason) for r in batch.rejections] == [
        (1, "invalid_record"),
        (3, "invalid_record"),
    ]
    assert batch.emitter == "e1"


def test_json_batch_object_carries_its_envelope() -> None:
    body = b'{"batch_id":"b1","emitter":"web","run_id":"r","records":[{"msg":"a"}]}'
    batch = decode_body("json", body, {"emitter": "ignored"})
    assert (batch.batch_id, batch.emitter, batch.run_id) == ("b1", "web", "r")


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"records": 3}', b'{"msg": "no records key"}', b'"x"', b"\xff\xfe", b""],
)
def test_unreadable_json_is_a_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        decode_body("json", body, {})


def test_json_envelope_types_are_checked() -> None:
    with pytest.raises(BadRequest, match="batch_id"):
        decode_body("json", b'{"batch_id": 5, "records": []}', {})


def test_ndjson_bad_line_rejected_alone() -> None:
    body = b'{"msg":"a"}\n\n{broken\n[1]\n{"msg":"b"}\n'
    batch = decode_body("ndjson", body, {"batch_id": "hdr"})
    assert batch.records == [{"msg": "a"}, None, None, {"msg": "b"}]
    assert [(r.index, r.reason) for r in batch.rejections] == [
        (1, "parse_error"),
        (2, "invalid_record"),
    ]
    assert "line 3" in batch.rejections[0].message
    assert batch.batch_id == "hdr"


def test_csv_with_header_and_quoting() -> None:
    body = (
        b'ts,level,msg\n2024-01-01T00:00:00Z,INFO,"hello, world"\n'
        b'2024-01-01T00:00:01Z,ERROR,"say ""hi"""\n'
    )
    batch = decode_body("csv", body, {})
    assert [r["msg"] for r in batch.records if r] == ["hello, world", 'say "hi"']
    assert batch.records[0] is not None and batch.records[0]["format"] == "csv"


def test_csv_row_with_wrong_field_count_is_rejected_alone() -> None:
    body = b"ts,level,msg\n2024-01-01T00:00:00Z,INFO,ok\n1,2\n2024-01-01T00:00:01Z,WARN,fine\n"
    batch = decode_body("csv", body, {})
    assert [r["msg"] if r else None for r in batch.records] == ["ok", None, "fine"]
    assert [(r.index, r.reason) for r in batch.rejections] == [(1, "parse_error")]


def test_text_lines_become_raw_records_with_the_header_format() -> None:
    body = b"first line\r\n\nsecond \xff line\nthird\n"
    batch = decode_body("text", body, {"format": "syslog"})
    assert batch.records == [{"raw": "first line"}, None, {"raw": "third"}]
    assert batch.default_format == "syslog"
    assert [(r.index, r.reason) for r in batch.rejections] == [(1, "parse_error")]


def test_gzip_and_deflate_round_trip() -> None:
    data = b'[{"msg":"x"}]' * 100
    assert decompress(gzip.compress(data), "gzip", 10_000) == data
    assert decompress(zlib.compress(data), "deflate", 10_000) == data
    assert decompress(data, None, 10_000) == data


def test_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))
    assert len(bomb) < 100_000
    with pytest.raises(TooLarge):
        decompress(bomb, "gzip", 4 * 1024 * 1024)


def test_broken_or_unknown_encodings() -> None:
    with pytest.raises(BadRequest):
        decompress(b"not gzip at all", "gzip", 1000)
    with pytest.raises(BadRequest, match="truncated"):
        decompress(gzip.compress(b"x" * 1000)[:-12], "gzip", 10_000)
    with pytest.raises(UnsupportedMediaType):
        decompress(b"x", "br", 1000)


def _members(data: bytes, cuts: list[int], level: int = 6) -> list[bytes]:
    """``data`` split at ``cuts`` into gzip members; some carry a file name and a time."""
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    members = []
    for n, (start, end) in enumerate(itertools.pairwise(bounds)):
        out = io.BytesIO()
        name = f"part{n}.ndjson" if n % 2 else ""
        with gzip.GzipFile(name, "wb", level, out, mtime=n) as fh:
            fh.write(data[start:end])
        members.append(out.getvalue())
    return members


SPLITS = st.tuples(st.binary(max_size=3000), st.lists(st.integers(0, 10_000), max_size=6))


@settings(max_examples=150, deadline=None)
@given(split=SPLITS, level=st.integers(0, 9))
def test_any_split_into_gzip_members_decompresses_to_the_whole(
    split: tuple[bytes, list[int]], level: int
) -> None:
    data, cuts = split
    body = b"".join(_members(data, cuts, level))
    assert decompress(body, "gzip", len(data)) == data
    if data:
        with pytest.raises(TooLarge):
            decompress(body, "gzip", len(data) - 1)


@settings(max_examples=150, deadline=None)
@given(split=SPLITS, junk=st.binary(min_size=1, max_size=64))
def test_bytes_after_the_last_gzip_member_are_refused(
    split: tuple[bytes, list[int]], junk: bytes
) -> None:
    data, cuts = split
    with pytest.raises(BadRequest):
        decompress(b"".join(_members(data, cuts)) + junk, "gzip", 1 << 20)


@settings(max_examples=150, deadline=None)
@given(split=SPLITS, cut=st.integers(1, 10_000))
def test_a_truncated_last_gzip_member_is_refused(split: tuple[bytes, list[int]], cut: int) -> None:
    data, cuts = split
    members = _members(data, cuts)
    last = members[-1]
    body = b"".join(members[:-1]) + last[: cut % (len(last) - 1) + 1]
    with pytest.raises(BadRequest, match="truncated"):
        decompress(body, "gzip", 1 << 20)


def test_junk_after_a_member_is_named_in_the_message() -> None:
    body = gzip.compress(b'{"msg":"a"}\n') + gzip.compress(b'{"msg":"b"}\n') + b"garbage"
    with pytest.raises(BadRequest, match="after member 2"):
        decompress(body, "gzip", 1000)
    # Zero padding (which gzip(1) tolerates) is not a member either.
    with pytest.raises(BadRequest):
        decompress(gzip.compress(b"x") + bytes(16), "gzip", 1000)


def test_a_deflate_stream_is_one_stream() -> None:
    with pytest.raises(BadRequest, match="after the end of its deflate stream"):
        decompress(zlib.compress(b"abc") + zlib.compress(b"def"), "deflate", 1000)
    with pytest.raises(BadRequest, match="truncated"):
        decompress(zlib.compress(b"abc" * 100)[:-3], "deflate", 1000)
    # A zlib stream sent as gzip is still taken alone, and nothing may follow it.
    assert decompress(zlib.compress(b"abc"), "gzip", 1000) == b"abc"
    with pytest.raises(BadRequest):
        decompress(zlib.compress(b"abc") + gzip.compress(b"def"), "gzip", 1000)


def test_a_bomb_split_over_many_members_stops_at_the_limit() -> None:
    member = gzip.compress(b"\0" * (1024 * 1024))
    with pytest.raises(TooLarge, match="after decompression"):
        decompress(member * 40, "gzip", 4 * 1024 * 1024)
    assert len(decompress(member * 4, "gzip", 4 * 1024 * 1024)) == 4 * 1024 * 1024


def test_millions_of_empty_members_are_refused_by_count() -> None:
    empty = gzip.compress(b"")
    body = empty * (4 * 1024 * 1024 // len(empty))
    with pytest.raises(TooLarge, match="members"):
        decompress(body, "gzip", 4 * 1024 * 1024)
    assert decompress(empty * MAX_GZIP_MEMBERS, "gzip", 10) == b""


@pytest.mark.parametrize("body", [b"", b"{}", b"a,b,c\n1,2,3\n", b'"unterminated\n'])
def test_csv_needs_a_header_with_a_message_column(body: bytes) -> None:
    with pytest.raises(BadRequest, match="header"):
        decode_body("csv", body, {})


# --- What a client is told, and what each decoder keeps -----------------------------------


def _refusal(call: Callable[[], object]) -> str:
    with pytest.raises(LogOpsError) as info:
        call()
    return info.value.message


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("json", b"[1,", "body is not valid JSON: "),
        ("json", b'{"records": {}}', "'records' must be an array of records"),
        ("json", b'{"format": 5, "records": []}', "'format' must be a string"),
        ("json", b"7", "expected a JSON array of records or a batch object with 'records'"),
        ("csv", b"ts,msg\n\xff\n", "CSV body is not valid UTF-8: "),
        (
            "csv",
            b"ts,level\n1,INFO\n",
            "CSV body needs a header row naming a message column "
            "(log, message, msg, raw, text), e.g. ts,level,msg",
        ),
    ],
)
def test_an_unreadable_body_is_refused_with_a_message_that_says_why(
    kind: str, body: bytes, message: str
) -> None:
    told = _refusal(lambda: decode_body(kind, body, {}))
    assert told == message if not message.endswith(": ") else told.startswith(message)


def test_each_refused_json_record_says_what_it_was() -> None:
    batch = decode_body("json", b'[3, "x", [1], true, null, 1.5, {"msg": "ok"}]', {})
    assert [(r.index, r.message) for r in batch.rejections] == [
        (0, "record must be an object, not a number"),
        (1, "record must be an object, not a string"),
        (2, "record must be an object, not an array"),
        (3, "record must be an object, not a boolean"),
        (4, "record must be an object, not null"),
        (5, "record must be an object, not a number"),
    ]
    assert batch.records[6] == {"msg": "ok"}


def test_per_line_and_per_row_rejections_name_the_line_or_the_row() -> None:
    ndjson = decode_body("ndjson", b'{"msg": "a"}\n\n[1]\n', {})
    assert [(r.index, r.message) for r in ndjson.rejections] == [(1, "line 3: not an object")]
    text = decode_body("text", b"ok\n\n\xffbad\n", {})
    assert [(r.index, r.message) for r in text.rejections] == [(1, "line 3: not valid UTF-8")]
    csv_batch = decode_body("csv", b"ts,level,msg\n1,INFO,ok\n1,2\n", {})
    assert [(r.index, r.message) for r in csv_batch.rejections] == [
        (1, "the row has 2 fields, the header has 3")
    ]


@pytest.mark.parametrize("kind", ["json", "ndjson"])
def test_a_records_fields_object_is_merged_with_its_own_keys_winning(kind: str) -> None:
    # As LogRecord.fields is on gRPC, so both transports store the same line.
    record = b'{"msg": "a", "fields": {"user": "u1", "msg": "shadowed"}}'
    body = b"[" + record + b"]" if kind == "json" else record + b"\n"
    assert decode_body(kind, body, {}).records == [{"user": "u1", "msg": "a"}]


def test_text_lines_keep_everything_but_their_line_end() -> None:
    body = b"  indented  \r\nLAST WORD IS X\r\nXX\n"
    records = decode_body("text", body, {}).records
    assert records == [{"raw": "  indented  "}, {"raw": "LAST WORD IS X"}, {"raw": "XX"}]


def test_the_envelope_format_wins_over_the_header_and_neither_means_none() -> None:
    body = b'{"format": "syslog", "records": [{"raw": "x"}]}'
    assert decode_body("json", body, {"format": "logfmt"}).default_format == "syslog"
    assert decode_body("json", b'{"records": []}', {"format": "logfmt"}).default_format == "logfmt"
    for kind, plain in (("json", b"[]"), ("ndjson", b""), ("text", b"x\n")):
        assert decode_body(kind, plain, {}).default_format == ""


def test_a_json_taker_gets_json_bodies_first_and_only_those() -> None:
    seen: list[bytes] = []
    kept = Batch(records=[], batch_id="kept", wire=b"[]", wire_kind="json")

    def take(body: bytes) -> Batch | None:
        seen.append(body)
        return kept if body == b"[]" else None

    assert decode_body("json", b"[]", {"emitter": "e"}, json=take) is kept
    assert kept.emitter == "e"
    # Answering None leaves the body to the decoder here.
    assert decode_body("json", b'[{"msg": "a"}]', {}, json=take).records == [{"msg": "a"}]
    assert decode_body("ndjson", b"[]\n", {}, json=take).rejections
    assert seen == [b"[]", b'[{"msg": "a"}]']


def test_protobuf_where_no_decoder_takes_it() -> None:
    told = _refusal(lambda: decode_body("protobuf", b"", {}))
    assert told == "protobuf bodies are not accepted here"


def test_unsupported_types_and_encodings_name_what_is_accepted() -> None:
    accepted = ", ".join(MEDIA_TYPES)
    assert _refusal(lambda: media_kind(None)) == (
        f"unsupported content type 'none'; use one of {accepted}"
    )
    assert _refusal(lambda: media_kind("image/png; q=1")) == (
        f"unsupported content type 'image/png'; use one of {accepted}"
    )
    assert _refusal(lambda: decompress(b"x", "br", 100)) == (
        "unsupported content encoding 'br'; use gzip"
    )
    # A huge header is not echoed back whole.
    assert _refusal(lambda: media_kind("a/" + "b" * 500)) == (
        f"unsupported content type {'a/' + 'b' * 78!r}; use one of {accepted}"
    )
    assert _refusal(lambda: decompress(b"x", "c" * 500, 100)) == (
        f"unsupported content encoding {'c' * 40!r}; use gzip"
    )


def test_media_type_parameters_are_ignored_however_many() -> None:
    assert media_kind("application/json; charset=utf-8; q=1") == "json"
    assert media_kind("text/plain;charset=utf-8;format=flowed") == "text"


def test_every_spelling_of_no_encoding_and_of_gzip() -> None:
    data = b'{"msg": "x"}\n'
    for none in ("", "  ", "identity", "Identity"):
        assert decompress(data, none, 100) == data
    for spelling in ("gzip", "x-gzip", "X-GZIP", " gzip "):
        assert decompress(gzip.compress(data), spelling, 100) == data


def test_a_stream_in_the_wrong_container_is_refused() -> None:
    assert _refusal(lambda: decompress(b"\x1f\x8bjunk", "gzip", 100)).startswith(
        "body is not valid gzip: "
    )
    # deflate is the zlib format: a gzip stream is not taken under that name.
    with pytest.raises(BadRequest, match=r"^body is not valid deflate: "):
        decompress(gzip.compress(b"abc"), "deflate", 100)
    # After a first gzip member only gzip members may follow, not a zlib stream.
    with pytest.raises(BadRequest, match="after member 1 that are not a gzip member"):
        decompress(gzip.compress(b"abc") + zlib.compress(b"def"), "gzip", 100)
    assert _refusal(lambda: decompress(zlib.compress(b"abc") + b"junk", "gzip", 100)) == (
        "gzip body has 4 bytes after the end of its gzip member"
    )


def test_a_csv_header_is_looked_for_in_its_first_4096_characters() -> None:
    def header(width: int) -> bytes:
        return b"x" * (width - 4) + b",msg\n"

    batch = decode_body("csv", header(4096) + b"1,hello\n", {})
    assert batch.records == [{"x" * 4092: "1", "msg": "hello", "format": "csv"}]
    with pytest.raises(BadRequest, match="header"):
        decode_body("csv", header(4097) + b"1,hello\n", {})


def _peak_bytes(call: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(TooLarge):
            call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_bomb_is_refused_without_inflating_it() -> None:
    # The promise is memory, not time. Inflating into a growing buffer may briefly hold
    # the output twice, so the bounds below leave room for that and no more.
    limit = 1 << 20
    bomb = gzip.compress(bytes(64 << 20))
    assert _peak_bytes(lambda: decompress(bomb, "gzip", limit)) < 4 * limit


def test_a_bomb_in_a_later_member_is_refused_within_the_limit() -> None:
    # The first member leaves one byte of room; the bomb after it may add no more than that.
    limit = 256 << 10
    body = gzip.compress(bytes(limit - 1)) + gzip.compress(bytes(64 << 20))
    assert _peak_bytes(lambda: decompress(body, "gzip", limit)) < 4 * limit
