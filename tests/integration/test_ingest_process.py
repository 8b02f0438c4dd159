"""``logops ingest`` as a user runs it: a real process on free ports, signals, crashes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from clients.launcher import GatewayProcess
from clients.transports import GrpcTransport, HttpTransport
from services.common.errors import LogOpsError
from services.common.model import Batch
from tests.conftest import stored_lines

pytestmark = pytest.mark.slow


def ingest(sink: Path, *extra: str) -> GatewayProcess:
    return GatewayProcess(
        ["ingest", "--http-port", "0", "--grpc-port", "0", "--sink-dir", str(sink), *extra]
    )


def test_announces_ports_serves_both_fronts_and_stops_cleanly(tmp_path: Path) -> None:
    gw = ingest(tmp_path / "sink").start()
    try:
        assert gw.listening["sink_dir"] == str(tmp_path / "sink")
        # `make test` builds the C hot path; the process must be running on it.
        assert gw.listening["native"] is True
        with urllib.request.urlopen(gw.http_url + "/healthz") as resp:
            assert resp.status == 200
        with urllib.request.urlopen(gw.http_url + "/readyz") as resp:
            assert resp.status == 200
        with grpc.insecure_channel(gw.grpc_target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            answer = health.Check(health_pb2.HealthCheckRequest(service="logops.v1.LogService"))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            services = _reflected_services(channel)
            assert "logops.v1.LogService" in services
        for client in (GrpcTransport(gw.grpc_target), HttpTransport(gw.http_url)):
            assert client.send(Batch(records=[{"msg": "hi"}], emitter="p")).accepted == 1
            client.close()
    finally:
        assert gw.stop() == 0
    assert any(e.get("event") == "stopped" for e in gw.logs)
    assert len(stored_lines(tmp_path / "sink")) == 2


def _reflected_services(channel: grpc.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    responses = stub.ServerReflectionInfo(iter([request]))
    return {s.name for r in responses for s in r.list_services_response.service}


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("ingest:\n  sink:\n    dirr: /tmp/x\n")
    proc = subprocess.run(
        [sys.executable, "-m", "services.cli", "ingest", "--config", str(cfg)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "ingest.sink.dirr" in proc.stderr


class Pusher(threading.Thread):
    """Pushes batches until stopped, remembering which ones were acknowledged."""

    def __init__(self, target: str, stream: str, size: int = 50) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.client = GrpcTransport(target, timeout=5)
        self.size = size
        self.acked: dict[str, int] = {}
        self.unacked: list[Batch] = []
        self.stop_flag = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop_flag.is_set():
            b = Batch(
                records=[{"msg": f"m{n}-{i}", "stream": self.stream, "seq": n * self.size + i}
                         for i in range(self.size)],
                batch_id=f"{self.stream}-{n}-{uuid.uuid4().hex[:6]}",
                emitter="crash",
            )
            n += 1
            try:
                self.acked[b.batch_id] = self.client.send(b).accepted
            except LogOpsError:
                self.unacked.append(b)
                return


@pytest.mark.parametrize("durability", ["batch", "none"])
def test_kill_9_mid_stream_loses_nothing_acknowledged(tmp_path: Path, durability: str) -> None:
    sink = tmp_path / "sink"
    for round_ in range(3):
        gw = ingest(sink, "--durability", durability).start()
        pusher = Pusher(gw.grpc_target, f"crash{round_}")
        pusher.start()
        deadline = time.monotonic() + 10
        while len(pusher.acked) < 20 + 10 * round_ and time.monotonic() < deadline:
            time.sleep(0.01)
        gw.kill()
        pusher.stop_flag.set()
        pusher.join(10)
        assert len(pusher.acked) >= 20

        gw = ingest(sink, "--durability", durability).start()
        try:
            lines = stored_lines(sink)  # every line parses: no torn line survived the restart
            per_batch: dict[str, int] = {}
            for line in lines:
                per_batch[line["batch_id"]] = per_batch.get(line["batch_id"], 0) + 1
            for batch_id, accepted in pusher.acked.items():
                assert per_batch.get(batch_id) == accepted, batch_id
            client = GrpcTransport(gw.grpc_target)
            some_acked = next(iter(pusher.acked))
            retry = Batch(records=[{"msg": "again"}] * 50, batch_id=some_acked, emitter="crash")
            assert client.send(retry).duplicate
            for lost in pusher.unacked:  # an unacknowledged batch is stored whole on retry
                result = client.send(lost)
                assert result.accepted == 50
            client.close()
            seqs = [
                line["seq"] for line in stored_lines(sink) if line["stream"] == f"crash{round_}"
            ]
            assert len(seqs) == len(set(seqs)) >= 50 * len(pusher.acked)
        finally:
            gw.stop()


@pytest.mark.parametrize("front", ["grpc", "http"])
def test_sigterm_drains_and_keeps_every_acknowledged_batch(tmp_path: Path, front: str) -> None:
    sink = tmp_path / "sink"
    gw = ingest(sink).start()
    pusher = Pusher(gw.grpc_target, "drain")
    if front == "http":
        pusher.client = HttpTransport(gw.http_url, timeout=5)  # type: ignore[assignment]
    pusher.start()
    deadline = time.monotonic() + 10
    while len(pusher.acked) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gw.stop() == 0
    pusher.stop_flag.set()
    pusher.join(10)
    per_batch: dict[str, int] = {}
    for line in stored_lines(sink):
        per_batch[line["batch_id"]] = per_batch.get(line["batch_id"], 0) + 1
    for batch_id, accepted in pusher.acked.items():
        assert per_batch.get(batch_id) == accepted
    assert set(per_batch) - set(pusher.acked) <= {b.batch_id for b in pusher.unacked}


def test_busy_port_is_a_clear_start_failure(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "services.cli", "ingest", "--http-port", str(port),
             "--grpc-port", "0", "--sink-dir", str(tmp_path / "s")],
            capture_output=True, text=True, timeout=60,
        )
    assert proc.returncode == 1
    assert "start_failed" in proc.stderr and "address already in use" in proc.stderr.lower()
