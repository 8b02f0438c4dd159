"""The body encoders the HTTP transport shares: what each kind puts on the wire, read back
with the gateways' own decoders."""

from __future__ import annotations

import pytest

from clients.targets import TransportSpec, host_port
from clients.transports import (
    HTTP_BODIES,
    HttpTransport,
    encode_csv,
    encode_ndjson,
    encode_text,
    meta_headers,
)
from services.common.codecs import decode_body, media_kind
from services.common.model import Batch

RECORDS = [
    {"raw": 'ts=1 msg="a, b"', "format": "logfmt", "stream": "s", "seq": 0},
    {"raw": 'say "hi"', "format": "logfmt", "stream": "s", "seq": 1, "extra": {"k": 1}},
]


def _batch() -> Batch:
    return Batch(list(RECORDS), batch_id="b-1", emitter="em", run_id="run-1")


def test_ndjson_is_one_record_per_line() -> None:
    body = encode_ndjson(_batch())
    assert body.count(b"\n") == 2 and body.endswith(b"\n")
    decoded = decode_body("ndjson", body, {})
    assert decoded.records == RECORDS


def test_csv_has_a_header_of_every_key_and_reads_back() -> None:
    body = encode_csv(_batch())
    assert body.splitlines()[0] == b"raw,format,stream,seq,extra"
    decoded = decode_body("csv", body, {})
    assert decoded.records == [
        {"raw": 'ts=1 msg="a, b"', "format": "logfmt", "stream": "s", "seq": "0"},
        {"raw": 'say "hi"', "format": "logfmt", "stream": "s", "seq": "1", "extra": '{"k":1}'},
    ]


def test_text_carries_the_lines_only() -> None:
    body = encode_text(_batch())
    assert body == b'ts=1 msg="a, b"\nsay "hi"\n'
    assert decode_body("text", body, {}).records == [{"raw": r["raw"]} for r in RECORDS]
    with pytest.raises(ValueError):
        encode_text(Batch([{"raw": "two\nlines"}]))
    with pytest.raises(ValueError):
        encode_text(Batch([{"msg": "no raw line"}]))


def test_bodies_without_an_envelope_name_the_batch_in_headers() -> None:
    headers = meta_headers(_batch())
    assert headers == {
        "X-LogOps-Batch-Id": "b-1",
        "X-LogOps-Emitter": "em",
        "X-LogOps-Run-Id": "run-1",
        "X-LogOps-Format": "logfmt",
    }
    prepared = HttpTransport("http://127.0.0.1:1", HTTP_BODIES["text"]).prepare(_batch())
    assert prepared.headers["X-LogOps-Run-Id"] == "run-1"
    assert prepared.media_type == "text/plain"


@pytest.mark.parametrize("kind", sorted(HTTP_BODIES))
def test_every_body_kind_is_one_the_gateways_read(kind: str) -> None:
    assert media_kind(HTTP_BODIES[kind]) == kind


def test_transport_specs_say_what_the_line_must_carry() -> None:
    assert TransportSpec("grpc").line_keys == ()
    assert TransportSpec("http", http_body="csv").line_keys == ()
    assert TransportSpec("http", http_body="text").line_keys == ("run_id", "stream", "seq")
    assert TransportSpec("syslog+udp").line_keys == ("run_id", "stream", "seq")
    assert TransportSpec("grpc").address == "127.0.0.1:50052"
    assert TransportSpec("http").address == "http://127.0.0.1:8081"
    with pytest.raises(ValueError):
        TransportSpec("file")
    with pytest.raises(ValueError):
        TransportSpec("carrier-pigeon")


def test_host_port_reads_the_usual_spellings() -> None:
    assert host_port("10.0.0.1:601", 5514) == ("10.0.0.1", 601)
    assert host_port("tcp://example.net", 5514) == ("example.net", 5514)
    assert host_port("[::1]:5514", 1) == ("::1", 5514)
