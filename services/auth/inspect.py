"""What the Auth Gateway reads of a push before forwarding it, without re-encoding it.

A serialized ``PushRequest`` (gRPC) or ``LogBatch`` (HTTP protobuf) is scanned on the wire
for its batch id, emitter and number of records; the names the gateway imposes (the
key's emitter, a batch id when the client gave none) are *appended* as a second
occurrence of the fields: protobuf merges repeated occurrences of an embedded message
and keeps the last value of a singular field, so Ingest reads the imposed names while
the client's bytes go on untouched. Other bodies are decoded by the shared codecs.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import orjson

from services.common.errors import BadRequest

# logops.v1 field numbers (proto/logops/v1/logs.proto).
PUSH_BATCH = 1
BATCH_ID = 1
BATCH_EMITTER = 2
BATCH_RECORDS = 5
_LEN = 2  # wire type of length-delimited fields


@dataclass(frozen=True, slots=True)
class WireFacts:
    batch_id: str
    emitter: str
    records: int


def push_request_facts(body: bytes) -> WireFacts:
    """Batch id, emitter and record count of a serialized PushRequest (every occurrence
    of its ``batch`` field merged, as a protobuf parser merges them)."""
    facts = WireFacts("", "", 0)
    for field, start, end in _fields(body):
        if field == PUSH_BATCH:
            facts = _merge(facts, log_batch_facts(body[start:end]))
    return facts


def log_batch_facts(body: bytes) -> WireFacts:
    batch_id, emitter, records = "", "", 0
    for field, start, end in _fields(body):
        if field == BATCH_ID:
            batch_id = _text(body[start:end], "batch_id")
        elif field == BATCH_EMITTER:
            emitter = _text(body[start:end], "emitter")
        elif field == BATCH_RECORDS:
            records += 1
    return WireFacts(batch_id, emitter, records)


class _Envelope(msgspec.Struct):
    records: list[msgspec.Raw]
    batch_id: str | None = None
    emitter: str | None = None


# The records stay raw: msgspec checks their JSON as it skips over them but builds no
# objects (a thousand dicts a batch otherwise, and garbage for the collector); Ingest
# reads them.
_JSON_SHAPE = msgspec.json.Decoder(list[msgspec.Raw] | _Envelope)


def json_facts(plain: bytes) -> WireFacts:
    """Batch id, emitter and record count of a JSON body (an array of records or a batch
    object); the records are not looked into (Ingest does). A body msgspec cannot read is
    read again by orjson, which says precisely why it is refused, as Ingest would."""
    try:
        doc = _JSON_SHAPE.decode(plain)
    except (msgspec.MsgspecError, RecursionError):
        # msgspec nests no deeper than the interpreter's recursion limit, less than the
        # 1024 levels orjson (Ingest's reader) takes.
        return _strict_json_facts(plain)
    if isinstance(doc, list):
        return WireFacts("", "", len(doc))
    return WireFacts(doc.batch_id or "", doc.emitter or "", len(doc.records))


def _strict_json_facts(plain: bytes) -> WireFacts:
    doc = load_json(plain)
    if isinstance(doc, list):
        return WireFacts("", "", len(doc))
    if isinstance(doc, dict) and isinstance(doc.get("records"), list):
        names = [doc.get(k) for k in ("batch_id", "emitter")]
        if not all(isinstance(n, str | None) for n in names):
            raise BadRequest("'batch_id' and 'emitter' must be strings")
        return WireFacts(names[0] or "", names[1] or "", len(doc["records"]))
    raise BadRequest("expected a JSON array of records or a batch object with 'records'")


def load_json(plain: bytes) -> object:
    """The JSON document, or ``BadRequest`` saying why it is not one (orjson's reading:
    strict UTF-8, no lone surrogates, numbers within a double)."""
    try:
        return orjson.loads(plain)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc


def line_count(plain: bytes) -> int:
    """Records of an NDJSON or plain-text body: its non-blank lines."""
    return sum(1 for line in plain.split(b"\n") if line.strip())


def log_batch_names(batch_id: str, emitter: str) -> bytes:
    """A LogBatch fragment that sets these names (empty ones are left out)."""
    out = b""
    if batch_id:
        out += _field(BATCH_ID, batch_id.encode())
    if emitter:
        out += _field(BATCH_EMITTER, emitter.encode())
    return out


def push_request_names(batch_id: str, emitter: str) -> bytes:
    """A PushRequest fragment that sets these names in its batch."""
    names = log_batch_names(batch_id, emitter)
    return _field(PUSH_BATCH, names) if names else b""


def push_request_of(log_batch: bytes) -> bytes:
    """A PushRequest that carries this serialized LogBatch, its bytes untouched."""
    return _field(PUSH_BATCH, log_batch)


def _merge(a: WireFacts, b: WireFacts) -> WireFacts:
    return WireFacts(b.batch_id or a.batch_id, b.emitter or a.emitter, a.records + b.records)


def _field(number: int, value: bytes) -> bytes:
    return _varint_bytes(number << 3 | _LEN) + _varint_bytes(len(value)) + value


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _fields(message: bytes) -> list[tuple[int, int, int]]:
    """(field number, start, end) of each length-delimited field at the top level;
    other wire types are skipped. Malformed bytes are the client's ``bad_request``."""
    out: list[tuple[int, int, int]] = []
    pos, end = 0, len(message)
    while pos < end:
        key, pos = _varint(message, pos)
        wire_type, number = key & 7, key >> 3
        if number == 0:
            raise BadRequest("protobuf body has a field numbered 0")
        if wire_type == _LEN:
            size, pos = _varint(message, pos)
            if pos + size > end:
                raise BadRequest("protobuf body is truncated")
            out.append((number, pos, pos + size))
            pos += size
        elif wire_type == 0:
            _, pos = _varint(message, pos)
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
        else:
            raise BadRequest(f"protobuf body has a field of wire type {wire_type}")
    if pos != end:
        raise BadRequest("protobuf body is truncated")
    return out


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise BadRequest("protobuf body has a malformed varint")


def _text(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"{name} is not valid UTF-8") from exc
