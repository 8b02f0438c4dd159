"""Deliberately bad traffic for scenarios: broken records, noise lines, replayed nonces.

:class:`Mangler` wraps a gateway transport and, before each send, makes a seeded share of
the batch's records unreadable (``partial_ratio``: a truncated JSON line, which Ingest
refuses alone as ``parse_error`` while the rest of the batch is stored) or replaces them by
``noise`` lines (``chaos``). Either way a record keeps its ``run_id``, ``stream`` and
``seq`` beside the line, so the account still knows which seqs were refused.

:class:`FixedNonceSigner` signs correctly but always with the same nonce, as a client with
a broken random source would: the first push passes, every later one is a ``replay``.
"""

from __future__ import annotations

import random
from typing import Any

from clients.signed import Signer
from clients.transports import Transport
from emitters.source import EventSource
from services.common.model import Batch, PushResult, Record
from services.common.signing import new_nonce, sign_headers

BROKEN_LINE = '{"msg": "this record was cut off in the middle of a'


class Mangler:
    """A transport that breaks a share of each batch's records, then sends through ``inner``."""

    def __init__(
        self,
        inner: Transport,
        *,
        partial_ratio: float = 0.0,
        chaos: float = 0.0,
        noise: EventSource | None = None,
        seed: int | None = None,
    ) -> None:
        if chaos and noise is None:
            raise ValueError("chaos needs a noise source")
        self.inner = inner
        self.partial_ratio, self.chaos = partial_ratio, chaos
        self._noise = noise
        self._rng = random.Random(seed)
        self._count = 0

    def send(self, batch: Batch) -> PushResult:
        batch.records = [self._maybe(rec) for rec in batch.records]
        return self.inner.send(batch)

    def _maybe(self, rec: Record | None) -> Record | None:
        self._count += 1
        if rec is None:
            return rec
        draw = self._rng.random()
        if draw < self.partial_ratio:
            return _replaced(rec, BROKEN_LINE, "json")
        if draw < self.partial_ratio + self.chaos and self._noise is not None:
            line = self._noise.line(self._count, 0.0)
            return _replaced(rec, line, "noise")
        return rec

    def close(self) -> None:
        self.inner.close()


def _replaced(rec: Record, line: str, fmt: str) -> Record:
    out: dict[str, Any] = {"raw": line, "format": fmt}
    for key in ("run_id", "stream", "seq"):
        if key in rec:
            out[key] = rec[key]
    return out


class FixedNonceSigner(Signer):
    """A signer that reuses one nonce for every request (see the module docstring)."""

    __slots__ = ("_nonce",)

    def __init__(self, key_id: str, secret: bytes | str) -> None:
        super().__init__(key_id, secret)
        self._nonce = new_nonce()

    def sign(self, body: bytes, media_type: str) -> dict[str, str]:
        return sign_headers((self.key_id, self._secret), body, media_type, nonce=self._nonce)
