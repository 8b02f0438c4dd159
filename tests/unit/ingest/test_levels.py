"""Levels as senders write them map onto TRACE DEBUG INFO WARN ERROR FATAL."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.levels import LEVELS, canonical_level, syslog_level

ALIASES = {
    "TRACE": ["trace", "trc", "finest", "finer", "trace1", "trace8"],
    "DEBUG": ["debug", "dbg", "fine", "verbose", "vrb", "d"],
    "INFO": ["info", "inf", "information", "informational", "notice", "i"],
    "WARN": ["warn", "warning", "wrn", "w"],
    "ERROR": ["err", "error", "eror", "severe", "e"],
    "FATAL": ["fatal", "ftl", "crit", "critical", "alert", "emerg", "emergency", "panic"],
}


@pytest.mark.parametrize(
    ("word", "expected"),
    [(word, level) for level, words in ALIASES.items() for word in words],
)
def test_aliases_in_any_case(word: str, expected: str) -> None:
    for spelling in (word, word.upper(), word.capitalize(), f"  {word} ", word.swapcase()):
        assert canonical_level(spelling) == expected, spelling


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Windows event levels.
        (0, "INFO"),
        (1, "FATAL"),
        (2, "ERROR"),
        (3, "WARN"),
        (4, "INFO"),
        (5, "DEBUG"),
        ("4", "INFO"),
        # pino / bunyan levels, by tens.
        (10, "TRACE"),
        (20, "DEBUG"),
        (30, "INFO"),
        (35, "INFO"),
        (40, "WARN"),
        (50, "ERROR"),
        (60, "FATAL"),
        (69, "FATAL"),
        ("30", "INFO"),
        (30.0, "INFO"),
        # Neither scale.
        (6, None),
        (9, None),
        (70, None),
        (100, None),
        (-1, None),
        (30.5, None),
        ("999999999999", None),
        # Zero-padded digit text is the same number.
        ("000040", "WARN"),
    ],
)
def test_numbers(value: object, expected: str | None) -> None:
    assert canonical_level(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<0>", "FATAL"),
        ("<2>", "FATAL"),
        ("<3>", "ERROR"),
        ("<4>", "WARN"),
        ("<5>", "INFO"),
        ("<6>", "INFO"),
        ("<7>", "DEBUG"),
        ("<34>", "FATAL"),  # auth.crit
        ("<165>", "INFO"),  # local4.notice
        ("<191>", "DEBUG"),
        ("<192>", None),
        ("<>", None),
        ("<x>", None),
        # A PRI has one to three digits (RFC 5424), so a four-digit one is not a header.
        ("<0034>", None),
        ("<0191>", None),
    ],
)
def test_syslog_pri_text(text: str, expected: str | None) -> None:
    assert canonical_level(text) == expected


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        *((0, "FATAL"), (1, "FATAL"), (2, "FATAL"), (3, "ERROR"), (4, "WARN"), (5, "INFO")),
        *((6, "INFO"), (7, "DEBUG"), ("3", "ERROR"), (8, None), (-1, None), (True, None)),
        *(("x", None), (None, None)),
    ],
)
def test_syslog_severity(severity: object, expected: str | None) -> None:
    assert syslog_level(severity) == expected


@pytest.mark.parametrize("value", ["loud", "", "inform", "warn!", None, True, [1], {"a": 1}, 1.5])
def test_unknown(value: object) -> None:
    assert canonical_level(value) is None


@pytest.mark.parametrize("word", ["\u0131", "\u0131nfo", "\ufb01ne", "\ufb01NE"])
def test_only_the_ascii_names_match_not_letters_that_case_mapping_turns_into_them(
    word: str,
) -> None:
    # Dotless i upper-cases to "I" and the "fi" ligature to "FI"; neither is the word sent.
    assert canonical_level(word) is None


@given(st.one_of(st.text(max_size=20), st.integers(), st.floats(), st.none(), st.booleans()))
def test_never_raises(value: object) -> None:
    assert canonical_level(value) in (*LEVELS, None)
