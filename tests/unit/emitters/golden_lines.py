"""Golden files of rendered lines: 20 seeded samples per format, compared byte for byte."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

from emitters.content import ContentOptions
from emitters.formats.base import LogFormat

GOLDEN_DIR = Path(__file__).parent / "golden"
SEED = 42
NOW = 1_710_252_309.482
COUNT = 20


def golden_lines(fmt: LogFormat, encode: Callable[[str], str] = str) -> list[str]:
    """The first 20 lines ``fmt`` renders from ``Random(42)``, ``ContentOptions()`` and NOW."""
    rng = random.Random(SEED)
    opts = ContentOptions()
    return [encode(fmt.render(fmt.sample(rng, opts, NOW))) for _ in range(COUNT)]


def check_golden(name: str, lines: list[str]) -> None:
    """Compare ``lines`` with ``golden/<name>.txt``; ``LOGOPS_REGOLDEN=1`` rewrites it."""
    path = GOLDEN_DIR / f"{name}.txt"
    text = "".join(line + "\n" for line in lines)
    if os.environ.get("LOGOPS_REGOLDEN") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="")
    how = f"if the change is intended, regenerate with LOGOPS_REGOLDEN=1 pytest -k {name}"
    assert path.exists(), f"{path} is missing: {how}"
    golden = path.read_bytes().decode("utf-8")
    for number, (want, got) in enumerate(zip(golden.splitlines(), lines, strict=False), start=1):
        assert got == want, f"{name} line {number} differs from {path}: {how}"
    assert golden == text, f"{name} differs from {path} in its line count: {how}"
