"""An HTTP body converted for a gRPC hop, and Ingest's answer mapped back to it."""

from __future__ import annotations

from logops.v1 import logs_pb2

from services.auth.hop import _converted, _mapped_back
from services.common.codecs import decode_body
from services.common.model import PushResult, Rejection


def test_records_keep_their_original_indices_through_the_conversion() -> None:
    body = b'{"msg":"a"}\nnot json\n{"msg":"b","seq":"x"}\n{"msg":"c","seq":3}\n'
    batch = decode_body("ndjson", body, {"batch_id": "b1", "emitter": "e"})
    prepared = _converted(batch)
    sent = logs_pb2.PushRequest.FromString(prepared.body).batch
    assert (sent.batch_id, sent.emitter) == ("b1", "e")
    assert [r.msg for r in sent.records] == ["a", "c"]  # line 2 unreadable, line 3 bad seq
    assert prepared.kept == (0, 3)
    # Ingest refuses its second record (index 1 of what it got): index 3 of the body.
    answer = PushResult("b1", accepted=1, rejected=1, rejections=[Rejection(1, "parse_error", "x")])
    result = _mapped_back(answer, prepared)
    assert [(r.index, r.reason) for r in result.rejections] == [
        (1, "parse_error"), (2, "invalid_record"), (3, "parse_error"),
    ]
    assert (result.accepted, result.rejected) == (1, 3)


def test_raw_lines_take_the_bodys_format() -> None:
    batch = decode_body("text", b"<13>Oct 11 22:14:15 host app: hi\n", {"format": "syslog3164"})
    sent = logs_pb2.PushRequest.FromString(_converted(batch).body).batch
    assert (sent.records[0].raw, sent.records[0].format) == (
        "<13>Oct 11 22:14:15 host app: hi", "syslog3164"
    )
