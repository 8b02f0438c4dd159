"""The test vectors published in docs/signing.md hold for signing.py and for plain hmac."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

import pytest

from services.common.keys import ApiKey, KeyRing
from services.common.nonces import MemoryNonceStore
from services.common.signing import Verifier, sign_headers, string_to_sign

DOC = Path(__file__).resolve().parents[3] / "docs" / "signing.md"
BLOCK = re.compile(r"^```(\w+) ([\w-]+)\n(.*?)^```$", re.M | re.S)


def doc_blocks(kind: str) -> list[str]:
    return [m.group(3) for m in BLOCK.finditer(DOC.read_text()) if m.group(2) == kind]


VECTORS: list[dict[str, Any]] = [json.loads(block) for block in doc_blocks("test-vector")]


def body_of(vector: dict[str, Any]) -> bytes:
    if "body_hex" in vector:
        return bytes.fromhex(vector["body_hex"])
    return str(vector["body"]).encode("utf-8")


def test_the_page_has_vectors_each_with_its_string_to_sign() -> None:
    texts = doc_blocks("string-to-sign")
    assert len(VECTORS) >= 3
    assert len(texts) == len(VECTORS)
    for vector, text in zip(VECTORS, texts, strict=True):
        assert text == vector["string_to_sign"] + "\n"


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["key_id"] + "@" + str(v["timestamp"]))
def test_signing_gives_the_published_headers(vector: dict[str, Any]) -> None:
    body = body_of(vector)
    headers = sign_headers(
        (vector["key_id"], vector["secret"]), body, vector["content_type"],
        now=vector["timestamp"], nonce=vector["nonce"],
    )
    assert headers == vector["headers"]
    assert headers["x-logops-signature"] == "v1=" + vector["signature"]
    assert string_to_sign(
        vector["content_type"], vector["key_id"], vector["timestamp"], vector["nonce"],
        headers["x-logops-content-sha256"],
    ) == vector["string_to_sign"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["key_id"] + "@" + str(v["timestamp"]))
def test_the_published_values_follow_from_the_scheme_alone(vector: dict[str, Any]) -> None:
    # Built from the page's description, not from signing.py: the code and page agree.
    media_type = vector["content_type"].split(";")[0].strip().lower()
    digest = hashlib.sha256(body_of(vector)).hexdigest()
    lines = ["LOGOPS1-HMAC-SHA256", "logs.push", media_type, vector["key_id"],
             str(vector["timestamp"]), vector["nonce"], digest]
    assert "\n".join(lines) == vector["string_to_sign"]
    mac = hmac.new(vector["secret"].encode(), vector["string_to_sign"].encode(), "sha256")
    assert mac.hexdigest() == vector["signature"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["key_id"] + "@" + str(v["timestamp"]))
def test_the_published_headers_verify(vector: dict[str, Any]) -> None:
    key = ApiKey(vector["key_id"], "vectors", (vector["secret"].encode(),))
    verifier = Verifier(KeyRing([key]), MemoryNonceStore(), clock=lambda: vector["timestamp"])
    assert verifier.verify(vector["headers"], body_of(vector), vector["content_type"]) is key
