r"""How Apache and nginx keep a logged value on one line, and one decoder for both.

- Apache access log (``ap_escape_logitem``, applied to ``%r %i %u %h %l`` since 2.0.46):
  ``"`` and ``\`` get a backslash; backspace, newline, carriage return, tab and vertical
  tab become ``\b \n \r \t \v``; every other byte outside 32-126 becomes ``\xhh``
  (lower-case hex).
- Apache error log (``ap_escape_errorlog_item``): the same, except that ``"`` stays as it is.
- nginx (``escape=default``): ``"``, ``\`` and every byte outside 32-126 become ``\xHH``
  (upper-case hex).

Text is escaped byte by byte of its UTF-8 form, as the servers escape the bytes they
received, so ``é`` becomes ``\xc3\xa9``. :func:`decode` reverses all three (either hex
case); a backslash before anything else is kept as it is. Bytes that are not UTF-8 after
decoding (a client sending Latin-1) come back as ``\xhh`` text rather than failing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Escaper = Callable[[str], str]

_C_ESCAPES = {8: "\\b", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}
_DECODE = re.compile(r'\\(?:x([0-9A-Fa-f]{2})|([\\"bnrtv]))')
_SIMPLE = {"\\": 0x5C, '"': 0x22, "b": 8, "n": 10, "r": 13, "t": 9, "v": 11}


def _apache_table(quote: bool) -> tuple[str, ...]:
    table = []
    for byte in range(256):
        if byte == 0x5C or (quote and byte == 0x22):
            table.append("\\" + chr(byte))
        elif 32 <= byte < 127:
            table.append(chr(byte))
        else:
            table.append(_C_ESCAPES.get(byte, f"\\x{byte:02x}"))
    return tuple(table)


_APACHE = _apache_table(quote=True)
_APACHE_ERROR = _apache_table(quote=False)
_NGINX = tuple(
    chr(b) if 32 <= b < 127 and b not in (0x22, 0x5C) else f"\\x{b:02X}" for b in range(256)
)


def apache(text: str) -> str:
    """``text`` as Apache writes it inside its access log (``%r``, ``%{...}i``, ``%u``)."""
    if '"' not in text and "\\" not in text and text.isascii() and text.isprintable():
        return text
    return "".join([_APACHE[b] for b in text.encode("utf-8", "surrogatepass")])


def apache_error(text: str) -> str:
    """``text`` as Apache writes it in its error log (``"`` unescaped)."""
    if "\\" not in text and text.isascii() and text.isprintable():
        return text
    return "".join([_APACHE_ERROR[b] for b in text.encode("utf-8", "surrogatepass")])


def nginx(text: str) -> str:
    """``text`` as nginx writes a variable with ``escape=default``."""
    if '"' not in text and "\\" not in text and text.isascii() and text.isprintable():
        return text
    return "".join([_NGINX[b] for b in text.encode("utf-8", "surrogatepass")])


def hex_escape(char: str, upper: bool = False) -> str:
    """One ASCII character as ``\\xhh`` (a form every decoder here reads back)."""
    return f"\\x{ord(char):02X}" if upper else f"\\x{ord(char):02x}"


def decode(text: str) -> str:
    """The value an escaped log field stands for."""
    if "\\" not in text:
        return text
    raw = bytearray()
    pos = 0
    for match in _DECODE.finditer(text):
        raw += text[pos : match.start()].encode("utf-8", "surrogatepass")
        pair, simple = match.groups()
        raw.append(int(pair, 16) if pair else _SIMPLE[simple])
        pos = match.end()
    raw += text[pos:].encode("utf-8", "surrogatepass")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")
