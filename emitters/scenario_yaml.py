"""YAML read with positions: plain values plus the line and column of every key and value.

PyYAML's composer keeps a start mark on every node; constructing the values ourselves from
that node tree (instead of ``safe_load``) keeps those marks beside them, so a validator can
point at ``scenarios/x.yaml:12:7`` for any value it refuses, and at the key for one that is
missing or unknown. Duplicate keys, which ``safe_load`` silently lets the last one win, are
reported as problems here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# A path into the document: keys and list indexes from the root.
Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Mark:
    """1-based line and column."""

    line: int
    column: int


@dataclass(slots=True)
class Located:
    """A document's plain value and where each part of it sits: ``values[path]`` is the
    mark of the value at ``path``, ``keys[path]`` the mark of the key that names it."""

    value: Any
    values: dict[Path, Mark] = field(default_factory=dict)
    keys: dict[Path, Mark] = field(default_factory=dict)
    problems: list[tuple[Mark, str]] = field(default_factory=list)

    def at(self, path: Path) -> Mark:
        """Where ``path`` is, or the nearest enclosing part that exists."""
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), Mark(1, 1))

    def key_at(self, path: Path) -> Mark:
        return self.keys.get(path) or self.at(path)


class YamlSyntaxError(ValueError):
    """The text is not YAML at all; ``mark`` says where the parser gave up."""

    def __init__(self, message: str, mark: Mark) -> None:
        super().__init__(message)
        self.mark = mark


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def load_located(text: str) -> Located:
    """Parse ``text`` (one YAML document) into a :class:`Located`."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(mark.line + 1, mark.column + 1) if mark else Mark(1, 1)
        raise YamlSyntaxError(f"not valid YAML: {exc.problem or exc}", where) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"not valid YAML: {exc}", Mark(1, 1)) from None
    doc = Located(None)
    if root is None:
        return doc
    doc.value = _build(root, (), doc, SafeConstructor())
    return doc


def _build(node: Node, path: Path, doc: Located, ctor: SafeConstructor) -> Any:
    doc.values[path] = _mark(node)
    if isinstance(node, MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, doc, ctor)
            if not isinstance(key, str):
                doc.problems.append((_mark(key_node), f"keys must be text, not {key!r}"))
                continue
            if key in out:
                doc.problems.append((_mark(key_node), f"{key!r} is given twice"))
            sub = (*path, key)
            doc.keys[sub] = _mark(key_node)
            out[key] = _build(value_node, sub, doc, ctor)
        return out
    if isinstance(node, SequenceNode):
        return [_build(item, (*path, i), doc, ctor) for i, item in enumerate(node.value)]
    return _scalar(node, doc, ctor)


def _scalar(node: Node, doc: Located, ctor: SafeConstructor) -> Any:
    if not isinstance(node, ScalarNode):
        return None
    try:
        return ctor.construct_object(node, deep=True)
    except ConstructorError as exc:
        doc.problems.append((_mark(node), f"cannot read this value: {exc.problem}"))
        return None
