"""Timestamps as senders write them come out as one canonical UTC form."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
