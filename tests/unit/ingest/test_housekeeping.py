"""Sink retention: which files go, delete vs archive, dry runs, and what is never touched."""

from __future__ import annotations

import gzip
import logging
import os
import time
from pathlib import Path

import pytest

from services.ingest.housekeeping import (
    HousekeepingAction,
    HousekeepingScheduler,
    run_housekeeping,
)

# 2025-03-10 08:00:00 UTC
NOW = 1_741_593_600.0
UNRELATED = ("notes.txt", "20250101.json", "2025010.ndjson", "backup.ndjson", "20251399.ndjson")


def day_name(days_ago: int) -> str:
    return time.strftime("%Y%m%d", time.gmtime(NOW - days_ago * 86_400))


@pytest.fixture
def sink(tmp_path: Path) -> Path:
    """Sink files from today back to five days ago, plus files housekeeping must ignore."""
    root = tmp_path / "sink"
    (root / ".index").mkdir(parents=True)
    for ago in range(6):
        day = day_name(ago)
        (root / f"{day}.ndjson").write_bytes(f'{{"day": "{day}"}}\n'.encode() * 50)
        (root / ".index" / f"{day}.idx").write_bytes(b'["id",1,0,"x",0,1,0]\n')
    (root / f"{day_name(4)}.1.ndjson").write_bytes(b'{"rotated": true}\n')
    (root / f"{day_name(5)}.2.ndjson.gz").write_bytes(gzip.compress(b'{"old": 1}\n'))
    for name in UNRELATED:
        (root / name).write_text("keep me")
    outside = tmp_path / "outside.ndjson"
    outside.write_text("keep me")
    (root / f"{day_name(5)}.9.ndjson").symlink_to(outside)
    return root


def names(actions: list[HousekeepingAction]) -> list[tuple[str, str]]:
    return sorted((a.path.name, a.action) for a in actions)


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"link"
        for p in sorted(root.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


def test_delete_removes_only_days_past_the_retention(sink: Path) -> None:
    done = run_housekeeping(sink, 2, "delete", dry_run=False, now=NOW)
    # Day 2 ago ended 1 day and 8 hours ago: inside a 2 day retention.
    old = [day_name(3), day_name(4), day_name(5)]
    assert names(done) == sorted(
        [(f"{d}.ndjson", "delete") for d in old]
        + [(f"{d}.idx", "delete") for d in old]
        + [(f"{day_name(4)}.1.ndjson", "delete"), (f"{day_name(5)}.2.ndjson.gz", "delete")]
    )
    left = set(snapshot(sink))
    for ago in range(3):
        assert f"{day_name(ago)}.ndjson" in left
        assert f".index/{day_name(ago)}.idx" in left
    assert {*UNRELATED, f"{day_name(5)}.9.ndjson"} <= left
    assert (sink.parent / "outside.ndjson").read_text() == "keep me"
    assert not any(name.startswith(old[0]) for name in left)


def test_actions_report_age_and_size(sink: Path) -> None:
    done = run_housekeeping(sink, 2, "delete", dry_run=True, now=NOW)
    three = next(a for a in done if a.path.name == f"{day_name(3)}.ndjson")
    # The day ended two days and 8 hours before NOW.
    assert three.age_days == pytest.approx(2 + 8 / 24, abs=0.001)
    assert three.bytes == (sink.parent / "sink" / three.path.name).stat().st_size
    assert three.path.parent == sink


def test_archive_gzips_data_deletes_indexes_and_keeps_archives(sink: Path) -> None:
    original = (sink / f"{day_name(3)}.ndjson").read_bytes()
    done = run_housekeeping(sink, 2, "archive", dry_run=False, now=NOW)
    archived = sorted(a.path.name for a in done if a.action == "archive")
    assert archived == sorted(
        [f"{day_name(d)}.ndjson" for d in (3, 4, 5)] + [f"{day_name(4)}.1.ndjson"]
    )
    assert all(a.action == "delete" for a in done if a.path.name.endswith(".idx"))
    assert not any(a.path.name.endswith(".gz") for a in done)
    assert gzip.decompress((sink / f"{day_name(3)}.ndjson.gz").read_bytes()) == original
    assert not (sink / f"{day_name(3)}.ndjson").exists()
    assert (sink / f"{day_name(5)}.2.ndjson.gz").exists()
    assert not list(sink.glob(".*.tmp"))
    assert not (sink / ".index" / f"{day_name(3)}.idx").exists()
    # A second run finds nothing left to do in archive mode.
    assert run_housekeeping(sink, 2, "archive", dry_run=False, now=NOW) == []


def test_archives_past_the_retention_are_deleted_in_delete_mode(sink: Path) -> None:
    run_housekeeping(sink, 2, "archive", dry_run=False, now=NOW)
    done = run_housekeeping(sink, 2, "delete", dry_run=False, now=NOW)
    assert names(done) == sorted(
        [(f"{day_name(d)}.ndjson.gz", "delete") for d in (3, 4, 5)]
        + [(f"{day_name(4)}.1.ndjson.gz", "delete"), (f"{day_name(5)}.2.ndjson.gz", "delete")]
    )


def test_dry_run_changes_nothing(sink: Path) -> None:
    before = snapshot(sink)
    planned = run_housekeeping(sink, 2, "archive", dry_run=True, now=NOW)
    assert snapshot(sink) == before
    assert planned == run_housekeeping(sink, 2, "archive", dry_run=False, now=NOW)


def test_todays_file_is_never_touched(sink: Path) -> None:
    done = run_housekeeping(sink, 0, "delete", dry_run=False, now=NOW)
    assert (sink / f"{day_name(0)}.ndjson").exists()
    assert (sink / ".index" / f"{day_name(0)}.idx").exists()
    # Yesterday ended 8 hours ago, so a zero retention takes it.
    assert (f"{day_name(1)}.ndjson", "delete") in names(done)


def test_a_missing_directory_is_nothing_to_do(tmp_path: Path) -> None:
    assert run_housekeeping(tmp_path / "none", 2, "delete", dry_run=False, now=NOW) == []


def test_bad_arguments_are_refused(sink: Path) -> None:
    with pytest.raises(ValueError):
        run_housekeeping(sink, 2, "shred", dry_run=True, now=NOW)
    with pytest.raises(ValueError):
        run_housekeeping(sink, -1, "delete", dry_run=True, now=NOW)


def test_the_scheduler_runs_and_logs(sink: Path, caplog: pytest.LogCaptureFixture) -> None:
    old = sink / f"{day_name(9)}.ndjson"
    old.write_bytes(b"{}\n")
    os.utime(old, (NOW, NOW))
    scheduler = HousekeepingScheduler(sink, 2, "delete", interval_sec=3600)
    with caplog.at_level(logging.INFO, logger="services.ingest.housekeeping"):
        scheduler.start()
        deadline = time.monotonic() + 10
        while old.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        scheduler.stop()
    assert not old.exists()
    events = [r for r in caplog.records if getattr(r, "event", "") == "housekeeping"]
    assert any(old.name in r.getMessage() for r in events)


def test_a_zero_interval_scheduler_does_not_start(sink: Path) -> None:
    scheduler = HousekeepingScheduler(sink, 0, "delete", interval_sec=0)
    scheduler.start()
    scheduler.stop()
    assert (sink / f"{day_name(1)}.ndjson").exists()
