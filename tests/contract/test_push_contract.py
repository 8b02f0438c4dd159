"""Every case runs over both fronts: the same batch gets the same answer on gRPC and HTTP."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from clients.transports import GrpcTransport, HttpTransport, Transport, encode_json
from services.common.errors import BadRequest, TooLarge, Unavailable
from services.common.model import Batch, PushResult
from services.ingest.wiring import IngestGateway
from tests.conftest import GatewayFactory, make_transport, stored_lines


def batch(records: list[dict[str, Any]], **meta: str) -> Batch:
    meta.setdefault("batch_id", uuid.uuid4().hex)
    meta.setdefault("emitter", "contract")
    return Batch(records=list(records), **meta)


MIXED = [
    {
        "ts": "2024-03-12T14:05:09.482Z",
        "level": "info",
        "msg": "order placed",
        "stream": "s1",
        "seq": 1,
    },
    {"ts": "2024-03-12T16:05:09+02:00", "level": "ERROR", "msg": "mail bob@example.com failed"},
    {"level": "warn", "msg": "no timestamp here"},
    {"ts": "yesterday-ish", "level": "loud", "msg": "both invalid"},
    {"raw": "not a syslog line at all", "format": "syslog"},
    {"raw": "ts=2024-03-12T14:05:09Z level=debug msg=\"from logfmt\" user=42", "format": "logfmt"},
    {"raw": "x", "format": "no-such-format"},
]


def test_mixed_batch_partial_success(gateway: IngestGateway, client: Transport) -> None:
    b = batch(MIXED, scenario_id="sc", run_id="run-1")
    result = client.send(b)
    assert result.batch_id == b.batch_id
    assert (result.accepted, result.rejected, result.duplicate) == (5, 2, False)
    assert [(r.index, r.reason) for r in result.rejections] == [
        (4, "parse_error"),
        (6, "unknown_format"),
    ]
    m = result.missing
    assert (m.ts_absent, m.ts_invalid, m.level_absent, m.level_invalid) == (1, 1, 0, 1)

    lines = stored_lines(gateway.cfg.sink.dir)
    assert [line["msg"] for line in lines] == [
        "order placed",
        "mail b***@example.com failed",
        "no timestamp here",
        "both invalid",
        "from logfmt",
    ]
    first, second = lines[0], lines[1]
    assert first["ts"] == "2024-03-12T14:05:09.482Z"
    assert second["ts"] == "2024-03-12T14:05:09.000Z"
    assert [line["level"] for line in lines] == ["INFO", "ERROR", "WARN", "INFO", "DEBUG"]
    assert (first["stream"], first["seq"], first["run_id"], first["scenario_id"]) == (
        "s1", 1, "run-1", "sc",
    )
    assert all(line["batch_id"] == b.batch_id and line["emitter"] == "contract" for line in lines)
    assert [line["ts_missing"] for line in lines] == [False, False, True, True, False]
    assert [line["level_missing"] for line in lines] == [False, False, False, True, False]


def test_same_batch_same_stored_lines_on_both_fronts(start_gateway: GatewayFactory) -> None:
    outputs = []
    for name in ("grpc", "http"):
        gw = start_gateway()
        transport = make_transport(gw, name)
        transport.send(batch(MIXED, batch_id="same-id"))
        transport.close()
        lines = stored_lines(gw.cfg.sink.dir)
        for line in lines:
            line.pop("ingest_ts")
            if line["ts_missing"]:
                line.pop("ts")
        outputs.append(lines)
    assert outputs[0] == outputs[1]


def counts(result: PushResult) -> tuple[int, int, dict[str, int]]:
    """What a duplicate answers again: all but the per-record rejection details."""
    return result.accepted, result.rejected, result.missing.to_dict()


def test_retry_with_same_batch_id_is_a_duplicate(gateway: IngestGateway, client: Transport) -> None:
    b = batch(MIXED)
    first = client.send(b)
    again = client.send(b)
    assert again.duplicate and not first.duplicate
    assert counts(again) == counts(first)
    assert again.rejections == []
    assert len(stored_lines(gateway.cfg.sink.dir)) == first.accepted


def test_a_duplicate_after_a_restart_gets_the_original_counts(
    start_gateway: GatewayFactory, front: str, tmp_path: Path
) -> None:
    b = batch(MIXED)
    results = []
    for _ in range(2):
        gw = start_gateway(sink_dir=tmp_path / "kept")
        transport = make_transport(gw, front)
        results.append(transport.send(b))
        transport.close()
        gw.stop(grace=0.5)
    first, again = results
    assert again.duplicate and not first.duplicate
    assert counts(again) == counts(first) == (
        5, 2, {"ts_absent": 1, "ts_invalid": 1, "level_absent": 0, "level_invalid": 1},
    )
    assert len(stored_lines(tmp_path / "kept")) == 5


def test_too_many_records(start_gateway: GatewayFactory, front: str) -> None:
    gw = start_gateway(**{"limits.max_records": 10})
    transport = make_transport(gw, front)
    with pytest.raises(TooLarge) as info:
        transport.send(batch([{"msg": "x"}] * 11))
    assert info.value.reason == "too_many_records"
    assert transport.send(batch([{"msg": "x"}] * 10)).accepted == 10
    assert len(stored_lines(gw.cfg.sink.dir)) == 10


def test_body_over_the_limit(start_gateway: GatewayFactory, front: str) -> None:
    gw = start_gateway(**{"limits.max_body_bytes": 64 * 1024})
    transport = make_transport(gw, front)
    with pytest.raises(TooLarge) as info:
        transport.send(batch([{"msg": "y" * 1000}] * 200))
    assert info.value.reason == "too_large"
    assert transport.send(batch([{"msg": "ok"}])).accepted == 1


def test_overloaded_says_when_to_retry(start_gateway: GatewayFactory, front: str) -> None:
    gw = start_gateway(**{"limits.max_inflight": 0, "limits.retry_after_sec": 2})
    transport = make_transport(gw, front)
    with pytest.raises(Unavailable) as info:
        transport.send(batch([{"msg": "x"}]))
    assert info.value.reason == "overloaded"
    assert info.value.retry_after == 2
    assert stored_lines(gw.cfg.sink.dir) == []


@pytest.mark.parametrize(
    "meta",
    [{"emitter": "x" * 65}, {"batch_id": "b" * 129}, {"emitter": "bad\nname"}, {"run_id": "é"}],
)
def test_bad_batch_names_are_refused(client: Transport, meta: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        client.send(batch([{"msg": "x"}], **meta))


def test_oversized_record_rejected_alone(start_gateway: GatewayFactory, front: str) -> None:
    gw = start_gateway(**{"limits.max_record_bytes": 1000})
    transport = make_transport(gw, front)
    result = transport.send(batch([{"msg": "a"}, {"msg": "b" * 2000}, {"msg": "\x00\x01 binary"}]))
    assert (result.accepted, [(r.index, r.reason) for r in result.rejections]) == (
        2, [(1, "record_too_large")],
    )
    assert [line["msg"] for line in stored_lines(gw.cfg.sink.dir)] == ["a", "\x00\x01 binary"]


def test_batch_without_id_gets_one(gateway: IngestGateway, client: Transport) -> None:
    result = client.send(Batch(records=[{"msg": "x"}]))
    assert result.batch_id.startswith("gw-")
    assert stored_lines(gateway.cfg.sink.dir)[0]["batch_id"] == result.batch_id


def test_no_server_is_a_retryable_unavailable(start_gateway: GatewayFactory, front: str) -> None:
    gw = start_gateway()
    transport = make_transport(gw, front)
    gw.stop(grace=0.1)
    with pytest.raises(Unavailable) as info:
        transport.send(batch([{"msg": "x"}]))
    assert info.value.reason == "downstream_unavailable"
    assert info.value.mapping.retryable
    transport.close()


def test_request_id_travels_both_ways(gateway: IngestGateway, front: str) -> None:
    assert gateway.addresses is not None
    body = batch([{"msg": "x"}])
    if front == "grpc":
        grpc_client = GrpcTransport(
            gateway.addresses.grpc_target, metadata=[("x-request-id", "trace-me-1")]
        )
        result = grpc_client.send(body)
        grpc_client.close()
    else:
        http_client = HttpTransport(gateway.addresses.http_url)
        answer = http_client.post(
            encode_json(body), {"Content-Type": "application/json", "X-Request-ID": "trace-me-1"}
        )
        result = http_client.result(*answer)
        http_client.close()
    assert result.request_id == "trace-me-1"
