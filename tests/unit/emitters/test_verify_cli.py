"""``logops verify``'s flags, output and exit codes on hand-made run folders."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from emitters.verify_cli import add_parser, printable
from tests.unit.emitters.runfolder import DAY, T0, RunFolder, lines_for, write_sink


def _verify(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="logops")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["verify", *argv])
    return int(args.func(args))


def _run(tmp_path: Path, stored: range = range(200)) -> RunFolder:
    rf = RunFolder(tmp_path)
    stream = rf.emitter("web")
    rf.send("web", stream, 0, 100, t=T0)
    rf.send("web", stream, 100, 100, t=T0 + 1)
    write_sink(rf.sink_dir / f"{DAY}.ndjson", lines_for(rf, "web", stream, stored, T0 + 1.02))
    rf.write()
    return rf


def test_a_clean_run_prints_a_table_and_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rf = _run(tmp_path)
    assert _verify([rf.run_id, "--runs-dir", str(rf.root / "runs")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"run {rf.run_id}: sink {rf.sink_dir} (1 files")
    assert out[1].split()[:9] == [
        "emitter",
        "stream",
        "sent",
        "acked",
        "stored",
        "missing",
        "dup",
        "unexp",
        "order",
    ]
    assert out[2].split() == [
        "web",
        "web#0",
        "200",
        "200",
        "200",
        "0",
        "0",
        "0",
        "0",
        "20",
        "1020",
        "1020",
        "1020",
    ]
    assert out[3].split()[:2] == ["total", "200"]
    assert out[-1] == "OK: 200 of 200 acknowledged records stored (100.000%), none duplicated"


def test_loss_exits_1_and_names_the_missing_seqs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rf = _run(tmp_path, stored=range(190))
    assert _verify([rf.run_id, "--runs-dir", str(rf.root / "runs")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "missing in web#0: seq 190-199" in out
    assert out[-1] == "FAILED: 10 missing, 0 duplicated of 200 acknowledged (95.000% delivered)"


def test_json_is_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rf = _run(tmp_path, stored=range(190))
    other_sink = tmp_path / "elsewhere"
    write_sink(other_sink / f"{DAY}.ndjson", lines_for(rf, "web", "web#0", range(200), T0 + 1.02))
    code = _verify(
        [rf.run_id, "--runs-dir", str(rf.root / "runs"), "--sink-dir", str(other_sink), "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["ok"] is True and report["exit_code"] == 0
    assert report["sink_dir"] == str(other_sink)
    assert report["totals"]["delivered"] == 200
    assert report["streams"][0]["latency_ms"]["p50"] == 20


@pytest.mark.parametrize("run_id", ["nope", "..", "a/b", ""])
def test_unknown_or_odd_run_ids_are_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], run_id: str
) -> None:
    rf = _run(tmp_path)
    assert _verify([run_id, "--runs-dir", str(rf.root / "runs")]) == 2
    assert capsys.readouterr().err.startswith("logops verify: ")


def test_an_unreadable_run_folder_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rf = _run(tmp_path)
    (rf.run_dir / "run.json").write_text("[")
    assert _verify([rf.run_id, "--runs-dir", str(rf.root / "runs")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_hostile_names_do_not_reach_the_terminal_raw(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rf = RunFolder(tmp_path)
    name = "evil\x1b[2J\r\nOK: all fine\u202e"
    stream = rf.emitter(name, stream="s")
    rf.send(name, stream, 0, 5)
    write_sink(rf.sink_dir / f"{DAY}.ndjson", lines_for(rf, name, stream, range(5)))
    rf.write()
    assert _verify([rf.run_id, "--runs-dir", str(rf.root / "runs")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert "evil\\x1b[2J\\r\\nOK: all ~  s" in out
    assert printable("plain name") == "plain name"
