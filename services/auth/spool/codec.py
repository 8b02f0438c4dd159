"""On-disk format of the Auth Gateway's spool: segment files, batch records, the ack cursor.

A spool folder holds::

    seg-<first seq, 20 digits>.log   segments, in seq order by name
    cursor                           the highest seq delivered ("acked up to")
    quarantine/                      damaged bytes moved aside at start-up or on read
    *.tmp                            files being written; removed at start-up

No name ever contains client input (batch ids live inside records only). All integers
are little-endian::

    segment  = head record*
    head     = "LSPS" version:u16 0:u16 seed:u32 crc32(first 12 bytes):u32      (16 bytes)
    record   = "LSPR" length:u32 seq:u64 crc:u32 payload[length]                (20 + length)
    payload  = meta_length:u32 meta (JSON object, UTF-8) body
    crc      = crc32(length:u32 seq:u64, crc32(payload, seed))
    cursor   = "LSPC" acked:u64 crc32(first 12 bytes):u32                        (16 bytes)

``seed`` is random for every process that writes segments. Seeding the checksum with it
means a body that carries a well-formed record of its own (bodies are client input) is
never taken for a record when recovery searches past damaged bytes for the next one.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import orjson

SEGMENT_NAME = re.compile(r"seg-(\d{20})\.log")
CURSOR_NAME = "cursor"
QUARANTINE_DIR = "quarantine"
TMP_SUFFIX = ".tmp"

_VERSION = 1
_SEGMENT_HEAD = struct.Struct("<4sHHII")
_RECORD_HEAD = struct.Struct("<4sIQI")
_LENGTH_SEQ = struct.Struct("<IQ")
_META_LENGTH = struct.Struct("<I")
_CURSOR = struct.Struct("<4sQI")
_SEGMENT_MAGIC = b"LSPS"
RECORD_MAGIC = b"LSPR"
_CURSOR_MAGIC = b"LSPC"

SEGMENT_HEAD_SIZE = _SEGMENT_HEAD.size
RECORD_HEAD_SIZE = _RECORD_HEAD.size


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """One batch as the spool keeps it; ``seq`` gives the delivery order. The body stays
    out of ``repr`` so that logging a batch never logs its payload."""

    seq: int
    batch_id: str
    media_type: str
    content_encoding: str
    meta: Mapping[str, str]
    body: bytes = field(repr=False)
    records: int
    spooled_at: float


def segment_name(first_seq: int) -> str:
    return f"seg-{first_seq:020d}.log"


def encode_segment_head(seed: int) -> bytes:
    head = _SEGMENT_HEAD.pack(_SEGMENT_MAGIC, _VERSION, 0, seed, 0)
    return head[:-4] + struct.pack("<I", zlib.crc32(head[:-4]))


def decode_segment_head(buf: bytes) -> int | None:
    """The seed of a segment, or None when its head is damaged or of another version."""
    if len(buf) < SEGMENT_HEAD_SIZE:
        return None
    magic, version, _, seed, crc = _SEGMENT_HEAD.unpack_from(buf)
    if magic != _SEGMENT_MAGIC or version != _VERSION or crc != zlib.crc32(buf[:12]):
        return None
    return int(seed)


@dataclass(slots=True)
class Prepared:
    """A record without its seq: the costly part (copy, checksum) done outside any lock."""

    buf: bytearray
    payload_crc: int

    @property
    def size(self) -> int:
        return len(self.buf)


def prepare_record(
    batch_id: str,
    media_type: str,
    content_encoding: str,
    meta: Mapping[str, str],
    body: bytes,
    records: int,
    spooled_at: float,
    seed: int,
) -> Prepared:
    header = orjson.dumps(
        {
            "batch_id": batch_id,
            "media_type": media_type,
            "content_encoding": content_encoding,
            "meta": dict(meta),
            "records": records,
            "spooled_at": spooled_at,
        }
    )
    buf = bytearray(RECORD_HEAD_SIZE)
    buf += _META_LENGTH.pack(len(header))
    buf += header
    buf += body
    payload = memoryview(buf)[RECORD_HEAD_SIZE:]
    return Prepared(buf, zlib.crc32(payload, seed))


def seal_record(prepared: Prepared, seq: int) -> bytes:
    """Fill in the record head for ``seq``; returns the complete record."""
    length = prepared.size - RECORD_HEAD_SIZE
    crc = zlib.crc32(_LENGTH_SEQ.pack(length, seq), prepared.payload_crc)
    _RECORD_HEAD.pack_into(prepared.buf, 0, RECORD_MAGIC, length, seq, crc)
    return bytes(prepared.buf)


def check_record(data: bytes, pos: int, seed: int, min_seq: int) -> tuple[int, int] | None:
    """(seq, record length) of a whole, intact record at ``pos`` whose seq is at least
    ``min_seq``; None otherwise (torn, damaged, out of order)."""
    if len(data) - pos < RECORD_HEAD_SIZE:
        return None
    magic, length, seq, crc = _RECORD_HEAD.unpack_from(data, pos)
    end = pos + RECORD_HEAD_SIZE + length
    if magic != RECORD_MAGIC or end > len(data) or seq < min_seq:
        return None
    payload = memoryview(data)[pos + RECORD_HEAD_SIZE : end]
    if zlib.crc32(_LENGTH_SEQ.pack(length, seq), zlib.crc32(payload, seed)) != crc:
        return None
    return int(seq), end - pos


def decode_record(raw: bytes, seed: int) -> SpooledBatch | None:
    """The batch in one record read back whole; None when it is damaged."""
    if check_record(raw, 0, seed, 0) is None or len(raw) < RECORD_HEAD_SIZE + 4:
        return None
    seq = _RECORD_HEAD.unpack_from(raw)[2]
    (meta_length,) = _META_LENGTH.unpack_from(raw, RECORD_HEAD_SIZE)
    start = RECORD_HEAD_SIZE + _META_LENGTH.size
    try:
        header = orjson.loads(raw[start : start + meta_length])
    except orjson.JSONDecodeError:
        return None
    return _batch(seq, header, raw[start + meta_length :])


def _batch(seq: int, header: Any, body: bytes) -> SpooledBatch | None:
    """The batch a record's header describes; None when the header is not one we write."""
    if not isinstance(header, dict):
        return None
    batch_id, media_type, encoding, meta, records, at = (
        header.get(k)
        for k in ("batch_id", "media_type", "content_encoding", "meta", "records", "spooled_at")
    )
    if not (isinstance(batch_id, str) and isinstance(media_type, str)):
        return None
    if not (isinstance(encoding, str) and isinstance(meta, dict)):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        return None
    if type(records) is not int or not isinstance(at, int | float) or isinstance(at, bool):
        return None
    return SpooledBatch(
        seq, batch_id, media_type, encoding, MappingProxyType(meta), body, records, float(at)
    )


def encode_cursor(acked: int) -> bytes:
    head = _CURSOR_MAGIC + struct.pack("<Q", acked)
    return head + struct.pack("<I", zlib.crc32(head))


def decode_cursor(buf: bytes) -> int | None:
    if len(buf) != _CURSOR.size:
        return None
    magic, acked, crc = _CURSOR.unpack(buf)
    if magic != _CURSOR_MAGIC or crc != zlib.crc32(buf[:12]):
        return None
    return int(acked)
