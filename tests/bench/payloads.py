"""Realistic log records, pre-encoded into request bodies for both fronts before any timing.

A body is built from three parts: a fixed head, a batch id of fixed width, and the
encoded records. Only the id changes between requests, so making a body costs one
concatenation. For protobuf this works because a message's fields may come in any
order and a length-delimited field of fixed length keeps the outer lengths fixed:
``PushRequest{batch: LogBatch{batch_id, emitter, records...}}`` is written as
``0a <len(LogBatch)> 0a <len(id)> <id> <emitter and records>``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from logops.v1 import logs_pb2

LEVELS = ("INFO",) * 14 + ("DEBUG",) * 2 + ("WARN",) * 3 + ("ERROR",) * 1
SERVICES = ("checkout", "payments", "catalog", "auth", "search", "shipping")
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1")
NAMES = ("anna.kowalska", "j.smith", "m.dubois", "li.wei", "o.hansen", "p.rossi")
# Roughly 80 characters each; about a third carry an e-mail address or an IPv4 address.
TEMPLATES = (
    "GET /api/v1/orders/{n} answered 200 in {ms} ms for client {ip} via edge proxy",
    "user {name}@example.com signed in from {ip}; session {hex} issued, mfa passed",
    "cache miss for key product:{n}; fetched from primary store shard {d} in {ms} ms",
    "payment {hex} authorised for {name}@example.org, amount {n} EUR, 3ds ok",
    "worker {d} finished job {hex} in {ms} ms; queue depth now {n}, retries 0",
    "slow query on table line_items took {ms} ms (plan: index scan, rows {n})",
    "upstream inventory-service returned 503 after {ms} ms; retrying attempt {d}/3",
    "config reloaded from /etc/app/config.yaml, {d} keys changed, checksum {hex}",
    "rate limit near for tenant {n}: {d}0 requests in the last second, window 1 s",
    "TLS handshake completed with {ip}:443 using TLS1.3 in {ms} ms, resumed=false",
)
ID_WIDTH = 48


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _message(rng: random.Random) -> str:
    return rng.choice(TEMPLATES).format(
        n=rng.randint(1000, 999_999),
        ms=rng.randint(1, 2500),
        ip=".".join(
            str(rng.randint(lo, hi)) for lo, hi in ((10, 223), (0, 255), (0, 255), (1, 254))
        ),
        name=rng.choice(NAMES),
        hex=f"{rng.getrandbits(40):010x}",
        d=rng.randint(1, 9),
    )


def make_records(count: int, stream: str, seed: int) -> list[dict[str, Any]]:
    """``count`` records of one stream, one millisecond apart, seq from 1."""
    rng = random.Random(seed)
    t0 = datetime.now(UTC)
    records = []
    for seq in range(1, count + 1):
        ts = t0 + timedelta(milliseconds=seq)
        records.append(
            {
                "ts": ts.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "level": rng.choice(LEVELS),
                "msg": _message(rng),
                "service": rng.choice(SERVICES),
                "host": f"web-{rng.randint(1, 12):02d}",
                "stream": stream,
                "seq": seq,
                "fields": {
                    "region": rng.choice(REGIONS),
                    "trace_id": f"{rng.getrandbits(64):016x}",
                },
            }
        )
    return records


def _pb_tail(emitter: str, records: list[dict[str, Any]]) -> bytes:
    batch = logs_pb2.LogBatch(emitter=emitter, records=[logs_pb2.LogRecord(**r) for r in records])
    data: bytes = batch.SerializeToString()
    return data


def _json_tail(emitter: str, records: list[dict[str, Any]]) -> bytes:
    # '{"emitter":...,"records":[...]}' without its opening brace.
    return orjson.dumps({"emitter": emitter, "records": records})[1:]


@dataclass(frozen=True)
class BodyTemplate:
    head: bytes
    tail: bytes

    def body(self, batch_id: bytes) -> bytes:
        return self.head + batch_id + self.tail


def body_templates(
    front: str, batch_size: int, variants: int, emitter: str, seed: int
) -> list[BodyTemplate]:
    """``variants`` bodies of distinct records, ready for a batch id of ``ID_WIDTH`` bytes."""
    out = []
    for v in range(variants):
        records = make_records(batch_size, f"{emitter}-s{v}", seed * 1000 + v)
        if front == "grpc":
            tail = _pb_tail(emitter, records)
            id_field = b"\x0a" + encode_varint(ID_WIDTH)
            batch_len = len(id_field) + ID_WIDTH + len(tail)
            out.append(BodyTemplate(b"\x0a" + encode_varint(batch_len) + id_field, tail))
        else:
            out.append(BodyTemplate(b'{"batch_id":"', b'",' + _json_tail(emitter, records)))
    return out


def batch_ids(prefix: str) -> Iterator[bytes]:
    """Distinct batch ids of exactly ``ID_WIDTH`` ASCII bytes."""
    head = prefix.encode("ascii")[: ID_WIDTH - 12]
    pad = b"-" * (ID_WIDTH - 12 - len(head))
    n = 0
    while True:
        yield b"%s%s%012d" % (head, pad, n)
        n += 1


def check_body(front: str, body: bytes, batch_id: bytes, batch_size: int) -> None:
    """Decode one built body the way the gateway will, and fail loudly if it is wrong."""
    if front == "grpc":
        req = logs_pb2.PushRequest.FromString(body)
        batch_id_got, count = req.batch.batch_id, len(req.batch.records)
    else:
        doc = orjson.loads(body)
        batch_id_got, count = doc["batch_id"], len(doc["records"])
    if batch_id_got != batch_id.decode() or count != batch_size:
        raise ValueError(f"bad {front} body: id {batch_id_got!r}, {count} records")
