"""A full disk: a clear 503, nothing acknowledged that was not stored, recovery after."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from clients.transports import Transport
from services.common.errors import Unavailable
from services.common.model import Batch
from tests.conftest import GatewayFactory, grow_fs, make_transport, stored_lines


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

    per_batch: dict[str, int] = {}
    for line in stored_lines(tiny_fs / "sink"):
        per_batch[line["batch_id"]] = per_batch.get(line["batch_id"], 0) + 1
    assert per_batch == acked  # every acknowledged batch whole, nothing else

    grow_fs(tiny_fs)
    again = Batch(records=[{"msg": "after"}], batch_id="after-" + front, emitter="full")
    assert client.send(again).accepted == 1
    assert gw.core.readiness() is None
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
