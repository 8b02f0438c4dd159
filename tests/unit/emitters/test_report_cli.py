"""``logops report``: writes the page, says where, and refuses what is not a run."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from emitters.report_cli import add_parser
from tests.unit.emitters.runfolder import write_finished_run


def _report(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="logops")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *argv])
    return int(args.func(args))


def test_writes_the_report_and_prints_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_finished_run(tmp_path / "runs" / "r1", ["web"])
    assert _report(["r1", "--runs-dir", str(tmp_path / "runs")]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == tmp_path / "runs" / "r1" / "report.html"
    assert "<h1>Run r1</h1>" in path.read_text()


@pytest.mark.parametrize("run_id", ["missing", "../runs"])
def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], run_id: str) -> None:
    (tmp_path / "runs" / "empty").mkdir(parents=True)
    assert _report([run_id, "--runs-dir", str(tmp_path / "runs")]) == 2
    assert _report(["empty", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("logops report: ") and "neither summary.json nor run.json" in err
