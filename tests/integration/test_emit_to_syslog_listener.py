"""``logops emit`` over syslog into the Ingest Gateway's own syslog listener, end to end.

The lines carry run_id, stream and seq themselves (keys in JSON, the ``logops@32473`` SD
element in RFC 5424), so the sink shows whether every record arrived exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from emitters.formats import FORMATS
from services.ingest.wiring import IngestGateway
from tests.conftest import GatewayFactory, stored_lines

COUNT = 300


@pytest.fixture
def ingest(start_gateway: GatewayFactory) -> IngestGateway:
    return start_gateway(**{"syslog.batch_delay_ms": 10})


def _stored(gw: IngestGateway, run_id: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        lines = [r for r in stored_lines(gw.cfg.sink.dir) if r["run_id"] == run_id]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("fmt", "transport", "framing"),
    [
        ("json", "syslog+tcp", "octet"),
        ("json", "syslog+tcp", "lf"),
        ("syslog5424", "syslog+tcp", "octet"),
        ("syslog5424", "syslog+udp", "octet"),
        ("logfmt", "syslog+udp", "octet"),
    ],
)
def test_every_emitted_line_is_stored_once(
    ingest: IngestGateway, tmp_path: Path, fmt: str, transport: str, framing: str
) -> None:
    if fmt not in FORMATS:
        pytest.skip(f"format {fmt} is not registered")
    addresses = ingest.syslog_addresses
    assert addresses is not None
    target = addresses.tcp_target if transport == "syslog+tcp" else addresses.udp_target
    run_id = f"syslog-{fmt}-{transport}-{framing}"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "emit",
            fmt,
            "--transport",
            transport,
            "--target",
            target,
            "--framing",
            framing,
            "--count",
            str(COUNT),
            "--rate",
            "3000",
            "--run-id",
            run_id,
            "--stream",
            "listener#1",
            "--json",
            "--quiet",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["accepted"] == COUNT
    lines = _stored(ingest, run_id, COUNT)
    assert sorted(line["seq"] for line in lines) == list(range(COUNT))
    assert {line["stream"] for line in lines} == {"listener#1"}
    assert {line["format"] for line in lines} == {fmt}
