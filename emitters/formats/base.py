"""The contract every log format meets: one renderer (emitters) and one parser (Ingest)."""

from __future__ import annotations

import random
from typing import Any, Protocol

import orjson

from emitters.content import ContentOptions, app_record


class FormatError(ValueError):
    """A line does not follow its format; the message says how, briefly, without the line."""


class LogFormat(Protocol):
    """One log format, written once and used on both sides of the pipe.

    ``render`` turns a record dict (the keys of ``LogRecord`` plus structured fields)
    into one line without a trailing newline. ``parse`` does the reverse and returns
    ``ts`` and ``level`` exactly as the line wrote them; keys the line lacks are left
    out. ``looks_like`` is a cheap test used to guess the format of unnamed lines.
    ``sample`` draws one realistic record for ``render`` from a seeded generator, with
    ``now`` (Unix seconds) as its time; the same generator state gives the same record.
    """

    @property
    def name(self) -> str: ...

    def render(self, rec: dict[str, Any]) -> str: ...

    def parse(self, line: str) -> dict[str, Any]: ...

    def looks_like(self, line: str) -> bool: ...

    def sample(self, rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]: ...


class AppEvents:
    """For formats that carry the generic application event (``ts level msg`` and a few
    fields): their ``sample`` is :func:`emitters.content.app_record`."""

    def sample(self, rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
        return app_record(rng, opts, now)


def value_text(value: Any) -> str:
    """Text for a field value in a text format: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value, default=str).decode()
