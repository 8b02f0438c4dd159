"""Raw RFC 3164 and access-log lines on the C path store exactly what Python stores.

The engine reads a record's raw line itself when it is ``syslog3164``, ``apache_common``,
``apache_combined`` or ``nginx_access`` (named by the record's ``format``, by the
batch's, or detected), turns its time into the stored form as ``normalise_ts`` does for
the batch's ingest time, merges the record's own fields and writes the line; a line the
format refuses, a time ``normalise_ts`` does not read and a line whose detection it cannot
prove go to Python. Each test puts the same records through ``make_normaliser(native=
True)`` and the reference ``native=False`` (record dicts, JSON bodies, protobuf bodies);
some also count the records handed to Python, so that a C path which takes nothing
cannot pass. The syslog listener's reader of RFC 3164 messages (``_native.syslog3164``)
is held to its Python reference and to the listener's Python path the same way. ``make
sanitize`` runs this module under ASan and UBSan.
"""

from __future__ import annotations

import ctypes
import random
from typing import Any

import orjson
import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from logops.v1 import logs_pb2

from emitters.content import ContentOptions
from emitters.formats import FORMATS, detect_format, get_format
from emitters.source import Accounting, EventSource
from services.common.config import PiiConfig
from services.common.model import Batch, Record
from services.ingest import native
from services.ingest.normalize import Normaliser
from services.ingest.timeparse import normalise_ts
from tests.unit.ingest.native_strategies import (
    INGEST_MS,
    INGEST_TIMES,
    SIMPLE_REC,
    assert_listener_same,
    handed_to_python,
    json_safe,
)
from tests.unit.ingest.test_native_equivalence import (
    PII_CONFIGS,
    assert_same_json,
    assert_same_push,
    examples,
    run_dict_batch,
)

pytestmark = pytest.mark.skipif(not native.AVAILABLE, reason="the C extension is not built")

LAYOUTS = ("syslog3164", "apache_common", "apache_combined", "nginx_access")
EPOCH = 1_710_252_309.0  # the emitted lines' time, a little before INGEST_MS


def emitted_lines(name: str, count: int = 60, seed: int = 3) -> list[str]:
    source = EventSource(get_format(name), ContentOptions(), Accounting("run-7", "em-1"), seed=seed)
    return [source.line(i, EPOCH + i * 3601.7) for i in range(count)]


EMITTED = {name: emitted_lines(name) for name in LAYOUTS}
ALL_EMITTED = [line for lines in EMITTED.values() for line in lines]


def stored(line: str, name: str = "", ingest_ms: int = INGEST_MS) -> dict[str, Any]:
    """The stored record of one raw line, on the C path (checked against Python)."""
    rec: dict[str, Any] = {"raw": line, "format": name} if name else {"raw": line}
    assert handed_to_python([rec], ingest_ms=ingest_ms) == 0, line[:200]
    norm = native.make_normaliser(PiiConfig(), 256 * 1024)
    data = norm.normalise_batch(Batch(records=[rec], batch_id="b"), ingest_ms).data
    out: dict[str, Any] = orjson.loads(data)
    return out


# --- the emitters' lines stay in C ------------------------------------------------------


@pytest.mark.parametrize("name", LAYOUTS)
def test_emitted_lines_named_or_detected_stay_in_c(name: str) -> None:
    lines = EMITTED[name]
    named = [
        {"raw": line, "format": name, "run_id": "run-7", "stream": "em-1", "seq": i}
        for i, line in enumerate(lines)
    ]
    assert handed_to_python(named) == 0
    assert handed_to_python([{"raw": line} for line in lines], default_format=name) == 0
    # Detected: every emitted line whose detection this code proves (all the 3164 and
    # Apache lines; nginx lines read as apache_combined unless their body is 0).
    bare = [{"raw": line} for line in lines]
    assert handed_to_python(bare) == 0
    assert handed_to_python(bare, default_format="auto") == 0


@pytest.mark.parametrize("name", LAYOUTS)
def test_emitted_lines_keep_their_time_and_fields(name: str) -> None:
    for line in EMITTED[name][:10]:
        out = stored(line, name)
        expected = normalise_ts(FORMATS[name].parse(line)["ts"], INGEST_MS)
        assert out["ts"] == expected and not out["ts_missing"]
        assert out["format"] == name


# --- generated lines --------------------------------------------------------------------

CLIENTS = st.sampled_from(["127.0.0.1", "::1", "-", "web01", "h\\x20x", "é", "1.2.3.4\t", "a[b"])
IDENTS = st.sampled_from(["-", "id", '"', "\\x41"])
USERS = st.sampled_from(["-", "frank", '""', "", "a b", "x [y", "\\\\", "é", "a\\"])
DAYS = st.sampled_from(["01", "09", "10", "28", "29", "30", "31", "00", "32", "39"])
MONTHS = st.sampled_from(["Jan", "Feb", "Mar", "Apr", "Jun", "Sep", "Dec", "jan", "Foo"])
YEARS = st.sampled_from(["1969", "1970", "2000", "2023", "2024", "2100", "9999", "0000", "0001"])
CLOCKS = st.sampled_from(["00:00:00", "13:55:36", "23:59:59", "24:00:00", "23:60:00", "12:00:60"])
OFFSETS = st.sampled_from(["+0000", "-0000", "+1400", "-1200", "+0530", "-2359", "+2400", "+0060"])
REQUESTS = st.sampled_from(
    [
        *("GET /x HTTP/1.1", "GET  HTTP/1.1", "GET HTTP/1.1", "-", "", "GET", "GET ", " GET /"),
        *('GET /a\\"b HTTP/1.0', "POST /\\xc3\\xa9 HTTP/2", "PUT /\\xff\\xfe HTTP/1.", "G@T / x"),
        *("GET /x HTTP/", "GET /x HTTP/1.1x", "\\x16\\x03\\x01", "GET /\\n HTTP/1.1", "é /x"),
        *("GET /x\\", "GET /x\\q", "GET /x\\\\", "m\\x2 y", "GET /\\XAB HTTP/1.1", "OPTIONS *"),
    ]
)
STATUSES = st.sampled_from(["200", "404", "500", "599", "600", "499", "000", "-", "20", "2000"])
BODIES = st.sampled_from(
    ["0", "-", "1", "2326", "007", "9999999999999999999", "99999999999999999999"]
)
QUOTED = st.sampled_from(["-", "", "http://x/", 'a\\"b', "Mozilla/5.0 (X11)", "\\xE9", "\\q", "é"])


@st.composite
def access_lines(draw: st.DrawFn) -> str:
    ts = f"{draw(DAYS)}/{draw(MONTHS)}/{draw(YEARS)}:{draw(CLOCKS)} {draw(OFFSETS)}"
    line = (
        f"{draw(CLIENTS)} {draw(IDENTS)} {draw(USERS)} [{ts}] "
        f'"{draw(REQUESTS)}" {draw(STATUSES)} {draw(BODIES)}'
    )
    if draw(st.booleans()):
        line += f' "{draw(QUOTED)}" "{draw(QUOTED)}"'
    return line


PRIS = st.sampled_from(["0", "13", "38", "191", "192", "999", "01", "", "1000", "x"])
BSD_DAYS = st.sampled_from([" 1", " 9", "10", "29", "30", "31", "01", "1", "32", " 0"])
BSD_CLOCKS = st.sampled_from(["00:00:00", "04:05:06", "23:59:59", "24:00:00", "12:60:00", "1:2:3"])
HOSTS = st.sampled_from(["web01", "-", "10.0.0.1", "h:", "a:b", "h" * 255, "h" * 256, "[h]", "é"])
TAGS = st.sampled_from(
    [
        *("sshd[4412]: ", "sshd: ", "sshd:", "CRON[1]:", "postfix/smtpd[7]: ", "sshd[]: ", ""),
        *("sshd[-]: ", "a[b]c: ", "x[1] ", "t[" + "9" * 19 + "]: ", "t[" + "9" * 18 + "]: "),
        *("t[007]: ", "sshd[1:2]: ", "tag", "CEF:0|", "CEF:x ", "é: "),
    ]
)
MESSAGES = st.sampled_from(["", "m", " lead", "a: b", "é😀", "\x00\x1f\x7f", "x\ny", "x" * 2000])


@st.composite
def bsd_lines(draw: st.DrawFn) -> str:
    ts = f"{draw(MONTHS)} {draw(BSD_DAYS)} {draw(BSD_CLOCKS)}"
    return f"<{draw(PRIS)}>{ts} {draw(HOSTS)} {draw(TAGS)}{draw(MESSAGES)}"


@st.composite
def mutated(draw: st.DrawFn) -> str:
    data = list(draw(st.sampled_from(ALL_EMITTED)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["set", "insert", "delete"]))
        char = draw(st.sampled_from(list('<>[]/: -"\\0123456789xAF\x00\x7fé\r\n\t')))
        if kind == "insert" or not data:
            data.insert(at, char)
        elif kind == "set":
            data[min(at, len(data) - 1)] = char
        else:
            del data[min(at, len(data) - 1)]
    text = "".join(data)
    return text[: draw(st.integers(0, len(text)))] if draw(st.booleans()) else text


def _render(name: str, rec: dict[str, Any]) -> str:
    return FORMATS[name].render(rec)


LINES = st.one_of(
    st.sampled_from(ALL_EMITTED),
    access_lines(),
    bsd_lines(),
    mutated(),
    st.builds(_render, st.sampled_from(LAYOUTS), SIMPLE_REC),
)
NAMES = st.sampled_from([*LAYOUTS, "auto", "", "syslog5424", "text", "nope"])
TEXT = st.one_of(st.sampled_from(["", "r9", 'x"y\\z', "é"]), st.text(max_size=6))
NEIGHBOURS: dict[str, Any] = {
    "format": st.one_of(NAMES, st.sampled_from([None, 0])),
    "run_id": st.one_of(TEXT, st.sampled_from([None, 7])),
    "stream": TEXT,
    "seq": st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([None, "5"])),
    "host": TEXT,
    "service": TEXT,
    "ts": st.sampled_from(["2024-03-12T14:05:09.482Z", "bad", "", None]),
    "timestamp": st.sampled_from(["2024-03-12T14:05:09Z", "x"]),
    "level": st.sampled_from(["error", "x", ""]),
    "lvl": st.just("warn"),
    "msg": st.one_of(TEXT, st.just(None)),
    "message": TEXT,
    "status": st.just(201),
    "user": TEXT,
    "pid": st.just(9),
    "src_ts": TEXT,
}


@st.composite
def raw_records(draw: st.DrawFn) -> dict[str, Any]:
    line = draw(LINES)
    rec: dict[str, Any] = {"raw": line + draw(st.sampled_from(["", "", "\n", "\r\n"]))}
    for name in draw(st.lists(st.sampled_from(sorted(NEIGHBOURS)), max_size=4, unique=True)):
        rec[name] = draw(NEIGHBOURS[name])
    return rec


BATCH_FORMATS = st.sampled_from(["", "auto", *LAYOUTS, "text"])


@examples(400)
@given(
    records=st.lists(raw_records(), min_size=1, max_size=6),
    default_format=BATCH_FORMATS,
    ingest_ms=INGEST_TIMES,
    pii=st.sampled_from(PII_CONFIGS),
)
def test_raw_dict_records_are_byte_identical(
    records: list[Any], default_format: str, ingest_ms: int, pii: PiiConfig
) -> None:
    batch = Batch(
        records=records, batch_id="b-1", run_id="batch-run", default_format=default_format
    )
    run_dict_batch(batch, pii, ingest_ms)


@examples(300)
@given(line=st.one_of(access_lines(), bsd_lines()), name=NAMES, ingest_ms=INGEST_TIMES)
def test_generated_lines_alone_are_byte_identical(line: str, name: str, ingest_ms: int) -> None:
    note(f"{detect_format(line)=}")
    handed_to_python([{"raw": line, "format": name}], ingest_ms=ingest_ms)


@examples(200)
@given(
    records=st.lists(raw_records().filter(json_safe), min_size=1, max_size=6),
    default_format=BATCH_FORMATS,
)
def test_raw_json_bodies_are_byte_identical(records: list[Any], default_format: str) -> None:
    body = orjson.dumps(
        {"batch_id": "b-1", "run_id": "batch-run", "format": default_format, "records": records}
    )
    note(f"{body=}")
    assert_same_json(body, {}, PiiConfig())


@st.composite
def pb_raw_batches(draw: st.DrawFn) -> logs_pb2.LogBatch:
    records = []
    for _ in range(draw(st.integers(1, 5))):
        line = draw(LINES).encode("utf-8", "replace").decode()
        kw = draw(
            st.fixed_dictionaries(
                {}, optional={"format": NAMES, "stream": TEXT, "seq": st.integers(0, 9)}
            )
        )
        fields = draw(st.dictionaries(st.sampled_from(["run_id", "user", "timestamp"]), TEXT))
        records.append(logs_pb2.LogRecord(raw=line, fields=fields, **kw))
    return logs_pb2.LogBatch(batch_id="b-1", run_id="batch-run", records=records)


@examples(150)
@given(msg=pb_raw_batches(), wrapped=st.booleans(), ingest_ms=INGEST_TIMES)
def test_raw_protobuf_bodies_match(msg: logs_pb2.LogBatch, wrapped: bool, ingest_ms: int) -> None:
    outer = logs_pb2.PushRequest(batch=msg) if wrapped else msg
    assert_same_push(outer.SerializeToString(), wrapped, PiiConfig(), ingest_ms)


# --- hand-picked edges --------------------------------------------------------------------

ACCESS = '1.2.3.4 - u [{}] "GET /x HTTP/1.1" 200 5'
# (time, stored ts or None when Python stores the ingest time and keeps it as src_ts)
ACCESS_TIMES = [
    ("10/Oct/2000:13:55:36 -0700", "2000-10-10T20:55:36.000Z"),
    ("29/Feb/2024:00:00:00 +0000", "2024-02-29T00:00:00.000Z"),
    ("29/Feb/2023:00:00:00 +0000", None),
    ("29/Feb/2000:12:00:00 +0000", "2000-02-29T12:00:00.000Z"),
    ("29/Feb/1900:12:00:00 +0000", None),
    ("29/Feb/2100:12:00:00 +0000", None),
    ("31/Apr/2024:00:00:00 +0000", None),
    ("30/Apr/2024:00:00:00 +0000", "2024-04-30T00:00:00.000Z"),
    ("31/Dec/2024:23:59:59 +0000", "2024-12-31T23:59:59.000Z"),
    ("01/Jan/2025:00:00:00 +1400", "2024-12-31T10:00:00.000Z"),
    ("31/Dec/2024:23:00:00 -1200", "2025-01-01T11:00:00.000Z"),
    ("01/Jan/1970:00:00:00 +0000", "1970-01-01T00:00:00.000Z"),
    ("01/Jan/1970:00:59:59 +0100", None),
    ("01/Jan/1970:01:00:00 +0100", "1970-01-01T00:00:00.000Z"),
    ("31/Dec/1969:23:00:00 -0100", "1970-01-01T00:00:00.000Z"),
    ("31/Dec/1969:22:59:59 -0100", None),
    ("31/Dec/9999:23:59:59 +0000", "9999-12-31T23:59:59.000Z"),
    ("31/Dec/9999:23:30:00 -0100", None),
    ("31/Dec/9999:22:59:59 -0100", "9999-12-31T23:59:59.000Z"),
    ("31/Dec/9999:23:00:00 -0100", None),  # 10000-01-01T00:00:00Z exactly
    ("01/Jan/0001:00:00:00 +0000", None),
    ("01/Jan/0000:00:00:00 +0000", None),
    ("00/Jan/2024:00:00:00 +0000", None),
    ("32/Jan/2024:00:00:00 +0000", None),
    ("10/Oct/2000:24:00:00 +0000", None),
    ("10/Oct/2000:23:59:60 +0000", None),
    ("10/Oct/2000:13:55:36 +2359", "2000-10-09T13:56:36.000Z"),
    ("10/Oct/2000:13:55:36 -2359", "2000-10-11T13:54:36.000Z"),
    ("10/Oct/2000:13:55:36 +2400", None),
    ("10/Oct/2000:13:55:36 +0060", None),
    ("10/Oct/2000:13:55:36 -0000", "2000-10-10T13:55:36.000Z"),
    ("01/Mar/2024:00:00:00 +0100", "2024-02-29T23:00:00.000Z"),
    ("01/Mar/2023:00:00:00 +0100", "2023-02-28T23:00:00.000Z"),
]


@pytest.mark.parametrize(("when", "expected"), ACCESS_TIMES)
@pytest.mark.parametrize("name", ["apache_common", ""])
def test_access_times_at_the_edges(when: str, expected: str | None, name: str) -> None:
    line = ACCESS.format(when)
    rec = {"raw": line, "format": name}
    calls = handed_to_python([rec])
    norm = native.make_normaliser(PiiConfig(), 256 * 1024)
    out = orjson.loads(norm.normalise_batch(Batch(records=[rec], batch_id="b"), INGEST_MS).data)
    if expected is None:
        assert calls == 1 and out["ts_missing"] and out["src_ts"] == when
    else:
        assert calls == 0 and out["ts"] == expected and not out["ts_missing"]


# (ingest time, the 3164 time, stored ts or None)
BSD_TIMES = [
    ("2024-03-12T14:06:40.123Z", "Mar 12 14:05:09", "2024-03-12T14:05:09.000Z"),
    ("2024-01-01T00:00:10Z", "Dec 31 23:59:59", "2023-12-31T23:59:59.000Z"),
    ("2023-12-31T23:59:59Z", "Jan  1 00:00:01", "2024-01-01T00:00:01.000Z"),
    ("2024-03-12T14:06:40Z", "Feb 29 12:00:00", "2024-02-29T12:00:00.000Z"),
    ("2025-03-12T14:06:40Z", "Feb 29 12:00:00", "2024-02-29T12:00:00.000Z"),
    ("2026-12-31T00:00:00Z", "Feb 29 12:00:00", None),
    ("2027-06-01T00:00:00Z", "Feb 29 12:00:00", "2028-02-29T12:00:00.000Z"),
    # Halfway between two years (183 days either side): the earlier one; a millisecond
    # later, the later one.
    ("2024-03-13T02:06:40.000Z", "Sep 12 02:06:40", "2023-09-12T02:06:40.000Z"),
    ("2024-03-13T02:06:40.001Z", "Sep 12 02:06:40", "2024-09-12T02:06:40.000Z"),
    ("2024-03-12T14:06:40Z", "Apr 31 00:00:00", None),
    ("1970-01-01T00:00:00Z", "Dec 31 23:59:59", None),
    ("1970-07-15T00:00:00Z", "Dec 31 23:59:59", "1970-12-31T23:59:59.000Z"),
    ("1970-01-01T00:00:01Z", "Jan  1 00:00:00", "1970-01-01T00:00:00.000Z"),
    ("9999-12-31T23:00:00Z", "Jan  1 00:00:00", "9999-01-01T00:00:00.000Z"),
    ("9999-12-31T23:00:00Z", "Dec 31 23:30:00", "9999-12-31T23:30:00.000Z"),
    ("2100-03-01T00:00:00Z", "Feb 29 00:00:00", None),
    ("2000-03-01T00:00:00Z", "Feb 29 00:00:00", "2000-02-29T00:00:00.000Z"),
]


def _ms(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text).timestamp() * 1000)


@pytest.mark.parametrize(("now", "when", "expected"), BSD_TIMES)
@pytest.mark.parametrize("name", ["syslog3164", "auto"])
def test_rfc3164_times_take_the_nearest_year(
    now: str, when: str, expected: str | None, name: str
) -> None:
    line = f"<38>{when} web01 sshd[1]: m"
    rec = {"raw": line, "format": name}
    ingest_ms = _ms(now)
    calls = handed_to_python([rec], ingest_ms=ingest_ms)
    norm = native.make_normaliser(PiiConfig(), 256 * 1024)
    out = orjson.loads(norm.normalise_batch(Batch(records=[rec], batch_id="b"), ingest_ms).data)
    if expected is None:
        assert calls == 1 and out["ts_missing"] and out["src_ts"] == when
    else:
        assert calls == 0 and out["ts"] == expected and not out["ts_missing"]


def test_the_3164_year_follows_the_batch_ingest_time_not_the_clock() -> None:
    line = "<38>Jun  1 00:00:00 web01 sshd: m"
    for year in (1999, 2040, 3000):
        assert stored(line, "syslog3164", _ms(f"{year}-03-01T00:00:00Z"))["ts"][:4] == str(year)


# Lines the C path takes, with what it stores (checked against Python by stored()).
TAKEN_BSD = [
    ("<0>Jan  1 00:00:00 h m", {"host": "h", "msg": "m", "level": "FATAL"}),
    ("<191>Mar  2 04:05:06 h t: m", {"syslog_facility": 23, "level": "DEBUG", "service": "t"}),
    ("<38>Mar  2 04:05:06 - sshd[4412]: m", {"host": "", "pid": 4412}),
    ("<38>Mar  2 04:05:06 h sshd[-]:m", {"pid": "-", "msg": "m"}),
    ("<38>Mar  2 04:05:06 h sshd[007]: m", {"pid": 7}),
    ("<38>Mar  2 04:05:06 h t[" + "9" * 19 + "]: m", {"pid": "9" * 19}),
    ("<38>Mar  2 04:05:06 h t[" + "9" * 18 + "]: m", {"pid": 10**18 - 1}),
    ("<38>Mar  2 04:05:06 h sshd[]: m", {"service": "sshd", "msg": "m"}),
    ("<38>Mar  2 04:05:06 h sshd[1:2]: m", {"pid": "1:2"}),
    ("<38>Mar  2 04:05:06 h a[b]c: m", {"msg": "a[b]c: m"}),
    ("<38>Mar  2 04:05:06 h x[1] m", {"msg": "x[1] m"}),
    ("<38>Mar  2 04:05:06 h t:  two", {"service": "t", "msg": " two"}),
    ("<38>Mar  2 04:05:06 h t:", {"service": "t", "msg": ""}),
    ("<38>Mar  2 04:05:06 h ", {"host": "h", "msg": ""}),
    ("<38>Mar  2 04:05:06 a:b t: m", {"host": "a:b"}),
    ("<38>Mar  2 04:05:06 " + "h" * 255 + " m", {"host": "h" * 255}),
    ("<38>Mar 31 23:59:59 h é😀 \x00\x1f\x7f", {"msg": "é😀 \x00\x1f\x7f"}),
]


@pytest.mark.parametrize(("line", "fields"), TAKEN_BSD)
@pytest.mark.parametrize("name", ["syslog3164", ""])
def test_rfc3164_lines_taken_in_c(line: str, fields: dict[str, Any], name: str) -> None:
    out = stored(line, name)
    assert out["format"] == "syslog3164"
    for key, value in fields.items():
        assert out[key] == value, key


def test_a_cef_lookalike_is_3164_when_named_only() -> None:
    line = "<38>Mar  2 04:05:06 h CEF:x y"  # not cef (no version), not detected as 3164
    out = stored(line, "syslog3164")
    assert (out["service"], out["msg"]) == ("CEF", "x y")
    assert handed_to_python([{"raw": line}]) == 1


LEFT_BSD = [
    "<192>Mar  2 04:05:06 h t: m",  # PRI over 191: refused
    "<999>Mar  2 04:05:06 h t: m",
    "<1000>Mar  2 04:05:06 h t: m",
    "<01>Mar  2 04:05:06 h t: m",  # leading zero
    "<>Mar  2 04:05:06 h t: m",
    "<38>Mar 02 04:05:06 h t: m",  # zero-padded day
    "<38>Mar 2 04:05:06 h t: m",
    "<38>Mar  0 04:05:06 h t: m",
    "<38>Mar 32 04:05:06 h t: m",
    "<38>mar  2 04:05:06 h t: m",
    "<38>Mar  2 24:05:06 h t: m",
    "<38>Mar  2 04:60:06 h t: m",
    "<38>Mar  2 04:05:60 h t: m",
    "<38>Mar  2 04:05:06 h: t: m",  # HOSTNAME ending in ":"
    "<38>Mar  2 04:05:06 [h] t: m",
    "<38>Mar  2 04:05:06 " + "h" * 256 + " m",
    "<38>Mar  2 04:05:06 h",  # truncated
    "<38>Mar  2 04:05:06",
    "<38>Mar  2 04:05",
    "<38>",
    "<38>Mar  2 04:05:06 hé m",
    "<38>Mar  2 04:05:06 h\tx m",
    "<38>Feb 30 04:05:06 h t: m",  # no such day in any year
]


@pytest.mark.parametrize("line", LEFT_BSD)
def test_rfc3164_lines_left_to_python(line: str) -> None:
    assert handed_to_python([{"raw": line, "format": "syslog3164"}]) == 1
    assert handed_to_python([{"raw": line}]) == 1


TAKEN_ACCESS = [
    ('1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x HTTP/1.1" 200 5', "apache_common", {}),
    ('a b c d [10/Oct/2000:13:55:36 -0700] "-" - -', "apache_common", {"user": "c d", "bytes": 0}),
    ('a b  [10/Oct/2000:13:55:36 -0700] "" 404 1', "apache_common", {"user": "", "level": "WARN"}),
    ('a b "" [10/Oct/2000:13:55:36 -0700] "x" 599 1', "apache_common", {"user": "", "msg": "x"}),
    (
        'a b x [y [10/Oct/2000:13:55:36 -0700] "GET  HTTP/1.1" 500 1',
        "apache_common",
        {"user": "x [y", "method": "GET", "protocol": "HTTP/1.1", "level": "ERROR"},
    ),
    (
        'a b u [10/Oct/2000:13:55:36 -0700] "GET HTTP/1.1" 600 1',
        "apache_common",
        {"path": "HTTP/1.1", "level": "INFO", "status": 600},
    ),
    (
        'a b u [10/Oct/2000:13:55:36 -0700] "P\\x4fST /\\xc3\\xa9\\xff\\"\\q\\ HTTP/2" 000 1',
        "apache_common",
        {"method": "POST", "path": '/é\\xff"\\q\\', "status": 0},
    ),
    (
        'a b u [10/Oct/2000:13:55:36 -0700] "GET /\\n\\r\\t\\b\\v\\\\ HTTP/1.0" 200 1',
        "apache_common",
        {"path": "/\n\r\t\b\v\\"},
    ),
    (
        'a b u [10/Oct/2000:13:55:36 -0700] "G@T / HTTP/1.1" 200 9999999999999999999',
        "apache_common",
        {"msg": "G@T / HTTP/1.1", "bytes": 9999999999999999999},
    ),
    (
        'a\\x41é b u [10/Oct/2000:13:55:36 -0700] "GET /" 200 1',
        "apache_common",
        {"client_ip": "aAé"},
    ),
    (
        'a - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 0 "-" "-"',
        "nginx_access",
        {"bytes": 0},
    ),
    (
        'a - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 0 "\\xE9" "\\x22"',
        "nginx_access",
        {"referer": "\\xe9", "user_agent": '"'},
    ),
    (
        'a b c [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 1 "r" "Mozilla (\\"x\\")"',
        "apache_combined",
        {"referer": "r", "user_agent": 'Mozilla ("x")'},
    ),
    (
        '::1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 - "" ""',
        "apache_combined",
        {"referer": "", "user_agent": "", "client_ip": "::1"},
    ),
]


@pytest.mark.parametrize(("line", "detected", "fields"), TAKEN_ACCESS)
def test_access_lines_taken_in_c(line: str, detected: str, fields: dict[str, Any]) -> None:
    assert detect_format(line) == detected
    for name in (detected, ""):
        out = stored(line, name)
        assert out["format"] == detected
        for key, value in fields.items():
            assert out[key] == value, key


LEFT_ACCESS = [
    ('a - - [10/Oct/2000:13:55:36 -0700] "GET /" 200 0', "apache_common"),  # body 0: csv...
    ('a - - [10/Oct/2000:13:55:36 -0700] "GET /" 200 0 "r" "\\q"', "apache_combined"),
    ('a b - [10/Oct/2000:13:55:36 -0700] "GET /" 200 0 "r" "u"', "apache_combined"),
    ('a - - [10/Oct/2000:13:55:36 -0700] "GET /\\xe9" 200 0 "r" "u"', "nginx_access"),
    ('A - - [10/Oct/2000:13:55:36 -0700] "GET /" 200 1', "apache_common"),  # upper case
    ('Mar 2 - [10/Oct/2000:13:55:36 -0700] "GET /" 200 1', "apache_common"),
    ('2024/03/12 - - [10/Oct/2000:13:55:36 -0700] "GET /" 200 1', "apache_common"),
    ('{a - - [10/Oct/2000:13:55:36 -0700] "GET /" 200 1', "apache_common"),
    ('\ta - - [10/Oct/2000:13:55:36 -0700] "GET /" 200 1', "apache_common"),
    ('é - - [10/Oct/2000:13:55:36 -0700] "GET /" 200 1', "apache_common"),
]


@pytest.mark.parametrize(("line", "name"), LEFT_ACCESS)
def test_unproven_detection_is_left_to_python(line: str, name: str) -> None:
    """Detected lines that this code does not claim go to Python (which may still read
    them as an access layout: it decides); named, the same lines stay in C."""
    assert handed_to_python([{"raw": line}]) == 1
    assert handed_to_python([{"raw": line, "format": name}]) == 0


LEFT_ACCESS_NAMED = [
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x HTTP/1.1" 200',  # truncated
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x HTTP/1.1" 200 ',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x HTTP/1.1 200 5',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x\\" 200 5',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700]  "GET /x" 200 5',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x" 20 5',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x" 2000 5',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x" 200 99999999999999999999',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x" 200 5x',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x" 200 -5',
    '1.2.3.4 - - [10/oct/2000:13:55:36 -0700] "GET /x" 200 5',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 0700] "GET /x" 200 5',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -070] "GET /x" 200 5',
    '1.2.3.4 - - [1/Oct/2000:13:55:36 -0700] "GET /x" 200 5',
    '1.2.3.4 - - [40/Oct/2000:13:55:36 -0700] "GET /x" 200 5',
    '1.2.3.4 - - [10/Oct/2000:30:55:36 -0700] "GET /x" 200 5',
    '1.2.3.4 - - [10/Oct/2000:13:65:36 -0700] "GET /x" 200 5',
    '1.2.3.4 - - [10/Oct/2000:13:55:76 -0700] "GET /x" 200 5',
    '1.2.3.4  - [10/Oct/2000:13:55:36 -0700] "GET /x" 200 5',
    '1.2.3.4 - a\rb [10/Oct/2000:13:55:36 -0700] "GET /x" 200 5',
    '1.2.3.4 - a\nb [10/Oct/2000:13:55:36 -0700] "GET /x" 200 5',
    '1.2.3.4\n - - [10/Oct/2000:13:55:36 -0700] "GET /x" 200 5',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x\n" 200 5',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x\\\r" 200 5',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x" 200 5 "r"',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x" 200 5 "r" "u" ',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x" 200 5 "r" "u\\"',
    '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET /x" 200 5 "r"  "u"',
]


@pytest.mark.parametrize("line", LEFT_ACCESS_NAMED)
@pytest.mark.parametrize("name", ["apache_common", "apache_combined", "nginx_access"])
def test_lines_the_layout_refuses_are_left_to_python(line: str, name: str) -> None:
    assert handed_to_python([{"raw": line, "format": name}]) == 1


def test_a_refused_line_keeps_the_formats_own_message() -> None:
    norm = native.make_normaliser(PiiConfig(), 256 * 1024)
    rec = {"raw": "<192>Mar  2 04:05:06 h t: m", "format": "syslog3164"}
    result = norm.normalise_batch(Batch(records=[rec], batch_id="b"), INGEST_MS)
    assert [r.message for r in result.rejections] == [
        "syslog3164: syslog PRI must be 0-191, got 192"
    ]


def test_very_long_lines() -> None:
    path = "/" + "a" * 60_000
    access = f'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET {path} HTTP/1.1" 200 5'
    bsd = "<38>Mar  2 04:05:06 h t: " + "é" * 60_000
    assert stored(access, "apache_common")["path"] == path
    assert stored(bsd)["msg"] == "é" * 60_000
    # Over the engine's size guard (max_record_bytes // 4 characters): Python's.
    assert handed_to_python([{"raw": access + "a" * 6_000}]) == 1
    # Over the size guard: Python refuses the record, and words it.
    tiny = native.make_normaliser(PiiConfig(), 1024)
    slow = Normaliser(PiiConfig(), 1024)
    for line in (access, bsd):
        batch = Batch(records=[{"raw": line}], batch_id="b")
        assert tiny.normalise_batch(batch, INGEST_MS) == slow.normalise_batch(batch, INGEST_MS)


def test_records_fill_what_the_line_leaves_open() -> None:
    line = 'a - - [10/Oct/2000:13:55:36 -0700] "-" 200 1'
    out = stored(line, "apache_common")
    assert "msg" not in out or out["msg"] == ""
    # The line sets ts and level, not msg: the record's message stands in (Python then,
    # as for any record whose msg is an alias), its lvl and timestamp are dropped.
    rec = {"raw": line, "message": "m", "lvl": "error", "timestamp": "x", "host": "h", "seq": 3}
    handed_to_python([rec])
    norm = native.make_normaliser(PiiConfig(), 256 * 1024)
    merged = orjson.loads(norm.normalise_batch(Batch(records=[rec], batch_id="b"), INGEST_MS).data)
    assert (merged["msg"], merged["level"], merged["host"], merged["seq"]) == ("m", "INFO", "h", 3)
    assert "lvl" not in merged and "timestamp" not in merged
    rows = [
        {"raw": line, "msg": "own", "user": "u", "status": 201, "format": "apache_common"},
        {"raw": "<38>Mar  2 04:05:06 h m", "service": "s", "pid": 9, "ts": "bad"},
    ]
    assert handed_to_python(rows) == 0


def test_random_emitted_batches_match() -> None:
    rng = random.Random(5)
    for name in LAYOUTS:
        lines = emitted_lines(name, 200, seed=rng.randrange(1000))
        records: list[Any] = [{"raw": line} for line in lines]
        run_dict_batch(Batch(records=records, batch_id="b"), PiiConfig(), INGEST_MS)
        body = orjson.dumps({"batch_id": "b", "format": name, "records": records})
        assert_same_json(body, {}, PiiConfig())


# --- the syslog listener's RFC 3164 messages -------------------------------------------


def _exact(data: bytes) -> Any:
    """``data`` in a buffer of its own size (bytes objects carry a spare NUL byte)."""
    return (ctypes.c_char * len(data)).from_buffer_copy(data)


def same_3164(frame: bytes) -> Record | None:
    """The C record for a received ``frame``, after checking it against the reference."""
    parser = native.syslog3164_parser()
    assert parser is not None
    ours = parser(_exact(frame))
    ref = native.syslog3164_reference(frame)
    if ref is None:
        assert ours is None, frame
        return None
    assert ours is not None, frame
    assert list(ours.items()) == list(ref.items()), frame
    assert [type(v) for v in ours.values()] == [type(v) for v in ref.values()], frame
    return ours


@st.composite
def bsd_frames(draw: st.DrawFn) -> bytes:
    line = draw(st.one_of(bsd_lines(), mutated(), st.sampled_from(EMITTED["syslog3164"])))
    data = line.encode("utf-8", "surrogatepass")
    tail = draw(st.sampled_from([b"", b"\n", b"\r\n", b"\xff", b"\xc3", b"\xed\xa0\x80"]))
    return data + tail


@examples(400)
@given(frame=st.one_of(bsd_frames(), st.binary(max_size=40)))
def test_received_3164_messages_are_read_as_the_format_reads_them(frame: bytes) -> None:
    same_3164(frame)


@pytest.mark.parametrize("line", [line for line, _ in TAKEN_BSD])
def test_received_3164_lines_taken_in_c(line: str) -> None:
    rec = same_3164(line.encode() + b"\n")
    assert rec is not None and rec["ts"] == line[line.index(">") + 1 :][:15]


@pytest.mark.parametrize(
    "frame",
    [
        *(line.encode() for line in LEFT_BSD[:-1]),  # not the 30 February: read, time and all
        b"<38>Mar  2 04:05:06 h CEF:0|a|b|c|d|e|f|",
        b"<38>Mar  2 04:05:06 h CEF:x",
        b"<38>Mar  2 04:05:06 h t: \xff",
        b"<38>1 2024-03-12T14:05:09Z h a p m - x",
    ],
)
def test_received_messages_left_to_python(frame: bytes) -> None:
    assert same_3164(frame) is None


@examples(200)
@given(st.lists(st.one_of(bsd_frames(), st.sampled_from(ALL_EMITTED).map(str.encode)), max_size=20))
def test_the_listener_stores_3164_lines_as_without_the_c_path(frames: list[bytes]) -> None:
    assert_listener_same(frames)
