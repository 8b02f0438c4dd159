"""What the log shippers send to Loki, read from their configs: stream labels, structured
metadata, the record fields they read, the timestamp and the files they tail.

``loki_labels()`` is the label set LogQL may select on (the dashboards' test imports it).
Both shippers must agree: Alloy (observability/alloy/config.alloy, the default) and
Promtail (observability/promtail/promtail.yml). Neither binary runs here, so this reads
their configs the way they do, including the ``filename`` label both add to every line
unless a stage drops it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.unit.observability.alloy_syntax import Block, Ref, evaluate, parse

ROOT = Path(__file__).resolve().parents[3]
ALLOY_CONFIG = ROOT / "observability" / "alloy" / "config.alloy"
PROMTAIL_CONFIG = ROOT / "observability" / "promtail" / "promtail.yml"

# Added by loki.source.file and by Promtail's file target to every line.
AUTOMATIC_LABELS = frozenset({"filename"})


@dataclass(frozen=True)
class Pipeline:
    """One shipper's view of the NDJSON sink."""

    # The glob of files tailed, with the environment unset (the defaults).
    path: str
    # Stream labels of every entry sent.
    labels: frozenset[str]
    structured_metadata: frozenset[str]
    # Extracted name -> the record's field it comes from (the JSON stage).
    extracted: Mapping[str, str]
    # (source of the timestamp, its format)
    timestamp: tuple[str, str]
    # Names the label and metadata stages take their values from.
    sources: frozenset[str]
    push_url: str


def loki_labels() -> frozenset[str]:
    """The stream labels in Loki: the same for both shippers, or ValueError."""
    alloy, promtail = alloy_pipeline().labels, promtail_pipeline().labels
    if alloy != promtail:
        raise ValueError(f"Alloy sends labels {sorted(alloy)}, Promtail {sorted(promtail)}")
    return alloy


def record_fields() -> frozenset[str]:
    """Every field of a sink record that either shipper reads."""
    return frozenset(
        field for p in (alloy_pipeline(), promtail_pipeline()) for field in p.extracted.values()
    )


def _simple_path(expression: str) -> str:
    # A JMESPath that is one field name; anything fancier would need a real JMESPath.
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", expression):
        raise ValueError(f"JSON expression {expression!r} is not a plain field name")
    return expression


def promtail_pipeline(path: Path = PROMTAIL_CONFIG) -> Pipeline:
    config = yaml.safe_load(path.read_text())
    (scrape,) = config["scrape_configs"]
    (static,) = scrape["static_configs"]
    labels = {k for k in static["labels"] if not k.startswith("__")} | AUTOMATIC_LABELS
    glob = _expand_env(static["labels"]["__path__"])
    extracted: dict[str, str] = {}
    metadata: set[str] = set()
    sources: set[str] = set()
    timestamp = ("", "")
    for stage in scrape["pipeline_stages"]:
        (kind, spec), *rest = stage.items()
        if rest:
            raise ValueError(f"one stage per list item: {stage}")
        if kind == "json":
            for name, expr in spec["expressions"].items():
                extracted[name] = _simple_path(expr or name)
        elif kind == "timestamp":
            timestamp = (spec["source"], spec["format"])
        elif kind in ("labels", "structured_metadata"):
            for name, source in spec.items():
                sources.add(source or name)
            (labels if kind == "labels" else metadata).update(spec)
        elif kind == "labeldrop":
            labels.difference_update(spec)
        else:
            raise ValueError(f"stage {kind!r} is not read by this test")
    (client,) = config["clients"]
    return Pipeline(
        glob, frozenset(labels), frozenset(metadata), extracted, timestamp,
        frozenset(sources), _expand_env(client["url"]),
    )  # fmt: skip


def _expand_env(text: str) -> str:
    """Promtail's -config.expand-env with no variable set: ``${VAR:-default}`` -> default."""
    expanded = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)
    if "$" in expanded:
        raise ValueError(f"a variable without a default in {text!r}")
    return expanded


def _one(blocks: list[Block], name: str, label: str | None = None) -> Block:
    found = [b for b in blocks if b.name == name and (label is None or b.label == label)]
    if len(found) != 1:
        raise ValueError(f"expected one {name} {label or ''} block, found {len(found)}")
    return found[0]


def _target(ref: Any, kind: str, export: str) -> str:
    """The label of the component that ``ref`` (``kind.LABEL.export``) points at."""
    prefix, suffix = kind + ".", "." + export
    if not (isinstance(ref, Ref) and ref.name.startswith(prefix) and ref.name.endswith(suffix)):
        raise ValueError(f"expected a reference to {kind}.<label>.{export}, found {ref!r}")
    return ref.name[len(prefix) : -len(suffix)]


def alloy_pipeline(path: Path = ALLOY_CONFIG, env: Mapping[str, str] | None = None) -> Pipeline:
    """Follows source.file -> process -> write, as Alloy wires them."""
    env = env or {}
    blocks = parse(path.read_text())
    source = _one(blocks, "loki.source.file")
    match_label = _target(source.attrs["targets"], "local.file_match", "targets")
    match = _one(blocks, "local.file_match", match_label)
    (target,) = evaluate(match.attrs["path_targets"], env)
    (forward,) = source.attrs["forward_to"]
    process = _one(blocks, "loki.process", _target(forward, "loki.process", "receiver"))
    labels = {k for k in target if not k.startswith("__")} | AUTOMATIC_LABELS
    extracted: dict[str, str] = {}
    metadata: set[str] = set()
    sources: set[str] = set()
    timestamp = ("", "")
    for stage in process.blocks:
        values: Any = stage.attrs.get("values")
        if stage.name == "stage.json":
            for name, expr in stage.attrs["expressions"].items():
                extracted[name] = _simple_path(expr or name)
        elif stage.name == "stage.timestamp":
            timestamp = (stage.attrs["source"], stage.attrs["format"])
        elif stage.name in ("stage.labels", "stage.structured_metadata"):
            sources.update(src or name for name, src in values.items())
            (labels if stage.name == "stage.labels" else metadata).update(values)
        elif stage.name == "stage.label_drop":
            labels.difference_update(values)
        else:
            raise ValueError(f"{stage.name} is not read by this test")
    (out,) = process.attrs["forward_to"]
    write = _one(blocks, "loki.write", _target(out, "loki.write", "receiver"))
    (endpoint,) = write.children("endpoint")
    return Pipeline(
        target["__path__"], frozenset(labels), frozenset(metadata), extracted, timestamp,
        frozenset(sources), evaluate(endpoint.attrs["url"], env),
    )  # fmt: skip
