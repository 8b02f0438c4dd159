"""Throughput of the Ingest normaliser: records/s for structured records and raw lines.

Run with ``python -m tests.bench.normalize_bench [--batches N] [--profile KIND]``. Batches
of 1000 records, as the gateways receive them; each figure is the median
of the runs, in CPU time of this process.
Prints numbers only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import time
from collections.abc import Callable

from emitters.formats import get_format
from services.common.config import PiiConfig
from services.common.model import Batch, Record
from services.ingest.normalize import Normaliser

BATCH_SIZE = 1000
_WORDS = [
    "order",
    "placed",
    "payment",
    "captured",
    "cart",
    "updated",
    "user",
    "signed",
    "in",
    "session",
    "renewed",
    "cache",
    "miss",
    "upstream",
    "responded",
    "slowly",
    "retrying",
    "request",
    "inventory",
    "reserved",
    "shipment",
    "created",
    "refund",
]
_LEVELS = ("info", "info", "info", "info", "debug", "warn", "error")


def _message(rng: random.Random) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < 60:
        words.append(rng.choice(_WORDS))
    return " ".join(words)[:60]


def _record(rng: random.Random, seq: int) -> Record:
    ms = 1_710_252_309_000 + seq * 7
    return {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z",
        "level": rng.choice(_LEVELS),
        "msg": _message(rng),
        "service": "checkout",
        "host": f"web{seq % 4:02d}",
        "stream": "s1",
        "seq": seq,
        "order_id": rng.randrange(1, 100_000),
        "region": "eu-west-1",
    }


def structured_batches(count: int, with_pii: bool = False) -> list[Batch]:
    rng = random.Random(7)
    batches = []
    for b in range(count):
        records: list[Record | None] = []
        for i in range(BATCH_SIZE):
            rec = _record(rng, b * BATCH_SIZE + i)
            if with_pii and i % 10 == 0:
                rec["msg"] = f"login by jane.doe@example.com from 83.11.45.{i % 250}"
            records.append(rec)
        batches.append(Batch(records=records, batch_id=f"b{b}", emitter="bench", run_id="r1"))
    return batches


def raw_batches(count: int, fmt_name: str) -> list[Batch]:
    fmt = get_format(fmt_name)
    rng = random.Random(11)
    batches = []
    for b in range(count):
        records: list[Record | None] = []
        for i in range(BATCH_SIZE):
            rec = _record(rng, b * BATCH_SIZE + i)
            rec["level"] = rec["level"].upper()
            rec["pid"] = 4412
            line = fmt.render({k: v for k, v in rec.items() if k not in ("stream", "seq")})
            records.append({"raw": line, "stream": "s1", "seq": rec["seq"]})
        batches.append(
            Batch(records=records, batch_id=f"b{b}", run_id="r1", default_format=fmt_name)
        )
    return batches


def measure(normaliser: Normaliser, batches: list[Batch], runs: int) -> tuple[float, float]:
    """Median and best rate over ``runs``, by CPU time: other load on the machine then
    slows the run without skewing the figure much."""
    rates = []
    for _ in range(runs):
        started = time.process_time()
        for batch in batches:
            normaliser.normalise_batch(batch, 1_710_252_400_000)
        rates.append(len(batches) * BATCH_SIZE / (time.process_time() - started))
    return statistics.median(rates), max(rates)


def _cases(count: int) -> dict[str, Callable[[], list[Batch]]]:
    return {
        "structured": lambda: structured_batches(count),
        "structured+pii": lambda: structured_batches(count, with_pii=True),
        "raw syslog": lambda: raw_batches(count, "syslog"),
        "raw json": lambda: raw_batches(count, "json"),
        "raw logfmt": lambda: raw_batches(count, "logfmt"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", choices=sorted(_cases(1)), help="profile one case instead")
    args = parser.parse_args(argv)
    normaliser = Normaliser(PiiConfig(), 256 * 1024)
    cases = _cases(args.batches)
    if args.profile:
        _profile(normaliser, cases[args.profile]())
        return
    for name, build in cases.items():
        median, best = measure(normaliser, build(), args.runs)
        print(f"{name:16} {median:10,.0f} records/s (best {best:,.0f})")


def _profile(normaliser: Normaliser, batches: list[Batch]) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for batch in batches:
        normaliser.normalise_batch(batch, 1_710_252_400_000)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
