"""Reconcile a scenario run with the NDJSON sink: what was acknowledged, stored, lost, doubled.

Inputs are the run folder (``run.json``, ``sends.jsonl``: see docs of ``logops scenario``)
and the sink's data files, rotated and gzipped ones included (:mod:`emitters.sink_reader`).
Per stream (one emitter instance's ``seq`` space):

- ``sent``: distinct seqs in sends.jsonl; ``acknowledged``: those in a batch answered
  ``accepted``, ``partial``, ``spooled`` or ``duplicate`` and not in its ``rejected_seqs``
  (a ``failed`` send had no answer: not acknowledged).
- ``stored``: the run's lines of the stream in the sink, every copy; ``delivered``: distinct
  acknowledged seqs stored; ``missing`` = acknowledged - delivered (loss).
- ``duplicated``: copies beyond the first (a seq stored three times counts 2).
- ``unexpected``: distinct seqs stored that were never acknowledged (a failed send that did
  arrive, a seq nobody sent): not loss, shown so it is not hidden.
- ``out_of_order``: first copies whose seq is below the previous first copy's seq in ingest
  order (file order: day, rotation suffix, line), one per such step back.
- ``latency_ms``: ``ingest_ts`` minus the ``t`` of the first send that carried the seq (a
  batch sent again, answered ``duplicate``, was stored the first time), over first copies,
  as whole milliseconds (``ingest_ts`` has millisecond resolution): p50, p95, p99 (nearest
  rank) and max.

``delivered_ratio`` = delivered / acknowledged (null when nothing was acknowledged). The
verdict fails (exit 1) on any missing or duplicated record.
"""

from __future__ import annotations

import calendar
import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emitters.seqtable import ACKED, UNACKED, SeqTable
from emitters.sink_reader import ReadStats, run_lines, sink_files

ACK_OUTCOMES = frozenset({"accepted", "partial", "spooled", "duplicate"})
NACK_OUTCOMES = frozenset({"rejected", "failed"})
DEFAULT_SINK_DIR = Path("data/ingest")
MISSING_RANGES = 5
# No batch or chunk comes near this; a line claiming more is not a send (and would cost a
# byte per record claimed).
MAX_SEND_COUNT = 10_000_000
# Sink files of days that ended this long before the run started cannot hold its lines.
_DAY_MARGIN_SEC = 86_400 + 3_600


class VerifyInputError(Exception):
    """The run folder or the sink cannot be read: nothing to verify (exit 2)."""


@dataclass(slots=True)
class Latency:
    count: int
    p50: int
    p95: int
    p99: int
    max: int


@dataclass(slots=True)
class Account:
    """The counts of one stream, or of the whole run (see the module docstring)."""

    sent: int = 0
    acknowledged: int = 0
    stored: int = 0
    delivered: int = 0
    duplicated: int = 0
    unexpected: int = 0
    out_of_order: int = 0
    latency_ms: Latency | None = None

    @property
    def missing(self) -> int:
        return self.acknowledged - self.delivered

    @property
    def delivered_ratio(self) -> float | None:
        return self.delivered / self.acknowledged if self.acknowledged else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "stored": self.stored,
            "delivered": self.delivered,
            "missing": self.missing,
            "duplicated": self.duplicated,
            "unexpected": self.unexpected,
            "out_of_order": self.out_of_order,
            "delivered_ratio": self.delivered_ratio,
            "latency_ms": asdict(self.latency_ms) if self.latency_ms else None,
        }


@dataclass(slots=True)
class StreamAccount(Account):
    emitter: str = ""
    stream: str = ""
    # The first few runs of missing seqs, inclusive.
    missing_ranges: list[tuple[int, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "emitter": self.emitter,
            "stream": self.stream,
            **Account.to_dict(self),
            "missing_ranges": [list(r) for r in self.missing_ranges],
        }


@dataclass(slots=True)
class VerifyReport:
    run_id: str
    sink_dir: str
    streams: list[StreamAccount]
    totals: Account
    files_read: int = 0
    bytes_read: int = 0
    # Lines naming the run that are not JSON objects, and the run's lines without a text
    # stream and an integer seq: neither can be reconciled.
    bad_lines: int = 0
    unaccounted_lines: int = 0
    # sends.jsonl lines that could not be read (a torn last line after a crash).
    bad_send_lines: int = 0

    @property
    def ok(self) -> bool:
        return self.totals.missing == 0 and self.totals.duplicated == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "sink_dir": self.sink_dir,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "files_read": self.files_read,
            "bytes_read": self.bytes_read,
            "bad_lines": self.bad_lines,
            "unaccounted_lines": self.unaccounted_lines,
            "bad_send_lines": self.bad_send_lines,
            "totals": self.totals.to_dict(),
            "streams": [s.to_dict() for s in self.streams],
        }


def verify_run(run_dir: Path, sink_dir: Path | None = None) -> VerifyReport:
    """Reconcile the run in ``run_dir`` with the sink in ``sink_dir`` (default: the
    run's ``sink_dir``, else ``data/ingest``). Raises :class:`VerifyInputError`."""
    run = load_run(run_dir)
    run_id = str(run["run_id"])
    if sink_dir is None:
        sink_dir = Path(run["sink_dir"]) if run.get("sink_dir") else DEFAULT_SINK_DIR
    if not sink_dir.is_dir():
        raise VerifyInputError(f"no sink folder at {sink_dir}")
    streams = _Streams()
    for emitter in run.get("emitters") or []:
        if isinstance(emitter, dict) and isinstance(emitter.get("stream"), str):
            streams.get(emitter["stream"], str(emitter.get("name", "")))
    bad_sends = _read_sends(run_dir / "sends.jsonl", streams)
    stats = ReadStats()
    unaccounted = 0
    try:
        files = sink_files(sink_dir, _first_day(run.get("started_at")))
        for line in run_lines(files, run_id, stats):
            stream, seq = line.get("stream"), line.get("seq")
            if type(stream) is not str or type(seq) is not int or seq < 0:
                unaccounted += 1
                continue
            streams.get(stream, str(line.get("emitter") or "")).store(seq, line)
    except OSError as exc:
        raise VerifyInputError(f"cannot read the sink: {exc}") from exc
    accounts = [s.account() for s in streams.all()]
    return VerifyReport(
        run_id=run_id,
        sink_dir=str(sink_dir),
        streams=accounts,
        totals=_totals(accounts, streams.all()),
        files_read=stats.files,
        bytes_read=stats.bytes,
        bad_lines=stats.bad_lines,
        unaccounted_lines=unaccounted,
        bad_send_lines=bad_sends,
    )


def load_run(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a run folder, checked for a text ``run_id``."""
    try:
        run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise VerifyInputError(f"no run.json in {run_dir}") from exc
    except (OSError, ValueError) as exc:
        raise VerifyInputError(f"cannot read {run_dir / 'run.json'}: {exc}") from exc
    if not isinstance(run, dict) or not isinstance(run.get("run_id"), str) or not run["run_id"]:
        raise VerifyInputError(f"{run_dir / 'run.json'} has no run_id")
    return run


def _first_day(started_at: object) -> str:
    if (
        isinstance(started_at, int | float)
        and not isinstance(started_at, bool)
        and math.isfinite(started_at)
        and started_at > _DAY_MARGIN_SEC
    ):
        return time.strftime("%Y%m%d", time.gmtime(started_at - _DAY_MARGIN_SEC))
    return ""


def _read_sends(path: Path, streams: _Streams) -> int:
    """Mark every send of sends.jsonl; return the number of lines that could not be read.
    No file means nothing was sent."""
    bad = 0
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise VerifyInputError(f"cannot read {path}: {exc}") from exc
    with fh:
        for raw in fh:
            if not raw.strip():
                continue
            try:
                send = json.loads(raw)
                streams.get(str(send["stream"]), str(send["emitter"])).mark(send)
            except (ValueError, KeyError, TypeError):
                bad += 1
    return bad


class _Streams:
    def __init__(self) -> None:
        self._by_name: dict[str, _Stream] = {}

    def get(self, stream: str, emitter: str) -> _Stream:
        found = self._by_name.get(stream)
        if found is None:
            found = self._by_name[stream] = _Stream(emitter, stream)
        return found

    def all(self) -> list[_Stream]:
        return sorted(self._by_name.values(), key=lambda s: (s.emitter, s.stream))


class _Stream:
    """The running account of one stream while sends and then stored lines are read."""

    def __init__(self, emitter: str, stream: str) -> None:
        self.emitter, self.stream = emitter, stream
        self.seqs = SeqTable()
        self.acc = StreamAccount(emitter=emitter, stream=stream)
        self.latency: Counter[int] = Counter()
        # first_seq -> (end, t) of the earliest send starting there; sorted on first use.
        self._sends: dict[int, tuple[int, float]] = {}
        self._batches: list[tuple[int, int, float]] | None = None
        self._last = -1
        self._hit: tuple[int, int, float] = (0, 0, 0.0)
        self._clock = _IngestClock()

    def mark(self, send: dict[str, Any]) -> None:
        """One line of sends.jsonl (a ValueError/KeyError/TypeError when malformed)."""
        first, count, t = send["first_seq"], send["count"], send["t"]
        outcome = send["outcome"]
        if type(first) is not int or type(count) is not int or first < 0 or count < 0:
            raise ValueError("first_seq and count must be integers >= 0")
        if count > MAX_SEND_COUNT:
            raise ValueError(f"a send of more than {MAX_SEND_COUNT} records")
        if not isinstance(t, int | float) or outcome not in ACK_OUTCOMES | NACK_OUTCOMES:
            raise ValueError("bad t or outcome")
        rejected = [s for s in send.get("rejected_seqs") or () if type(s) is int]
        rejected = [s for s in rejected if first <= s < first + count]
        acked = outcome in ACK_OUTCOMES
        before = {s: self.seqs.state(s) for s in rejected} if acked else {}
        sent, newly = self.seqs.mark_sent(first, count, acked)
        self.acc.sent += sent
        self.acc.acknowledged += newly
        for seq, state in before.items():
            if state != ACKED:
                self.seqs.set_state(seq, UNACKED)
                self.acc.acknowledged -= 1
        if count:
            end, t0 = self._sends.get(first, (first + count, float(t)))
            self._sends[first] = (max(end, first + count), min(t0, float(t)))
            self._batches = None

    def store(self, seq: int, line: dict[str, Any]) -> None:
        state, copies = self.seqs.store(seq)
        acc = self.acc
        acc.stored += 1
        if copies:
            acc.duplicated += 1
            return
        if state == ACKED:
            acc.delivered += 1
        else:
            acc.unexpected += 1
        if seq < self._last:
            acc.out_of_order += 1
        self._last = seq
        sent_at = self._send_time(seq)
        ingest_ms = self._clock.ms(line.get("ingest_ts"))
        if sent_at is not None and ingest_ms is not None:
            self.latency[round(ingest_ms - sent_at * 1000.0)] += 1

    def _send_time(self, seq: int) -> float | None:
        lo, hi, t = self._hit
        if lo <= seq < hi:
            return t
        if self._batches is None:
            self._batches = sorted((f, end, t) for f, (end, t) in self._sends.items())
        batches = self._batches
        left, right = 0, len(batches)
        while left < right:
            mid = (left + right) // 2
            if batches[mid][0] <= seq:
                left = mid + 1
            else:
                right = mid
        if left and seq < batches[left - 1][1]:
            self._hit = batches[left - 1]
            return self._hit[2]
        return None

    def account(self) -> StreamAccount:
        self.acc.latency_ms = percentiles(self.latency)
        if self.acc.missing:
            self.acc.missing_ranges = self.seqs.missing_ranges(MISSING_RANGES)
        return self.acc


def _totals(accounts: list[StreamAccount], streams: list[_Stream]) -> Account:
    total = Account()
    for acc in accounts:
        total.sent += acc.sent
        total.acknowledged += acc.acknowledged
        total.stored += acc.stored
        total.delivered += acc.delivered
        total.duplicated += acc.duplicated
        total.unexpected += acc.unexpected
        total.out_of_order += acc.out_of_order
    merged: Counter[int] = Counter()
    for stream in streams:
        merged.update(stream.latency)
    total.latency_ms = percentiles(merged)
    return total


def percentiles(hist: Counter[int]) -> Latency | None:
    """Nearest-rank p50/p95/p99 and the max of a histogram of whole milliseconds."""
    count = sum(hist.values())
    if not count:
        return None
    ranks = {p: max(1, math.ceil(p / 100 * count)) for p in (50, 95, 99)}
    values: dict[int, int] = {}
    seen = 0
    for value in sorted(hist):
        seen += hist[value]
        for p, rank in ranks.items():
            if p not in values and seen >= rank:
                values[p] = value
    return Latency(count, values[50], values[95], values[99], max(hist))


class _IngestClock:
    """``ingest_ts`` (``YYYY-MM-DDTHH:MM:SS.mmmZ``) to Unix milliseconds, the second cached."""

    def __init__(self) -> None:
        self._prefix = ""
        self._sec = 0

    def ms(self, ts: object) -> int | None:
        if type(ts) is not str or len(ts) != 24 or ts[19] != "." or ts[23] != "Z":
            return None
        prefix = ts[:19]
        try:
            if prefix != self._prefix:
                sec = time.strptime(prefix, "%Y-%m-%dT%H:%M:%S")
                self._sec, self._prefix = calendar.timegm(sec), prefix
            return self._sec * 1000 + int(ts[20:23])
        except ValueError:
            return None
