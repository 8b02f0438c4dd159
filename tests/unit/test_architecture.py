"""The shape of the code: cores depend inward, generated code matches the schema."""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("grpc", "falcon", "waitress", "prometheus_client", "logops.v1")

CORE_MODULES = [
    "services.ingest.core",
    "services.ingest.normalize",
    "services.ingest.native",
    "services.ingest.sink",
    "services.ingest.housekeeping",
    "services.common.config",
    "services.common.errors",
    "services.common.model",
    "services.common.codecs",
    "services.common.keys",
    "services.common.signing",
    "services.auth.ratelimit",
    "services.common.nonces",
    "services.auth.spool",
    "services.auth.breaker",
    "services.auth.core",
    "services.auth.inspect",
    "emitters.formats",
]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_modules_import_no_framework(module: str) -> None:
    code = (
        f"import json, sys; import {module}; "
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = json.loads(out.stdout)
    leaked = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert leaked == [], f"{module} pulls in {leaked}"


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        ["make", "-s", "proto", f"PROTO_OUT={tmp_path}", f"PY={sys.executable}", "STAMP="],
        cwd=ROOT, check=True, capture_output=True,
    )
    committed = ROOT / "proto" / "gen"
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    have = sorted(
        p.relative_to(committed)
        for p in committed.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert fresh == have
    different = [str(p) for p in fresh if not filecmp.cmp(tmp_path / p, committed / p, False)]
    assert different == [], f"run `make proto`: {different} differ from the schema"
