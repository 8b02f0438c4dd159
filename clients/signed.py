"""Client-side signing of pushes (LOGOPS1-HMAC-SHA256): a ``Signer`` and ``secret_file``.

A transport given a signer calls :meth:`Signer.sign` once per attempt, over the exact
bytes that attempt sends, so every attempt carries a fresh nonce and timestamp (a
repeated nonce is refused as a replay). The scheme itself lives in
:mod:`services.common.signing`, shared with the gateways; docs/signing.md is the user's view.
"""

from __future__ import annotations

from pathlib import Path

from services.common.keys import MIN_SECRET_BYTES, ApiKey
from services.common.signing import sign_headers


class Signer:
    """Signs request bodies with one key id and its secret; never shows the secret."""

    __slots__ = ("_key_id", "_secret")

    def __init__(self, key_id: str, secret: bytes | str) -> None:
        raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
        if len(raw) < MIN_SECRET_BYTES:
            raise ValueError(
                f"the secret of key {key_id!r} is shorter than {MIN_SECRET_BYTES} bytes"
            )
        self._key_id, self._secret = key_id, raw
        # Sign once now, so a malformed key id fails here rather than at the first push.
        sign_headers((key_id, raw), b"", "application/json")

    @classmethod
    def from_key(cls, key: ApiKey) -> Signer:
        """Sign with the key's first secret, as the gateways expect."""
        return cls(key.key_id, key.signing_secret)

    @classmethod
    def from_file(cls, key_id: str, path: str | Path) -> Signer:
        return cls(key_id, secret_file(path))

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, body: bytes, media_type: str) -> dict[str, str]:
        """The five ``x-logops-*`` headers (lowercase) for one request with ``body``."""
        return sign_headers((self._key_id, self._secret), body, media_type)

    def __repr__(self) -> str:
        return f"Signer(key_id={self._key_id!r}, secret=<hidden>)"


def as_signer(key: Signer | ApiKey | None) -> Signer | None:
    """What the transports accept as ``signer``: a ``Signer``, an ``ApiKey`` or None."""
    if key is None or isinstance(key, Signer):
        return key
    return Signer.from_key(key)


def secret_file(path: str | Path) -> bytes:
    """The secret held in a file: its bytes without one final line break.

    ``echo SECRET > file`` writes one line break after the secret; only that one is
    dropped, so a secret is otherwise taken byte for byte. The error names the file,
    never its content.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read the secret file {path}: {exc.strerror or exc}") from exc
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise ValueError(f"the secret file {path} is empty")
    return data
