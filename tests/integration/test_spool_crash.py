"""kill -9 a process putting to the spool (and draining it): after reopening, every batch
whose put returned is there, whole and in order, once; none whose ack returned is."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.auth.spool import Spool, SpooledBatch

ROOT = Path(__file__).resolve().parents[2]

# Writer threads put in a loop and print "P <seq> <batch id>" once put returned; a drainer
# acks now and then, printing "A? <seq>" before ack and "A <seq>" once it returned.
CHILD = r"""
import itertools, sys, threading, time
from services.auth.spool import Spool

folder, durability, writers, run = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
spool = Spool(folder, 1 << 30, 1_000_000, durability, segment_bytes=16 * 1024,
              fsync_interval=0.005)
spool.open()
out = threading.Lock()

def say(line):
    with out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

def body(batch_id):
    n = 1 + sum(map(ord, batch_id)) % 40
    return b"".join(b'{"b": "%s", "i": %d}\n' % (batch_id.encode(), i) for i in range(n))

def write(t):
    i = 0
    while True:
        bid = f"{run}-{t}-{i}"
        b = spool.put(bid, "application/x-ndjson", "identity", {"run_id": run}, body(bid), 1)
        say(f"P {b.seq} {bid}")
        i += 1

def drain():
    # Keeps the newest batches most of the time, and now and then empties the spool, so
    # that the kill also lands while delivered segments (the one written too) are removed.
    for turn in itertools.count():
        time.sleep(0.002)
        waiting = spool.depth()[0]
        keep = 0 if turn % 5 == 0 else 20
        # Puts still waiting for their fsync are counted but not offered yet.
        batches = spool.peek(waiting - keep) if waiting > keep else []
        if batches:
            seq = batches[-1].seq
            say(f"A? {seq}")
            spool.ack(seq)
            say(f"A {seq}")

for t in range(writers):
    threading.Thread(target=write, args=(t,), daemon=True).start()
threading.Thread(target=drain, daemon=True).start()
threading.Event().wait()
"""

# (durability, writer threads, puts to see before the kill)
ROUNDS = [
    ("batch", 1, 20),
    ("batch", 4, 60),
    ("batch", 8, 150),
    ("interval", 4, 300),
    ("none", 4, 500),
    ("batch", 4, 80),
]


def body(batch_id: str) -> bytes:
    n = 1 + sum(map(ord, batch_id)) % 40
    return b"".join(b'{"b": "%s", "i": %d}\n' % (batch_id.encode(), i) for i in range(n))


@dataclass
class Seen:
    """What the children printed, over every round so far."""

    put: dict[int, str] = field(default_factory=dict)
    acked: int = 0  # an ack up to here returned
    acking: int = 0  # an ack up to here may have reached the disk


def run_and_kill(folder: Path, durability: str, writers: int, puts: int, run: str) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder), durability, str(writers), run],
        stdout=subprocess.PIPE, cwd=ROOT,
    )
    assert proc.stdout is not None
    lines: list[bytes] = []
    try:
        while sum(line.startswith(b"P ") for line in lines) < puts:
            line = proc.stdout.readline()
            assert line, f"the child exited early with {proc.poll()}"
            lines.append(line)
        # Land the kill at a varying point of a write, an fsync, an ack or a rollover.
        time.sleep(random.uniform(0, 0.03))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    lines.extend(proc.stdout.readlines())
    proc.stdout.close()
    # A line cut short by the kill says nothing.
    return [line.decode().strip() for line in lines if line.endswith(b"\n")]


def take(seen: Seen, lines: list[str]) -> None:
    for line in lines:
        kind, seq, *rest = line.split()
        if kind == "P":
            seen.put[int(seq)] = rest[0]
        elif kind == "A":
            seen.acked = max(seen.acked, int(seq))
        else:
            seen.acking = max(seen.acking, int(seq))


def check(seen: Seen, kept: list[SpooledBatch]) -> None:
    seqs = [b.seq for b in kept]
    assert seqs == sorted(set(seqs)), "out of order or twice"
    assert len({b.batch_id for b in kept}) == len(kept), "a batch spooled twice"
    for b in kept:
        assert b.seq > seen.acked, f"seq {b.seq} offered again after its ack returned"
        assert b.body == body(b.batch_id), f"seq {b.seq} not whole"
        # A put may have returned without its line printed: then it is new to the test.
        assert seen.put.setdefault(b.seq, b.batch_id) == b.batch_id
    present = set(seqs)
    lost = [s for s in seen.put if s > seen.acking and s not in present]
    assert not lost, f"put returned but lost: {lost[:5]}"


@pytest.mark.slow
def test_spooled_batches_survive_kill_9_in_order_exactly_once(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    seen = Seen()
    for number, (durability, writers, puts) in enumerate(ROUNDS):
        take(seen, run_and_kill(folder, durability, writers, puts, f"r{number}"))
        spool = Spool(folder, 1 << 30, 1_000_000, durability)
        spool.open()
        try:
            check(seen, spool.peek(1_000_000))
        finally:
            spool.close()
    assert len(seen.put) > sum(puts for _, _, puts in ROUNDS)
