"""The syslog listener's records and hand-off: what the core stores is what it would have
stored for the same lines pushed raw, and the hand-off bounds what is held."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.config import PiiConfig
from services.common.model import Batch, Record
from services.ingest.native import make_normaliser
from services.ingest.syslog.handoff import Handoff
from services.ingest.syslog.records import RecordBuilder

PEER = "192.0.2.7"
LINES = [
    "<34>Mar  2 04:05:06 web01 sshd[4412]: Failed password for root from 192.0.2.44 port 51122",
    "<13>Mar  2 04:05:06 cron: no host, no pid",
    "<11>Dec 31 23:59:59 db01 postgres[7]: ERROR deadlock detected",
    "2024-03-12T14:05:09.482Z web01 checkout[4412]: ERROR payment declined",
    "<38>2026-12-01T20:43:43 localhost prg00000[1234]: seq: 0000000000, thread: 0000",
    "<165>1 2024-03-12T14:05:09.482113Z app7.example.net billing 8812 PAY01 - charge captured",
    '<14>1 2024-03-12T14:05:09+02:00 - app - - [logops@32473 run_id="r1" seq="5"] hi',
    '{"ts": "2024-03-12T14:05:09Z", "level": "warn", "msg": "json over syslog"}',
    "<134>Mar 12 14:05:09 fw01 CEF:0|LogOps|emitter|1.0|auth-fail|Failed login|7|src=192.0.2.44",
    "not syslog at all, just text",
    "<999>Mar  2 04:05:06 web app: PRI out of range",
]


def stored(records: list[Record | None], native: bool, now_ms: int) -> list[bytes]:
    normaliser = make_normaliser(PiiConfig(), 256 * 1024, native=native)
    batch = Batch(records=records, batch_id="b1", emitter="syslog")
    return normaliser.normalise_batch(batch, now_ms).data.splitlines()


def both_ways(lines: list[str]) -> tuple[list[bytes], list[bytes]]:
    """Stored lines for ``lines`` through the listener's records, and pushed raw."""
    frames = [line.encode() for line in lines]
    built = RecordBuilder().records([(PEER, "tcp", frames)])
    raw: list[Record | None] = [{"raw": line, "host": PEER} for line in lines]
    now_ms = int(time.time() * 1000)
    return stored(built, native=True, now_ms=now_ms), stored(raw, native=False, now_ms=now_ms)


@pytest.mark.parametrize("line", LINES)
def test_a_line_is_stored_as_the_core_would_store_it_raw(line: str) -> None:
    ours, raw = both_ways([line])
    assert ours == raw


def test_a_batch_of_mixed_lines_is_stored_as_the_core_would_store_them_raw() -> None:
    ours, raw = both_ways(LINES)
    assert ours == raw
    assert len(ours) == len(LINES)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=80).filter(str.strip), min_size=1, max_size=5))
def test_any_text_is_stored_as_the_core_would_store_it_raw(lines: list[str]) -> None:
    ours, raw = both_ways(lines)
    assert ours == raw


syslogish = st.builds(
    "{}{}{}{}{}".format,
    st.sampled_from(["", "<13>", "<165>1 ", "<0>", "<191>", "<192>", "<13>1 "]),
    st.sampled_from(
        [
            "Mar  2 04:05:06 ",
            "Dec 31 23:59:59.123 ",
            "2024-03-12T14:05:09.482113Z ",
            "2024-03-12T14:05:09+02:00 ",
            "2024-02-30T14:05:09Z ",
            "- ",
            "",
        ]
    ),
    st.sampled_from(["web01 ", "- ", "", "[::1] "]),
    st.sampled_from(["app: ", "app[12]: ", "app 12 - - ", 'app - ID [x@1 a="b"] ', ""]),
    st.text(max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(syslogish, min_size=1, max_size=6))
def test_syslog_like_text_is_stored_as_the_core_would_store_it_raw(lines: list[str]) -> None:
    ours, raw = both_ways(lines)
    assert ours == raw


def test_the_peer_is_the_host_only_of_lines_without_one() -> None:
    frames = [LINES[0].encode(), LINES[1].encode()]
    built = RecordBuilder().records([(PEER, "tcp", frames)])
    assert [r and r["host"] for r in built] == ["web01", PEER]


def test_syslog_lines_are_read_by_their_rfc_with_loss_accounting() -> None:
    lines = [LINES[0], LINES[5], LINES[6], LINES[1]]
    built = RecordBuilder().records([(PEER, "tcp", [line.encode() for line in lines])])
    assert [r and r["format"] for r in built] == [
        "syslog3164",
        "syslog5424",
        "syslog5424",
        "syslog",
    ]
    rec = built[2]
    assert rec is not None
    assert (rec["run_id"], rec["seq"], rec["host"], rec["msg"]) == ("r1", 5, PEER, "hi")
    assert rec["ts"] == "2024-03-12T12:05:09.000Z" and rec["level"] == "INFO"


def test_bytes_that_are_not_utf8_are_kept_replaced() -> None:
    (rec,) = RecordBuilder().records([(PEER, "udp", [b"<13>Mar  2 04:05:06 web app: \xff"])])
    assert rec is not None and rec["msg"] == "\ufffd"


def test_take_waits_for_a_batch_or_the_delay_and_splits_reads() -> None:
    handoff = Handoff(capacity=10)
    handoff.put("a", "tcp", [b"1", b"2", b"3"])
    handoff.put("b", "udp", [b"4", b"5"])
    assert handoff.take(size=4, delay=0.01) == [
        ("a", "tcp", [b"1", b"2", b"3"]),
        ("b", "udp", [b"4"]),
    ]
    assert handoff.pending == 1
    assert handoff.take(size=4, delay=0.01) == [("b", "udp", [b"5"])]
    assert handoff.take(size=4, delay=0.01, poll=0.01) == []


def test_take_gets_everything_waiting_up_to_most() -> None:
    handoff = Handoff(capacity=100)
    for n in range(10):
        handoff.put("a", "tcp", [b"%d" % n] * 10)
    taken = handoff.take(size=5, delay=0.01, most=35)
    assert sum(len(frames) for _, _, frames in taken) == 35
    assert handoff.pending == 65


def test_room_is_made_by_taking_and_close_wakes_everyone() -> None:
    handoff = Handoff(capacity=3)
    handoff.put("a", "tcp", [b"1", b"2", b"3", b"4"])  # one read may go past the capacity
    assert not handoff.has_room()
    assert not handoff.wait_room(0.01)
    handoff.take(size=2, delay=0)
    assert handoff.has_room() and handoff.wait_room(0)
    waiter = threading.Thread(target=handoff.take, args=(10, 60.0))
    waiter.start()
    handoff.close()
    waiter.join(timeout=5)
    assert not waiter.is_alive()
    assert handoff.take(size=10, delay=60.0) == []
