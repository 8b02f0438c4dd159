"""A full disk: a clear 503, nothing acknowledged that was not stored, recovery after."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients.transports import Transport
from services.common.errors import Unavailable
from services.common.model import Batch
from services.ingest.wiring import IngestGateway
from tests.conftest import GatewayFactory, grow_fs, make_transport, stored_lines

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _grpc_health(gw: IngestGateway, wanted: int) -> int:
    """gRPC health of the push service, polled until it says ``wanted`` (or 10 s pass)."""
    assert gw.addresses is not None
    with grpc.insecure_channel(gw.addresses.grpc_target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="logops.v1.LogService")
        deadline = time.monotonic() + 10
        while True:
            status = int(stub.Check(request, timeout=5).status)
            if status == wanted or time.monotonic() > deadline:
                return status
            time.sleep(0.1)


def _fill(client: Transport) -> tuple[dict[str, int], Unavailable]:
    acked: dict[str, int] = {}
    for n in range(1000):
        b = Batch(records=[{"msg": f"{n} " + "x" * 200, "seq": n}] * 20,
                  batch_id=f"full-{n}-{uuid.uuid4().hex[:6]}", emitter="full")
        try:
            acked[b.batch_id] = client.send(b).accepted
        except Unavailable as exc:
            return acked, exc
    raise AssertionError("the 256 KiB disk never filled up")


def test_full_disk_answers_503_and_recovers(
    start_gateway: GatewayFactory, tiny_fs: Path, front: str
) -> None:
    gw = start_gateway(sink_dir=tiny_fs / "sink")
    client = make_transport(gw, front)
    acked, err = _fill(client)
    assert err.reason == "sink_unavailable" and err.retry_after == 1
    assert acked, "some batches fit before the disk filled"
    assert gw.core.readiness() is not None
    assert _grpc_health(gw, wanted=NOT_SERVING) == NOT_SERVING

    per_batch: dict[str, int] = {}
    for line in stored_lines(tiny_fs / "sink"):
        per_batch[line["batch_id"]] = per_batch.get(line["batch_id"], 0) + 1
    assert per_batch == acked  # every acknowledged batch whole, nothing else

    grow_fs(tiny_fs)
    again = Batch(records=[{"msg": "after"}], batch_id="after-" + front, emitter="full")
    assert client.send(again).accepted == 1
    assert gw.core.readiness() is None
    assert _grpc_health(gw, wanted=SERVING) == SERVING
    client.close()


@pytest.mark.parametrize("durability", ["batch", "none"])
def test_full_disk_in_every_durability_mode(
    start_gateway: GatewayFactory, tiny_fs: Path, durability: str
) -> None:
    gw = start_gateway(sink_dir=tiny_fs / "sink", **{"sink.durability": durability})
    client = make_transport(gw, "http")
    acked, _ = _fill(client)
    assert sum(acked.values()) == len(stored_lines(tiny_fs / "sink"))
    client.close()


def test_readyz_says_why_while_the_disk_is_full(
    start_gateway: GatewayFactory, tiny_fs: Path
) -> None:
    import http.client
    import json

    gw = start_gateway(sink_dir=tiny_fs / "sink", **{"limits.retry_after_sec": 3})
    client = make_transport(gw, "http")
    _fill(client)
    client.close()
    assert gw.addresses is not None
    conn = http.client.HTTPConnection(gw.addresses.http_host, gw.addresses.http_port, timeout=5)
    conn.request("GET", "/readyz")
    resp = conn.getresponse()
    err = json.loads(resp.read())["error"]
    conn.close()
    assert resp.status == 503 and resp.getheader("Retry-After") == "3"
    assert err["reason"] == "sink_unavailable" and err["message"]
