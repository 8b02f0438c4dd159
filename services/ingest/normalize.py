"""Normalisation of a pushed batch into the stored NDJSON lines, one record at a time.

Each accepted record becomes one JSON object whose keys always come in this order:
``ts level msg emitter scenario_id run_id service host format stream seq batch_id
ingest_ts``, then the record's other fields, then ``ts_missing`` and ``level_missing``.

- ``ts``/``level``/``msg`` are read from the first present of ``ts timestamp time
  @timestamp``, ``level lvl severity`` and ``msg message log text`` (present: not None
  and not ""). The key used is consumed; the other aliases stay as ordinary fields.
- An absent or unparseable ``ts`` becomes the ingest time, an absent or unknown level
  ``INFO``; both are flagged and counted as absent or invalid. An invalid original is
  kept as ``src_ts``/``src_level``, so nothing the source wrote is lost. With no level,
  a ``syslog_severity`` field (0-7) gives it.
- A field whose name is one of the fixed keys is stored as ``src_<name>`` (``src_src_<name>``
  if that is taken too), after the other fields.
- A ``raw`` line is parsed with the record's ``format``, else the batch's, else the
  format detected from the line (``auto`` asks for detection too); an undetectable
  line, or one named ``text``, is kept whole as ``msg`` with format ``text``. What the
  line holds wins; the record's own fields (``service``, ``host``, ``stream``, ``seq``,
  ...) fill in what the line lacks.
- ``run_id`` is the record's own when it names one (a text field, or what its raw line
  carries, such as RFC 5424's ``[logops@32473 run_id=...]``), else the batch's: a
  syslog stream or a relay mixes the lines of several runs in one batch.
- ``service``, ``host`` and ``stream`` are text ("" when absent; other values as JSON
  text), ``seq`` an integer 0..2**64-1 or null, ``format`` the record's format, else
  the batch's, else ``structured``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

import orjson

from emitters.formats import FORMAT_NAMES, FORMATS, FormatError, detect_format
from services.common.config import PiiConfig
from services.common.model import RECORD_KEYS, Batch, MissingCounts, Record, Rejection
from services.ingest.levels import ALIASES, canonical_level, syslog_level
from services.ingest.pii import Masker
from services.ingest.timeparse import MS_SUFFIXES, canonical_second, format_ts, normalise_ts

REJECT_REASONS = ("parse_error", "unknown_format", "record_too_large", "invalid_record")
FIXED_KEYS = (
    *("ts", "level", "msg", "emitter", "scenario_id", "run_id", "service", "host", "format"),
    *("stream", "seq", "batch_id", "ingest_ts", "ts_missing", "level_missing"),
)
_RESERVED = frozenset(FIXED_KEYS)
_CONSUMED = frozenset(RECORD_KEYS)
_RUN_ID = frozenset({"run_id"})
_TS_ALIASES = ("ts", "timestamp", "time", "@timestamp")
_LEVEL_ALIASES = ("level", "lvl", "severity")
_MSG_ALIASES = ("msg", "message", "log", "text")
_ALIAS_GROUP = {
    key: frozenset(group) for group in (_TS_ALIASES, _LEVEL_ALIASES, _MSG_ALIASES) for key in group
}
_TS_ABSENT, _TS_INVALID, _LEVEL_ABSENT, _LEVEL_INVALID = 1, 2, 4, 8
_TS_MISSING = _TS_ABSENT | _TS_INVALID
_LEVEL_MISSING = _LEVEL_ABSENT | _LEVEL_INVALID
_INVALID = _TS_INVALID | _LEVEL_INVALID
_MAX_SEQ = 2**64 - 1
_DUMP = orjson.OPT_APPEND_NEWLINE
_by_index = attrgetter("index")
_MS = MS_SUFFIXES
# A plain dict: Mapping proxies answer .get() through a slower method call.
_LEVEL_OF: dict[str, str] = dict(ALIASES)


@dataclass(slots=True)
class NormalisedBatch:
    """What the sink stores (``data``) and what the push reports about it."""

    data: bytes
    accepted: int
    rejections: list[Rejection]
    missing: MissingCounts
    level_counts: dict[str, int]


class BatchNormaliser(Protocol):
    """What the core needs: this module's ``Normaliser``, or ``native.NativeNormaliser``."""

    @property
    def native(self) -> bool: ...
    def wire_batch(self, body: bytes, request: bool) -> Batch | None: ...
    def json_batch(self, body: bytes) -> Batch | None: ...
    def normalise_batch(self, batch: Batch, ingest_ms: int) -> NormalisedBatch: ...


class _Rejected(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(slots=True)
class Context:
    """What every record of one batch shares (the C path writes the same lines)."""

    template: dict[str, Any]
    # The batch's format for raw lines; may be "".
    named_format: str
    ingest_ms: int
    ingest_ts: str


class Normaliser:
    """Turns batches into NDJSON lines; one per gateway, safe to share between threads."""

    def __init__(self, pii: PiiConfig, max_record_bytes: int) -> None:
        masker = Masker(pii)
        self.masker = masker
        self._mask = masker.apply if masker.enabled else None
        self.pii_fields = tuple(f for f in pii.fields if f != "msg") if masker.enabled else ()
        self._max_bytes = max_record_bytes
        # Text of at most this many characters fits the limit whatever its characters.
        self.max_chars = max_record_bytes // 4

    @property
    def native(self) -> bool:
        """Whether the C hot path runs: not here (see ``native.NativeNormaliser``)."""
        return False

    def wire_batch(self, body: bytes, request: bool) -> Batch | None:
        """None: protobuf bodies are decoded into records before they come here."""
        return None

    def json_batch(self, body: bytes) -> Batch | None:
        """None: JSON bodies are decoded into records before they come here."""
        return None

    def normalise_batch(self, batch: Batch, ingest_ms: int) -> NormalisedBatch:
        """Normalise every record; a bad record is rejected alone, the others kept."""
        if batch.wire is not None:
            raise ValueError("a serialized batch needs the C path; decode it instead")
        ctx = self.context(batch, ingest_ms)
        # Each line goes into one buffer at once: an orjson result holds a 4 KiB block
        # until freed, and keeping a thousand alive for a join costs a page fault each.
        data = bytearray()
        levels: list[str] = []
        missing = MissingCounts()
        rejections = list(batch.rejections)
        build, other = self._build, self._other
        for index, rec in enumerate(batch.records):
            if rec is None:
                continue
            try:
                if type(rec) is dict and "raw" not in rec:
                    line, level, flags = build(rec, ctx)
                else:
                    line, level, flags = other(rec, ctx)
            except _Rejected as exc:
                rejections.append(Rejection(index, exc.reason, exc.message))
                continue
            data += line
            levels.append(level)
            if flags:
                _count_missing(missing, flags)
        rejections.sort(key=_by_index)
        return NormalisedBatch(
            data=bytes(data),
            accepted=len(levels),
            rejections=rejections,
            missing=missing,
            level_counts=dict(Counter(levels)),
        )

    def context(self, batch: Batch, ingest_ms: int) -> Context:
        """What every record of ``batch`` shares."""
        return _context(batch, ingest_ms)

    def one(self, rec: Any, ctx: Context) -> tuple[bytes, str, int] | tuple[None, str, str]:
        """One record: its line, level and flags, or ``(None, reason, message)``."""
        try:
            if type(rec) is dict and "raw" not in rec:
                return self._build(rec, ctx)
            return self._other(rec, ctx)
        except _Rejected as exc:
            return None, exc.reason, exc.message

    def _other(self, rec: Any, ctx: Context) -> tuple[bytes, str, int]:
        """Records off the common path: raw lines, odd types, an empty ``raw``."""
        if not isinstance(rec, dict):
            raise _Rejected("invalid_record", "a record must be an object")
        raw = rec.get("raw")
        if raw is not None and raw != "":
            return self._build(self._from_raw(rec, raw, ctx), ctx)
        return self._build(rec, ctx)

    def _build(self, rec: Record, ctx: Context) -> tuple[bytes, str, int]:
        try:
            # Subscripts in a zero-cost try: most records carry all of these keys.
            ts_val, level_val, msg = rec["ts"], rec["level"], rec["msg"]
            service, host, stream, seq = rec["service"], rec["host"], rec["stream"], rec["seq"]
            consumed = _CONSUMED if ts_val and level_val and msg else None
        except KeyError:
            consumed = None
        if consumed is None:
            ts_val, level_val, msg, service, host, stream, seq, consumed = _read_carefully(rec)
        canonical = type(ts_val) is str and ts_val[19:] in _MS and canonical_second(ts_val[:19])
        ts = ts_val if canonical else normalise_ts(ts_val, ctx.ingest_ms)
        level = _LEVEL_OF.get(level_val) if type(level_val) is str else None
        flags = 0
        if ts is None or level is None:
            ts, level, flags = _fallbacks(ts, level, ts_val, level_val, rec, ctx)
        if type(msg) is not str or len(msg) > self.max_chars:
            msg = self._checked_msg(msg)
        if self._mask is not None and ("@" in msg or "." in msg):
            msg = self._mask(msg)
        if type(service) is not str or type(host) is not str or type(stream) is not str:
            service, host = _text(service, "service"), _text(host, "host")
            stream = _text(stream, "stream")
        if type(seq) is not int or seq < 0 or seq > _MAX_SEQ:
            seq = _seq(seq)
        out = ctx.template.copy()
        out["ts"] = ts
        out["level"] = level
        out["msg"] = msg
        out["service"] = service
        out["host"] = host
        out["stream"] = stream
        out["seq"] = seq
        if "run_id" in rec:
            consumed = _own_run(out, rec["run_id"], consumed)
        if "format" in rec:
            out["format"] = _format_label(rec["format"], ctx)
        return self._finish(out, rec, consumed, flags, ts_val, level_val), level, flags

    def _finish(
        self,
        out: dict[str, Any],
        rec: Record,
        consumed: frozenset[str],
        flags: int,
        ts_val: object,
        level_val: object,
    ) -> bytes:
        renamed: list[tuple[str, Any]] = []
        for key, value in rec.items():
            if key in consumed:
                continue
            if key in _RESERVED:
                renamed.append((key, value))
            else:
                out[key] = value
        # After the others, so the names they get never depend on the order of the
        # record's keys (a protobuf map has none): src_emitter beside emitter is kept.
        for key, value in renamed:
            out[_free_key(out, key)] = value
        if flags & _INVALID:
            _keep_invalid(out, flags, ts_val, level_val)
        if self.pii_fields:
            self._mask_fields(out)
        out["ts_missing"] = bool(flags & _TS_MISSING)
        out["level_missing"] = bool(flags & _LEVEL_MISSING)
        try:
            return orjson.dumps(out, option=_DUMP)
        except orjson.JSONEncodeError as exc:
            if any(type(key) is not str for key in out):
                raise _Rejected("invalid_record", "field names must be strings") from None
            raise _Rejected("invalid_record", f"record cannot be stored as JSON: {exc}") from None

    def _from_raw(self, rec: Record, raw: object, ctx: Context) -> Record:
        """The line's fields with the record's own filling the gaps, and ``format`` set."""
        if type(raw) is not str:
            raise _Rejected("invalid_record", "raw must be a string")
        if len(raw) > self.max_chars:
            self._check_size(raw, "raw")
        name = rec.get("format") or ctx.named_format
        if type(name) is not str:
            raise _Rejected("invalid_record", "format must be a string")
        parsed, fmt = _parse_line(raw.rstrip("\r\n"), name)
        merged = _merge(parsed, rec)
        merged["format"] = fmt
        return merged

    def _checked_msg(self, msg: object) -> str:
        text = msg if type(msg) is str else _json_text(msg, "msg")
        if len(text) > self.max_chars:
            self._check_size(text, "msg")
        return text

    def _check_size(self, text: str, what: str) -> None:
        size = len(text) if len(text) > self._max_bytes else _utf8_len(text)
        if size > self._max_bytes:
            raise _Rejected(
                "record_too_large",
                f"{what} is over {self._max_bytes} bytes (at least {size})",
            )

    def _mask_fields(self, out: dict[str, Any]) -> None:
        assert self._mask is not None
        for name in self.pii_fields:
            value = out.get(name)
            if type(value) is str:
                out[name] = self._mask(value)


def _context(batch: Batch, ingest_ms: int) -> Context:
    ingest_ts = format_ts(ingest_ms)
    template: dict[str, Any] = {
        "ts": "",
        "level": "",
        "msg": "",
        "emitter": batch.emitter,
        "scenario_id": batch.scenario_id,
        "run_id": batch.run_id,
        "service": "",
        "host": "",
        "format": batch.default_format or "structured",
        "stream": "",
        "seq": None,
        "batch_id": batch.batch_id,
        "ingest_ts": ingest_ts,
    }
    return Context(template, batch.default_format, ingest_ms, ingest_ts)


def _parse_line(line: str, name: str) -> tuple[Record, str]:
    if not name or name == "auto":
        detected = detect_format(line)
        if detected is not None:
            try:
                return FORMATS[detected].parse(line), detected
            except FormatError:
                pass  # a guess that does not parse is no reason to refuse the line
        return {"msg": line}, "text"
    if name == "text":
        return {"msg": line}, "text"
    if name not in FORMATS:
        known = ", ".join((*FORMAT_NAMES, "text", "auto"))
        raise _Rejected("unknown_format", f"unknown format {name[:64]!r} (known: {known})")
    try:
        return FORMATS[name].parse(line), name
    except FormatError as exc:
        raise _Rejected("parse_error", f"{name}: {exc}") from None


def _merge(parsed: Record, rec: Record) -> Record:
    """The line's fields, then the record's fields that the line does not set.

    An alias (``timestamp`` for ``ts``, ...) counts as set when the line sets any name
    of its group; the record's aliases of a group the line leaves open all come along,
    whatever their order, and the usual precedence then picks one.
    """
    for key in ("raw", "format"):
        if key in parsed:
            value = parsed.pop(key)
            parsed[_free_key(parsed, key)] = value
    if len(rec) == 1:
        return parsed
    line = frozenset(parsed)
    for key, value in rec.items():
        if key in parsed or key == "raw" or key == "format":
            continue
        group = _ALIAS_GROUP.get(key)
        if group is None or line.isdisjoint(group):
            parsed[key] = value
    return parsed


def _read_carefully(rec: Record) -> tuple[Any, Any, Any, Any, Any, Any, Any, frozenset[str]]:
    """The fixed fields of a record that lacks some, resolving the aliases."""
    ts_key, ts_val = _first_present(rec, _TS_ALIASES)
    level_key, level_val = _first_present(rec, _LEVEL_ALIASES)
    msg_key, msg = _first_present(rec, _MSG_ALIASES)
    used = [key for key in (ts_key, level_key, msg_key) if key is not None]
    get = rec.get
    return (
        *(ts_val, level_val, msg, get("service"), get("host"), get("stream"), get("seq")),
        _CONSUMED.union(used),
    )


def _own_run(out: dict[str, Any], run_id: object, consumed: frozenset[str]) -> frozenset[str]:
    """A record's text ``run_id`` replaces the batch's ("" names no run: the batch's
    stands); any other value stays a field, renamed ``src_run_id``."""
    if type(run_id) is not str:
        return consumed
    if run_id:
        out["run_id"] = run_id
    return consumed | _RUN_ID


def _format_label(value: object, ctx: Context) -> str:
    if type(value) is not str:
        raise _Rejected("invalid_record", "format must be a string")
    return value or ctx.template["format"]


def _keep_invalid(out: dict[str, Any], flags: int, ts_val: object, level_val: object) -> None:
    """Unparseable originals stay beside the replacements, as src_ts and src_level."""
    if flags & _TS_INVALID:
        out[_free_key(out, "ts")] = ts_val
    if flags & _LEVEL_INVALID:
        out[_free_key(out, "level")] = level_val


def _first_present(rec: Record, keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for key in keys:
        value = rec.get(key)
        if value is not None and value != "":
            return key, value
    return None, None


def _fallbacks(
    ts: str | None, level: str | None, ts_val: object, level_val: object, rec: Record, ctx: Context
) -> tuple[str, str, int]:
    """The ingest time for a missing timestamp, INFO for a missing level, and why."""
    flags = 0
    if ts is None:
        ts = ctx.ingest_ts
        flags = _TS_ABSENT if ts_val is None or ts_val == "" else _TS_INVALID
    if level is None:
        level = canonical_level(level_val)
        if level_val is None or level_val == "":
            level = syslog_level(rec.get("syslog_severity"))
            flags |= _LEVEL_ABSENT if level is None else 0
        elif level is None:
            flags |= _LEVEL_INVALID
    return ts, level or "INFO", flags


def _text(value: object, what: str) -> str:
    if type(value) is str:
        return value
    return "" if value is None else _json_text(value, what)


def _json_text(value: object, what: str) -> str:
    if value is None:
        return ""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError as exc:
        raise _Rejected("invalid_record", f"{what} cannot be written as JSON: {exc}") from None


def _seq(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        number = int(value)
        if number <= _MAX_SEQ:
            return number
    raise _Rejected("invalid_record", "seq must be an integer from 0 to 2**64-1")


def _free_key(out: dict[str, Any], key: str) -> str:
    key = "src_" + key
    while key in out:
        key = "src_" + key
    return key


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _count_missing(missing: MissingCounts, flags: int) -> None:
    if flags & _TS_ABSENT:
        missing.ts_absent += 1
    elif flags & _TS_INVALID:
        missing.ts_invalid += 1
    if flags & _LEVEL_ABSENT:
        missing.level_absent += 1
    elif flags & _LEVEL_INVALID:
        missing.level_invalid += 1
