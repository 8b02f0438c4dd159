"""Generated events, fast: a pool of sampled records, stamped with time and seq per event.

Sampling a realistic record costs far more than rendering it, so a run samples a pool
once (``pool_size`` records from the seeded generator, as DataDog's lading builds its
block cache) and event ``i`` reuses record ``i % pool_size``, stamped with its own time
and its loss-accounting keys. The same seed gives the same lines.

Which fields hold the time is learnt from the format itself: the same generator state is
sampled at two times far apart and the fields that differ are the time's. Those fields
are then taken from a record sampled at that time, once per millisecond (once per second
for formats whose time has whole seconds), so every format keeps its own time syntax
(RFC 3339, Apache, RFC 3164 ...) without this module knowing any of them. A record the
content options left without a time (``missing_ts_ratio``) stays without one.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Any

from emitters.content import ContentOptions
from emitters.formats import LogFormat

# Loss-accounting keys a line may carry (PRODUCT.md section 6).
ACCOUNTING_KEYS = ("run_id", "stream", "seq")
# Far enough apart that every field derived from the time differs: year, day, hour,
# minute, second and millisecond.
_PROBE_SHIFT_SEC = 400 * 86_400 + 3_661.123
_TEMPLATE_SEED = 0x5EED


@dataclasses.dataclass(frozen=True, slots=True)
class Accounting:
    """Who the events are: ``run_id``, ``stream`` (emitter name, plus instance), and the
    ``seq`` of the first event (0 by default; then one more per event)."""

    run_id: str
    stream: str
    first_seq: int = 0


class EventSource:
    """Renders event ``i`` of a run as one line of ``fmt``.

    ``line_keys`` are the accounting keys written into the line itself (for transports
    that carry nothing but the line); a format writes them where it can (JSON-like
    formats as keys, RFC 5424 as an SD element) and ignores them where it cannot.
    """

    def __init__(
        self,
        fmt: LogFormat,
        opts: ContentOptions,
        accounting: Accounting,
        *,
        seed: int | None = None,
        pool_size: int = 1024,
        line_keys: Sequence[str] = ACCOUNTING_KEYS,
        now: float = 1_700_000_000.0,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        unknown = set(line_keys) - set(ACCOUNTING_KEYS)
        if unknown:
            raise ValueError(f"line_keys may only name {', '.join(ACCOUNTING_KEYS)}")
        self.fmt = fmt
        self.accounting = accounting
        rng = random.Random(seed)
        self.time_keys = time_fields(fmt, opts, rng, now)
        self._pool = [fmt.sample(rng, opts, now) for _ in range(pool_size)]
        # A record always holding the time fields, for the stamps.
        self._stamp_opts = dataclasses.replace(opts, missing_ts_ratio=0.0)
        self._stamp_key = -1
        self._stamp: dict[str, Any] = {}
        # Formats whose time has whole seconds (Apache, RFC 3164) are stamped once a second.
        self._tick_ms = (
            1000 if self._stamp_of(now // 1 * 1000) == self._stamp_of(now // 1 * 1000 + 999) else 1
        )
        values = {"run_id": accounting.run_id, "stream": accounting.stream}
        self._fixed = {k: values[k] for k in line_keys if k in values}
        self._seq_in_line = "seq" in line_keys

    @property
    def pool_size(self) -> int:
        return len(self._pool)

    def seq(self, i: int) -> int:
        return self.accounting.first_seq + i

    def record(self, i: int, epoch: float) -> dict[str, Any]:
        """The record of event ``i``, due at ``epoch`` (Unix seconds), before rendering."""
        rec = self._pool[i % len(self._pool)].copy()
        if self.time_keys:
            tick = int(epoch * 1000.0) // self._tick_ms
            if tick != self._stamp_key:
                self._stamp = self._stamp_of(tick * self._tick_ms)
                self._stamp_key = tick
            stamp = self._stamp
            for key in self.time_keys:
                if key in rec:
                    rec[key] = stamp[key]
        if self._fixed:
            rec.update(self._fixed)
        if self._seq_in_line:
            rec["seq"] = self.accounting.first_seq + i
        return rec

    def line(self, i: int, epoch: float) -> str:
        """Event ``i`` rendered: one line, no line break."""
        return self.fmt.render(self.record(i, epoch))

    def _stamp_of(self, ms: float) -> dict[str, Any]:
        """The time fields of a record sampled at ``ms`` (Unix milliseconds)."""
        if not self.time_keys:
            return {}
        rec = self.fmt.sample(random.Random(_TEMPLATE_SEED), self._stamp_opts, ms / 1000.0)
        return {key: rec.get(key) for key in self.time_keys}


def time_fields(
    fmt: LogFormat, opts: ContentOptions, rng: random.Random, now: float
) -> tuple[str, ...]:
    """The top-level fields of ``fmt``'s records that depend on the time they are sampled
    at; ``rng`` is left as it was."""
    state = rng.getstate()
    probe_opts = dataclasses.replace(opts, missing_ts_ratio=0.0)
    first = fmt.sample(rng, probe_opts, now)
    rng.setstate(state)
    second = fmt.sample(rng, probe_opts, now - _PROBE_SHIFT_SEC)
    rng.setstate(state)
    keys = [k for k in first if first[k] != second.get(k)]
    keys += [k for k in second if k not in first]
    return tuple(keys)
