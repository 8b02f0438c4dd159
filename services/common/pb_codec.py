"""Conversion between the generated protobuf messages and the plain model types.

The one place outside the gRPC fronts that imports generated ``_pb2`` code; the cores
never see protobuf objects. Used by the gRPC fronts, the HTTP fronts (for
``application/x-protobuf`` bodies) and the client SDK.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from google.protobuf.message import DecodeError
from logops.v1 import logs_pb2

from services.common.errors import BadRequest
from services.common.model import Batch, MissingCounts, PushResult, Record, Rejection


def batch_from_pb(msg: logs_pb2.LogBatch) -> Batch:
    """Turn a ``LogBatch`` into a ``Batch`` of record dicts (fields merged at the top).

    The hot path of the gRPC front: each attribute read crosses into upb, so every
    field is read once, and ``HasField`` is asked only when the value reads as empty.
    """
    records: list[Record | None] = []
    append = records.append
    for r in msg.records:
        fields = r.fields
        rec: Record = {key: fields[key] for key in fields} if fields else {}
        # Unset proto3 strings read as "": leave them out so they count as absent.
        ts = r.ts
        if ts or r.HasField("ts"):
            rec["ts"] = ts
        level = r.level
        if level or r.HasField("level"):
            rec["level"] = level
        raw = r.raw
        if raw:
            rec["raw"] = raw
        else:
            rec["msg"] = r.msg
        for key, value in (
            ("format", r.format),
            ("service", r.service),
            ("host", r.host),
            ("stream", r.stream),
        ):
            if value:
                rec[key] = value
        seq = r.seq
        if seq or r.HasField("seq"):
            rec["seq"] = seq
        append(rec)
    return Batch(
        records=records,
        batch_id=msg.batch_id,
        emitter=msg.emitter,
        scenario_id=msg.scenario_id,
        run_id=msg.run_id,
    )


def batch_from_bytes(body: bytes) -> Batch:
    """Decode a serialized ``LogBatch`` (the HTTP protobuf body)."""
    return batch_from_pb(_parse(logs_pb2.LogBatch(), body))


def batch_from_request_bytes(body: bytes) -> Batch:
    """Decode a serialized ``PushRequest`` (the gRPC request, taken as raw bytes)."""
    return batch_from_pb(_parse(logs_pb2.PushRequest(), body).batch)


_M = TypeVar("_M", logs_pb2.LogBatch, logs_pb2.PushRequest)


def _parse(msg: _M, body: bytes) -> _M:
    try:
        msg.ParseFromString(body)
    except DecodeError as exc:
        name = msg.DESCRIPTOR.full_name
        raise BadRequest(f"body is not a valid {name}: {exc}") from exc
    return msg


def result_to_pb(result: PushResult) -> logs_pb2.PushResponse:
    m = result.missing
    return logs_pb2.PushResponse(
        batch_id=result.batch_id,
        accepted=result.accepted,
        rejected=result.rejected,
        rejections=[
            logs_pb2.RecordRejection(index=r.index, reason=r.reason, message=r.message)
            for r in result.rejections
        ],
        duplicate=result.duplicate,
        spooled=result.spooled,
        missing=logs_pb2.MissingFieldCounts(
            ts_absent=m.ts_absent,
            ts_invalid=m.ts_invalid,
            level_absent=m.level_absent,
            level_invalid=m.level_invalid,
        ),
        request_id=result.request_id,
    )


def result_from_pb(msg: logs_pb2.PushResponse) -> PushResult:
    m = msg.missing
    return PushResult(
        batch_id=msg.batch_id,
        accepted=msg.accepted,
        rejected=msg.rejected,
        rejections=[Rejection(r.index, r.reason, r.message) for r in msg.rejections],
        duplicate=msg.duplicate,
        spooled=msg.spooled,
        missing=MissingCounts(m.ts_absent, m.ts_invalid, m.level_absent, m.level_invalid),
        request_id=msg.request_id,
    )


def result_from_dict(doc: dict[str, Any]) -> PushResult:
    """Rebuild a ``PushResult`` from its JSON form (the HTTP response body)."""
    missing = doc.get("missing") or {}
    return PushResult(
        batch_id=str(doc.get("batch_id", "")),
        accepted=int(doc.get("accepted", 0)),
        rejected=int(doc.get("rejected", 0)),
        rejections=[
            Rejection(int(r["index"]), str(r["reason"]), str(r.get("message", "")))
            for r in doc.get("rejections") or []
        ],
        duplicate=bool(doc.get("duplicate", False)),
        spooled=bool(doc.get("spooled", False)),
        missing=MissingCounts(**{k: int(v) for k, v in missing.items()}),
        request_id=str(doc.get("request_id", "")),
    )


_TEXT_KEYS = frozenset(("ts", "level", "msg", "service", "host", "stream", "raw", "format"))
_MAX_SEQ = 2**64 - 1
SEQ_MESSAGE = "seq must be an integer from 0 to 2**64-1"


def record_to_pb(rec: Record) -> logs_pb2.LogRecord:
    """Build a ``LogRecord`` from a record dict; other keys go to ``fields``.

    Read as the Ingest Gateway reads the same record in JSON: a null leaves its field unset
    (absent, not the text "None"), and ``seq`` is a whole number from 0 to 2**64-1 or its
    decimal digits, anything else a ``ValueError`` (Ingest's ``invalid_record``)."""
    out = logs_pb2.LogRecord()
    for key, value in rec.items():
        if key in _TEXT_KEYS:
            if value is not None:
                setattr(out, key, str(value))
        elif key == "seq":
            if value is not None:
                out.seq = _seq(value)
        else:
            out.fields[key] = value if isinstance(value, str) else _json_text(value)
    return out


def _seq(value: Any) -> int:
    if type(value) is int and 0 <= value <= _MAX_SEQ:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        number = int(value)
        if number <= _MAX_SEQ:
            return number
    raise ValueError(SEQ_MESSAGE)


def batch_to_pb(batch: Batch) -> logs_pb2.LogBatch:
    return logs_pb2.LogBatch(
        batch_id=batch.batch_id,
        emitter=batch.emitter,
        scenario_id=batch.scenario_id,
        run_id=batch.run_id,
        records=[record_to_pb(r) for r in batch.records if r is not None],
    )


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()
