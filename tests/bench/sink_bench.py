"""Sink benchmark: append throughput per durability mode and thread count, index load time.

Run with ``python -m tests.bench.sink_bench``; prints numbers, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

import orjson

from services.common.config import SinkConfig
from services.ingest.batch_index import StoredBatch, encode_entry
from services.ingest.sink import NdjsonSink

LINES_PER_BATCH = 1000


class FsyncCounter:
    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def sink_written(self, nbytes: int) -> None:
        pass

    def sink_error(self) -> None:
        pass

    def sink_fsync(self, seconds: float) -> None:
        with self._lock:
            self.count += 1
            self.seconds += seconds


def make_batch(thread: int) -> bytes:
    """1000 normalised-looking records of about 250 bytes each."""
    lines = []
    for i in range(LINES_PER_BATCH):
        record = {
            "ts": "2025-03-01T12:00:00.123Z",
            "level": "INFO",
            "service": "checkout",
            "host": f"web-{thread:02d}",
            "emitter": "bench",
            "format": "json",
            "seq": i,
            "batch_id": f"bench-{thread}",
            "ingest_ts": "2025-03-01T12:00:00.456Z",
            "msg": f"GET /api/v1/orders/{i:06d} answered 200 in {i % 97} ms via edge proxy",
        }
        lines.append(orjson.dumps(record) + b"\n")
    return b"".join(lines)


def bench_appends(mode: str, threads: int, seconds: float) -> tuple[float, float, float, int]:
    """(MB/s, batches/s, mean fsync ms, fsyncs) appending for ``seconds`` from ``threads``."""
    with tempfile.TemporaryDirectory(prefix="sink-bench-", dir=os.environ.get("BENCH_DIR")) as d:
        observer = FsyncCounter()
        sink = NdjsonSink(SinkConfig(dir=d, durability=mode), observer)
        sink.open()
        bodies = [make_batch(t) for t in range(threads)]
        done = [0] * threads
        start = time.perf_counter()
        deadline = start + seconds

        def work(t: int) -> None:
            stored = StoredBatch(LINES_PER_BATCH, 0)
            while time.perf_counter() < deadline:
                sink.append(f"bench-{t}-{done[t]}", bodies[t], stored)
                done[t] += 1

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - start
        sink.close()
    total = sum(done)
    nbytes = total * len(bodies[0])
    mean_ms = observer.seconds / observer.count * 1000 if observer.count else 0.0
    return nbytes / elapsed / 1e6, total / elapsed, mean_ms, observer.count


def current_rss_mib() -> float:
    """Resident memory now (Linux), so the growth shows what the loaded ids keep."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def bench_index_load(entries: int) -> tuple[float, float, int, float]:
    """(wall s, CPU s, ids found, MiB RSS kept) opening a sink with ``entries`` stored ids."""
    with tempfile.TemporaryDirectory(prefix="sink-bench-", dir=os.environ.get("BENCH_DIR")) as d:
        now = time.time()
        day = time.strftime("%Y%m%d", time.gmtime(now))
        name = f"{day}.ndjson"
        (Path(d) / ".index").mkdir()
        line = b'{"msg": "one record per batch keeps the data file small"}\n'
        stored = StoredBatch(1, 0)
        with (Path(d) / ".index" / f"{day}.idx").open("wb") as idx:
            chunk = []
            for i in range(entries):
                start = i * len(line)
                chunk.append(
                    encode_entry(f"batch-{i:012d}", stored, name, start, start + len(line), now)
                )
                if len(chunk) == 65_536:
                    idx.write(b"".join(chunk))
                    chunk = []
            idx.write(b"".join(chunk))
        (Path(d) / name).write_bytes(line * entries)
        rss_before = current_rss_mib()
        sink = NdjsonSink(SinkConfig(dir=d, dedup_max_ids=max(entries, 1)))
        began, cpu = time.perf_counter(), time.process_time()
        sink.open()
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
        found = sum(1 for i in range(0, entries, 1000) if sink.lookup(f"batch-{i:012d}"))
        rss_after = current_rss_mib()
        sink.close()
    return elapsed, cpu, found * 1000, rss_after - rss_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="per mode and thread count")
    parser.add_argument("--index-entries", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"batches of {LINES_PER_BATCH} lines of ~{len(make_batch(0)) // LINES_PER_BATCH} bytes")
    print(
        f"{'durability':<10} {'threads':>7} {'MB/s':>8} {'batches/s':>10} {'records/s':>11}"
        f" {'fsyncs':>7} {'fsync ms':>9}"
    )
    for mode in ("batch", "interval", "none"):
        for threads in (1, 4, 8):
            mb_s, batches_s, fsync_ms, fsyncs = bench_appends(mode, threads, args.seconds)
            print(
                f"{mode:<10} {threads:>7} {mb_s:>8.1f} {batches_s:>10.1f}"
                f" {batches_s * LINES_PER_BATCH:>11,.0f} {fsyncs:>7} {fsync_ms:>9.2f}"
            )
    seconds, cpu, found, rss_mib = bench_index_load(args.index_entries)
    print(
        f"index load: {args.index_entries:,} entries in {seconds:.2f} s ({cpu:.2f} s CPU),"
        f" {found:,} sampled ids found, RSS +{rss_mib:.0f} MiB while open"
    )


if __name__ == "__main__":
    main()
