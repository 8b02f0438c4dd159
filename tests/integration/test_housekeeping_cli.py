"""``logops housekeeping`` as an operator runs it, dry run first."""

from __future__ import annotations

import gzip
import subprocess
import sys
import time
from pathlib import Path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "housekeeping", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )


def day(days_ago: int) -> str:
    return time.strftime("%Y%m%d", time.gmtime(time.time() - days_ago * 86400))


def test_dry_run_then_archive(tmp_path: Path) -> None:
    old, today = tmp_path / f"{day(5)}.ndjson", tmp_path / f"{day(0)}.ndjson"
    old.write_text('{"msg":"old"}\n')
    today.write_text('{"msg":"new"}\n')
    (tmp_path / "notes.txt").write_text("keep me")

    dry = run("--sink-dir", str(tmp_path), "--dry-run", "--action", "archive")
    assert dry.returncode == 0, dry.stderr
    assert f"would archive: {old}" in dry.stdout
    assert old.exists()

    done = run("--sink-dir", str(tmp_path), "--action", "archive", "--retention-days", "2")
    assert done.returncode == 0, done.stderr
    assert not old.exists() and today.exists() and (tmp_path / "notes.txt").exists()
    archived = old.with_name(old.name + ".gz")
    assert gzip.decompress(archived.read_bytes()) == b'{"msg":"old"}\n'


def test_bad_flag_value_is_exit_2(tmp_path: Path) -> None:
    assert run("--sink-dir", str(tmp_path), "--action", "shred").returncode == 2
