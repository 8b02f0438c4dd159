"""``logops emit`` as a user runs it: a real process, real files, real gateways, signals."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from services.auth.wiring import AuthGateway
from services.common.keys import ApiKey, KeyRing
from services.ingest.wiring import IngestGateway
from tests.conftest import AuthFactory, GatewayFactory, stored_lines

SECRET = "a secret long enough for the emit cli test"
KEY = ApiKey("cli-key", "cli-emitter", (SECRET.encode(),))


def logops(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "emit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_stdout_gets_one_line_per_record_and_the_seed_fixes_the_content(tmp_path: Path) -> None:
    runs = [
        logops(
            "logfmt",
            "--count",
            "20",
            "--rate",
            "2000",
            "--seed",
            "3",
            "--quiet",
            "--run-id",
            "r-1",
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    assert [run.returncode for run in runs] == [0, 0]
    first, second = (run.stdout.splitlines() for run in runs)
    assert len(first) == 20
    assert [line.split(" run_id=")[0].split(" ", 1)[1] for line in first] == [
        line.split(" run_id=")[0].split(" ", 1)[1] for line in second
    ]
    assert first[7].endswith("run_id=r-1 stream=emit-logfmt seq=7")
    assert "emitted 20 logfmt records over stdout" in runs[0].stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_run_stops_cleanly_with_an_account_of_what_was_sent(
    tmp_path: Path, signum: int
) -> None:
    out = tmp_path / "emit.ndjson"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "emit",
            "json",
            "--transport",
            "file",
            "--target",
            str(out),
            "--rate",
            "500",
            "--duration",
            "120",
            "--json",
            "--quiet",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not out.exists() or out.read_bytes().count(b"\n") < 100:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no lines written"
            time.sleep(0.05)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    account = json.loads(stdout)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert account["stop_reason"] == "signal"
    assert account["sent"] == account["accepted"] == account["due"] == len(lines) >= 100
    assert [line["seq"] for line in lines] == list(range(len(lines)))
    assert account["last_seq"] == len(lines) - 1
    assert account["ok"] is True


@pytest.mark.parametrize(
    "args",
    [
        ("nosuchformat",),
        ("json", "--key-id", "k"),
        ("json", "--count", "1", "--duration", "1"),
        ("json", "--rate", "60000"),
        ("json", "--transport", "file"),
        ("json", "--error-ratio", "2"),
        ("json", "--transport", "syslog+tcp", "--key-id", "k", "--secret-file", "f"),
    ],
)
def test_bad_usage_exits_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    done = logops(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""


@pytest.fixture
def gateways(
    start_gateway: GatewayFactory, auth_gateway: AuthFactory
) -> tuple[IngestGateway, AuthGateway]:
    ingest = start_gateway()
    assert ingest.addresses is not None
    auth = auth_gateway(f"grpc://{ingest.addresses.grpc_target}", KeyRing([KEY]))
    return ingest, auth


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_signed_emit_through_the_auth_gateway(
    gateways: tuple[IngestGateway, AuthGateway], tmp_path: Path, transport: str
) -> None:
    ingest, auth = gateways
    assert auth.addresses is not None
    target = auth.addresses.grpc_target if transport == "grpc" else auth.addresses.http_url
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    run_id = f"cli-{transport}"
    done = logops(
        "syslog",
        "--transport",
        transport,
        "--target",
        target,
        "--rate",
        "3000",
        "--count",
        "700",
        "--batch-size",
        "64",
        "--key-id",
        KEY.key_id,
        "--secret-file",
        str(secret_file),
        "--run-id",
        run_id,
        "--error-ratio",
        "0.5",
        "--json",
        "--quiet",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    account: dict[str, Any] = json.loads(done.stdout)
    assert (account["sent"], account["accepted"], account["batches"]) == (700, 700, 11)
    lines = [line for line in stored_lines(ingest.cfg.sink.dir) if line["run_id"] == run_id]
    assert sorted(line["seq"] for line in lines) == list(range(700))
    assert {(line["emitter"], line["stream"]) for line in lines} == {("cli-emitter", "emit-syslog")}
    errors = sum(line["level"] in ("ERROR", "FATAL") for line in lines)
    assert 250 < errors < 450


def test_rejected_records_exit_1(
    gateways: tuple[IngestGateway, AuthGateway], tmp_path: Path
) -> None:
    _, auth = gateways
    assert auth.addresses is not None
    secret_file = tmp_path / "wrong"
    secret_file.write_text("not the secret the gateway holds for this key\n")
    done = logops(
        "json",
        "--transport",
        "http",
        "--target",
        auth.addresses.http_url,
        "--count",
        "30",
        "--rate",
        "1000",
        "--key-id",
        KEY.key_id,
        "--secret-file",
        str(secret_file),
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "rejected 30" in done.stderr
    assert "bad_signature 30" in done.stderr


def test_nothing_listening_fails_the_records_and_exits_1(tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    done = logops(
        "json",
        "--transport",
        "grpc",
        "--target",
        f"127.0.0.1:{port}",
        "--count",
        "5",
        "--rate",
        "100",
        "--json",
        "--quiet",
        cwd=tmp_path,
    )
    assert done.returncode == 1
    account = json.loads(done.stdout)
    assert (account["failed"], account["accepted"]) == (5, 0)
    assert account["retries"] > 0
