"""How fast ``logops verify`` reads a sink, and that its memory follows the run, not the sink.

Builds a sink of ``--lines`` lines under a temporary folder (a share of them the run's, the
others of other runs, four rotated files of which one gzipped) and a run folder whose
sends.jsonl acknowledges the run's lines, then times :func:`verify_run` on it in a fresh
child process each (so the peak RSS, VmHWM, is verify's own). Prints numbers; never fails on them.

    .venv/bin/python -m tests.bench.verify_bench [--lines 2000000] [--share 0.1 0.5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from tests.unit.emitters.runfolder import DAY, T0, RunFolder, stored_line

_CHILD = """
import json, sys, time
from pathlib import Path
from emitters.verify import verify_run
t = time.perf_counter()
report = verify_run(Path(sys.argv[1]), Path(sys.argv[2]))
took = time.perf_counter() - t
# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork and exec.
status = Path("/proc/self/status").read_text()
rss = int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM:")))
print(json.dumps({"sec": took, "rss_kb": rss, "bytes": report.bytes_read,
                  "delivered": report.totals.delivered, "ok": report.ok}))
"""


def build(root: Path, lines: int, share: float) -> RunFolder:
    rf = RunFolder(root)
    streams = [rf.emitter(f"e{i}") for i in range(4)]
    ours = int(lines * share)
    per_stream = ours // len(streams)
    rf.write()
    files = [f"{DAY}.ndjson.gz", f"{DAY}.1.ndjson", f"{DAY}.2.ndjson", f"{DAY}.3.ndjson"]
    per_file = lines // len(files)
    seq = [0] * len(streams)
    n, due = 0, 0.0
    for name in files:
        out = bytearray()
        for _ in range(per_file):
            k = n % len(streams)
            due += share
            mine = due >= 1.0 and seq[k] < per_stream
            if mine:
                due -= 1.0
            run_id = rf.run_id if mine else "20261201T110000Z-0ther1"
            line = stored_line(run_id, f"e{k}", streams[k], seq[k] if mine else n, T0 + 0.02)
            if mine:
                seq[k] += 1
            out += orjson.dumps(line) + b"\n"
            n += 1
        data = bytes(out)
        path = rf.sink_dir / name
        path.write_bytes(gzip.compress(data, 6) if name.endswith(".gz") else data)
    # The sends acknowledge exactly what was written.
    for i, stream in enumerate(streams):
        for first in range(0, seq[i], 1000):
            rf.send(f"e{i}", stream, first, min(1000, seq[i] - first), t=T0)
    rf.write()
    return rf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--share", type=float, nargs="+", default=[0.05, 0.5])
    args = ap.parse_args()
    for share in args.share:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            rf = build(Path(tmp), args.lines, share)
            built = time.perf_counter() - t
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, str(rf.run_dir), str(rf.sink_dir)],
                capture_output=True,
                text=True,
                check=True,
            )
            res = json.loads(done.stdout)
            print(
                f"verify: {args.lines:,} lines ({res['bytes'] / 1e6:.0f} MB), run's share "
                f"{share:.0%}: {res['sec']:.2f} s, {args.lines / res['sec'] / 1e6:.2f} M lines/s, "
                f"{res['bytes'] / res['sec'] / 1e6:.0f} MB/s, "
                f"peak RSS {res['rss_kb'] / 1024:.0f} MB, "
                f"delivered {res['delivered']:,}, ok {res['ok']} (sink built in {built:.0f} s)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
