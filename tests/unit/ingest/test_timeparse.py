"""Timestamps as senders write them come out as one canonical UTC form."""

from __future__ import annotations

import math
import time
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ingest import timeparse
from services.ingest.timeparse import MAX_MS, format_ts, normalise_ts, parse_ts

NOW = parse_ts("2024-03-12T14:05:09.482Z")
assert NOW is not None


def canonical(value: object, now_ms: int | None = NOW) -> str | None:
    ms = parse_ts(value, now_ms)
    return None if ms is None else format_ts(ms)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-12T14:05:09.482Z", "2024-03-12T14:05:09.482Z"),
        ("2024-03-12T14:05:09Z", "2024-03-12T14:05:09.000Z"),
        ("2024-03-12T16:05:09.482+02:00", "2024-03-12T14:05:09.482Z"),
        ("2024-03-12T16:05:09.482+0200", "2024-03-12T14:05:09.482Z"),
        ("2024-03-12T16:05:09.482+02", "2024-03-12T14:05:09.482Z"),
        ("2024-03-12T08:35:09-05:30", "2024-03-12T14:05:09.000Z"),
        ("2024-03-13T00:05:09+10:00", "2024-03-12T14:05:09.000Z"),
        ("2024-03-11T23:05:09-15:00", "2024-03-12T14:05:09.000Z"),
        ("2024-03-12 14:05:09", "2024-03-12T14:05:09.000Z"),
        ("2024-03-12 14:05:09.5", "2024-03-12T14:05:09.500Z"),
        ("2024-03-12T14:05:09.4", "2024-03-12T14:05:09.400Z"),
        ("2024-03-12T14:05:09.482113Z", "2024-03-12T14:05:09.482Z"),
        ("2024-03-12T14:05:09.4821139Z", "2024-03-12T14:05:09.482Z"),
        ("2024-03-12T14:05:09.999999999Z", "2024-03-12T14:05:09.999Z"),
        ("2024-03-12t14:05:09.482z", "2024-03-12T14:05:09.482Z"),
        ("2024-03-12 16:05:09 +02:00", "2024-03-12T14:05:09.000Z"),
        ("2024-03-12T14:05:09.482 UTC", "2024-03-12T14:05:09.482Z"),
        ("  2024-03-12T14:05:09Z  ", "2024-03-12T14:05:09.000Z"),
        ("12/Mar/2024:16:05:09 +0200", "2024-03-12T14:05:09.000Z"),
        ("[12/Mar/2024:14:05:09 +0000]", "2024-03-12T14:05:09.000Z"),
        ("02/Jan/2024:00:00:00 -0130", "2024-01-02T01:30:00.000Z"),
        ("Tue Mar 12 14:05:09.482113 2024", "2024-03-12T14:05:09.482Z"),
        ("[Tue Mar 12 14:05:09 2024]", "2024-03-12T14:05:09.000Z"),
        ("2024/03/12 14:05:09", "2024-03-12T14:05:09.000Z"),
        ("Tue, 12 Mar 2024 14:05:09 +0000", "2024-03-12T14:05:09.000Z"),
        ("Mar 12 2024 14:05:09", "2024-03-12T14:05:09.000Z"),
        ("Mar 12 14:05:09", "2024-03-12T14:05:09.000Z"),
        ("Mar  2 04:05:06", "2024-03-02T04:05:06.000Z"),
        ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000Z"),
        ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
        ("2024-03-12T14:05:09.48Z", "2024-03-12T14:05:09.480Z"),
        # A decimal comma (ISO 8601; Python logging's asctime writes one).
        ("2024-03-12T14:05:09,482Z", "2024-03-12T14:05:09.482Z"),
        ("2024-03-12 14:05:09,482", "2024-03-12T14:05:09.482Z"),
        # Any number of fractional digits, up to the 64 characters a timestamp may have.
        ("2024-03-12T14:05:09." + "1" * 43 + "Z", "2024-03-12T14:05:09.111Z"),
        # An offset reads the same in every form, up to 23:59 as in ISO 8601.
        ("12/Mar/2024:16:05:09 +02:00", "2024-03-12T14:05:09.000Z"),
        ("2024/03/12 16:05:09 +02", "2024-03-12T14:05:09.000Z"),
        ("Mar 12 16:05:09 +02:00", "2024-03-12T14:05:09.000Z"),
        ("2024-03-12T14:05:09+23:59", "2024-03-11T14:06:09.000Z"),
        ("12/Mar/2024:14:05:09 +2359", "2024-03-11T14:06:09.000Z"),
        # Seconds may be left out; the year may follow the time (Apache's error log).
        ("12/Mar/2024:14:05 +0000", "2024-03-12T14:05:00.000Z"),
        ("Mar 12 14:05", "2024-03-12T14:05:00.000Z"),
        ("Tue Mar 12 14:05:09 2019", "2019-03-12T14:05:09.000Z"),
    ],
)
def test_text_forms(text: str, expected: str) -> None:
    assert canonical(text) == expected
    assert normalise_ts(text, NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1710252309, "2024-03-12T14:05:09.000Z"),
        (1710252309482, "2024-03-12T14:05:09.482Z"),
        (1710252309482113, "2024-03-12T14:05:09.482Z"),
        (1710252309482113999, "2024-03-12T14:05:09.482Z"),
        (1710252309.482, "2024-03-12T14:05:09.482Z"),
        (1710252309482.9, "2024-03-12T14:05:09.482Z"),
        ("1710252309", "2024-03-12T14:05:09.000Z"),
        ("1710252309.482", "2024-03-12T14:05:09.482Z"),
        ("1710252309482", "2024-03-12T14:05:09.482Z"),
        ("1710252309482113999", "2024-03-12T14:05:09.482Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        # The unit follows the magnitude: below 1e11 is seconds, even for a small number.
        (99_999_999_999, "5138-11-16T09:46:39.000Z"),
        (100_000_000_000, "1973-03-03T09:46:40.000Z"),
        (100_000_000_000.0, "1973-03-03T09:46:40.000Z"),
        ("100000000000", "1973-03-03T09:46:40.000Z"),
        # Each bound is the first number of the next unit.
        (10**14, "1973-03-03T09:46:40.000Z"),
        (10**17, "1973-03-03T09:46:40.000Z"),
        (253_402_300_799_999_000_000, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_epoch_numbers(value: object, expected: str) -> None:
    assert canonical(value) == expected


@pytest.mark.parametrize(
    ("text", "now", "expected"),
    [
        # The year is the one that puts the instant nearest to now.
        ("Dec 31 23:59:59", "2024-01-02T00:00:00Z", "2023-12-31T23:59:59.000Z"),
        ("Jan  1 00:00:01", "2024-12-31T23:00:00Z", "2025-01-01T00:00:01.000Z"),
        ("Jul 10 12:00:00", "2024-01-02T00:00:00Z", "2023-07-10T12:00:00.000Z"),
        ("Jun 15 12:00:00", "2024-01-02T00:00:00Z", "2024-06-15T12:00:00.000Z"),
        ("Feb 29 10:00:00", "2024-03-01T00:00:00Z", "2024-02-29T10:00:00.000Z"),
        ("Feb 29 10:00:00", "2026-06-01T00:00:00Z", None),
        # Half a year either way: the past wins, as logs are read after they are written.
        ("Jan  1 00:00:00", "2024-07-02T00:00:00Z", "2024-01-01T00:00:00.000Z"),
        # Nearest as an instant, offset included, not as a local time.
        ("Jan  1 00:00:00 +12:00", "2024-07-01T18:00:00Z", "2024-12-31T12:00:00.000Z"),
    ],
)
def test_rfc3164_year(text: str, now: str, expected: str | None) -> None:
    assert canonical(text, parse_ts(now)) == expected


@pytest.mark.parametrize(
    "value",
    [
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2023-02-29 00:00:00",
        "2024-03-12T24:00:00Z",
        "2024-03-12T14:61:00Z",
        "1969-12-31T23:59:59Z",
        "10000-01-01T00:00:00Z",
        "9999-12-31T23:59:59-01:00",
        "2024-03-12T14:05:09+2400",
        "2024-03-12T14:05:09.482Zjunk",
        # Nearly canonical is not canonical: a stray quote, a doubled dot, half a bracket.
        '2024-03-12T14:05:09.482"',
        '2024-03-12T14:05:09"',
        "2024-03-12T14:05:09..482Z",
        "2024-03-12T14:05:09..5Z",
        "[2024-03-12T14:05:09Z",
        "2024-03-12T14:05:09." + "1" * 44 + "Z",
        # 10000-01-01T00:00:00Z, however it is written.
        "9999-12-31T23:00:00-01:00",
        253_402_300_800_000_000_000,
        "12/Mar/2024:14:05:09 +0060",
        "32/Mar/2024:14:05:09 +0000",
        "12/Foo/2024:14:05:09 +0000",
        "Foo 12 14:05:09",
        "yesterday",
        "",
        "   ",
        "-5",
        "1" * 200,
        -1,
        -0.5,
        10**40,
        float("nan"),
        float("inf"),
        True,
        None,
        [1710252309],
        {"ts": 1},
    ],
)
def test_not_timestamps(value: object) -> None:
    assert parse_ts(value, NOW) is None
    assert normalise_ts(value, NOW) is None


def test_format_ts() -> None:
    assert format_ts(0) == "1970-01-01T00:00:00.000Z"
    assert format_ts(1_710_252_309_482) == "2024-03-12T14:05:09.482Z"
    assert format_ts(1_710_252_309_007) == "2024-03-12T14:05:09.007Z"
    assert format_ts(MAX_MS - 1) == "9999-12-31T23:59:59.999Z"


def test_rfc3164_without_now_reads_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # Mid-year, so that a clock read a few days off would pick the other year.
    clock = parse_ts("2024-07-01T00:00:00Z")
    assert clock is not None
    fake = SimpleNamespace(time=lambda: clock / 1000, gmtime=time.gmtime, strftime=time.strftime)
    monkeypatch.setattr(timeparse, "time", fake)
    assert canonical("Jan 10 00:00:00", None) == "2024-01-10T00:00:00.000Z"
    assert normalise_ts("Jan 10 00:00:00") == "2024-01-10T00:00:00.000Z"


def test_near_canonical_text_reads_as_the_parser_reads_it() -> None:
    # normalise_ts takes a shortcut for text close to canonical; it must not change the answer.
    for text in ("2024-03-12T14:05:09.Z", "2024-03-12T14:05:09z", "2024-03-12T14:05:09.4821z"):
        assert normalise_ts(text, NOW) == canonical(text)


def test_rfc3164_uses_the_clock_by_default() -> None:
    ms = parse_ts("Jan  1 00:00:00")
    assert ms is not None
    assert format_ts(ms).endswith("-01-01T00:00:00.000Z")


@given(st.integers(min_value=0, max_value=MAX_MS - 1))
def test_canonical_text_round_trips(ms: int) -> None:
    text = format_ts(ms)
    assert parse_ts(text) == ms
    assert normalise_ts(text) == text


@given(
    st.one_of(
        st.text(max_size=80),
        st.from_regex(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,12})?(Z|[+-]\d\d:?\d\d)?"),
        st.from_regex(r"[A-Za-z]{3} [ \d]\d \d\d:\d\d:\d\d"),
        st.integers(),
        st.floats(),
        st.none(),
        st.booleans(),
    )
)
def test_never_raises(value: object) -> None:
    ms = parse_ts(value, NOW)
    assert ms is None or 0 <= ms < MAX_MS
    text = normalise_ts(value, NOW)
    assert text == (None if ms is None else format_ts(ms))


@given(st.floats(min_value=0, max_value=9.9e10, allow_nan=False))
def test_float_seconds_keep_milliseconds(seconds: float) -> None:
    ms = parse_ts(seconds)
    assert ms is not None
    assert math.isclose(ms / 1000, seconds, abs_tol=0.0011)
