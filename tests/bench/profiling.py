"""Optional sampling profile of the gateway during a pass, with py-spy (``--profile``).

py-spy attaches from outside, so the gateway runs unchanged. Its ``raw`` output (one
collapsed stack per line with a sample count) is kept beside the results and summarised
here as the functions most often on top of the stack (self), with their share anywhere on
it (total). Only the thread holding the GIL is sampled, which is where the CPU time goes.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.bench.procstat import stop_process

_FRAME_TAIL = re.compile(r" \((?:.*/)?([^/]+\.py):\d+\)$")


def py_spy() -> str | None:
    """The py-spy binary, next to this interpreter or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    exe = py_spy()
    if exe is None:
        return None
    cmd = [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds)))]
    # --gil: sample only the thread holding the GIL, i.e. where the Python CPU time goes.
    cmd += ["--rate", "200", "--gil", "--format", "raw", "--nonblocking", "--output", str(out)]
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def finish(proc: subprocess.Popen[bytes] | None, timeout: float = 30) -> None:
    if proc is None:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc, grace=5)


def _frame(raw: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``; keeps grouping by function."""
    return _FRAME_TAIL.sub(lambda m: f" ({m.group(1)})", raw.strip())


def top_frames(path: Path, limit: int = 12) -> list[tuple[str, float, float]]:
    """The functions most often on top of the stack: (function, self share, total share)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        stack, _, count = line.rpartition(" ")
        frames = [_frame(f) for f in stack.split(";") if ".py" in f]
        if not frames or not count.isdigit():
            continue
        n = int(count)
        samples += n
        own[frames[-1]] += n
        for f in set(frames):
            total[f] += n
    return [(f, n / samples, total[f] / samples) for f, n in own.most_common(limit)]
