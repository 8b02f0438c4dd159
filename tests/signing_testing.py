"""Test support for signed requests: the keys every signing test uses.

Secrets here are for tests only; the nonce store is the gateway's own
(``services.common.nonces.MemoryNonceStore``).
"""

from __future__ import annotations

from services.common.keys import ApiKey, KeyRing

SECRET = b"test-secret-0123456789abcdef"
OLD_SECRET = b"test-old-secret-0123456789abcdef"
KEY = ApiKey("test-key", "test-emitter", (SECRET, OLD_SECRET))


def make_keyring() -> KeyRing:
    return KeyRing([KEY, ApiKey("other-key", "other-emitter", (b"other-secret-0123456789",))])
