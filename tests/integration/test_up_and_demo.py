"""``logops up`` and ``make demo`` as a user runs them: real processes, free ports.

``logops up`` runs in a temporary folder (its throwaway keys, sink and spool there), its
addresses and its gateways' pids read from the one line it prints at start.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clients.signed import Signer
from clients.transports import GrpcTransport, HttpTransport
from services.common.keys import load_keys_file
from services.common.model import Batch
from services.devkeys import HOP_KEY_ID, ensure_keys
from tests.conftest import stored_lines

START_TIMEOUT_SEC = 60
STOP_TIMEOUT_SEC = 30
UP_LINE = re.compile(
    r"^LogOps up: Auth Gateway (?P<auth_http>\S+) gRPC (?P<auth_grpc>\S+) -> "
    r"Ingest Gateway (?P<ingest_http>\S+) gRPC (?P<ingest_grpc>\S+) "
    r"\(pids auth (?P<auth_pid>\d+), ingest (?P<ingest_pid>\d+)\)"
)


@dataclass
class Up:
    proc: subprocess.Popen[str]
    said: dict[str, str]
    folder: Path

    @property
    def pids(self) -> dict[str, int]:
        return {name: int(self.said[f"{name}_pid"]) for name in ("auth", "ingest")}

    def signer(self) -> Signer:
        return Signer.from_file("demo", self.folder / "keys" / "demo.secret")


def _clean_env() -> dict[str, str]:
    """The user's LogOps settings left out: this test makes its own keys."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LOGOPS_")}


def _first_line(proc: subprocess.Popen[str], pattern: re.Pattern[str]) -> re.Match[str]:
    """The first stdout line matching ``pattern``, read on a thread so a silent process
    cannot hang the test."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    while True:
        line = lines.get(timeout=START_TIMEOUT_SEC)
        if line is None:
            raise AssertionError(f"logops up ended without its line: {seen}")
        seen.append(line)
        match = pattern.match(line)
        if match:
            return match


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    args = [
        sys.executable, "-m", "services.cli", "up",
        "--ingest-http-port", "0", "--ingest-grpc-port", "0",
        "--auth-http-port", "0", "--auth-grpc-port", "0",
        "--keys-dir", str(tmp_path / "keys"), "--sink-dir", str(tmp_path / "sink"),
        "--spool-dir", str(tmp_path / "spool"),
    ]
    with open(tmp_path / "up.log", "wb") as log:
        proc = subprocess.Popen(
            args, cwd=tmp_path, env=_clean_env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=log, text=True,
        )
    try:
        match = _first_line(proc, UP_LINE)
        yield Up(proc, match.groupdict(), tmp_path)
    finally:
        # SIGTERM first: a SIGKILLed logops up would leave its gateways running.
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_SEC)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
def test_a_signed_push_through_auth_is_stored_and_sigterm_stops_both(up: Up) -> None:
    signer = up.signer()
    fronts = {
        "http": HttpTransport(up.said["auth_http"], signer=signer),
        "grpc": GrpcTransport(up.said["auth_grpc"], signer=signer),
    }
    ids = {}
    for front, client in fronts.items():
        batch = Batch(records=[{"level": "INFO", "msg": f"via {front}"}],
                      batch_id=uuid.uuid4().hex, emitter="claimed-by-the-body")
        result = client.send(batch)
        client.close()
        assert (result.accepted, result.spooled) == (1, False), front
        ids[batch.batch_id] = front
    stored = [x for x in stored_lines(up.folder / "sink") if x["batch_id"] in ids]
    # The emitter is the key's, not the body's; each record stored once.
    assert sorted((x["msg"], x["emitter"]) for x in stored) == [
        ("via grpc", "demo"), ("via http", "demo")
    ]
    assert oct((up.folder / "keys" / "demo.secret").stat().st_mode & 0o777) == "0o600"

    up.proc.send_signal(signal.SIGTERM)
    assert up.proc.wait(STOP_TIMEOUT_SEC) == 0
    assert all(_gone(pid) for pid in up.pids.values()), up.pids


@pytest.mark.slow
def test_when_ingest_dies_up_stops_auth_and_exits_1(up: Up) -> None:
    os.kill(up.pids["ingest"], signal.SIGKILL)
    assert up.proc.wait(STOP_TIMEOUT_SEC) == 1
    assert _gone(up.pids["auth"])
    assert "the ingest gateway exited" in (up.folder / "up.log").read_text()


@pytest.mark.slow
def test_demo_goes_through_auth_and_delivers_the_spooled_batch_once(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.demo"], cwd=tmp_path,
        # The scenario part is tested in test_scenario_run.py: a tenth of it is enough here.
        env={**_clean_env(), "LOGOPS_SCENARIO_SCALE": "0.1"},
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"spooled batch \w+: delivered once \(3 of 3 records", out), out
    assert "spooled=True" in out
    assert "401 UNAUTHENTICATED bad_signature" in out
    assert "Both gateways stopped (exit 0)" in out


FREE_PORTS = ["--ingest-http-port", "0", "--ingest-grpc-port", "0", "--ingest-syslog-port", "0",
              "--auth-http-port", "0", "--auth-grpc-port", "0"]


def _background(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``make up``/``make down`` as the Makefile runs them, in ``tmp_path``."""
    return subprocess.run(
        [sys.executable, "-m", "services.background", *args], cwd=tmp_path, env=_clean_env(),
        capture_output=True, text=True, timeout=120,
    )


def _session(pgid: int) -> list[int]:
    """Live processes of a session's process group (zombies excluded)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


@pytest.mark.slow
def test_make_up_twice_then_down_twice(tmp_path: Path) -> None:
    first = _background(tmp_path, "start", "--", *FREE_PORTS)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "LogOps is up" in first.stdout
    pid = int((tmp_path / "data/run/up.pid").read_text())
    assert len(_session(pid)) == 3  # logops up and its two gateways
    again = _background(tmp_path, "start", "--", *FREE_PORTS)
    assert again.returncode == 0 and f"already running (pid {pid})" in again.stdout

    assert _background(tmp_path, "stop").stdout.strip() == f"LogOps (pid {pid}) stopped."
    assert _session(pid) == [] and not (tmp_path / "data/run/up.pid").exists()
    assert "nothing to stop" in _background(tmp_path, "stop").stdout


@pytest.mark.slow
def test_make_down_stops_the_gateways_of_a_killed_up(tmp_path: Path) -> None:
    assert _background(tmp_path, "start", "--", *FREE_PORTS).returncode == 0
    pid = int((tmp_path / "data/run/up.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    down = _background(tmp_path, "stop")
    assert "left gateways running" in down.stdout, down.stdout
    assert _session(pid) == []


@pytest.mark.slow
def test_auth_smoke_passes_against_logops_up(up: Up) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.smoke", "--auth-http", up.said["auth_http"],
         "--auth-grpc", up.said["auth_grpc"],
         "--secret-file", str(up.folder / "keys" / "demo.secret")],
        cwd=up.folder, env=_clean_env(), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 of 6 checks as expected" in done.stdout
    for expected in ("401 bad_signature", "401 clock_skew", "401 replay", "429 rate_limited"):
        assert f"{expected}   " in done.stdout  # expected, then the same as actual


@pytest.mark.slow
def test_auth_smoke_fails_when_answers_differ(tmp_path: Path) -> None:
    secret = tmp_path / "demo.secret"
    secret.write_text("a-secret-of-enough-bytes\n")
    done = subprocess.run(
        [sys.executable, "-m", "services.smoke", "--auth-http", "http://127.0.0.1:1",
         "--auth-grpc", "127.0.0.1:1", "--secret-file", str(secret)],
        cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    assert "DIFFERS" in done.stdout and "0 of 6 checks as expected" in done.stdout


def test_throwaway_keys_load_as_the_gateways_read_them_and_are_kept(tmp_path: Path) -> None:
    keys, made = ensure_keys(tmp_path / "keys")
    assert made and keys.auth_keys is not None and keys.client_secret is not None
    auth, ingest = load_keys_file(keys.auth_keys), load_keys_file(keys.ingest_keys)
    assert [k.key_id for k in auth] == ["demo"]
    assert {k.key_id: k.role for k in ingest} == {HOP_KEY_ID: "forwarder", "demo": "client"}
    hop = ingest.get(HOP_KEY_ID)
    assert hop is not None and hop.signing_secret == keys.hop_secret.read_bytes().strip()
    modes = {p.name: p.stat().st_mode & 0o777 for p in keys.dir.iterdir()}
    assert set(modes.values()) == {0o600} and keys.dir.stat().st_mode & 0o777 == 0o700

    again, made_again = ensure_keys(tmp_path / "keys")
    assert not made_again
    assert again.client_secret is not None
    assert again.client_secret.read_bytes() == keys.client_secret.read_bytes()
    # With the user's own client keys, only the hop key.
    hop_only, _ = ensure_keys(tmp_path / "hop-only", with_client=False)
    assert hop_only.auth_keys is None
    assert [k.key_id for k in load_keys_file(hop_only.ingest_keys)] == [HOP_KEY_ID]
