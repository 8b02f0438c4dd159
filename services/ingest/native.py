"""The Ingest Gateway's hot path in C (``_native.c``), when it was built.

``make install`` builds it (``pip install -e .`` compiles the extension in place); a
checkout without a compiler still works, on the pure-Python path, only slower.
``AVAILABLE`` says which one can run; :func:`make_normaliser` picks it.

:class:`NativeNormaliser` is a ``BatchNormaliser`` like the pure-Python ``Normaliser`` and
stores the same bytes: the C code decides only what it can decide exactly as
``normalize.py`` does and hands every other record, value or message back to it. It
also reads JSON and protobuf bodies itself (``json_batch``/``wire_batch``), so the
common records never become Python objects, and a record's raw line (named or detected)
when it is RFC 5424 (the syslog5424 reader below), RFC 3164 or an access-log layout
(``apache_common``, ``apache_combined``, ``nginx_access``; ``csrc/layouts.c``, which
turns their times into the stored form as ``normalise_ts`` does for the batch's ingest
time: ``csrc/raw.c``).

For the syslog listener, :func:`syslog5424_parser` gives the C reader of RFC 5424 lines,
structured data included, and :func:`syslog3164_parser` the one of lines detected as RFC
3164; :func:`syslog5424_reference` and :func:`syslog3164_reference` are the same
functions in Python.
:func:`octet_frames_fn` gives the C cutter of octet-counted frames
(``framing.octet_prefix`` in Python).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import Any

import orjson

from emitters.formats import FORMATS, FormatError, detect_format
from services.common.codecs import load_record
from services.common.config import PiiConfig
from services.common.model import Batch, MissingCounts, Record, Rejection
from services.ingest.levels import ALIASES, LEVELS, canonical_level
from services.ingest.normalize import (
    FIXED_KEYS,
    BatchNormaliser,
    Context,
    NormalisedBatch,
    Normaliser,
)
from services.ingest.timeparse import normalise_ts

_native: ModuleType | None
try:
    from services.ingest import _native  # type: ignore[attr-defined,no-redef]
except ImportError:  # not built: the pure-Python path does everything
    _native = None

AVAILABLE = _native is not None

# How the C code numbers the PII modes.
_MASK_MODES = {"off": 0, "mask": 1, "hash": 2}
_META = ("emitter", "scenario_id", "run_id")


def make_normaliser(pii: PiiConfig, max_record_bytes: int, native: bool = True) -> BatchNormaliser:
    """The C-backed normaliser when it is built and applies, else the Python one."""
    python = Normaliser(pii, max_record_bytes)
    # Masking fields other than msg is opt-in and rare: left to Python.
    if native and AVAILABLE and not python.pii_fields:
        return NativeNormaliser(python)
    return python


def syslog5424_parser() -> Callable[[bytes], Record | None] | None:
    """``_native.syslog5424`` when the extension is built (see
    :func:`syslog5424_reference`), else None."""
    if _native is None:
        return None
    parser: Callable[[bytes], Record | None] = _native.syslog5424
    return parser


def syslog3164_parser() -> Callable[[bytes], Record | None] | None:
    """``_native.syslog3164`` when the extension is built (see
    :func:`syslog3164_reference`), else None."""
    if _native is None:
        return None
    parser: Callable[[bytes], Record | None] = _native.syslog3164
    return parser


def octet_frames_fn() -> Callable[[bytes, int, int], tuple[list[bytes], int]] | None:
    """``_native.octet_frames`` when the extension is built (the Python reference is
    ``framing.octet_prefix``), else None."""
    if _native is None:
        return None
    fn: Callable[[bytes, int, int], tuple[list[bytes], int]] = _native.octet_frames
    return fn


def syslog5424_reference(frame: bytes) -> Record | None:
    """What ``_native.syslog5424`` gives, in Python: the record the ``syslog5424`` format
    parses from a received message (strict UTF-8, trailing CR and LF removed); None for
    a message the format refuses, which the listener then detects and parses as before."""
    try:
        line = frame.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return None
    try:
        return FORMATS["syslog5424"].parse(line)
    except FormatError:
        return None


def syslog3164_reference(frame: bytes) -> Record | None:
    """What ``_native.syslog3164`` gives, in Python: the record the ``syslog3164`` format
    parses from a received message (strict UTF-8, trailing CR and LF removed) that
    detection reads as RFC 3164; None for any other, which the listener then detects and
    parses as before."""
    try:
        line = frame.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        return None
    if detect_format(line) != "syslog3164":
        return None
    return FORMATS["syslog3164"].parse(line)


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


class NativeNormaliser:
    """The C path, with ``python`` (a pure :class:`Normaliser`) for what it hands back."""

    def __init__(self, python: Normaliser) -> None:
        assert _native is not None
        self._python = python
        masker = python.masker
        self._engine = _native.Engine(
            levels=dict(ALIASES),
            level_names=LEVELS,
            level_fn=canonical_level,
            mask_mode=_MASK_MODES[masker.mode],
            hash_fn=masker.digest,
            mask_fn=masker.apply,
            dumps=orjson.dumps,
            loads=orjson.loads,
            reserved=frozenset(FIXED_KEYS),
            max_chars=python.max_chars,
        )

    @property
    def native(self) -> bool:
        return True

    def wire_batch(self, body: bytes, request: bool) -> Batch | None:
        """A serialized ``PushRequest`` (``request``) or ``LogBatch`` left undecoded,
        once its framing and text are checked; None: decode it instead."""
        found = scan_wire(body, request)
        if found is None:
            return None
        *meta, count = found
        return _undecoded(body, "push_request" if request else "log_batch", meta, count)

    def json_batch(self, body: bytes) -> Batch | None:
        """A JSON body (array of records or batch object) left undecoded, once checked;
        None: decode it with ``codecs`` instead (which also explains any error)."""
        found = scan_json(body)
        if found is None:
            return None
        *meta, fmt, count, start, end = found
        return _undecoded(body, "json", meta, count, (start, end), fmt)

    def normalise_batch(self, batch: Batch, ingest_ms: int) -> NormalisedBatch:
        ctx = self._python.context(batch, ingest_ms)
        shared = _shared(ctx, partial(self._python.one, ctx=ctx))
        if shared is None:
            # Batch metadata orjson refuses: the Python path rejects each record, saying why.
            return self._python.normalise_batch(batch, ingest_ms)
        if batch.wire_kind == "json":
            start, end = batch.wire_span
            result = self._engine.normalise_json(batch.wire, start, end, shared, load_record)
        elif batch.wire is not None:
            request = batch.wire_kind == "push_request"
            result = self._engine.normalise_wire(batch.wire, request, shared)
        else:
            result = self._engine.normalise_dicts(batch.records, shared)
        return _normalised(batch, result)


def _shared(ctx: Context, slow: Any) -> tuple[Any, ...] | None:
    """What the C code needs of a batch: the constant parts of each line, the format
    label, the ingest time, the timestamp parser, the slow path for whole records, the
    batch's format for raw lines and the ingest time in epoch ms."""
    try:
        head = b"".join(
            b'"%s":%s,' % (key.encode(), orjson.dumps(ctx.template[key])) for key in _META
        )
        tail = b'"batch_id":%s,"ingest_ts":"%s"' % (
            orjson.dumps(ctx.template["batch_id"]),
            ctx.ingest_ts.encode(),
        )
        fmt = orjson.dumps(ctx.template["format"])
    except orjson.JSONEncodeError:
        return None
    ts_fn = partial(normalise_ts, now_ms=ctx.ingest_ms)
    # ingest_ms last: the "now" of RFC 3164 times read in C, the one ts_fn uses.
    return head, tail, fmt, ctx.ingest_ts, ts_fn, slow, ctx.named_format, ctx.ingest_ms


def _normalised(batch: Batch, result: tuple[Any, ...]) -> NormalisedBatch:
    data, accepted, levels, missing, rejected = result
    rejections = batch.rejections + [Rejection(*r) for r in rejected]
    rejections.sort(key=lambda r: r.index)
    return NormalisedBatch(
        data=data,
        accepted=accepted,
        rejections=rejections,
        missing=MissingCounts(*missing),
        level_counts={name: n for name, n in zip(LEVELS, levels, strict=True) if n},
    )


def _undecoded(
    body: bytes,
    kind: str,
    meta: list[Any],
    count: int,
    span: tuple[int, int] = (0, 0),
    fmt: str = "",
) -> Batch:
    """A batch left serialized for the C path, with what its scan read."""
    batch_id, emitter, scenario_id, run_id = meta
    return Batch(
        records=[],
        batch_id=batch_id,
        emitter=emitter,
        scenario_id=scenario_id,
        run_id=run_id,
        default_format=fmt,
        wire=body,
        wire_kind=kind,
        wire_count=count,
        wire_span=span,
    )
