"""Emitter speed: rendered lines/s per format on one core, and the rate engine's accuracy.

Run with ``python -m tests.bench.emit_bench [--seconds S] [--formats a,b] [--rates 1,100,...]
[--transport file|null] [--quick]``. Prints numbers only; it asserts nothing.

1. **Content, per format, in CPU time of this process** (one core): ``sample`` (drawing a
   realistic record from the seeded generator, the slow part), ``render`` (a sampled
   record to a line) and ``stamped`` (what the emit loop pays per event: a pooled record
   copied, its time and seq stamped, rendered), plus ``batch`` (stamped and wrapped as a
   gateway record beside ``raw``).
2. **Wake accuracy**: how late a 2 ms wait returns, with ``Event.wait`` alone and with
   the engine's coarse wait plus a short spin.
3. **Rate accuracy**: ``logops emit``'s loop (json, batches of up to 100, 5 ms linger) for
   ``--seconds`` at each rate, to a file (or a null transport that only counts). Printed:
   achieved vs target over the whole window and the lowest/highest one-second window, the
   events late by more than 10 ms, lateness p50/p99/max, and the share of one core used.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from clients.files import FileTransport
from clients.transports import Transport
from emitters.content import ContentOptions
from emitters.emit import EmitLoop, EmitOptions, Progress
from emitters.formats import FORMATS, get_format
from emitters.rate import SPIN_SEC, Schedule, wait_until
from emitters.source import Accounting, EventSource
from services.common.model import Batch, PushResult

NOW = 1_767_225_600.0
# Events 20 us apart, as at the engine's top rate (50,000 EPS): a time field is rebuilt
# once per millisecond, so at lower rates its cost per event is higher.
STEP = 1 / 50_000
RATES = (1, 100, 1_000, 10_000, 50_000)


def _per_sec(work: Callable[[int], None], n: int, repeat: int = 5) -> float:
    """Best of ``repeat`` runs of ``work(n)``, in items per CPU second."""
    best = 0.0
    for _ in range(repeat):
        t0 = time.process_time()
        work(n)
        spent = time.process_time() - t0
        best = max(best, n / spent if spent > 0 else 0.0)
    return best


def content_speed(name: str, n: int) -> dict[str, float]:
    fmt = get_format(name)
    opts = ContentOptions()
    rng = random.Random(1)
    pool = [fmt.sample(rng, opts, NOW) for _ in range(1024)]
    src = EventSource(fmt, opts, Accounting("bench-run", "bench#1"), seed=1, pool_size=1024)
    batch_src = EventSource(fmt, opts, Accounting("bench-run", "bench#1"), seed=1, line_keys=())

    def sample(k: int) -> None:
        r = random.Random(2)
        for _ in range(k):
            fmt.sample(r, opts, NOW)

    def render(k: int) -> None:
        rend = fmt.render
        for i in range(k):
            rend(pool[i & 1023])

    def stamped(k: int) -> None:
        line = src.line
        for i in range(k):
            line(i, NOW + i * STEP)

    def batch(k: int) -> None:
        line = batch_src.line
        [
            {"raw": line(i, NOW + i * STEP), "format": name, "stream": "s", "seq": i}
            for i in range(k)
        ]

    return {
        "sample": _per_sec(sample, max(1, n // 10)),
        "render": _per_sec(render, n),
        "stamped": _per_sec(stamped, n),
        "batch": _per_sec(batch, n),
    }


class NullTransport:
    """Takes every batch and does nothing with it."""

    def send(self, batch: Batch) -> PushResult:
        return PushResult(batch.batch_id, accepted=len(batch.records))

    def close(self) -> None:
        pass


def rate_accuracy(eps: float, seconds: float, transport: Transport) -> dict[str, float]:
    source = EventSource(
        get_format("json"), ContentOptions(), Accounting("bench-run", "bench#1"), seed=1
    )
    schedule = Schedule.constant(eps, duration=seconds)
    opts = EmitOptions("bench", batch_size=100, linger_sec=0.005, batched=False)
    windows: list[float] = []

    def progress(p: Progress) -> None:
        if p.elapsed_sec < seconds - 0.5:  # whole one-second windows only
            windows.append(p.window_eps)

    cpu0 = time.process_time()
    result = EmitLoop(source, schedule, transport, opts).run(progress=progress)
    cpu = time.process_time() - cpu0
    late = result.lateness
    return {
        "target": eps,
        "achieved": result.achieved_eps,
        "error_pct": (result.achieved_eps - eps) / eps * 100.0,
        "win_min": min(windows) if windows else float("nan"),
        "win_max": max(windows) if windows else float("nan"),
        "sent": result.sent,
        "due": result.due,
        "late": result.late,
        "p50_ms": late.percentile(0.5) * 1000,
        "p99_ms": late.percentile(0.99) * 1000,
        "max_ms": late.max_sec * 1000,
        "cpu": cpu / result.elapsed_sec if result.elapsed_sec else 0.0,
    }


def wake_accuracy(waits: int = 400, gap: float = 0.002) -> dict[str, tuple[float, float]]:
    """How far past its deadline a wait returns (p50, p99 in microseconds): ``Event.wait``
    alone, and the engine's ``wait_until`` (a coarse wait, then a short spin)."""
    out: dict[str, tuple[float, float]] = {}
    stop = threading.Event()
    for label, spin in (
        ("Event.wait only", 0.0),
        (f"wait + {SPIN_SEC * 1e6:.0f} us spin", SPIN_SEC),
    ):
        late: list[float] = []
        for _ in range(waits):
            deadline = time.monotonic() + gap
            wait_until(deadline, stop, spin_sec=spin)
            late.append((time.monotonic() - deadline) * 1e6)
        late.sort()
        out[label] = (late[len(late) // 2], late[int(len(late) * 0.99)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="window per rate (10)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="formats to time")
    parser.add_argument("--rates", default=",".join(map(str, RATES)), help="EPS to try")
    parser.add_argument("--lines", type=int, default=50_000, help="lines per content run")
    parser.add_argument("--transport", choices=("file", "null"), default="file")
    parser.add_argument("--quick", action="store_true", help="3 s windows, 20,000 lines")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.lines = 3.0, 20_000

    print("content, lines per CPU second (one core; stamped events 20 us apart):")
    print(f"  {'format':<18}{'sample':>10}{'render':>12}{'stamped':>12}{'batch':>12}")
    for name in args.formats.split(","):
        s = content_speed(name, args.lines)
        print(
            f"  {name:<18}{s['sample']:>10,.0f}{s['render']:>12,.0f}{s['stamped']:>12,.0f}"
            f"{s['batch']:>12,.0f}"
        )

    print("\nwake accuracy, 2 ms waits, overshoot past the deadline:")
    for label, (p50, p99) in wake_accuracy().items():
        print(f"  {label:<24} p50 {p50:8.1f} us   p99 {p99:8.1f} us")

    print(f"\nrate accuracy, json to {args.transport}, {args.seconds:g} s per rate:")
    print(
        f"  {'target':>7}{'achieved':>10}{'err %':>8}{'1s min':>9}{'1s max':>9}{'sent':>8}"
        f"{'late':>6}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'cpu':>6}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for eps in (float(r) for r in args.rates.split(",")):
            transport: Transport = (
                FileTransport(Path(tmp) / f"rate-{eps:g}.log")
                if args.transport == "file"
                else NullTransport()
            )
            r = rate_accuracy(eps, args.seconds, transport)
            transport.close()
            print(
                f"  {r['target']:>7,.0f}{r['achieved']:>10,.1f}{r['error_pct']:>8.2f}"
                f"{r['win_min']:>9,.0f}{r['win_max']:>9,.0f}{r['sent']:>8}{r['late']:>6}"
                f"{r['p50_ms']:>8.2f}{r['p99_ms']:>8.2f}{r['max_ms']:>8.2f}{r['cpu']:>6.2f}"
            )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average (1, 5, 15 min) on {os.cpu_count()} cores: {load}")


if __name__ == "__main__":
    main()
