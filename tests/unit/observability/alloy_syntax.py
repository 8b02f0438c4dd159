"""A reader for the part of Alloy's configuration syntax that observability/alloy uses.

Blocks (``name.parts "label" { ... }``), attributes (``key = expr``), and expressions made
of strings, numbers, booleans, null, lists, objects, references (``a.b.c``), function
calls and ``+``. Anything else is refused with its line number, so a config that grows
past this reader fails its test instead of being half read. Comments: ``//`` and ``/* */``.

No Alloy binary runs here; this is what lets tests check the config's structure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Add", "AlloySyntaxError", "Block", "Call", "Ref", "evaluate", "parse"]


class AlloySyntaxError(ValueError):
    """The text is not in the subset this reader understands."""


@dataclass(frozen=True)
class Ref:
    """A reference to another component's export, e.g. ``loki.write.loki.receiver``."""

    name: str


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Add:
    left: Any
    right: Any


@dataclass
class Block:
    name: str
    label: str | None
    attrs: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)
    line: int = 0

    def children(self, name: str) -> list[Block]:
        return [b for b in self.blocks if b.name == name]


_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r]+)
  | (?P<newline>\n)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}\[\]().,=+])
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    line: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise AlloySyntaxError(f"line {line}: unexpected {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind not in ("space", "newline", "comment"):
            out.append(_Tok(kind, m.group(), line))
        line += m.group().count("\n")
        pos = m.end()
    out.append(_Tok("end", "", line))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self, kind: str, text: str | None = None) -> _Tok:
        tok = self.peek()
        if tok.kind != kind or (text is not None and tok.text != text):
            want = text or kind
            raise AlloySyntaxError(f"line {tok.line}: expected {want!r}, found {tok.text!r}")
        self.i += 1
        return tok

    def at(self, kind: str, text: str | None = None) -> bool:
        tok = self.peek()
        return tok.kind == kind and (text is None or tok.text == text)

    def body(self, closing: bool) -> tuple[dict[str, Any], list[Block]]:
        attrs: dict[str, Any] = {}
        blocks: list[Block] = []
        while not (self.at("punct", "}") if closing else self.at("end")):
            line = self.peek().line
            name = self.dotted()
            if self.at("punct", "="):
                if "." in name or name in attrs:
                    raise AlloySyntaxError(f"line {line}: bad or repeated attribute {name!r}")
                self.take("punct", "=")
                attrs[name] = self.expr()
                continue
            label = _string(self.take("string")) if self.at("string") else None
            self.take("punct", "{")
            inner_attrs, inner_blocks = self.body(closing=True)
            self.take("punct", "}")
            blocks.append(Block(name, label, inner_attrs, inner_blocks, line))
        return attrs, blocks

    def dotted(self) -> str:
        parts = [self.take("ident").text]
        while self.at("punct", "."):
            self.take("punct", ".")
            parts.append(self.take("ident").text)
        return ".".join(parts)

    def expr(self) -> Any:
        value = self.term()
        while self.at("punct", "+"):
            self.take("punct", "+")
            value = Add(value, self.term())
        return value

    def term(self) -> Any:
        tok = self.peek()
        if tok.kind in ("string", "raw"):
            self.i += 1
            return _string(tok)
        if tok.kind == "number":
            self.i += 1
            return float(tok.text) if "." in tok.text else int(tok.text)
        if self.at("punct", "["):
            return self.sequence("[", "]", self.expr)
        if self.at("punct", "{"):
            return dict(self.sequence("{", "}", self.field))
        if tok.kind == "ident":
            constants = {"true": True, "false": False, "null": None}
            if tok.text in constants:
                self.i += 1
                return constants[tok.text]
            name = self.dotted()
            if self.at("punct", "("):
                return Call(name, tuple(self.sequence("(", ")", self.expr)))
            return Ref(name)
        raise AlloySyntaxError(f"line {tok.line}: unexpected {tok.text!r} in an expression")

    def field(self) -> tuple[str, Any]:
        key = _string(self.take("string")) if self.at("string") else self.take("ident").text
        self.take("punct", "=")
        return key, self.expr()

    def sequence(self, open_: str, close: str, item: Callable[[], Any]) -> list[Any]:
        self.take("punct", open_)
        items: list[Any] = []
        while not self.at("punct", close):
            items.append(item())
            if not self.at("punct", close):
                self.take("punct", ",")
        self.take("punct", close)
        return items


def _string(tok: _Tok) -> str:
    if tok.kind == "raw":
        return tok.text[1:-1]
    value: str = json.loads(tok.text)
    return value


def parse(text: str) -> list[Block]:
    """The top-level blocks of an Alloy configuration."""
    parser = _Parser(text)
    attrs, blocks = parser.body(closing=False)
    if attrs:
        raise AlloySyntaxError(f"top-level attributes are not allowed: {sorted(attrs)}")
    return blocks


def evaluate(expr: Any, env: Mapping[str, str]) -> Any:
    """The value of ``expr`` where ``sys.env`` reads ``env``; references stay references."""
    if isinstance(expr, Add):
        left, right = evaluate(expr.left, env), evaluate(expr.right, env)
        if not (isinstance(left, str) and isinstance(right, str)):
            raise AlloySyntaxError(f"+ of {left!r} and {right!r}")
        return left + right
    if isinstance(expr, Call):
        args = [evaluate(a, env) for a in expr.args]
        if expr.name == "sys.env" and len(args) == 1:
            return env.get(args[0], "")
        if expr.name == "coalesce" and args:
            return next((a for a in args if a not in ("", None, [], {})), args[-1])
        raise AlloySyntaxError(f"function {expr.name} is not known here")
    if isinstance(expr, list):
        return [evaluate(a, env) for a in expr]
    if isinstance(expr, dict):
        return {k: evaluate(v, env) for k, v in expr.items()}
    return expr
