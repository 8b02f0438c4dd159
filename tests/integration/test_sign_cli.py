"""``logops sign`` as a user runs it: headers that verify, in three formats."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.nonces import MemoryNonceStore
from services.common.signing import Verifier, sign_headers
from tests.signing_testing import SECRET, make_keyring

NONCE, NOW = "AAECAwQFBgcICQoLDA0ODw", 1_700_000_000
FIXED = {"LOGOPS_SIGN_TIME": str(NOW), "LOGOPS_SIGN_NONCE": NONCE}


def run(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LOGOPS_")}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "sign", *args], capture_output=True,
        timeout=60, check=False, input=stdin if stdin is not None else b"",
        env={**base, **(env or {})},
    )


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_bytes(SECRET + b"\r\n")
    return path


def test_json_format_is_the_five_headers_of_sign_headers(secret_file: Path) -> None:
    done = run("--key-id", "test-key", "--secret-file", str(secret_file), "--data", '{"a":1}',
               "--format", "json", env=FIXED)
    assert done.returncode == 0, done.stderr
    expected = sign_headers(("test-key", SECRET), b'{"a":1}', "application/json", NOW, NONCE)
    assert json.loads(done.stdout) == expected


def test_a_binary_file_from_stdin_signs_and_verifies(secret_file: Path) -> None:
    body = bytes(range(256))
    done = run("--key-id", "test-key", "--secret-file", str(secret_file), "--file", "-",
               "--media-type", "application/x-protobuf", stdin=body)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert lines[0] == "Content-Type: application/x-protobuf"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    verifier = Verifier(make_keyring(), MemoryNonceStore())
    assert verifier.verify(headers, body, "application/x-protobuf").key_id == "test-key"


def test_curl_format_is_shell_words_and_every_run_has_a_new_nonce(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b"[]")
    args = ("--key-id", "test-key", "--file", str(body), "--format", "curl")
    first, second = (run(*args, env={"LOGOPS_SECRET": SECRET.decode()}) for _ in range(2))
    words = shlex.split(first.stdout.decode())
    assert words[0::2] == ["-H"] * 6
    headers = dict(w.split(": ", 1) for w in words[1::2])
    assert headers["Content-Type"] == "application/json"
    assert headers["x-logops-nonce"] != shlex.split(second.stdout.decode())[5].split(": ")[1]
    Verifier(make_keyring(), MemoryNonceStore()).verify(headers, b"[]", "application/json")


def test_ts_offset_shifts_the_timestamp(secret_file: Path) -> None:
    done = run("--key-id", "test-key", "--secret-file", str(secret_file), "--data", "",
               "--ts-offset", "-400", "--format", "json", env=FIXED)
    assert json.loads(done.stdout)["x-logops-timestamp"] == str(NOW - 400)


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--key-id", "k", "--data", "x"], {}, b"no secret"),
        (["--key-id", "k", "--data", "x"], {"LOGOPS_SECRET": "short"}, b"shorter than 16"),
        (["--key-id", "a b", "--data", "x"], {"LOGOPS_SECRET": SECRET.decode()}, b"key id"),
        (["--key-id", "k", "--file", "/nonexistent"], {"LOGOPS_SECRET": SECRET.decode()},
         b"/nonexistent"),
        (["--data", "x"], {"LOGOPS_SECRET": SECRET.decode()}, b"--key-id"),
    ],
)
def test_bad_input_is_exit_2(args: list[str], env: dict[str, str], says: bytes) -> None:
    done = run(*args, env=env)
    assert done.returncode == 2
    assert says in done.stderr
    assert SECRET not in done.stderr
