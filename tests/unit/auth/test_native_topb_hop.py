"""The gRPC hop converts an HTTP JSON body in C exactly as its Python reference does.

``_GrpcHop.prepare`` is run twice on the same payload, as the core builds it (the client's
body, the names the gateway imposed as headers, the reference decoder): with the C
extension and without it (``native=False``, the path of a checkout without a compiler).
Both must send the same ``PushRequest`` (compared parsed: upb's own map order is its hash
table's) and map Ingest's answer back to the same indices of the client's body.
``test_native_topb.py`` (under tests/unit/ingest) compares the C function on its own.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Mapping

import orjson
import pytest
from logops.v1 import logs_pb2

from services.auth import hop
from services.auth.hop import Prepared, _GrpcHop, _mapped_back
from services.auth.model import Payload
from services.common.codecs import decode_body, decompress, media_kind
from services.common.model import PushResult, Rejection

pytestmark = pytest.mark.skipif(hop._native is None, reason="the C extension is not built")


@pytest.fixture
def hops() -> Iterator[tuple[_GrpcHop, _GrpcHop]]:
    fast, slow = _GrpcHop("127.0.0.1:1"), _GrpcHop("127.0.0.1:1", native=False)
    yield fast, slow
    fast.close()
    slow.close()


def payload(body: bytes, meta: Mapping[str, str], media: str = "application/json",
            encoding: str = "") -> Payload:  # fmt: skip
    plain = decompress(body, encoding or None, 1 << 24)
    return Payload(
        body, media, content_encoding=encoding, meta=meta, batch_id=meta.get("batch_id", ""),
        decoded=lambda: decode_body(media_kind(media), plain, meta),
    )  # fmt: skip


def same(a: Prepared, b: Prepared) -> None:
    ra, rb = (logs_pb2.PushRequest.FromString(p.body) for p in (a, b))
    assert ra == rb
    assert a.kept is not None and b.kept is not None
    assert (list(a.kept), a.refused, a.media_type) == (list(b.kept), b.refused, b.media_type)


RECORDS = [
    {"ts": "2024-03-12T14:06:40.123Z", "level": "INFO", "msg": "a", "seq": 1,
     "fields": {"region": "eu", "trace_id": "t1"}, "stream": "s"},
    {"msg": "refused", "seq": -5},
    {"raw": "127.0.0.1 - - [12/Mar/2024:14:06:40 +0000] \"GET / HTTP/1.1\" 200 5"},
    {"msg": "b", "seq": 2, "extra": {"n": [1, 2.5, None]}, "level": 30},
    {"msg": "also refused", "seq": 18446744073709551616.0},
    {"msg": "last", "seq": 3},
]  # fmt: skip
META = {"batch_id": "auth-1", "emitter": "key-emitter", "format": "apache_combined"}


@pytest.mark.parametrize(
    "body",
    [
        orjson.dumps(RECORDS),
        orjson.dumps({"batch_id": "own", "run_id": "r1", "records": RECORDS}),
        orjson.dumps({"format": "logfmt", "records": RECORDS[2:3]}),
        b"[]",
    ],
)
def test_a_json_body_is_sent_as_the_reference_sends_it(
    hops: tuple[_GrpcHop, _GrpcHop], body: bytes
) -> None:
    fast, slow = hops
    same(fast.prepare(payload(body, META)), slow.prepare(payload(body, META)))


def test_ingests_answer_maps_back_to_the_clients_indices(hops: tuple[_GrpcHop, _GrpcHop]) -> None:
    fast, slow = hops
    body = orjson.dumps(RECORDS)
    prepared = fast.prepare(payload(body, META))
    assert isinstance(prepared.kept, range | tuple) and list(prepared.kept) == [0, 2, 3, 5]
    assert [r.index for r in prepared.refused] == [1, 4]
    # Ingest refuses the second and fourth record it was sent: the client's 2 and 5.
    answer = PushResult(batch_id="auth-1", accepted=2, rejected=2, rejections=[
        Rejection(1, "parse_error", "bad line"), Rejection(3, "invalid_record", "no")])  # fmt: skip
    mine = _mapped_back(answer, prepared)
    assert mine == _mapped_back(answer, slow.prepare(payload(body, META)))
    assert [r.index for r in mine.rejections] == [1, 2, 4, 5]
    assert mine.rejected == 4


def test_nothing_refused_keeps_every_index_without_a_list(
    hops: tuple[_GrpcHop, _GrpcHop],
) -> None:
    body = orjson.dumps([{"msg": str(i), "seq": i} for i in range(1000)])
    prepared = hops[0].prepare(payload(body, {"batch_id": "b"}))
    assert prepared.kept == range(1000) and prepared.refused == ()
    answer = PushResult("b", accepted=999, rejected=1, rejections=[Rejection(998, "x", "y")])
    assert [r.index for r in _mapped_back(answer, prepared).rejections] == [998]


@pytest.mark.parametrize(
    ("body", "media", "encoding"),
    [
        (gzip.compress(orjson.dumps(RECORDS)), "application/json", "gzip"),
        (b'{"msg":"a"}\n{"msg":"b","seq":-1}\n', "application/x-ndjson", ""),
        (b"ts,level,msg\n2024-01-01T00:00:00Z,INFO,hi\n", "text/csv", ""),
        (b'[{"msg":{"a":1}}, 7]', "application/json", ""),  # declined, and not scanned
        (b'[{"seq":"12"}]', "application/json", ""),  # declined by the C function
    ],
)
def test_what_the_extension_does_not_take_goes_the_reference_way(
    hops: tuple[_GrpcHop, _GrpcHop], body: bytes, media: str, encoding: str
) -> None:
    fast, slow = hops
    same(fast.prepare(payload(body, META, media, encoding)),
         slow.prepare(payload(body, META, media, encoding)))  # fmt: skip


def test_without_the_extension_the_reference_converts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hop, "_native", None)
    fallback = _GrpcHop("127.0.0.1:1")
    try:
        prepared = fallback.prepare(payload(orjson.dumps(RECORDS), META))
    finally:
        fallback.close()
    assert prepared.kept == (0, 2, 3, 5)
    sent = logs_pb2.PushRequest.FromString(prepared.body).batch
    assert (sent.batch_id, sent.emitter, len(sent.records)) == ("auth-1", "key-emitter", 4)
