"""kill -9 a process appending to the sink: after repair nothing acknowledged is lost or doubled."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from services.common.config import SinkConfig
from services.ingest.sink import NdjsonSink, StoredBatch

ROOT = Path(__file__).resolve().parents[2]

# Appends from several threads and prints each batch id only after append() returned.
WRITER = r"""
import sys, threading
from services.common.config import SinkConfig
from services.ingest.sink import NdjsonSink, StoredBatch

sink_dir, durability, threads, run = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sink = NdjsonSink(SinkConfig(dir=sink_dir, durability=durability, max_file_bytes=64 * 1024,
                             fsync_interval_ms=5))
sink.open()
out = threading.Lock()

def body(bid, n):
    return b"".join(
        b'{"batch": "%s", "i": %d, "n": %d, "pad": "%s"}\n' % (bid.encode(), k, n, b"x" * (40 + k))
        for k in range(n)
    )

def work(t):
    i = 0
    while True:
        bid = f"{run}-t{t}-{i}"
        n = 1 + (i * 7 + t) % 20
        if sink.append(bid, body(bid, n), StoredBatch(n, 0)) is None:
            with out:
                sys.stdout.write(bid + "\n")
                sys.stdout.flush()
        i += 1

for t in range(threads):
    threading.Thread(target=work, args=(t,), daemon=True).start()
threading.Event().wait()
"""

# (durability, writer threads, acknowledgements to wait for before the kill)
ROUNDS = [
    ("batch", 1, 15),
    ("batch", 4, 120),
    ("batch", 8, 400),
    ("interval", 4, 700),
    ("none", 8, 1500),
]


def run_and_kill(sink_dir: Path, durability: str, threads: int, acks: int, run: str) -> set[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(sink_dir), durability, str(threads), run],
        stdout=subprocess.PIPE, cwd=ROOT,
    )
    assert proc.stdout is not None
    acked: list[bytes] = []
    try:
        while len(acked) < acks:
            line = proc.stdout.readline()
            assert line, f"writer exited early with {proc.poll()}"
            acked.append(line)
        # Land the kill at a varying point of a write, an fsync or a rotation.
        time.sleep(random.uniform(0, 0.02))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    acked.extend(proc.stdout.readlines())
    proc.stdout.close()
    return {line.decode().strip() for line in acked if line.endswith(b"\n")}


def stored_batches(sink_dir: Path) -> dict[str, list[list[dict[str, Any]]]]:
    """Batch id -> the runs of consecutive lines it occupies in the data files."""
    runs: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
    for path in sorted(sink_dir.glob("*.ndjson")):
        raw = path.read_bytes()
        assert raw == b"" or raw.endswith(b"\n"), f"torn last line in {path.name}"
        last = None
        for line in raw.splitlines():
            record = json.loads(line)
            if record["batch"] != last:
                runs[record["batch"]].append([])
                last = record["batch"]
            runs[record["batch"]][-1].append(record)
    return runs


@pytest.mark.slow
def test_acknowledged_batches_survive_kill_9_exactly_once(tmp_path: Path) -> None:
    sink_dir = tmp_path / "sink"
    all_acked: set[str] = set()
    for number, (durability, threads, acks) in enumerate(ROUNDS):
        acked = run_and_kill(sink_dir, durability, threads, acks, f"r{number}")
        assert len(acked) >= acks
        all_acked |= acked
        sink = NdjsonSink(SinkConfig(dir=str(sink_dir), durability=durability))
        sink.open()
        try:
            runs = stored_batches(sink_dir)
            for bid, places in runs.items():
                assert len(places) == 1, f"{bid} stored {len(places)} times"
                lines = places[0]
                assert [r["i"] for r in lines] == list(range(lines[0]["n"])), f"{bid} not whole"
                # Stored but possibly unacknowledged batches are known too: a retry is a duplicate.
                assert sink.lookup(bid) == StoredBatch(len(lines), 0)
            missing = all_acked - runs.keys()
            assert not missing, f"acknowledged but lost: {sorted(missing)[:5]}"
            for bid in all_acked:
                n = runs[bid][0][0]["n"]
                assert sink.append(bid, b'{"again": 1}\n', StoredBatch(1, 0)) == StoredBatch(n, 0)
        finally:
            sink.close()
