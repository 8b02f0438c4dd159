"""The ``json`` format: one JSON object per line (JSON Lines / NDJSON)."""

from __future__ import annotations

from typing import Any

import orjson

from emitters.formats.base import AppEvents, FormatError


class JsonFormat(AppEvents):
    """JSON Lines; records keep their keys and value types as they are."""

    name = "json"

    def render(self, rec: dict[str, Any]) -> str:
        # default=str keeps an odd value (a Decimal, a set) from failing the whole line.
        return orjson.dumps(rec, default=str).decode()

    def parse(self, line: str) -> dict[str, Any]:
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise FormatError(f"invalid JSON at character {exc.pos}: {exc.msg}") from exc
        if not isinstance(value, dict):
            raise FormatError(f"a JSON line must be an object, not {_kind(value)}")
        return value

    def looks_like(self, line: str) -> bool:
        return line[:1] == "{" or line.lstrip()[:1] == "{"


def _kind(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "a JSON literal"
    if isinstance(value, int | float):
        return "a number"
    return "an array" if isinstance(value, list) else "a string"
