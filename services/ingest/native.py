"""The C hot path of the Ingest Gateway (``_native.c``), when it was built.

``make install`` builds it (``pip install -e .`` compiles the extension in place); a
checkout without a compiler still works, on the pure-Python path, only slower.
``AVAILABLE`` says which one runs. The C code decides only what it can decide exactly as
:mod:`services.ingest.normalize` does and hands every other record, value or message
back to it, so both paths store the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

_native: ModuleType | None
try:
    from services.ingest import _native  # type: ignore[attr-defined,no-redef]
except ImportError:  # not built: the pure-Python path does everything
    _native = None

AVAILABLE = _native is not None

# (data, accepted, counts per level, missing counts, rejections as (index, reason, message))
NativeResult = tuple[
    bytes, int, tuple[int, ...], tuple[int, int, int, int], list[tuple[int, str, str]]
]
# What one batch shares: head and tail of each line, format label, ingest time,
# the timestamp parser and the slow path for whole records.
NativeContext = tuple[bytes, bytes, bytes, str, Callable[[Any], str | None], Callable[[Any], Any]]


def scan_wire(body: bytes, request: bool) -> tuple[str, str, str, str, int] | None:
    """``(batch_id, emitter, scenario_id, run_id, record count)`` of a serialized
    ``PushRequest`` (``request``) or ``LogBatch``, after checking every record; None
    when the bytes are not readable here (the protobuf runtime then decides)."""
    if _native is None:
        return None
    found: tuple[str, str, str, str, int] | None = _native.scan_wire(body, request)
    return found


def scan_json(body: bytes) -> tuple[str, str, str, str, str, int, int, int] | None:
    """``(batch_id, emitter, scenario_id, run_id, format, record count, start, end)`` of
    a JSON body (``start:end`` frames the records array), after checking all of it;
    None when the C path does not take it (the Python decoder then decides)."""
    if _native is None:
        return None
    found: tuple[str, str, str, str, str, int, int, int] | None = _native.scan_json(body)
    return found


def make_engine(**settings: Any) -> Any:
    """A ``_native.Engine``; see ``Normaliser`` for the settings."""
    assert _native is not None
    return _native.Engine(**settings)
