"""Throughput of the Ingest normaliser: records/s for structured records and raw lines.

Run with ``python -m tests.bench.normalize_bench [--batches N] [--runs N] [--profile CASE]``.
Batches hold 1000 records, as the gateways receive them; a few batches at a time, so that
they sit in the CPU cache like a batch the gateway has just decoded. Rates are in CPU time
of this process (other load then slows a run without skewing its figure much), as the
median and the best of the runs. The reference line is ``orjson.dumps`` alone on the same
output records: the cost no normaliser can avoid, handy to compare machines. Prints
numbers only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import re
import statistics
import time
from collections.abc import Callable
from functools import partial

import orjson

from emitters.content import ContentOptions
from emitters.formats import FORMATS, get_format
from emitters.source import Accounting, EventSource
from services.common.config import PiiConfig
from services.common.model import Batch, Record
from services.ingest.native import make_normaliser
from services.ingest.normalize import BatchNormaliser, Normaliser
from services.ingest.pii import Masker

BATCH_SIZE = 1000
INGEST_MS = 1_710_252_400_000
_TEXT = (
    "order placed payment captured cart updated user signed in session renewed cache miss "
    "upstream responded slowly retrying request inventory reserved shipment created refund"
)
_WORDS = _TEXT.split()
_LEVELS = ("info", "info", "info", "info", "debug", "warn", "error")


def _message(rng: random.Random) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < 60:
        words.append(rng.choice(_WORDS))
    return " ".join(words)[:60]


def _record(rng: random.Random, seq: int) -> Record:
    """A typical record: RFC 3339 ts, lower-case level, 60-char msg, two extra fields."""
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


def emitted_batches(count: int, fmt_name: str, named: bool = True) -> list[Batch]:
    """Raw lines as the emitters send them in batches: realistic content of the format
    (RFC 5424 lines with their structured data and the ``logops@32473`` element), the
    record's ``format``, ``run_id``, ``stream`` and ``seq`` beside ``raw``; with
    ``named=False`` the bare lines of a text body, whose format is detected."""
    source = EventSource(get_format(fmt_name), ContentOptions(), Accounting("r1", "s1"), seed=5)
    batches = []
    for b in range(count):
        records: list[Record | None] = []
        for i in range(b * BATCH_SIZE, (b + 1) * BATCH_SIZE):
            line = source.line(i, 1_710_252_309.0 + i * 0.007)
            if named:
                records.append(
                    {"raw": line, "format": fmt_name, "run_id": "r1", "stream": "s1", "seq": i}
                )
            else:
                records.append({"raw": line})
        batches.append(Batch(records=records, batch_id=f"b{b}", run_id="r1"))
    return batches


# Raw-line formats measured as the emitters write them: every registered format, those
# read in C first.
_IN_C = ("syslog5424", "syslog3164", "apache_common", "apache_combined", "nginx_access")
EMITTED = (*_IN_C, *(name for name in FORMATS if name not in _IN_C))


def rates(work: Callable[[], object], items: int, runs: int) -> tuple[float, float]:
    """Median and best items/s of ``work`` over ``runs``, in CPU time."""
    found = []
    for _ in range(runs):
        started = time.process_time()
        work()
        found.append(items / max(time.process_time() - started, 1e-9))
    return statistics.median(found), max(found)


def _cases(count: int) -> dict[str, Callable[[], list[Batch]]]:
    return {
        "structured": lambda: structured_batches(count),
        "structured+pii": lambda: structured_batches(count, with_pii=True),
        "raw syslog": lambda: raw_batches(count, "syslog"),
        "raw json": lambda: raw_batches(count, "json"),
        "raw logfmt": lambda: raw_batches(count, "logfmt"),
        **{f"emitted {name}": partial(emitted_batches, count, name) for name in EMITTED},
        "detected 5424": lambda: emitted_batches(count, "syslog5424", named=False),
        "detected 3164": lambda: emitted_batches(count, "syslog3164", named=False),
        "detected apache_combined": lambda: emitted_batches(count, "apache_combined", named=False),
    }


def _normalise_all(normaliser: BatchNormaliser, batches: list[Batch]) -> Callable[[], None]:
    def work() -> None:
        for batch in batches:
            normaliser.normalise_batch(batch, INGEST_MS)

    return work


def _reference(normaliser: Normaliser, batches: list[Batch]) -> Callable[[], None]:
    outputs = [
        [orjson.loads(line) for line in normaliser.normalise_batch(b, INGEST_MS).data.splitlines()]
        for b in batches
    ]

    def work() -> None:
        for records in outputs:
            data = bytearray()
            for record in records:
                data += orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)

    return work


def _pii_figures(runs: int) -> None:
    """What the masker costs per text, and what skipping the regex saves."""
    masker = Masker(PiiConfig())
    any_address = re.compile(r"@|[0-9]\.[0-9]")
    texts = {
        "no '@' or '.'": "order placed by customer in 125 ms, payment captured ok",
        "'.' only": "order placed. payment captured in 1.25 s. retrying now. ok",
        "e-mail + IPv4": "login by jane.doe@example.com from 83.11.45.6 accepted",
    }
    for name, text in texts.items():
        batch = [text] * 10_000

        def mask_all(texts: list[str] = batch) -> list[str]:
            return [masker.apply(t) for t in texts]

        median, _ = rates(mask_all, len(batch), runs)
        print(f"  pii {name:14} {1e9 / median:8,.0f} ns per text")
    batch = [texts["no '@' or '.'"]] * 10_000
    median, _ = rates(lambda: [any_address.search(t) for t in batch], len(batch), runs)
    print(f"  (one regex search over the first text instead: {1e9 / median:,.0f} ns)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--profile", choices=sorted(_cases(1)), help="profile one case instead")
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    args = parser.parse_args(argv)
    normaliser = Normaliser(PiiConfig(), 256 * 1024)
    fast = make_normaliser(PiiConfig(), 256 * 1024)
    cases = _cases(args.batches)
    if args.profile:
        _profile(normaliser, cases[args.profile]())
        return
    items = args.batches * BATCH_SIZE
    print(f"{'':24} {'Python':>10}             {'C path' if fast.native else '(C not built)':>10}")
    chosen = args.cases.split(",") if args.cases else list(cases)
    for name in chosen:
        build = cases[name]
        median, best = rates(_normalise_all(normaliser, build()), items, args.runs)
        line = f"{name:24} {median:10,.0f} records/s"
        if fast.native:
            native_median, _ = rates(_normalise_all(fast, build()), items, args.runs)
            line += f"  {native_median:10,.0f} records/s"
        print(line)
    work = _reference(normaliser, cases["structured"]())
    median, best = rates(work, items, args.runs)
    print(f"{'reference':24} {median:10,.0f} lines/s   (best {best:,.0f}; orjson.dumps only)")
    _pii_figures(args.runs)


def _profile(normaliser: Normaliser, batches: list[Batch]) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for batch in batches:
        normaliser.normalise_batch(batch, INGEST_MS)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
