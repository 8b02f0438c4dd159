"""The ``noise`` format: chaotic JSON-ish lines that test how Ingest copes and counts.

Like the seed's noise emitter, records use whichever alias a sloppy sender picks
(``ts|timestamp|time|@timestamp``, ``level|lvl|severity``, ``msg|message|log|text``),
odd extra keys (``Level``, ``date``, ``emitter``), nested values and wrong types, and a
share of lines are not records at all. :func:`draw` says, for each record, what Ingest
must make of it; the proportions (from a run's ``ContentOptions``) are:

- line: 80% a JSON object (of those, 5% framed oddly: a leading BOM or surrounding
  blanks, which ``parse`` accepts), 7% truncated JSON, 5% binary junk, 4% blank (spaces
  or tabs; a truly empty line is no record for Ingest, so none is sent), 4% JSON that
  is not an object (array, string, number, literal);
- timestamp: absent at ``missing_ts_ratio`` (25% when that is 0: no key, ``null`` or
  ``""``), else 11:4 valid (RFC 3339 with ``Z``/``+02:00``/``+0200``, naive, RFC 2822,
  Apache, epoch seconds/ms/ns as numbers or text) to invalid (``yesterday``,
  ``0000-00-00``, February 30th, negative or boolean, an object, a list);
- level: absent at ``missing_level_ratio`` (25% when 0), else 4:1 valid (any spelling
  ``levels.py`` knows, Windows and pino numbers, ``<PRI>`` text; the level itself drawn
  with ``error_ratio`` and ``level_mix``) to invalid (``loud``, 7, 3.5, ``true``, a list);
- message: 70% text under one of its aliases, 10% an object, 5% a list, 5% a number,
  10% none;
- a present value sometimes sits behind an earlier alias holding ``null`` or ``""``,
  which Ingest must skip.

A record is either the JSON object itself (``render`` writes it with orjson, non-text
keys as text) or ``{"noise_line": TEXT}`` for a line written as it is (broken or oddly
framed); ``noise_line`` is reserved for that. ``parse`` is lenient (BOM and surrounding
blanks are dropped, any JSON object is a record, kept as it is for the normaliser to
resolve) and raises ``FormatError`` saying what is wrong with the others. JSON objects
carry ``run_id``, ``stream`` and ``seq`` as ordinary keys; written lines do not.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import orjson

from emitters.content import (
    DOMAINS,
    HOSTS,
    SERVICES,
    USERS,
    ContentOptions,
    ipv4,
    message,
    pick_level,
    rfc3339_ms,
)
from emitters.formats.base import FormatError
from emitters.formats.jsontext import json_line

LINE_KEY = "noise_line"
TS_KEYS = ("ts", "timestamp", "time", "@timestamp")
LEVEL_KEYS = ("level", "lvl", "severity")
MSG_KEYS = ("msg", "message", "log", "text")
_LINE_KINDS = ("object", "truncated", "binary", "blank", "not_object")
_LINE_WEIGHTS = (80, 7, 5, 4, 4)
_ODD_FRAMING = 0.05
_DEFAULT_ABSENT = 0.25
_TS_VALID_SHARE = 11 / 15
_LEVEL_VALID_SHARE = 4 / 5
_DECOY = 0.1
_OPTS = orjson.OPT_NON_STR_KEYS
# Raw controls no JSON text may hold (a tab may sit between tokens).
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f]")


class NoiseSample(NamedTuple):
    """One drawn record and what Ingest must count for it.

    ``ts`` and ``level`` are ``valid``, ``absent`` or ``invalid``; for a line that is no
    record (``broken`` names its kind) both are ``""``: Ingest rejects it.
    """

    record: dict[str, Any]
    broken: str
    ts: str
    level: str


class NoiseFormat:
    """Chaotic JSON-ish lines; see the module docstring for what they hold."""

    name = "noise"

    def render(self, rec: dict[str, Any]) -> str:
        line = rec.get(LINE_KEY)
        if isinstance(line, str):
            return line.replace("\n", " ").replace("\r", " ")
        return json_line(rec, _OPTS)

    def parse(self, line: str) -> dict[str, Any]:
        text = line.strip(" \t\ufeff")
        if not text:
            raise FormatError("a blank line is not a record")
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise FormatError(_diagnosis(text, exc)) from None
        if not isinstance(value, dict):
            raise FormatError(f"a record must be a JSON object, not {_kind(value)}")
        return value

    def looks_like(self, line: str) -> bool:
        # Noise imitates other formats and broken lines on purpose: nothing about a line
        # says "noise", so detection never picks it (its JSON objects parse as json).
        return False

    def sample(self, rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
        return draw(rng, opts, now).record


def _diagnosis(text: str, exc: orjson.JSONDecodeError) -> str:
    control = _CONTROL.search(text)
    if control is not None:
        return f"binary data: U+{ord(control.group()):04X} at character {control.start()}"
    if exc.pos >= len(text) and text[0] in "{[":
        return f"truncated JSON: the line ends at character {len(text)}, inside a value"
    return f"invalid JSON at character {exc.pos}: {exc.msg}"


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return "a literal"
    return "a number"


def draw(rng: random.Random, opts: ContentOptions, now: float) -> NoiseSample:
    """One noise record and what Ingest must make of it (see :class:`NoiseSample`)."""
    kind = rng.choices(_LINE_KINDS, weights=_LINE_WEIGHTS)[0]
    if kind == "object" or kind == "truncated":
        rec, ts, level = _object(rng, opts, now)
        text = orjson.dumps(rec, option=_OPTS).decode()
        if kind == "truncated":
            return NoiseSample({LINE_KEY: text[: rng.randint(1, len(text) - 1)]}, kind, "", "")
        if rng.random() < _ODD_FRAMING:
            rec = {LINE_KEY: rng.choice(("\ufeff", " ", "\t")) + text + rng.choice(("", " "))}
        return NoiseSample(rec, "", ts, level)
    return NoiseSample({LINE_KEY: _BROKEN[kind](rng)}, kind, "", "")


def _binary(rng: random.Random) -> str:
    junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(8, 64))).decode("latin-1")
    head = rng.choice(("\x00", "\xff\xfe", "\x1b[0m", "\x89PNG\x1a"))
    return head + junk.replace("\n", "").replace("\r", "")


_BROKEN: dict[str, Callable[[random.Random], str]] = {
    "binary": _binary,
    "blank": lambda rng: rng.choice((" ", "  ", "\t", " \t ")),
    "not_object": lambda rng: rng.choice(
        ('["error", "disk full"]', '"just text"', "42", "null", "true", "[1, 2, 3]")
    ),
}


def _object(
    rng: random.Random, opts: ContentOptions, now: float
) -> tuple[dict[str, Any], str, str]:
    level = pick_level(rng, opts)
    service = rng.choice(SERVICES)
    rec: dict[str, Any] = {}
    ts_state = _state(rng, opts.missing_ts_ratio, _TS_VALID_SHARE)
    level_state = _state(rng, opts.missing_level_ratio, _LEVEL_VALID_SHARE)
    _put(rng, rec, TS_KEYS, ts_state, lambda: _ts_value(rng, ts_state, now))
    _put(rng, rec, LEVEL_KEYS, level_state, lambda: _level_value(rng, level_state, level))
    _message(rng, rec, level, service)
    _extras(rng, rec, service, now)
    return rec, ts_state, level_state


def _state(rng: random.Random, missing: float, valid_share: float) -> str:
    absent = missing or _DEFAULT_ABSENT
    roll = rng.random()
    if roll < absent:
        return "absent"
    return "valid" if roll < absent + (1 - absent) * valid_share else "invalid"


def _put(
    rng: random.Random,
    rec: dict[str, Any],
    keys: Sequence[str],
    state: str,
    value: Callable[[], object],
) -> None:
    """Set one alias of ``keys`` for ``state``; an absent value may still leave a key."""
    position = rng.randrange(len(keys))
    key = keys[position]
    if state == "absent":
        shape = rng.random()
        if shape < 0.2:
            rec[key] = None
        elif shape < 0.4:
            rec[key] = ""
        return
    if position and rng.random() < _DECOY:
        rec[keys[rng.randrange(position)]] = rng.choice((None, ""))
    rec[key] = value()


def _ts_value(rng: random.Random, state: str, now: float) -> object:
    if state == "invalid":
        return rng.choice(_BAD_TS)(now)
    return rng.choice(_GOOD_TS)(now)


def _local(now: float, hours: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, dt.timezone(dt.timedelta(hours=hours)))


_GOOD_TS: tuple[Callable[[float], object], ...] = (
    rfc3339_ms,
    lambda now: _local(now, 2).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0200",
    lambda now: _local(now, -5).isoformat(timespec="milliseconds"),
    lambda now: _local(now, 0).strftime("%Y-%m-%d %H:%M:%S"),
    lambda now: _local(now, 0).strftime("%a, %d %b %Y %H:%M:%S +0000"),
    lambda now: _local(now, 1).strftime("%d/%b/%Y:%H:%M:%S +0100"),
    lambda now: int(now),
    lambda now: round(now, 3),
    lambda now: int(now * 1000),
    lambda now: str(int(now * 1000)),
    lambda now: int(now * 1000) * 1_000_000,
)
_BAD_TS: tuple[Callable[[float], object], ...] = (
    lambda now: "yesterday",
    lambda now: "0000-00-00",
    lambda now: "2024-02-30T00:00:00Z",
    lambda now: "not a date",
    lambda now: "32/13/2024",
    lambda now: -int(now),
    lambda now: True,
    lambda now: {"epoch": int(now)},
    lambda now: [rfc3339_ms(now)],
)
_SPELLINGS = {
    "TRACE": ("trace", "TRACE", "Trace", "trc", "finest", 10, "<15>"),
    "DEBUG": ("debug", "DBG", "verbose", "d", 5, 20, "20"),
    "INFO": ("info", "INFO", "information", "notice", "I", " info ", 4, 30, 0, "<14>"),
    "WARN": ("warn", "WARNING", "Warning", "wrn", 3, 40, 3.0, "<12>"),
    "ERROR": ("error", "ERR", "severe", "E", 2, 50, "2", "<11>"),
    "FATAL": ("fatal", "CRITICAL", "emerg", "panic", 1, 60, "<10>"),
}
_BAD_LEVELS: tuple[object, ...] = (
    *("loud", "whatever", "LEVEL_5", "<999>", 7, 99, -1, True, 3.5),
    *(["error"], {"name": "warn"}),
)


def _level_value(rng: random.Random, state: str, level: str) -> object:
    if state == "invalid":
        return rng.choice(_BAD_LEVELS)
    return rng.choice(_SPELLINGS[level])


def _message(rng: random.Random, rec: dict[str, Any], level: str, service: str) -> None:
    roll = rng.random()
    if roll < 0.1:
        return
    text = message(rng, level, service)
    key = rng.choice(MSG_KEYS)
    if roll < 0.8:
        rec[key] = text
    elif roll < 0.9:
        rec[key] = {"text": text, "code": rng.randint(100, 599), "args": [rng.randint(1, 9)]}
    elif roll < 0.95:
        rec[key] = [text, "retrying"]
    else:
        rec[key] = rng.randint(-5, 100_000)


def _extras(rng: random.Random, rec: dict[str, Any], service: str, now: float) -> None:
    user = rng.choice(USERS)
    pool: tuple[tuple[str, object], ...] = (
        ("service", rng.choice((service, rng.randint(1, 9), None))),
        ("host", rng.choice((rng.choice(HOSTS), {"name": rng.choice(HOSTS)}))),
        ("user_email", f"{user}@{rng.choice(DOMAINS)}"),
        ("client_ip", ipv4(rng)),
        ("path", f"/api/v{rng.randint(1, 3)}/{rng.choice(('orders', 'carts', 'users'))}"),
        ("method", rng.choice(("GET", "POST", "put", "DELETE", 7))),
        ("durationMs", rng.choice((rng.randint(1, 30_000), f"{rng.randint(1, 900)}ms", -1))),
        ("env", rng.choice(("prod", "staging", "dev", None, ""))),
        (
            "meta",
            {"k8s": {"pod": f"{service}-{rng.getrandbits(20):05x}", "labels": {"tier": "web"}}},
        ),
        ("userId", rng.choice((rng.randint(1, 10**6), str(rng.randint(1, 10**6))))),
        ("tags", rng.sample(("beta", "canary", "eu", "mobile", "retry"), rng.randint(0, 3))),
        ("emitter", "rogue"),
        ("Level", rng.choice(("ERROR", "debug"))),
        ("date", rfc3339_ms(now)),
        ("ok", rng.choice((True, False, None, "yes"))),
    )
    for key, value in rng.sample(pool, rng.randint(1, 6)):
        rec[key] = value
