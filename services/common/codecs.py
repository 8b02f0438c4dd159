"""Decoding of HTTP request bodies (JSON, NDJSON, CSV, plain text) into a ``Batch``.

Shared by both gateways' HTTP fronts. A body that cannot be read at all is a
``BadRequest``; a single line or row that cannot be read becomes a rejection of that
record alone, so the good records in the same body are kept. Protobuf bodies are
decoded by ``services.common.pb_codec`` (generated code stays out of this module).
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from emitters.formats.csvline import parse_csv_document
from services.common.errors import BadRequest, TooLarge, UnsupportedMediaType
from services.common.model import Batch, Record, Rejection

BATCH_META_KEYS = ("batch_id", "emitter", "scenario_id", "run_id")

MEDIA_TYPES: dict[str, str] = {
    "application/json": "json",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/x-jsonlines": "ndjson",
    "text/csv": "csv",
    "text/plain": "text",
    "application/x-protobuf": "protobuf",
    "application/protobuf": "protobuf",
    "application/vnd.google.protobuf": "protobuf",
}

# A CSV header must name one of these, or every row would be stored without a message.
CSV_MESSAGE_COLUMNS = frozenset({"msg", "message", "log", "text", "raw"})


def media_kind(content_type: str | None) -> str:
    """Map a Content-Type header to a body kind, or raise 415."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    kind = MEDIA_TYPES.get(media)
    if kind is None:
        shown = media or "none"
        raise UnsupportedMediaType(
            f"unsupported content type {shown[:80]!r}; use one of {', '.join(MEDIA_TYPES)}"
        )
    return kind


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding`` without ever holding more than ``limit`` + 1 bytes of output.

    A gzip body may hold several members (RFC 1952 section 2.2: ``cat a.gz b.gz``,
    streaming shippers); every one is inflated and the limit applies to their total.
    Anything after the last complete member, or after a deflate (zlib) stream, is
    refused: ignoring it would drop records without a word.
    """
    enc = (encoding or "identity").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "x-gzip", "deflate"):
        raise UnsupportedMediaType(f"unsupported content encoding {enc[:40]!r}; use gzip")
    is_gzip = enc != "deflate"
    # 47: a gzip or zlib header, detected (a zlib stream under "gzip" was always taken).
    inflater = zlib.decompressobj(47 if is_gzip else 15)
    out = _inflate(inflater, body, limit, 0, f"body is not valid {enc}")
    if not inflater.eof:
        raise BadRequest(f"{enc} body is truncated")
    rest = len(inflater.unused_data)
    if not rest:
        return out
    if not (is_gzip and body.startswith(_GZIP_MAGIC)):
        kind = "gzip member" if is_gzip else "deflate stream"
        raise BadRequest(f"{enc} body has {rest} bytes after the end of its {kind}")
    return _more_members(body, len(body) - rest, out, limit)


_GZIP_MAGIC = b"\x1f\x8b"
# Each member costs a fresh inflater: millions of empty ones would cost seconds of CPU.
MAX_GZIP_MEMBERS = 4096
# Later members are fed in growing slices: the inflater copies whatever follows the end
# of a member, and copying the rest of the body once per member would be quadratic.
_FIRST_SLICE = 512


def _inflate(
    inflater: Any, data: bytes | memoryview, limit: int, total: int, problem: str
) -> bytes:
    """Inflate ``data`` after ``total`` bytes of output, or refuse the body past ``limit``."""
    try:
        out: bytes = inflater.decompress(data, limit - total + 1)
    except zlib.error as exc:
        raise BadRequest(f"{problem}: {exc}") from exc
    if total + len(out) > limit:
        raise TooLarge(f"body exceeds {limit} bytes after decompression")
    return out


def _more_members(body: bytes, pos: int, first: bytes, limit: int) -> bytes:
    """The gzip members after the first one, which inflated to ``first`` and ended at ``pos``."""
    parts = [first]
    total = len(first)
    view = memoryview(body)
    members = 1
    while pos < len(body):
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise TooLarge(f"gzip body has more than {MAX_GZIP_MEMBERS} members")
        problem = f"gzip body has bytes after member {members - 1} that are not a gzip member"
        inflater = zlib.decompressobj(31)
        step = _FIRST_SLICE
        while not inflater.eof:
            piece = view[pos : pos + step]
            if not piece:
                raise BadRequest(f"gzip body is truncated: member {members} is incomplete")
            out = _inflate(inflater, piece, limit, total, problem)
            parts.append(out)
            total += len(out)
            pos += len(piece) - len(inflater.unused_data)
            step *= 2
    return b"".join(parts)


def decode_body(
    kind: str,
    body: bytes,
    meta: Mapping[str, str],
    protobuf: Callable[[bytes], Batch] | None = None,
    json: Callable[[bytes], Batch | None] | None = None,
) -> Batch:
    """Decode a body of ``kind`` (see ``media_kind``). ``meta`` holds header values
    (``batch_id``, ``emitter``, ``scenario_id``, ``run_id``, ``format``) for bodies
    without an envelope of their own. ``json`` may take a JSON body first (the Ingest
    Gateway's C path keeps it undecoded); when it answers None the body is decoded here."""
    if kind == "protobuf":
        if protobuf is None:
            raise UnsupportedMediaType("protobuf bodies are not accepted here")
        return protobuf(body)
    batch = (json(body) if json is not None and kind == "json" else None) or _DECODERS[kind](body)
    for key in BATCH_META_KEYS:
        if not getattr(batch, key) and meta.get(key):
            setattr(batch, key, meta[key])
    if not batch.default_format:
        batch.default_format = meta.get("format", "")
    return batch


def _decode_json(body: bytes) -> Batch:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if isinstance(doc, list):
        return _batch_of(doc)
    if isinstance(doc, dict) and "records" in doc:
        records = doc["records"]
        if not isinstance(records, list):
            raise BadRequest("'records' must be an array of records")
        batch = _batch_of(records)
        for key in (*BATCH_META_KEYS, "format"):
            if key in doc and not isinstance(doc[key], str):
                raise BadRequest(f"'{key}' must be a string")
        for key in BATCH_META_KEYS:
            setattr(batch, key, doc.get(key) or "")
        batch.default_format = doc.get("format") or ""
        return batch
    raise BadRequest("expected a JSON array of records or a batch object with 'records'")


def load_record(text: bytes) -> Record:
    """One JSON record object, its ``fields`` object merged in (see ``flatten``)."""
    record: Record = flatten(orjson.loads(text))
    return record


def flatten(record: Record) -> Record:
    """Merge a ``fields`` object into the record, as ``LogRecord.fields`` is on gRPC:
    its members first, the record's own keys winning over them."""
    fields = record.get("fields")
    if type(fields) is not dict:
        return record
    del record["fields"]
    merged = dict(fields)
    merged.update(record)
    return merged


def _batch_of(items: list[Any]) -> Batch:
    records: list[Record | None] = []
    rejections: list[Rejection] = []
    for index, item in enumerate(items):
        if isinstance(item, dict):
            records.append(flatten(item) if "fields" in item else item)
        else:
            records.append(None)
            rejections.append(
                Rejection(index, "invalid_record", f"record must be an object, not {_kind(item)}")
            )
    return Batch(records=records, rejections=rejections)


def _decode_ndjson(body: bytes) -> Batch:
    records: list[Record | None] = []
    rejections: list[Rejection] = []
    for lineno, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        index = len(records)
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            records.append(None)
            rejections.append(Rejection(index, "parse_error", f"line {lineno}: {exc}"))
            continue
        if isinstance(item, dict):
            records.append(flatten(item) if "fields" in item else item)
        else:
            records.append(None)
            rejections.append(
                Rejection(index, "invalid_record", f"line {lineno}: not an object")
            )
    return Batch(records=records, rejections=rejections)


def _decode_csv(body: bytes) -> Batch:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"CSV body is not valid UTF-8: {exc}") from exc
    _check_csv_header(text)
    records: list[Record | None] = []
    rejections: list[Rejection] = []
    for index, row in enumerate(parse_csv_document(text)):
        if isinstance(row, dict):
            row.setdefault("format", "csv")
            records.append(row)
        else:
            records.append(None)
            rejections.append(Rejection(index, "parse_error", str(row)))
    return Batch(records=records, rejections=rejections)


def _check_csv_header(text: str) -> None:
    """The first row must be a header that names a message column (``ts,level,msg``)."""
    try:
        header = next(csv.reader(io.StringIO(text[:4096], newline="")), [])
    except csv.Error as exc:
        raise BadRequest(f"CSV header cannot be read: {exc}") from exc
    names = {name.strip().lower() for name in header}
    if not names & CSV_MESSAGE_COLUMNS:
        raise BadRequest(
            "CSV body needs a header row naming a message column "
            f"({', '.join(sorted(CSV_MESSAGE_COLUMNS))}), e.g. ts,level,msg"
        )


def _decode_text(body: bytes) -> Batch:
    records: list[Record | None] = []
    rejections: list[Rejection] = []
    for lineno, line in enumerate(body.split(b"\n"), start=1):
        line = line.rstrip(b"\r")
        if not line.strip():
            continue
        try:
            records.append({"raw": line.decode("utf-8")})
        except UnicodeDecodeError:
            rejections.append(
                Rejection(len(records), "parse_error", f"line {lineno}: not valid UTF-8")
            )
            records.append(None)
    return Batch(records=records, rejections=rejections)


def _kind(value: object) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


_DECODERS: dict[str, Callable[[bytes], Batch]] = {
    "json": _decode_json,
    "ndjson": _decode_ndjson,
    "csv": _decode_csv,
    "text": _decode_text,
}
