"""Log formats, each written once with its renderer and its parser, looked up by name."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from emitters.formats.base import FormatError, LogFormat, value_text
from emitters.formats.csvline import CsvFormat, parse_csv_document
from emitters.formats.jsonline import JsonFormat
from emitters.formats.logfmt import LogfmtFormat
from emitters.formats.syslog_like import SyslogFormat

__all__ = [
    "FORMATS",
    "FORMAT_NAMES",
    "FormatError",
    "LogFormat",
    "detect_format",
    "get_format",
    "parse_csv_document",
    "value_text",
]

# Formats are stateless, so one instance each serves every caller.
FORMATS: Mapping[str, LogFormat] = MappingProxyType(
    {f.name: f for f in (JsonFormat(), CsvFormat(), SyslogFormat(), LogfmtFormat())}
)
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)

# Most specific first: a JSON object or a syslog header is unmistakable, while almost
# any text with an early "=" passes for logfmt and a comma-separated line for CSV.
_DETECT_ORDER: tuple[LogFormat, ...] = tuple(
    FORMATS[name] for name in ("json", "syslog", "logfmt", "csv")
)


def get_format(name: str) -> LogFormat:
    """The format called ``name``; ``KeyError`` when there is none."""
    return FORMATS[name]


def detect_format(line: str) -> str | None:
    """Guess the format of one line, or ``None`` when no format fits."""
    for fmt in _DETECT_ORDER:
        if fmt.looks_like(line):
            return fmt.name
    return None
