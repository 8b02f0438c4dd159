"""Render and parse rates of every registered log format, in lines/s of one core.

Run with ``python -m tests.bench.formats_bench [--formats a,b] [--lines N] [--runs N]``.
Records are sampled first (``Random(1)``, default options, one second of traffic spread
over the lines) and stamped with ``run_id``, ``stream`` and ``seq`` as the emitter does,
not timed; each run then renders every record, or parses every rendered line, timed in CPU
time of this process. Prints the median and the best run per format (``noise`` parses
its broken lines too, each a FormatError). The target for ``json`` and ``apache_combined``
rendering is 300,000 lines/s. Asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from emitters.content import ContentOptions
from emitters.formats import FORMAT_NAMES, FormatError, get_format

NOW = 1_710_252_309.482


def _rates(work: Callable[[Any], Any], items: list[Any], runs: int) -> tuple[float, float]:
    """Median and best rate of ``work`` over ``items``, in items per CPU second."""
    rates = []
    for _ in range(runs):
        start = time.process_time()
        for item in items:
            work(item)
        rates.append(len(items) / max(time.process_time() - start, 1e-9))
    return statistics.median(rates), max(rates)


def _parse_any(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_or_refuse(line: str) -> Any:
        try:
            return parse(line)
        except FormatError:
            return None

    return parse_or_refuse


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--formats", default=",".join(FORMAT_NAMES))
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{'format':18s} {'render/s median':>16s} {'best':>10s} {'parse/s median':>16s} best")
    for name in args.formats.split(","):
        fmt = get_format(name)
        rng = random.Random(1)
        opts = ContentOptions()
        recs = [fmt.sample(rng, opts, NOW + n / args.lines) for n in range(args.lines)]
        for n, rec in enumerate(recs):
            rec.update(run_id="bench-run", stream="s1", seq=n)
        lines = [fmt.render(rec) for rec in recs]
        r_med, r_best = _rates(fmt.render, recs, args.runs)
        p_med, p_best = _rates(_parse_any(fmt.parse), lines, args.runs)
        print(f"{fmt.name:18s} {r_med:16,.0f} {r_best:10,.0f} {p_med:16,.0f} {p_best:10,.0f}")


if __name__ == "__main__":
    main()
