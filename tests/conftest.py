"""Shared fixtures: a real Ingest Gateway on free ports, and clients for each front."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from clients.transports import GrpcTransport, HttpTransport, Transport
from services.common.config import IngestConfig, load_config
from services.ingest.wiring import IngestGateway

FRONTS = ("grpc", "http")


def ingest_config(sink_dir: Path, **overrides: Any) -> IngestConfig:
    """Ingest config on free loopback ports with ``overrides`` as dotted keys below ingest."""
    base = {
        "ingest.http.port": 0,
        "ingest.grpc.port": 0,
        "ingest.syslog.port": 0,
        "ingest.sink.dir": str(sink_dir),
        "ingest.shutdown_grace_sec": 1.0,
    }
    base.update({f"ingest.{k}": v for k, v in overrides.items()})
    return load_config(env={}, overrides=base).ingest


GatewayFactory = Callable[..., IngestGateway]


def pytest_configure(config: pytest.Config) -> None:
    """Gateways started as processes (``logops ingest``) bind their syslog listener on a
    free port too, not the default 5514 that parallel tests (or a real one) would share."""
    os.environ.setdefault("LOGOPS_INGEST_SYSLOG_PORT", "0")


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    """Start Ingest Gateways in this process on free ports; all are stopped afterwards."""
    started: list[IngestGateway] = []

    def start(**overrides: Any) -> IngestGateway:
        sink_dir = overrides.pop("sink_dir", tmp_path / f"sink{len(started)}")
        gw = IngestGateway(ingest_config(sink_dir, **overrides), CollectorRegistry())
        gw.start()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop(grace=0.5)


@pytest.fixture
def gateway(start_gateway: GatewayFactory) -> IngestGateway:
    return start_gateway()


def make_transport(gw: IngestGateway, front: str) -> Transport:
    assert gw.addresses is not None
    if front == "grpc":
        return GrpcTransport(gw.addresses.grpc_target)
    return HttpTransport(gw.addresses.http_url)


@pytest.fixture(params=FRONTS)
def front(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(gateway: IngestGateway, front: str) -> Iterator[Transport]:
    transport = make_transport(gateway, front)
    yield transport
    transport.close()


def stored_lines(sink_dir: str | Path) -> list[dict[str, Any]]:
    """Every NDJSON record in a sink folder, in file order."""
    out: list[dict[str, Any]] = []
    for path in sorted(Path(sink_dir).glob("*.ndjson")):
        with path.open("rb") as fh:
            out.extend(json.loads(line) for line in fh)
    return out


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB tmpfs, so "disk full" is the kernel's ENOSPC and not a simulation.

    Needs the right to mount (root here and in CI); skipped where that is missing.
    """
    import subprocess

    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
        capture_output=True, check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def grow_fs(mnt: Path, size: str = "8m") -> None:
    import subprocess

    subprocess.run(["mount", "-o", f"remount,size={size}", str(mnt)], check=True)


AuthFactory = Callable[..., Any]


def auth_config(spool_dir: Path, forward: str, **overrides: Any) -> Any:
    """Auth config on free loopback ports forwarding to ``forward``, with ``overrides`` as
    dotted keys below auth."""
    base = {
        "auth.http.port": 0,
        "auth.grpc.port": 0,
        "auth.spool.dir": str(spool_dir),
        "auth.forward.target": forward,
        "auth.shutdown_grace_sec": 1.0,
    }
    base.update({f"auth.{k}": v for k, v in overrides.items()})
    return load_config(env={}, overrides=base).auth


@pytest.fixture
def auth_gateway(tmp_path: Path) -> Iterator[AuthFactory]:
    """Start Auth Gateways in this process on free ports: ``start(forward, keys,
    **overrides)`` (``keys`` a KeyRing, or None in mode none); all are stopped afterwards."""
    from services.auth.wiring import AuthGateway

    started: list[AuthGateway] = []

    def start(forward: str, keys: Any, **overrides: Any) -> AuthGateway:
        spool_dir = overrides.pop("spool_dir", tmp_path / f"spool{len(started)}")
        gw = AuthGateway(auth_config(spool_dir, forward, **overrides), keys, CollectorRegistry())
        gw.start()
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop(grace=0.5)
