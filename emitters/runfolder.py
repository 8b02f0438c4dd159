"""The run folder ``<runs-dir>/<run_id>/``: what ``logops scenario run`` writes for
``logops verify`` and the report (the contract is in docs/scenarios.md).

``scenario.yaml`` and ``run.json`` at the start, ``sends.jsonl`` appended during the run
(one line per send, flushed as it goes so a crash keeps what was sent),
``timeline.jsonl`` and ``summary.json`` at the end. JSON files are written whole to a
temporary name and renamed, so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml


class RunFolder:
    def __init__(self, runs_dir: str | Path, run_id: str) -> None:
        if not run_id or "/" in run_id or run_id in (".", ".."):
            raise ValueError(f"run id {run_id!r} cannot name a folder")
        self.path = Path(runs_dir) / run_id
        self._lock = threading.Lock()
        self._sends: Any = None

    def create(self) -> None:
        """Make the folder; an existing run of the same id is an error, never overwritten."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.path.mkdir()
        except FileExistsError:
            raise ValueError(f"{self.path} already exists: choose another --run-id") from None
        self._sends = (self.path / "sends.jsonl").open("a", encoding="utf-8", buffering=1)

    def write_scenario(self, scenario: dict[str, Any]) -> None:
        text = yaml.safe_dump(scenario, sort_keys=False, allow_unicode=True)
        self._replace("scenario.yaml", text)

    def write_json(self, name: str, doc: Any) -> None:
        self._replace(name, json.dumps(doc, indent=2, sort_keys=False) + "\n")

    def append_send(self, line: dict[str, Any]) -> None:
        text = json.dumps(line, separators=(",", ":")) + "\n"
        with self._lock:
            if self._sends is not None:
                self._sends.write(text)

    def write_timeline(self, lines: Iterable[dict[str, Any]]) -> None:
        self._replace(
            "timeline.jsonl", "".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines)
        )

    def close_sends(self) -> None:
        with self._lock:
            if self._sends is not None:
                self._sends.flush()
                os.fsync(self._sends.fileno())
                self._sends.close()
                self._sends = None

    def _replace(self, name: str, text: str) -> None:
        tmp = self.path / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path / name)
