"""Memory soak for ``ingest_bench --soak SECONDS``: is the gateway's RSS flat under constant load?

One fresh gateway is driven open loop at a fixed rate with batches of 1000 (the usual
client pool, see :mod:`tests.bench.loadgen`) while :class:`RssSampler` reads its ``VmRSS``
every 5 s. The RSS after a warm-up (the first 60 s or 10 % of the run, whichever is shorter)
is compared with the final RSS; under 10 % growth counts as "memory flat" (PRODUCT.md
section 9). Like the rest of the benchmark it prints and saves, never asserts.
"""

from __future__ import annotations

import time
from typing import Any

from tests.bench.procstat import memory_kib, wait_until

BATCH = 1000
SAMPLE_EVERY = 5.0
WARMUP_CAP = 60.0
WARMUP_SHARE = 0.10
FLAT_GROWTH_PCT = 10.0
SOAK_ONLY_RATE = 20_000.0  # records/s when no max rate was measured in this run
PROGRESS_EVERY = 60.0
_BARS = "▁▂▃▄▅▆▇█"
_SPARK_WIDTH = 60


def warmup_seconds(duration: float) -> float:
    return min(WARMUP_CAP, WARMUP_SHARE * duration)


def choose_rate(
    requested: float | None, soak_only: bool, passes: list[dict[str, Any]]
) -> tuple[float, str]:
    """The soak's records/s and where it comes from, in words."""
    if requested:
        return requested, "--soak-rate"
    measured = [p for p in passes if p["mode"] == "max" and p["records_per_sec"] > 0]
    best = max(measured, key=lambda p: p["records_per_sec"], default=None)
    if best is None:
        why = "--soak-only" if soak_only else "no max rate measured"
        return SOAK_ONLY_RATE, f"default for {why}"
    return best["records_per_sec"] / 2, (
        f"50 % of the best max rate, {best['front']} batch {best['batch']}: "
        f"{best['records_per_sec']:,.0f} records/s"
    )


class RssSampler:
    """Called by the pass in place of waiting out its window: samples ``VmRSS`` until ``end``.

    Samples fall every ``SAMPLE_EVERY`` seconds from the start of the load, plus one at the
    end of the warm-up and one at the very end, as ``(seconds since start, KiB)``.
    """

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.samples: list[tuple[float, int]] = []
        steps = int(duration // SAMPLE_EVERY)
        offsets = {round(k * SAMPLE_EVERY, 3) for k in range(steps + 1)}
        self.offsets = sorted(offsets | {round(warmup_seconds(duration), 3), duration})

    def __call__(self, pid: int, start: float, end: float) -> None:
        next_note = PROGRESS_EVERY
        for offset in self.offsets:
            wait_until(min(start + offset, end))
            rss = memory_kib(pid).get("VmRSS")
            if rss is None:  # the gateway is gone; the pass reports why
                break
            self.samples.append((round(time.monotonic() - start, 2), rss))
            if offset >= next_note and offset < self.duration:
                print(f"    {offset:5.0f} s  RSS {rss / 1024:6.1f} MiB", flush=True)
                next_note += PROGRESS_EVERY
        wait_until(end)


def summarise(res: dict[str, Any], samples: list[tuple[float, int]], basis: str) -> dict[str, Any]:
    """The pass's fields plus the memory verdict and the samples, for printing and the JSON."""
    warmup = warmup_seconds(res["seconds"])
    out = {**res, "rate_basis": basis, "warmup_s": warmup, "sample_every_s": SAMPLE_EVERY}
    out["samples"] = [[t, kib] for t, kib in samples]
    after = next((kib for t, kib in samples if t >= warmup - 0.5), None)
    final = samples[-1][1] if samples else None
    complete = bool(samples) and samples[-1][0] >= res["seconds"] - 1.0
    out["rss_after_warmup_mib"] = after / 1024 if after else None
    out["final_rss_mib"] = final / 1024 if final else None
    out["max_rss_mib"] = max(kib for _, kib in samples) / 1024 if samples else None
    growth = (final - after) / after * 100 if after and final and complete else None
    out["growth_pct"] = growth
    out["memory_flat"] = growth < FLAT_GROWTH_PCT if growth is not None else None
    return out


def sparkline(values: list[int], width: int = _SPARK_WIDTH) -> str:
    """One character per bucket of samples (the bucket's highest), scaled from min to max."""
    if not values:
        return ""
    per = max(1, -(-len(values) // width))
    buckets = [max(values[i : i + per]) for i in range(0, len(values), per)]
    lo, hi = min(values), max(values)
    if hi == lo:
        return _BARS[0] * len(buckets)
    return "".join(_BARS[round((v - lo) / (hi - lo) * (len(_BARS) - 1))] for v in buckets)


def _picked(samples: list[list[float]], count: int = 7) -> str:
    """A few samples spread evenly over the run, first and last included."""
    if not samples:
        return "none"
    step = max(1, round((len(samples) - 1) / (count - 1))) if count > 1 else len(samples)
    idx = sorted({*range(0, len(samples), step), len(samples) - 1})
    return ", ".join(f"{samples[i][0]:.0f} s {samples[i][1] / 1024:.1f}" for i in idx) + " MiB"


def _mib(value: float | None) -> str:
    return f"{value:.1f} MiB" if value is not None else "n/a"


def print_soak(soak: dict[str, Any]) -> None:
    samples = soak["samples"]
    if not samples and soak["failure"]:
        print("\nmemory soak: not measured, it failed to start (see soak checks below)")
        return
    growth = soak["growth_pct"]
    flat = {True: "yes", False: "NO", None: "unknown (run incomplete)"}[soak["memory_flat"]]
    kib = [int(s[1]) for s in samples]
    print(
        f"\nmemory soak: {soak['front']}, batches of {soak['batch']}, open loop at "
        f"{soak['target_records_per_sec']:,.0f} records/s ({soak['rate_basis']}) "
        f"for {soak['seconds']:g} s, VmRSS every {soak['sample_every_s']:g} s"
    )
    rows = [
        ("achieved", f"{soak['records_per_sec']:,.0f} records/s, p99 {soak['p99_ms']:.1f} ms, "
                     f"{soak['late_sends']} late sends, gw CPU {soak['gw_cores']:.2f} cores"),
        ("other processes", f"{soak['other_cores']:.2f} cores busy on average (not the bench)"),
        ("errors", str(sum(soak["errors"].values())) if not soak["failure"] else "FAILED"),
        ("RSS after warm-up", f"{_mib(soak['rss_after_warmup_mib'])} "
                              f"(at {soak['warmup_s']:g} s)"),
        ("final RSS", _mib(soak["final_rss_mib"])),
        ("growth", f"{growth:+.1f} %" if growth is not None else "n/a"),
        ("max RSS", f"{_mib(soak['max_rss_mib'])} sampled, VmHWM {soak['peak_rss_mib']:.1f} MiB"),
        ("RSS over time", f"{sparkline(kib)}  ({min(kib, default=0) / 1024:.1f}-"
                          f"{max(kib, default=0) / 1024:.1f} MiB)"),
        ("samples", _picked(samples)),
        ("memory flat", f"{flat} (target: growth under {FLAT_GROWTH_PCT:g} %)"),
    ]  # fmt: skip
    for name, value in rows:
        print(f"  {name:<18} {value}")
