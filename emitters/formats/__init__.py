"""Log formats, each written once with its renderer and its parser, looked up by name."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from emitters.formats.apache import ApacheCombinedFormat, ApacheCommonFormat, ApacheErrorFormat
from emitters.formats.base import FormatError, LogFormat, value_text
from emitters.formats.cef import CefFormat
from emitters.formats.csvline import CsvFormat, parse_csv_document
from emitters.formats.jsonline import JsonFormat
from emitters.formats.logfmt import LogfmtFormat
from emitters.formats.minimal import MinimalFormat
from emitters.formats.nginx import NginxAccessFormat, NginxErrorFormat
from emitters.formats.noise import NoiseFormat
from emitters.formats.syslog3164 import Syslog3164Format
from emitters.formats.syslog5424 import Syslog5424Format
from emitters.formats.syslog_like import SyslogFormat
from emitters.formats.winevent import WinEventJsonFormat, WinEventXmlFormat

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
    {
        f.name: f
        for f in (
            *(JsonFormat(), CsvFormat(), MinimalFormat(), NoiseFormat(), SyslogFormat()),
            *(Syslog3164Format(), Syslog5424Format(), ApacheCommonFormat()),
            *(ApacheCombinedFormat(), ApacheErrorFormat(), NginxAccessFormat()),
            *(NginxErrorFormat(), LogfmtFormat(), WinEventXmlFormat(), WinEventJsonFormat()),
            CefFormat(),
        )
    }
)
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)

# Most specific first. An event XML root, an RFC 5424 header ("<PRI>1 "), a CEF header
# (alone or after a BSD syslog header, so before syslog3164) and an RFC 3164 header are
# unmistakable; a Winlogbeat document is a JSON object, so it goes before json. Access and
# error logs have fixed layouts; Nginx's access log is Apache's combined layout, so its
# lines are read as apache_combined (the same fields) unless only Nginx writes them (an
# empty body as 0). The seed's CSV row (a timestamp, then a one-word level) goes before
# the seed's lenient syslog shape, which takes any "TS word word: text"; logfmt (almost
# any text with an early "=") comes last. ``minimal`` (a JSON object) and ``noise``
# (chaos on purpose) are only ever named, never guessed.
_DETECT_ORDER: tuple[LogFormat, ...] = tuple(
    FORMATS[name]
    for name in (
        *("winevent_xml", "syslog5424", "cef", "syslog3164", "winevent_json", "json"),
        *("apache_error", "nginx_error", "apache_combined", "apache_common", "nginx_access"),
        *("csv", "syslog", "logfmt"),
    )
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
