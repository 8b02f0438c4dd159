"""``logops emit`` flags: what they build, and which keys sign."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from clients.targets import TransportSpec
from emitters.cli import DEV_SECRET, UsageError, _signer, build
from services.cli import build_parser


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["emit", *argv])


def test_the_flags_build_the_loop_they_say(tmp_path: Path) -> None:
    args = _args(
        "logfmt",
        "--transport",
        "file",
        "--target",
        str(tmp_path / "x.log"),
        "--rate",
        "250",
        "--count",
        "40",
        "--batch-size",
        "7",
        "--run-id",
        "r",
        "--stream",
        "s#2",
        "--first-seq",
        "5",
        "--error-ratio",
        "0.2",
    )
    loop, spec = build(args)
    assert spec.line_keys == ("run_id", "stream", "seq")
    assert loop.schedule.total == 40
    assert loop.schedule.due(1) == pytest.approx(1 / 250)
    assert (loop.opts.batch_size, loop.opts.linger_sec, loop.opts.batched) == (7, 0.005, False)
    acc = loop.source.accounting
    assert (acc.run_id, acc.stream, acc.first_seq) == ("r", "s#2", 5)
    grpc, _ = build(_args("json", "--transport", "grpc"))
    grpc.transport.close()
    loop.transport.close()
    assert (grpc.opts.linger_sec, grpc.opts.batched, grpc.source.accounting.stream) == (
        0.2,
        True,
        "emit-json",
    )


def test_the_throwaway_key_signs_towards_the_default_gateway_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    loop, spec = build(_args("json", "--transport", "grpc", "--quiet"))
    loop.transport.close()
    assert _signer(_args("json", "--transport", "grpc"), spec) is None
    DEV_SECRET.parent.mkdir(parents=True)
    DEV_SECRET.write_text("a throwaway secret of the local demo key\n")
    signer = _signer(_args("json", "--transport", "grpc", "--quiet"), spec)
    assert signer is not None and signer.key_id == "demo"
    given = TransportSpec("grpc", "h:1")
    assert _signer(_args("json", "--transport", "grpc", "--target", "h:1"), given) is None
    assert _signer(_args("json"), TransportSpec("stdout")) is None
    with pytest.raises(UsageError):
        _signer(_args("json", "--key-id", "k"), spec)
