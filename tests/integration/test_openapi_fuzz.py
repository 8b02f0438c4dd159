"""schemathesis, as a user runs it, drives the live HTTP front from its own /openapi.json.

Every generated request, valid or not, must get an answer that the document describes
(status code, content type, body schema), never a 5xx; the server stays up throughout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clients.launcher import GatewayProcess
from clients.transports import HttpTransport
from services.common.model import Batch

pytestmark = pytest.mark.slow

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "unsupported_method",
    ]
)


def test_api_answers_as_documented(tmp_path: Path) -> None:
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is a dev dependency: run `make install`"
    gw = GatewayProcess(
        ["ingest", "--http-port", "0", "--grpc-port", "0", "--sink-dir", str(tmp_path / "s")]
    ).start()
    try:
        run = subprocess.run(
            [
                st, "run", gw.http_url + "/openapi.json",
                "--checks", CHECKS,
                "--max-examples", "60",
                "--seed", "1",
                "--workers", "2",
                "--request-timeout", "10",
                "--suppress-health-check", "all",
                "--report-dir", str(tmp_path / "report"),
            ],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        client = HttpTransport(gw.http_url)
        assert client.send(Batch(records=[{"msg": "still up"}])).accepted == 1
        client.close()
    finally:
        assert gw.stop() == 0
