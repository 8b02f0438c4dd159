"""Hypothesis strategies for records as senders write them, for the native-path tests.

Values of every kind the normaliser meets: timestamps in many forms, level spellings,
messages with and without addresses, odd types, field names that collide with fixed
keys, raw lines in every format, and whole batches of them; and JSON record texts that
give a member name more than once, which no dict can.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import orjson
from hypothesis import strategies as st

from emitters.formats import FORMAT_NAMES, FORMATS
from services.common.config import PiiConfig
from services.common.model import Batch, Rejection
from services.ingest import native
from services.ingest.levels import ALIASES
from services.ingest.normalize import FIXED_KEYS, Normaliser
from services.ingest.syslog.records import RecordBuilder

INGEST_MS = 1_710_252_400_123
MAX_BYTES = 256
MAX_CHARS = MAX_BYTES // 4

# --- Values as senders write them -------------------------------------------------------

DATES = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31, 23, 59))
CANONICAL_TS = DATES.map(lambda d: f"{d:%Y-%m-%dT%H:%M:%S}.{d.microsecond // 1000:03d}Z")
ISO_TS = st.builds(
    lambda d, sep, frac, zone: f"{d:%Y-%m-%d}{sep}{d:%H:%M:%S}{frac}{zone}",
    DATES,
    st.sampled_from("Tt "),
    st.sampled_from(["", ".4", ".48", ".482", ".482113", ".123456789", ",5", "."]),
    st.sampled_from(["", "Z", "z", "+02:00", "-0530", "+02", " UTC", "GMT", "+24:00", " Z"]),
)
RFC3164_TS = st.builds(
    lambda mon, day, clock: f"{mon} {day:>2} {clock}",
    st.sampled_from(["Jan", "Feb", "Mar", "mar", "Dec", "Foo"]),
    st.integers(0, 32),
    st.sampled_from(["04:05:06", "23:59:59.123", "24:00:00", "12:00"]),
)
ODD_TS = st.sampled_from(
    [
        *("12/Mar/2024:14:05:09 +0000", "Tue Mar 12 14:05:09.123456 2024", "2024/03/12 14:05:09"),
        *("Tue, 12 Mar 2024 14:05:09 +0000", "Mar 12 2024 14:05:09", "Feb 29 12:00:00"),
        *("2024-02-30T00:00:00.000Z", "1969-12-31T23:59:59.999Z", "2024-03-12T24:00:00.000Z"),
        *("9999-12-31T23:59:59.999-01:00", "10000-01-01T00:00:00Z", " 2024-03-12T14:05:09.482Z"),
        *("2024-03-12T14:05:09.482Z ", "[2024-03-12T14:05:09.482Z]", "2024-03-12T14:05:09.482z"),
        *(
            "\uff12\uff10\uff12\uff14-03-12T14:05:09.482Z",
            "2024-03-12T14:05:09.4821Z",
            "2024-03-12T14:05:60.000Z",
        ),
        *("1710252309", " 1710252309 ", "[1710252309.5]", "1710252309482", "-1", "1e9", "0x10"),
        *("١٧١٠٢٥٢٣٠٩", "1.", "99999999999999999999999", "1710252309.123456789123"),
    ]
)
EPOCH_TS = st.one_of(
    st.integers(-5, 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.from_regex(r"\A[0-9]{1,22}(\.[0-9]{1,12})?\Z"),
)
TS_TEXT = st.one_of(CANONICAL_TS, ISO_TS, RFC3164_TS, ODD_TS, st.text(max_size=12))
TS_VALUES = st.one_of(TS_TEXT, EPOCH_TS, st.sampled_from([None, "", True, [], {}, 2**70]))

LEVEL_WORDS = sorted(ALIASES)
PADDING = ["", " ", "\t", "\x1c", "\u3000", "\xa0", "\x85", "\n"]


def _padded(pad: str, word: str, bits: int) -> str:
    """``word`` in mixed case (``bits`` picks upper-case letters) between ``pad``."""
    cased = "".join(c.upper() if bits >> (i % 8) & 1 else c.lower() for i, c in enumerate(word))
    return pad + cased + pad


LEVEL_TEXT = st.one_of(
    st.sampled_from(LEVEL_WORDS),
    st.builds(_padded, st.sampled_from(PADDING), st.sampled_from(LEVEL_WORDS), st.integers(0, 255)),
    st.integers(-2, 200).map(lambda n: f"<{n}>"),
    st.integers(-3, 75).map(str),
    st.sampled_from(["<007>", "<1000>", "< 1>", "<>", "<13", "0000030", "030", "1234567"]),
    st.sampled_from(
        ["\uff29\uff2e\uff26\uff2f", "İnfo", "\u0131nfo", "ß", "\uff37", "warnung", "٣٠", "²"]
    ),
    st.text(max_size=6),
)
LEVEL_VALUES = st.one_of(
    LEVEL_TEXT,
    st.integers(-3, 75),
    st.sampled_from([30.0, 30.5, 4.0, float("nan"), 2**64, None, "", True, False, [], {}]),
)
SEVERITY_VALUES = st.one_of(
    st.integers(-2, 9),
    st.sampled_from(["3", " 3 ", "٣", "03", "8", "", "x", "7\n", 3.0, True, None, [3]]),
)


PII_PIECES = [
    *("a@b.co", "john.doe@example.com", "x" * 70 + "@example.com", "@@a@b.cd", "a@@b.cd"),
    *("user@localhost", "é@ü.de", "a@b.c0m", "a@b.c", "a@1.2.3.4", "-@-.de", "a_b@c_d.ef", "@"),
    *("1.2.3.4", "256.1.1.1", "1.2.3.4.5", "01.2.3.4", "1.2.3.4a", "a1.2.3.4", "_1.2.3.4_"),
    *("é1.2.3.4", "1.2.3.4.", ".1.2.3.4", "v1.2.3.4", "999.1.1.1", "0.0.0.0", "255.255.255.255"),
    *(
        "1.2.3.4:80",
        "\u0661.\u0662.\u0663.\u0664",
        "1.2.3.255",
        "1.2.3.2555",
        "12.34.56.78",
        "1..2.3.4",
        ".",
    ),
]
MSG_TEXT = st.lists(
    st.one_of(st.sampled_from(PII_PIECES), st.text(max_size=4), st.sampled_from(PADDING)),
    max_size=8,
).map("".join)
HUGE_TEXT = st.text(
    alphabet=st.sampled_from(["a", "é", "€", "😀", "@", ".", "1", "\x00"]),
    min_size=MAX_CHARS - 2,
    max_size=MAX_BYTES + 2,
)
SURROGATE_TEXT = st.sampled_from(["\ud800", "a\udfff", "x@\ud800.de", "\ud83d\ude00"])
SPECIAL_TEXT = st.sampled_from(['q"uote', "back\\slash", "\x00\x1f\x7f", "\u2028\u2029", "😀é"])
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([2**64, -(2**63) - 1, 2**70]),
    st.floats(),
    st.text(max_size=6),
    SPECIAL_TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def nested(depth: int) -> list[Any]:
    """A list ``depth`` levels deep: orjson refuses to write 255 levels, the record included."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


ODD_VALUES = st.one_of(
    st.sampled_from([{1: "a"}, {"k": {2: 3}}, (1, "t"), b"bytes", {1, 2}, 1j]),
    st.integers(252, 256).map(nested),
)
MSG_VALUES = st.one_of(
    MSG_TEXT, HUGE_TEXT, SURROGATE_TEXT, JSON_VALUES, st.sampled_from([None, "", 2**70])
)
TEXTISH = st.one_of(st.text(max_size=6), JSON_SCALARS, JSON_VALUES, SPECIAL_TEXT)
SEQ_VALUES = st.one_of(
    st.integers(0, 3),
    st.integers(-3, 3),
    st.integers(2**64 - 3, 2**64 + 3),
    st.integers(0, 2**64 - 1),
    st.sampled_from(["0", "007", "18446744073709551615", "18446744073709551616", "٣", " 1"]),
    st.sampled_from(["0" * 21 + "1", "", "1.0", "-1", True, False, 1.0, float("nan"), None, []]),
)
FORMAT_TEXT = st.sampled_from(["", *FORMAT_NAMES, "text", "auto", "zz", "JSON", "é"])
FORMAT_VALUES = st.one_of(
    FORMAT_TEXT, FORMAT_TEXT, FORMAT_TEXT, st.sampled_from([0, 5, None, [], False, True, {}])
)

FIELD_NAMES = st.one_of(
    st.sampled_from(
        [
            *FIXED_KEYS,
            *("src_ts", "src_level", "src_src_ts", "src_emitter", "src_batch_id", "src_raw"),
            *("src_ingest_ts", "src_ts_missing", "src_format", "timestamp", "time", "@timestamp"),
            *("lvl", "severity", "message", "log", "text", "user", "syslog_severity", "pid"),
            *("syslog_facility", "raw", "", "é", "k\x00", 'q"k'),
        ]
    ),
    st.text(max_size=5),
)
SIMPLE_REC = st.fixed_dictionaries(
    {},
    optional={
        "ts": TS_TEXT,
        "level": LEVEL_TEXT,
        "msg": MSG_TEXT,
        "service": st.text(max_size=5),
        "host": st.text(max_size=5),
        "pid": st.integers(0, 99),
        "user": MSG_TEXT,
    },
)


def _render(name: str, rec: dict[str, Any]) -> str:
    return FORMATS[name].render(rec)


def _json_line(pairs: list[tuple[Any, Any]], ascii_only: bool) -> str:
    return json.dumps(dict(pairs), ensure_ascii=ascii_only, default=str, skipkeys=True)


RAW_LINES = st.one_of(
    st.builds(_render, st.sampled_from(FORMAT_NAMES), SIMPLE_REC),
    st.sampled_from(
        [
            *("{", "[]", '{"ts":1}', '{"raw":"r","format":"json","msg":"m"}', 'a=b c="d"', "=x"),
            *("<13>Mar  2 04:05:06 host app: msg", "<13>Mar  2 04:05:06 app[1]: Error x", "x,y,z"),
            *("<999>Mar  2 04:05:06 host app: m", "ts,level,msg", '"a,b",c,d', "a,b", "k=v\r\n"),
            *("- - -: m", "2024-03-12T14:05:09.482Z web01 checkout[4412]: ERROR declined", " "),
            *('{"n":18446744073709551616}', '{"s":"\\ud800"}', '{"ts":NaN}', '{"a":1}\r\n'),
        ]
    ),
    st.text(max_size=30),
    HUGE_TEXT,
)


@st.composite
def pairs(draw: st.DrawFn) -> list[tuple[Any, Any]]:
    """Key-value pairs of one record, each key with the kind of value it usually carries."""
    rare = st.one_of(
        st.tuples(st.sampled_from([0, 1, None, True, ("t",)]), JSON_SCALARS),
        st.tuples(FIELD_NAMES, st.one_of(ODD_VALUES, SURROGATE_TEXT)),
        st.tuples(st.just("raw"), st.one_of(RAW_LINES, st.sampled_from([None, "", 5, ["x"]]))),
    )
    pair = st.one_of(
        st.tuples(st.sampled_from(["ts", "timestamp", "time", "@timestamp"]), TS_VALUES),
        st.tuples(st.sampled_from(["level", "lvl", "severity"]), LEVEL_VALUES),
        st.tuples(st.sampled_from(["msg", "message", "log", "text"]), MSG_VALUES),
        st.tuples(st.sampled_from(["service", "host", "stream"]), TEXTISH),
        st.tuples(st.just("seq"), SEQ_VALUES),
        st.tuples(st.just("format"), FORMAT_VALUES),
        st.tuples(st.just("syslog_severity"), SEVERITY_VALUES),
        st.tuples(FIELD_NAMES, st.one_of(JSON_VALUES, MSG_TEXT)),
        st.tuples(FIELD_NAMES, st.one_of(JSON_VALUES, MSG_TEXT)),
        rare,
    )
    return draw(st.lists(pair, max_size=10))


RAW_JSON = st.builds(_json_line, pairs(), st.booleans())
TYPICAL = st.fixed_dictionaries(
    {
        "ts": st.one_of(CANONICAL_TS, ISO_TS),
        "level": st.sampled_from(LEVEL_WORDS),
        "msg": MSG_TEXT,
        "service": st.text(max_size=6),
        "host": st.text(max_size=6),
        "stream": st.text(max_size=4),
        "seq": st.integers(0, 2**64 - 1),
    },
    optional={"user": MSG_TEXT, "order_id": st.integers(), "region": st.text(max_size=4)},
)
# Typical records twice: they are what the C path takes most.
RECORDS = st.one_of(
    TYPICAL,
    TYPICAL,
    st.builds(lambda base, extra: base | dict(extra), TYPICAL, pairs()),
    pairs().map(dict),
    st.fixed_dictionaries(
        {"raw": st.one_of(RAW_LINES, RAW_JSON)}, optional={"format": FORMAT_VALUES}
    ).flatmap(lambda rec: pairs().map(lambda extra: rec | dict(extra[:3]))),
    pairs().map(dict),
    st.sampled_from([None, None, 1, "text", ["a"], 2.5, True]),
)
META_TEXT = st.one_of(
    st.sampled_from(["", "b-1", 'q"uote', "back\\slash", "ctl\x00\x1f\x7f", "émoji😀", "\u2028"]),
    st.text(max_size=8),
)
DEFAULT_FORMATS = st.sampled_from(["", *FORMAT_NAMES, "text", "auto", "zz", 'q"'])
INGEST_TIMES = st.one_of(st.just(INGEST_MS), st.integers(0, 253_402_300_799_999))


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    records = draw(st.lists(RECORDS, max_size=30))
    meta = st.one_of(META_TEXT, st.just("\ud800")) if draw(st.integers(0, 19)) == 0 else META_TEXT
    rejections = [
        Rejection(i, "parse_error", "not JSON") for i, r in enumerate(records) if r is None
    ]
    return Batch(
        records=records,
        batch_id=draw(meta),
        emitter=draw(meta),
        scenario_id=draw(meta),
        run_id=draw(meta),
        default_format=draw(DEFAULT_FORMATS),
        rejections=rejections if draw(st.booleans()) else [],
    )


# --- JSON text with repeated member names -----------------------------------------------

# JSON allows a name twice in one object: orjson keeps the last value, in the place of the
# first, and only then is a "fields" object merged. A reader of the text must agree.
REPEATED_NAMES = st.one_of(
    st.just("fields"),
    st.sampled_from(
        [
            *("msg", "message", "log", "text", "ts", "timestamp", "@timestamp", "level", "lvl"),
            *("severity", "syslog_severity", "service", "seq", "format", "raw", "src_ts"),
            *("src_level", "emitter", "user"),
        ]
    ),
)
NAMED_VALUES = st.one_of(JSON_VALUES, MSG_TEXT, TS_TEXT, LEVEL_TEXT, SEQ_VALUES)


def value_json(value: Any) -> str:
    """``value`` as JSON text; what JSON cannot hold (an infinity, a lone surrogate) would
    spoil the whole body, so a string stands in for it."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, default=str)
        text.encode()
    except (ValueError, UnicodeEncodeError):
        return '"not JSON"'
    return text


def object_json(members: list[tuple[str, str]]) -> str:
    """A JSON object written member by member, every repeated name kept."""
    return "{" + ",".join(f"{value_json(name)}:{text}" for name, text in members) + "}"


def _members(rec: dict[Any, Any]) -> list[tuple[str, str]]:
    return [(k, value_json(v)) for k, v in rec.items() if type(k) is str]


# A "fields" object without repeated names of its own.
PLAIN_FIELDS = st.dictionaries(
    st.sampled_from(["region", "trace_id", "pid", "fields"]), NAMED_VALUES, max_size=3
).map(_members)


@st.composite
def repeated_members(draw: st.DrawFn, nested: bool = True) -> list[tuple[str, str]]:
    """A record's members as JSON text, one name given two or three times: ``fields``
    (an object, or any other value, in any order), a fixed key, an alias or a plain
    name. ``nested``: a ``fields`` object may repeat names of its own, or the record's."""
    # Typical records mostly: the C path takes them, where odd pairs often go to Python.
    base = draw(st.one_of(TYPICAL, TYPICAL, pairs().map(dict), st.just({})))
    members = _members(base)
    names = [name for name, _ in members]
    name = draw(st.one_of(REPEATED_NAMES, st.sampled_from(names)) if names else REPEATED_NAMES)
    for _ in range(draw(st.integers(2, 3)) - (name in names)):
        if name == "fields" and nested and draw(st.booleans()):
            value = object_json(draw(st.one_of(PLAIN_FIELDS, repeated_members(nested=False))))
        else:
            value = value_json(draw(NAMED_VALUES))
        members.insert(draw(st.integers(0, len(members))), (name, value))
    return members


@st.composite
def repeated_fields(draw: st.DrawFn) -> list[tuple[str, str]]:
    """A typical record with ``fields`` two or three times, objects and other values in
    any order: the C path takes the record, so only the repeated name can tell."""
    members = _members(draw(TYPICAL))
    values = st.one_of(PLAIN_FIELDS.map(object_json), NAMED_VALUES.map(value_json))
    for value in draw(st.lists(values, min_size=2, max_size=3)):
        members.insert(draw(st.integers(0, len(members))), ("fields", value))
    return members


REPEATED_NAME_RECORDS = st.one_of(repeated_members(), repeated_fields()).map(object_json)


def handed_to_python(
    records: list[Any],
    default_format: str = "",
    ingest_ms: int = INGEST_MS,
    all_accepted: bool = False,
) -> int:
    """How many of ``records`` the C path handed to the Python normaliser; the batch is
    checked to store what the pure-Python normaliser stores (and, with ``all_accepted``,
    to refuse no record)."""
    norm = native.make_normaliser(PiiConfig(), 256 * 1024)
    assert isinstance(norm, native.NativeNormaliser)
    python: Normaliser = norm._python
    calls = 0
    one = python.one

    def counted(rec: Any, ctx: Any) -> Any:
        nonlocal calls
        calls += 1
        return one(rec, ctx)

    python.one = counted  # type: ignore[method-assign]
    batch = Batch(records=records, batch_id="b", run_id="r0", default_format=default_format)
    fast = norm.normalise_batch(batch, ingest_ms)
    assert not all_accepted or fast.accepted == len(records)
    slow = Normaliser(PiiConfig(), 256 * 1024).normalise_batch(batch, ingest_ms)
    assert fast.data == slow.data
    assert (fast.rejections, fast.missing, fast.level_counts) == (
        slow.rejections,
        slow.missing,
        slow.level_counts,
    )
    return calls


def json_safe(rec: dict[str, Any]) -> bool:
    """Whether ``rec`` can be written as a JSON body (a record for the JSON-body cases)."""
    try:
        orjson.dumps(rec)
    except orjson.JSONEncodeError:
        return False
    return True


def assert_listener_same(frames: list[bytes]) -> None:
    """The syslog listener turns ``frames`` into the same records, and Ingest stores the
    same lines, with the C readers and without them."""
    items = [("192.0.2.7", "tcp", [f for f in frames if f])]
    fast = RecordBuilder(native=True).records(items)
    slow = RecordBuilder(native=False).records(items)
    assert [None if r is None else list(r.items()) for r in fast] == [
        None if r is None else list(r.items()) for r in slow
    ]
    normaliser = native.make_normaliser(PiiConfig(), 256 * 1024)
    stored = [
        normaliser.normalise_batch(Batch(records=recs, batch_id="b", emitter="syslog"), 10**12)
        for recs in (fast, slow)
    ]
    assert stored[0].data == stored[1].data
