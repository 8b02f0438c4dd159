"""Masking of e-mail and IPv4 addresses in log text, by the ``ingest.pii`` settings.

``mask`` keeps what helps debugging and drops what identifies: ``john.doe@example.com``
becomes ``j***@example.com`` and ``83.11.45.6`` becomes ``83.11.x.x``. ``hash``
replaces each address with ``<hash:xxxxxxxxxxxx>``, the first 12 hex digits of its
HMAC-SHA256 under ``hash_salt``, so the same address still joins across records
without being readable. ``off`` leaves text alone.

An IPv4 address is a dotted quad of numbers 0-255 that is not part of a longer run of
digits and dots (``1.2.3.4.5`` is a version, not an address). The searches only run on
text that can hold an address: an ``@`` for e-mail, three dots for IPv4.
"""

from __future__ import annotations

import hmac
import re

from services.common.config import ConfigError, PiiConfig

MODES = ("mask", "hash", "off")
# The domain is matched after each "@" (found with str.find); the local part is then
# read backwards from the "@", at most 64 characters as RFC 5321 allows.
_DOMAIN = re.compile(r"[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,63}")
_LOCAL_REVERSED = re.compile(r"[\w.%+-]{1,64}")
_MAX_LOCAL = 64
# Candidates only; boundaries and octet values are checked in Python. Python's regex
# engine is several times slower with the look-arounds and alternations that would do it.
_DOTTED_QUAD = re.compile(r"([0-9][0-9]{0,2})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")
_DIGITS = frozenset("0123456789")
_DIGEST_HEX = 12


class Masker:
    """Applies one PII mode to text; built once from ``PiiConfig``."""

    def __init__(self, cfg: PiiConfig) -> None:
        if cfg.mode not in MODES:
            raise ConfigError(f"ingest.pii.mode: expected one of {', '.join(MODES)}")
        if cfg.mode == "hash" and not cfg.hash_salt:
            # Without a secret, every IPv4 digest can be reversed by trying all 2**32.
            raise ConfigError("ingest.pii.hash_salt: must be set when ingest.pii.mode is hash")
        self.mode = cfg.mode
        self.fields = frozenset(cfg.fields)
        self._key = cfg.hash_salt.encode("utf-8")

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def apply(self, text: str) -> str:
        """``text`` with every e-mail and IPv4 address masked or hashed."""
        if self.mode == "off":
            return text
        if "@" in text:
            text = self._emails(text)
        if text.count(".") >= 3:
            text = _DOTTED_QUAD.sub(self._ipv4, text)
        return text

    def _emails(self, text: str) -> str:
        parts: list[str] = []
        done = 0
        at = text.find("@")
        while at >= 0:
            domain = _DOMAIN.match(text, at + 1)
            local = None
            if domain is not None:
                local = _LOCAL_REVERSED.match(text[max(done, at - _MAX_LOCAL) : at][::-1])
            if domain is not None and local is not None:
                start = at - local.end()
                parts.append(text[done:start])
                parts.append(self._email(local.group()[::-1], domain.group()))
                done = domain.end()
            at = text.find("@", max(at + 1, done))
        if not parts:
            return text
        parts.append(text[done:])
        return "".join(parts)

    def _email(self, local: str, domain: str) -> str:
        if self.mode == "hash":
            return self.digest(f"{local}@{domain}")
        return f"{local[0]}***@{domain}"

    def _ipv4(self, match: re.Match[str]) -> str:
        text = match.string
        start, end = match.span()
        before = text[start - 1] if start else ""
        if before in _DIGITS or (before == "." and start > 1 and text[start - 2] in _DIGITS):
            return match.group()
        after = text[end : end + 1]
        if after in _DIGITS or (after == "." and text[end + 1 : end + 2] in _DIGITS):
            return match.group()
        octets = match.groups()
        # Three-digit strings compare like their numbers.
        if any(len(octet) == 3 and octet > "255" for octet in octets):
            return match.group()
        if self.mode == "hash":
            return self.digest(match.group())
        return f"{octets[0]}.{octets[1]}.x.x"

    def digest(self, value: str) -> str:
        """``<hash:...>``: the first hex digits of the keyed HMAC-SHA256 of ``value``."""
        mac = hmac.digest(self._key, value.encode("utf-8", "surrogatepass"), "sha256")
        return f"<hash:{mac.hex()[:_DIGEST_HEX]}>"
