"""The ``minimal`` format: the seed's smoke-test record, a JSON object with only ``msg``.

The seed project's minimal emitter sent ``{"msg": "minimal #1"}`` and nothing else, and
left the gateway to fill in the rest: the ingest time for ``ts`` and ``INFO`` for
``level``, both counted as absent. This format keeps that shape as a line:
``{"msg":"order 42 placed by alice@example.com total=12.50"}``. It carries ``msg`` and
the loss-accounting keys ``run_id``, ``stream`` and ``seq``, never a timestamp or a
level; ``render`` leaves every other key of a record out, and ``parse`` refuses a line
with any other key (that line is ``json``). A non-text ``msg`` is written as its JSON
text, so ``msg`` is always a string.
"""

from __future__ import annotations

import random
from typing import Any

import orjson

from emitters.content import SERVICES, ContentOptions, message, pick_level
from emitters.formats.base import FormatError, value_text
from emitters.formats.jsontext import json_line

KEYS = ("msg", "run_id", "stream", "seq")
_ALLOWED = frozenset(KEYS)


class MinimalFormat:
    """``{"msg": ...}`` lines, with the loss-accounting keys when the record has them."""

    name = "minimal"

    def render(self, rec: dict[str, Any]) -> str:
        out: dict[str, Any] = {"msg": value_text(rec.get("msg"))}
        for key in ("run_id", "stream", "seq"):
            if rec.get(key) is not None:
                out[key] = rec[key]
        return json_line(out)

    def parse(self, line: str) -> dict[str, Any]:
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise FormatError(f"invalid JSON at character {exc.pos}: {exc.msg}") from None
        if not isinstance(value, dict):
            raise FormatError("a minimal line must be a JSON object")
        extra = sorted(set(value) - _ALLOWED)
        if extra:
            raise FormatError(f"a minimal line carries only {', '.join(KEYS)}, not {extra[0]!r}")
        if not isinstance(value.get("msg"), str):
            raise FormatError("a minimal line needs msg as a string")
        return value

    def looks_like(self, line: str) -> bool:
        # Exact, not cheap (the line is parsed): only a msg-only object is minimal.
        if line.lstrip()[:1] != "{" or '"msg"' not in line:
            return False
        try:
            self.parse(line)
        except FormatError:
            return False
        return True

    def sample(self, rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
        return {"msg": message(rng, pick_level(rng, opts), rng.choice(SERVICES))}
