"""Reading a protobuf push on the wire, and imposing names by appending fields."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from logops.v1 import logs_pb2

from services.auth.inspect import (
    log_batch_facts,
    log_batch_names,
    push_request_facts,
    push_request_names,
)
from services.common.errors import BadRequest

names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)


def _request(batch_id: str, emitter: str, n: int) -> bytes:
    batch = logs_pb2.LogBatch(
        batch_id=batch_id,
        emitter=emitter,
        run_id="r",
        records=[logs_pb2.LogRecord(msg=f"m{i}", seq=i) for i in range(n)],
    )
    return bytes(logs_pb2.PushRequest(batch=batch).SerializeToString())


@given(names, names, st.integers(0, 50))
def test_facts_match_what_a_protobuf_parser_reads(batch_id: str, emitter: str, n: int) -> None:
    facts = push_request_facts(_request(batch_id, emitter, n))
    assert (facts.batch_id, facts.emitter, facts.records) == (batch_id, emitter, n)


@given(names, names, st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_appended_names_win_for_a_protobuf_parser(
    batch_id: str, emitter: str, new_id: str, new_emitter: str
) -> None:
    body = _request(batch_id, emitter, 3) + push_request_names(new_id, new_emitter)
    parsed = logs_pb2.PushRequest.FromString(body)
    assert (parsed.batch.batch_id, parsed.batch.emitter) == (new_id, new_emitter)
    assert [r.msg for r in parsed.batch.records] == ["m0", "m1", "m2"]
    assert parsed.batch.run_id == "r"
    assert push_request_facts(body).records == 3
    assert push_request_facts(body).emitter == new_emitter


def test_names_on_a_bare_log_batch() -> None:
    body = logs_pb2.LogBatch(emitter="claimed", records=[logs_pb2.LogRecord(msg="x")])
    wire = body.SerializeToString() + log_batch_names("b1", "key-emitter")
    parsed = logs_pb2.LogBatch.FromString(wire)
    assert (parsed.batch_id, parsed.emitter, len(parsed.records)) == ("b1", "key-emitter", 1)
    assert log_batch_facts(wire).records == 1
    assert push_request_names("", "") == b""


@pytest.mark.parametrize(
    "junk",
    [b"\x0a\xff", b"\x0a\x05ab", b"\x00\x01", b"\x0b", b"\x0a" + b"\x80" * 10],
    ids=["truncated-length", "short-field", "field-zero", "group-start", "endless-varint"],
)
def test_malformed_bytes_are_the_clients_bad_request(junk: bytes) -> None:
    with pytest.raises(BadRequest):
        push_request_facts(junk)


def test_a_name_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(BadRequest, match="emitter"):
        log_batch_facts(b"\x12\x02\xff\xfe")


@given(names, names, st.integers(0, 30))
def test_the_protobuf_runtime_reads_the_same_facts(batch_id: str, emitter: str, n: int) -> None:
    from services.auth import pb_facts

    body = _request(batch_id, emitter, n) + push_request_names("", "k")
    assert pb_facts.push_request_facts(body) == push_request_facts(body)


def test_the_protobuf_runtime_refuses_what_the_reference_refuses() -> None:
    from services.auth import pb_facts

    for junk in (b"\x0a\xff", b"\x0a\x05ab", b"\x0b"):
        with pytest.raises(BadRequest):
            pb_facts.push_request_facts(junk)


def test_json_facts_read_names_and_count_without_the_records() -> None:
    from services.auth.inspect import json_facts, line_count

    facts = json_facts(b'{"batch_id":"b","emitter":"e","records":[{},{"fields":{}}]}')
    assert (facts.batch_id, facts.emitter, facts.records) == ("b", "e", 2)
    assert json_facts(b"[1, 2, 3]").records == 3
    for bad in (b"{", b'{"records": 1}', b'"x"', b'{"records": [], "emitter": 5}'):
        with pytest.raises(BadRequest):
            json_facts(bad)
    assert line_count(b'{"a":1}\n\n  \n{"b":2}\nlast') == 3


def test_a_json_body_that_cannot_be_read_is_refused_saying_why() -> None:
    from services.auth.inspect import json_facts

    with pytest.raises(BadRequest) as info:
        json_facts(b"{")
    assert info.value.message.startswith("body is not valid JSON: ")
    with pytest.raises(BadRequest) as info:
        json_facts(b'{"records": [], "batch_id": 7}')
    assert info.value.message == "'batch_id' and 'emitter' must be strings"
    with pytest.raises(BadRequest) as info:
        json_facts(b'{"batch": []}')
    assert info.value.message == (
        "expected a JSON array of records or a batch object with 'records'"
    )


def test_a_json_batch_without_names_names_nothing() -> None:
    from services.auth.inspect import json_facts

    facts = json_facts(b'{"records": [{}]}')
    assert (facts.batch_id, facts.emitter, facts.records) == ("", "", 1)


def test_records_are_lines_whatever_the_spaces_inside_them() -> None:
    from services.auth.inspect import line_count

    assert line_count(b'{"msg": "two words"}\n \t \n{"msg": "a\\tb"}\n') == 2


def _key(number: int, wire_type: int) -> bytes:
    return bytes([number << 3 | wire_type])


def test_fields_of_every_wire_type_are_skipped_as_a_parser_skips_them() -> None:
    """Unknown fields (a newer client's) of each wire type, among names of every length."""
    long_id, long_emitter = "b" * 128, "e" * 200  # two-byte lengths: 0x80 0x01, 0xC8 0x01
    batch = logs_pb2.LogBatch(
        batch_id=long_id,
        records=[logs_pb2.LogRecord(msg="x" * 20_000), logs_pb2.LogRecord(msg="y")],
    )
    unknown = (
        _key(15, 0) + b"\xac\x02"  # varint 300
        + _key(14, 1) + b"\x01" * 8  # fixed64
        + _key(13, 5) + b"\x02" * 4  # fixed32
    )
    body = unknown + batch.SerializeToString() + unknown + log_batch_names("", long_emitter)
    parsed = logs_pb2.LogBatch.FromString(body)
    facts = log_batch_facts(body)
    assert (facts.batch_id, facts.emitter, facts.records) == (
        parsed.batch_id, parsed.emitter, len(parsed.records)
    ) == (long_id, long_emitter, 2)
    pushed = push_request_facts(logs_pb2.PushRequest(batch=parsed).SerializeToString())
    assert (pushed.batch_id, pushed.emitter, pushed.records) == (long_id, long_emitter, 2)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_key(0, 2) + b"\x00", "protobuf body has a field numbered 0"),
        (_key(1, 2) + b"\x05ab", "protobuf body is truncated"),
        (_key(15, 1) + b"\x00" * 7, "protobuf body is truncated"),
        (_key(15, 3), "protobuf body has a field of wire type 3"),
        (_key(15, 0) + b"\x80" * 10 + b"\x01", "protobuf body has a malformed varint"),
        (_key(15, 0) + b"\x80", "protobuf body has a malformed varint"),
    ],
    ids=["field-0", "length-past-the-end", "fixed-past-the-end", "group", "varint-11-bytes",
         "varint-cut"],
)
def test_malformed_bytes_are_refused_saying_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        log_batch_facts(body)
    assert info.value.message == message


def test_names_of_exactly_128_bytes_are_appended_whole() -> None:
    wire = log_batch_names("i" * 128, "e" * 128)
    parsed = logs_pb2.LogBatch.FromString(wire)
    assert (parsed.batch_id, parsed.emitter) == ("i" * 128, "e" * 128)


@pytest.mark.parametrize("name", ["batch_id", "emitter"])
def test_a_name_that_is_not_utf8_is_refused_by_name(name: str) -> None:
    field = {"batch_id": 1, "emitter": 2}[name]
    with pytest.raises(BadRequest) as info:
        log_batch_facts(_key(field, 2) + b"\x02\xff\xfe")
    assert info.value.message == f"{name} is not valid UTF-8"


@pytest.mark.parametrize("depth", [1000, 1024])
def test_a_json_body_nested_as_deep_as_ingest_reads_is_counted(depth: int) -> None:
    """Deeper than msgspec goes (the recursion limit), within orjson's 1024 levels."""
    from services.auth.inspect import json_facts

    nested = b"[" * (depth - 2) + b"]" * (depth - 2)
    facts = json_facts(b'{"batch_id": "deep", "emitter": "e", "records": [' + nested + b"]}")
    assert (facts.batch_id, facts.emitter, facts.records) == ("deep", "e", 1)
    facts = json_facts(b'{"records": [' + nested + b', {}], "batch_id": null}')
    assert (facts.batch_id, facts.emitter, facts.records) == ("", "", 2)
    facts = json_facts(b"[" + nested + b", {}]")
    assert (facts.batch_id, facts.emitter, facts.records) == ("", "", 2)


def test_a_json_body_nested_deeper_than_ingest_reads_is_the_clients_bad_request() -> None:
    from services.auth.inspect import json_facts

    with pytest.raises(BadRequest) as info:
        json_facts(b"[" * 2000 + b"]" * 2000)
    assert info.value.message.startswith("body is not valid JSON: depth limit exceeded")
