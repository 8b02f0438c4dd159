"""Turns received syslog messages into the records the Ingest core stores.

Each message's format is detected (``syslog5424``, ``syslog3164``, ``cef`` behind a BSD
header, the lenient ``syslog`` format, ...) through the format registry, exactly as the
core detects a raw line, and the message is parsed here, in one tight loop: the core then
gets plain records, which its C path writes without calling back into Python for the
line. A message that fits no format, or that its format does not parse, goes to the core
as a raw line instead, where it is kept whole as ``msg`` (format ``text``): nothing is
lost for its shape. The peer's address is the ``host`` of a record whose line names none.
What is stored is byte for byte what the core stores for the same line pushed raw with
that ``host`` (tested).

An RFC 5424 message (``loggen``'s, most relays', the emitters' with their structured
data) is read by the C extension straight from its bytes, into the record the
``syslog5424`` format parses from it (:func:`services.ingest.native.syslog5424_parser`;
no other format claims a line that starts ``<PRI>1 ``), and an RFC 3164 one that
detection reads as ``syslog3164`` likewise (:func:`services.ingest.native.syslog3164_parser`);
every other message, one the format refuses, and every message when the extension is not
built, is decoded, detected and parsed in Python.

Timestamps and levels are put in canonical form here with the core's own functions
(``normalise_ts``, ``canonical_level``), remembered for the batch: a sender writes the same
second and the same ``<PRI>`` over and over, and the C path then takes the values as they
are instead of calling back into Python for every record. What they cannot read is left
as written, for the core to flag (``ts_missing``, ``src_ts``) as it does for any push.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from emitters.formats import FORMATS, FormatError, detect_format
from services.common.model import Record
from services.ingest.levels import canonical_level
from services.ingest.native import syslog3164_parser, syslog5424_parser
from services.ingest.syslog.handoff import Item
from services.ingest.timeparse import normalise_ts

log = logging.getLogger(__name__)
_UNSEEN: Any = object()


Detect = Callable[[str], str | None]
Parse = Callable[[str], dict[str, Any]]
Fast = Callable[[bytes], Record | None]
FAST_FORMAT = "syslog5424"


class RecordBuilder:
    """Stateless once built: safe to share between threads. ``native=False`` reads every
    message in Python."""

    def __init__(self, native: bool = True) -> None:
        self._detect: Detect = detect_format
        self._parsers: dict[str, Parse] = {name: fmt.parse for name, fmt in FORMATS.items()}
        self._fast: Fast | None = syslog5424_parser() if native else None
        self._fast3164: Fast | None = syslog3164_parser() if native else None

    def records(self, items: list[Item]) -> list[Record | None]:
        out: list[Record | None] = []
        canon = _Canonical(int(time.time() * 1000))
        fast = self._fast
        for host, _, frames in items:
            if fast is None:
                lines = [f.decode("utf-8", "replace") for f in frames]
                out += _parsed(lines, host, canon, self._detect, self._parsers)
            else:
                out += self._fast_first(frames, host, canon, fast)
        return out

    def _fast_first(
        self, frames: list[bytes], host: str, canon: _Canonical, fast: Fast
    ) -> list[Record | None]:
        """``frames`` through ``fast``; what it leaves (None) through :func:`_parsed`."""
        out: list[Record | None] = []
        taken: list[Record] = []
        left: list[tuple[int, str]] = []
        fast3164 = self._fast3164
        for frame in frames:
            rec = fast(frame)
            name = FAST_FORMAT
            if rec is None and fast3164 is not None:
                rec = fast3164(frame)
                name = "syslog3164"
            if rec is None:
                left.append((len(out), frame.decode("utf-8", "replace")))
                out.append(None)
                continue
            if "host" not in rec:
                rec["host"] = host
            rec["format"] = name
            out.append(rec)
            taken.append(rec)
        _canonicalise(taken, canon)
        if left:
            done = _parsed([line for _, line in left], host, canon, self._detect, self._parsers)
            for (at, _), rec in zip(left, done, strict=True):
                out[at] = rec
        return out


class _Canonical:
    """``normalise_ts`` and ``canonical_level``, remembered for one batch."""

    __slots__ = ("levels", "now_ms", "stamps")

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.stamps: dict[str, str | None] = {}
        self.levels: dict[str, str | None] = {}

    def ts(self, ts: str) -> str | None:
        done = self.stamps[ts] = normalise_ts(ts, self.now_ms)
        return done

    def level(self, level: str) -> str | None:
        found = self.levels[level] = canonical_level(level)
        return found


def _parsed(
    lines: list[str],
    host: str,
    canon: _Canonical,
    detect: Detect,
    parsers: dict[str, Parse],
) -> list[Record | None]:
    out: list[Record | None] = []
    parsed: list[Record] = []
    append, keep = out.append, parsed.append
    for text in lines:
        line = text.rstrip("\r\n")
        name = detect(line)
        if name is None:
            append({"raw": line, "host": host})
            continue
        try:
            rec = parsers[name](line)
        except FormatError:
            append({"raw": line, "host": host})
            continue
        except Exception:  # a parser's bug must not stop the listener: kept as text
            log.exception("syslog parser failed", extra={"event": "parser_error"})
            append({"msg": line, "host": host, "format": "text"})
            continue
        if "raw" in rec or "format" in rec:  # the core renames these: let it
            append({"raw": line, "host": host})
            continue
        if "host" not in rec:
            rec["host"] = host
        rec["format"] = name
        append(rec)
        keep(rec)
    _canonicalise(parsed, canon)
    return out


def _canonicalise(records: list[Record], canon: _Canonical) -> None:
    # Inline, not a call per record: this loop is on the listener's hot path.
    stamps, levels = canon.stamps, canon.levels
    for rec in records:
        ts = rec.get("ts")
        if type(ts) is str:
            done = stamps.get(ts, _UNSEEN)
            if done is _UNSEEN:
                done = canon.ts(ts)
            if done is not None:
                rec["ts"] = done
        level = rec.get("level")
        if type(level) is str:
            found = levels.get(level, _UNSEEN)
            if found is _UNSEEN:
                found = canon.level(level)
            if found is not None:
                rec["level"] = found
