"""One JSON line for any record: what orjson refuses is made representable, not raised.

orjson refuses lone surrogates (text that came from a lenient decoder), integers
beyond 64 bits, keys that are not text and nesting deeper than 254 levels. A
renderer must still write one line, so :func:`json_line` tries orjson first and,
only when it refuses, writes a cleaned copy: lone surrogates become U+FFFD, huge
integers their decimal text, other keys their text, and the standard library
writes what orjson will not nest.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_SURROGATE = re.compile("[\ud800-\udfff]")
_INT64 = range(-(2**63), 2**64)


def json_line(value: Any, option: int = 0) -> str:
    """``value`` as compact JSON text on one line; never raises for odd content."""
    try:
        return orjson.dumps(value, default=str, option=option).decode()
    except (orjson.JSONEncodeError, TypeError):
        cleaned = _clean(value)
    try:
        return orjson.dumps(cleaned, default=str).decode()
    except orjson.JSONEncodeError:
        return json.dumps(cleaned, ensure_ascii=False, separators=(",", ":"), default=str)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if value in _INT64 else str(value)
    if isinstance(value, dict):
        return {_key(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return _SURROGATE.sub("\ufffd", str(value))


def _key(key: object) -> str:
    """A key as text, the way orjson's OPT_NON_STR_KEYS writes numbers and literals."""
    if isinstance(key, str):
        return _SURROGATE.sub("\ufffd", key)
    if isinstance(key, bool | int | float) or key is None:
        return json.dumps(key)
    return _SURROGATE.sub("\ufffd", str(key))
