"""The LOGOPS1-HMAC-SHA256 request signature: signing for clients, verification for gateways.

The same five headers travel as HTTP headers and as gRPC metadata (lowercase keys)::

    x-logops-key-id           the key's id
    x-logops-timestamp        Unix seconds, decimal
    x-logops-nonce            >= 16 random bytes, base64url without padding
    x-logops-content-sha256   lowercase hex SHA-256 of the exact body bytes
    x-logops-signature        v1=<hex HMAC-SHA256>, several comma-separated allowed

The string to sign is seven lines joined by ``\\n``: the scheme, the scope ``logs.push``,
the media type (lowercase, no parameters; ``application/x-protobuf`` on gRPC), the key id,
the timestamp, the nonce and the body hash, each exactly as sent in its header.

``Verifier`` checks cheapest first (headers, key, clock skew; the caller's size limits;
body hash; signature against every secret of the key; only then the nonce), so a flood of
junk costs no HMAC and a forged request cannot burn a legitimate nonce. It hashes the body
bytes as received: gRPC fronts pass the raw request message, never a re-serialisation.
See docs/signing.md for the user's view and test vectors.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, cast

from services.common.errors import Unauthenticated
from services.common.keys import ApiKey, KeyRing

SCHEME = "LOGOPS1-HMAC-SHA256"
SCOPE = "logs.push"
GRPC_MEDIA_TYPE = "application/x-protobuf"

H_KEY_ID = "x-logops-key-id"
H_TIMESTAMP = "x-logops-timestamp"
H_NONCE = "x-logops-nonce"
H_CONTENT_SHA256 = "x-logops-content-sha256"
H_SIGNATURE = "x-logops-signature"
AUTH_HEADERS = (H_KEY_ID, H_TIMESTAMP, H_NONCE, H_CONTENT_SHA256, H_SIGNATURE)

NONCE_BYTES = 16
MAX_SIGNATURES = 8  # v1= values in one header: enough for any rotation, bounded work

_KEY_ID_RE = re.compile(r"[!-~]{1,64}")
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{22,128}")  # 22 chars = 16 bytes, unpadded
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class NonceStore(Protocol):
    """Remembers nonces per key for a while; shared by replicas when it is Redis."""

    def remember(self, key_id: str, nonce: str, ttl_sec: float) -> bool:
        """Record ``nonce`` for ``ttl_sec``; True if it was new, False if already seen.

        Raises ``Unavailable`` when it cannot tell (full of live nonces, Redis unreachable):
        replay protection fails closed."""
        ...


def media_type_of(content_type: str) -> str:
    """``Application/JSON; charset=utf-8`` -> ``application/json`` (what gets signed)."""
    return content_type.split(";", 1)[0].strip().lower()


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def new_nonce() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(NONCE_BYTES)).rstrip(b"=").decode()


def string_to_sign(
    media_type: str, key_id: str, timestamp: str | int, nonce: str, content_sha256: str
) -> str:
    """The seven lines an HMAC covers; ``media_type`` is normalised as :func:`media_type_of`."""
    return "\n".join(
        (SCHEME, SCOPE, media_type_of(media_type), key_id, str(timestamp), nonce, content_sha256)
    )


def signature_hex(secret: bytes, text: str) -> str:
    return hmac.new(secret, text.encode("utf-8"), hashlib.sha256).hexdigest()


def sign_headers(
    key: ApiKey | tuple[str, bytes | str],
    body: bytes,
    media_type: str,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The five headers for ``body``, signed with the key's first secret.

    ``now`` (Unix seconds, default the clock) and ``nonce`` (default a fresh random one)
    exist for tests and test vectors; a real client never reuses a nonce.
    """
    if isinstance(key, ApiKey):
        key_id, secret = key.key_id, key.signing_secret
    else:
        key_id, raw = key
        secret = raw.encode("utf-8") if isinstance(raw, str) else raw
    nonce = new_nonce() if nonce is None else nonce
    timestamp = str(int(time.time() if now is None else now))
    _require(_KEY_ID_RE, key_id, "key id: 1-64 printable ASCII characters without spaces")
    _require(_NONCE_RE, nonce, "nonce: 22-128 base64url characters (>= 16 bytes, unpadded)")
    if not secret:
        raise ValueError("secret: must not be empty")
    digest = body_sha256(body)
    text = string_to_sign(media_type, key_id, timestamp, nonce, digest)
    return {
        H_KEY_ID: key_id,
        H_TIMESTAMP: timestamp,
        H_NONCE: nonce,
        H_CONTENT_SHA256: digest,
        H_SIGNATURE: "v1=" + signature_hex(secret, text),
    }


def _require(pattern: re.Pattern[str], value: str, what: str) -> None:
    if not pattern.fullmatch(value):
        raise ValueError(what)


@dataclass(frozen=True)
class SignedRequest:
    """A request whose auth headers passed the cheap checks; the body is still unchecked."""

    key: ApiKey
    media_type: str
    timestamp: str
    nonce: str
    content_sha256: str
    signatures: tuple[str, ...]

    def string_to_sign(self) -> str:
        return string_to_sign(
            self.media_type, self.key.key_id, self.timestamp, self.nonce, self.content_sha256
        )


Headers = Mapping[str, str] | Iterable[tuple[str, str]]


class Verifier:
    """Checks LOGOPS1-HMAC-SHA256 requests against a key ring and a nonce store.

    ``verify`` does it all; fronts that can refuse before reading the body call
    ``check_headers`` first, apply their size limits, then ``check_body``. A nonce store
    that cannot tell whether a nonce is new raises its own error (``Unavailable``), which
    goes through unchanged: replay protection fails closed.
    """

    def __init__(
        self,
        keys: KeyRing,
        nonces: NonceStore,
        clock: Callable[[], float] = time.time,
        max_skew_sec: float = 300,
        nonce_ttl_sec: float = 600,
    ) -> None:
        if nonce_ttl_sec < 2 * max_skew_sec:
            # A timestamp is acceptable for 2 x skew; a nonce forgotten sooner could replay.
            raise ValueError("nonce_ttl_sec must be at least twice max_skew_sec")
        self.keys = keys
        self.nonces = nonces
        self.clock = clock
        self.max_skew_sec = max_skew_sec
        self.nonce_ttl_sec = nonce_ttl_sec

    def verify(self, headers: Headers, body: bytes, media_type: str) -> ApiKey:
        """The authenticated key of a request, or ``Unauthenticated`` with its reason."""
        return self.check_body(self.check_headers(headers, media_type), body)

    def check_headers(self, headers: Headers, media_type: str) -> SignedRequest:
        """Headers present and well formed, key known, timestamp within the skew."""
        values = auth_header_values(headers)
        signatures = _parse_signatures(values[H_SIGNATURE])
        key_id = values[H_KEY_ID]
        key = self.keys.get(key_id)
        if key is None:
            raise Unauthenticated(f"unknown key id {key_id!r}", reason="unknown_key")
        self._check_skew(int(values[H_TIMESTAMP]))
        return SignedRequest(
            key=key,
            media_type=media_type_of(media_type),
            timestamp=values[H_TIMESTAMP],
            nonce=values[H_NONCE],
            content_sha256=values[H_CONTENT_SHA256],
            signatures=signatures,
        )

    def check_body(self, request: SignedRequest, body: bytes) -> ApiKey:
        """Body hash, then signature, then nonce: the expensive and stateful checks."""
        if not hmac.compare_digest(body_sha256(body), request.content_sha256):
            raise Unauthenticated(
                f"{H_CONTENT_SHA256} does not match the body received ({len(body)} bytes)",
                reason="bad_content_hash",
            )
        if not _signature_matches(request):
            raise Unauthenticated(
                "signature does not match (check the secret, the media type and the string "
                "to sign in docs/signing.md)",
                reason="bad_signature",
            )
        if not self.nonces.remember(request.key.key_id, request.nonce, self.nonce_ttl_sec):
            raise Unauthenticated("nonce already used (replayed request)", reason="replay")
        return request.key

    def _check_skew(self, timestamp: int) -> None:
        now = self.clock()
        skew = timestamp - now
        if abs(skew) > self.max_skew_sec:
            where = "ahead of" if skew > 0 else "behind"
            raise Unauthenticated(
                f"timestamp {timestamp} is {abs(skew):.0f} s {where} the server clock "
                f"({int(now)}); at most {self.max_skew_sec:g} s allowed",
                reason="clock_skew",
            )


def auth_header_values(headers: Headers) -> dict[str, str]:
    """The five auth headers by lowercase name, each present once and well formed.

    Accepts a mapping in any letter case (HTTP), anything else with ``items()`` (such as
    ``http.server``'s ``email.message.Message``, repeats included) or name/value pairs
    (gRPC metadata).
    """
    items = getattr(headers, "items", None)
    pairs = cast(Iterable[tuple[str, str]], items() if callable(items) else headers)
    values: dict[str, str] = {}
    for name, value in pairs:
        lower = name.lower()
        if lower not in AUTH_HEADERS:
            continue
        if not isinstance(value, str):
            raise Unauthenticated(f"{lower} must be text", reason="missing_auth")
        if lower in values and values[lower] != value:
            raise Unauthenticated(f"{lower} given more than once", reason="missing_auth")
        values[lower] = value
    missing = [name for name in AUTH_HEADERS if name not in values]
    if missing:
        raise Unauthenticated(
            f"request is not signed: missing {', '.join(missing)} (see docs/signing.md)",
            reason="missing_auth",
        )
    for name, pattern, what in _FORMATS:
        if not pattern.fullmatch(values[name]):
            raise Unauthenticated(f"{name} must be {what}", reason="missing_auth")
    return values


_FORMATS = (
    (H_KEY_ID, _KEY_ID_RE, "1-64 printable ASCII characters without spaces"),
    (H_TIMESTAMP, _TIMESTAMP_RE, "Unix seconds as a decimal integer"),
    (H_NONCE, _NONCE_RE, "22-128 base64url characters (>= 16 random bytes, unpadded)"),
    (H_CONTENT_SHA256, _SHA256_RE, "64 lowercase hex digits (SHA-256 of the body)"),
)


def _parse_signatures(header: str) -> tuple[str, ...]:
    """The ``v1=`` values of the signature header; other versions are ignored."""
    parts = [p.strip() for p in header.split(",")]
    if len(parts) > MAX_SIGNATURES:
        raise Unauthenticated(
            f"{H_SIGNATURE}: at most {MAX_SIGNATURES} values", reason="missing_auth"
        )
    found = tuple(p[3:] for p in parts if p.startswith("v1="))
    if not found or not all(_SHA256_RE.fullmatch(sig) for sig in found):
        raise Unauthenticated(
            f"{H_SIGNATURE} must be v1=<64 lowercase hex digits>, comma-separated",
            reason="missing_auth",
        )
    return found


def _signature_matches(request: SignedRequest) -> bool:
    text = request.string_to_sign()
    matched = False
    # Every secret against every value, without stopping early: timing tells nothing.
    for secret in request.key.secrets:
        expected = signature_hex(secret, text)
        for given in request.signatures:
            matched |= hmac.compare_digest(expected, given)
    return matched
