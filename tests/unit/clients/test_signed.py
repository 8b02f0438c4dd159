"""Client signing: secrets read from files as written, signatures the gateways accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from clients.signed import Signer, as_signer, secret_file
from services.common.errors import Unauthenticated
from services.common.keys import ApiKey, KeyRing
from services.common.nonces import MemoryNonceStore
from services.common.signing import H_KEY_ID, H_NONCE, Verifier

SECRET = b"0123456789abcdef-client-secret"
KEY = ApiKey("web-1", "web", (SECRET, b"an older secret, still accepted"))


def verifier() -> Verifier:
    return Verifier(KeyRing([KEY]), MemoryNonceStore())


@pytest.mark.parametrize(
    ("content", "secret"),
    [
        (SECRET + b"\n", SECRET),
        (SECRET + b"\r\n", SECRET),
        (SECRET, SECRET),
        (SECRET + b"\n\n", SECRET + b"\n"),  # only the one line break echo wrote
        (b" " + SECRET + b" \n", b" " + SECRET + b" "),
    ],
)
def test_secret_file_drops_one_final_line_break(
    tmp_path: Path, content: bytes, secret: bytes
) -> None:
    path = tmp_path / "web-1.secret"
    path.write_bytes(content)
    assert secret_file(path) == secret


def test_an_empty_or_missing_secret_file_is_named_without_content(tmp_path: Path) -> None:
    empty = tmp_path / "empty.secret"
    empty.write_bytes(b"\n")
    with pytest.raises(ValueError, match=r"empty\.secret is empty"):
        secret_file(empty)
    with pytest.raises(ValueError, match=r"missing\.secret"):
        secret_file(tmp_path / "missing.secret")


def test_a_short_secret_or_a_bad_key_id_fails_when_the_signer_is_made(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shorter than 16 bytes") as info:
        Signer("web-1", "too-short")
    assert "too-short" not in str(info.value)
    with pytest.raises(ValueError, match="key id"):
        Signer("web 1", SECRET)


def test_signatures_verify_and_every_one_has_its_own_nonce(tmp_path: Path) -> None:
    path = tmp_path / "web-1.secret"
    path.write_bytes(SECRET + b"\n")
    signer = Signer.from_file("web-1", path)
    check = verifier()
    body = b'{"records":[{"msg":"hi"}]}'
    first, second = signer.sign(body, "application/json"), signer.sign(body, "application/json")
    assert first[H_NONCE] != second[H_NONCE]
    assert check.verify(first, body, "application/json; charset=utf-8") == KEY
    assert check.verify(second, body, "application/json") == KEY
    with pytest.raises(Unauthenticated) as info:
        check.verify(first, body, "application/json")
    assert info.value.reason == "replay"


def test_an_api_key_signs_with_its_first_secret() -> None:
    signer = as_signer(KEY)
    assert isinstance(signer, Signer) and signer.key_id == "web-1"
    first_only = ApiKey("web-1", "web", (SECRET,))
    headers = signer.sign(b"x", "application/x-protobuf")
    assert headers[H_KEY_ID] == "web-1"
    check = Verifier(KeyRing([first_only]), MemoryNonceStore())
    assert check.verify(headers, b"x", "application/x-protobuf") == first_only
    assert as_signer(None) is None and as_signer(signer) is signer


def test_the_secret_never_shows_in_repr() -> None:
    signer = Signer("web-1", SECRET)
    assert SECRET.decode() not in repr(signer) and "web-1" in repr(signer)
