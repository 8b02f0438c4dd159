"""``clients/hmac_curl.sh`` against a real HTTP server that verifies with ``Verifier``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from services.common.errors import Unauthenticated
from services.common.nonces import MemoryNonceStore
from services.common.signing import Verifier, sign_headers
from tests.signing_testing import OLD_SECRET, SECRET, make_keyring

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "clients" / "hmac_curl.sh"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


class SigningServer(ThreadingHTTPServer):
    """Answers 200 with what it verified, or 401 with the gateway's error body."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), VerifyingHandler)
        self.verifier = Verifier(make_keyring(), MemoryNonceStore())
        self.bodies: list[bytes] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/logs"


class VerifyingHandler(BaseHTTPRequestHandler):
    server: SigningServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.bodies.append(body)
        try:
            key = self.server.verifier.verify(self.headers, body, self.headers["Content-Type"])
        except Unauthenticated as exc:
            self.answer(exc.http_status, exc.to_dict())
        else:
            self.answer(200, {"key_id": key.key_id, "emitter": key.emitter, "bytes": len(body)})

    def answer(self, status: int, doc: object) -> None:
        payload = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def server() -> Iterator[SigningServer]:
    srv = SigningServer()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "test-key.secret"
    path.write_bytes(SECRET + b"\n")  # as `echo SECRET > file` leaves it
    path.chmod(0o600)
    return path


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOGOPS_")}
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=30, check=False,
        env={**base, **(env or {})},
    )


def answer(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert done.returncode == 0, done.stderr
    doc: dict[str, object] = json.loads(done.stdout)
    return doc


def test_a_json_body_is_signed_and_accepted(server: SigningServer, secret_file: Path) -> None:
    body = '[{"level":"INFO","msg":"héllo @home"}]\n'
    done = run("-u", server.url, "-k", "test-key", "--secret-file", str(secret_file), "-d", body)
    assert answer(done) == {"key_id": "test-key", "emitter": "test-emitter", "bytes": 40}
    assert server.bodies == [body.encode()]


def test_a_binary_file_is_sent_byte_for_byte(
    server: SigningServer, secret_file: Path, tmp_path: Path
) -> None:
    payload = bytes(range(256)) + b"\r\n\x00\n"
    (tmp_path / "batch.pb").write_bytes(payload)
    done = run(
        "--url", server.url, "--key", "test-key", "--secret-file", str(secret_file),
        "--file", str(tmp_path / "batch.pb"), "-H", "Content-Type: application/x-protobuf",
    )
    assert answer(done)["bytes"] == len(payload)
    assert server.bodies == [payload]


def test_a_timestamp_400_s_old_is_refused_as_clock_skew(
    server: SigningServer, secret_file: Path
) -> None:
    done = run(
        "-u", server.url, "-k", "test-key", "--secret-file", str(secret_file), "-d", "[]",
        "--ts-offset", "-400", "--", "-w", "\n%{http_code}",
    )
    error, status = done.stdout.rsplit("\n", 1)
    assert status == "401"
    assert json.loads(error)["error"]["reason"] == "clock_skew"


def test_echo_headers_prints_what_sign_headers_gives(
    server: SigningServer, secret_file: Path
) -> None:
    nonce, now = "AAECAwQFBgcICQoLDA0ODw", 1_700_000_000
    done = run(
        "-u", server.url, "-k", "test-key", "--secret-file", str(secret_file), "-d", '{"a":1}',
        "-H", "Content-Type: Application/JSON; charset=utf-8", "--echo-headers",
        env={"LOGOPS_SIGN_TIME": str(now), "LOGOPS_SIGN_NONCE": nonce},
    )
    expected = sign_headers(("test-key", SECRET), b'{"a":1}', "application/json", now, nonce)
    assert done.stderr.splitlines() == [f"{name}: {value}" for name, value in expected.items()]
    assert json.loads(done.stdout)["error"]["reason"] == "clock_skew"  # 2023 is long gone


def test_the_secret_from_the_environment_or_the_command_line(
    server: SigningServer,
) -> None:
    by_env = run("-u", server.url, "-k", "test-key", "-d", "[]",
                 env={"LOGOPS_SECRET": OLD_SECRET.decode()})
    assert answer(by_env)["key_id"] == "test-key"
    assert by_env.stderr == ""
    by_flag = run("-u", server.url, "-k", "test-key", "--secret", SECRET.decode(), "-d", "[]")
    assert answer(by_flag)["key_id"] == "test-key"
    assert "warning" in by_flag.stderr and SECRET.decode() not in by_flag.stderr


def test_a_wrong_secret_is_refused_by_the_server(server: SigningServer, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("a-wrong-secret-0123456789")
    done = run("-u", server.url, "-k", "test-key", "--secret-file", str(wrong), "-d", "[]")
    assert json.loads(done.stdout)["error"]["reason"] == "bad_signature"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["-k", "test-key", "-d", "[]"], "--url is required"),
        (["-u", "http://127.0.0.1:9/", "-d", "[]"], "--key is required"),
        (["-u", "http://127.0.0.1:9/", "-k", "test-key", "-d", "[]"], "no secret"),
        (["-u", "http://127.0.0.1:9/", "-k", "k", "--secret", "short", "-d", "[]"], "16 bytes"),
        (["-u", "http://127.0.0.1:9/", "-k", "k", "--ts-offset", "1.5"], "whole seconds"),
        (["-u", "http://127.0.0.1:9/", "-k", "k", "-d", "x", "-f", "/etc/hostname"], "not both"),
        (["--bogus"], "unknown option --bogus"),
        (["-u"], "-u needs a value"),
    ],
)
def test_bad_options_exit_2_with_a_message(args: list[str], says: str) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert says in done.stderr


def test_help_names_every_option() -> None:
    done = run("--help")
    assert done.returncode == 0
    for option in ("--url", "--method", "--key", "--secret-file", "--secret", "--data",
                   "--file", "-H", "--ts-offset", "--echo-headers", "LOGOPS_SECRET"):
        assert option in done.stdout


def test_the_script_is_shellcheck_clean() -> None:
    assert shutil.which("shellcheck"), "shellcheck is missing: `make system-deps` installs it"
    done = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
