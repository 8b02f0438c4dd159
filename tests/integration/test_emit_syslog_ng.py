"""``logops emit`` over syslog into a real syslog-ng: an independent reader of the framing.

syslog-ng (Debian ``syslog-ng-core``) listens with ``syslog()`` (RFC 6587 octet counting)
over TCP and ``network()`` (LF framing) over TCP and UDP, all with ``flags(no-parse)``
so that each message it frames is written out whole, one per line. If our framing were
off by a byte, lines would come out split, joined or cut, and the JSON would not parse.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SYSLOG_NG = "/usr/sbin/syslog-ng"
CONFIG = """\
@version: 3.38
options {{ stats-freq(0); use-dns(no); dns-cache(no); log-msg-size(65536); }};
source s_octet {{ syslog(transport(tcp) ip(127.0.0.1) port({octet}) flags(no-parse)); }};
source s_lf {{ network(transport(tcp) ip(127.0.0.1) port({lf}) flags(no-parse)); }};
source s_udp {{ network(transport(udp) ip(127.0.0.1) port({udp}) flags(no-parse)); }};
destination d_octet {{ file("{out}/octet.log" template("$MSG\\n") flush-lines(1)); }};
destination d_lf {{ file("{out}/lf.log" template("$MSG\\n") flush-lines(1)); }};
destination d_udp {{ file("{out}/udp.log" template("$MSG\\n") flush-lines(1)); }};
log {{ source(s_octet); destination(d_octet); }};
log {{ source(s_lf); destination(d_lf); }};
log {{ source(s_udp); destination(d_udp); }};
"""

pytestmark = pytest.mark.skipif(
    shutil.which(SYSLOG_NG) is None, reason="syslog-ng (syslog-ng-core) is not installed"
)


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def syslog_ng(tmp_path: Path) -> Iterator[dict[str, int]]:
    ports = {
        "octet": _free_port(socket.SOCK_STREAM),
        "lf": _free_port(socket.SOCK_STREAM),
        "udp": _free_port(socket.SOCK_DGRAM),
    }
    conf = tmp_path / "syslog-ng.conf"
    conf.write_text(CONFIG.format(out=tmp_path, **ports), encoding="utf-8")
    cmd = [SYSLOG_NG, "-F", "--no-caps", "-f", str(conf), "-R", str(tmp_path / "persist")]
    cmd += ["-p", str(tmp_path / "pid"), "-c", str(tmp_path / "ctl")]
    log = (tmp_path / "syslog-ng.out").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_listening(proc, ports["octet"], ports["lf"])
        yield ports
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _wait_listening(proc: subprocess.Popen[bytes], *ports: int) -> None:
    deadline = time.monotonic() + 20
    for port in ports:
        while True:
            assert proc.poll() is None, "syslog-ng exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "syslog-ng is not listening"
                time.sleep(0.05)


def _emit(tmp_path: Path, *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "emit", *args, "--json", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    account: dict[str, object] = json.loads(done.stdout)
    return account


def _records(path: Path, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 20
    while not path.exists() or path.read_bytes().count(b"\n") < count:
        assert time.monotonic() < deadline, f"{path.name}: too few lines"
        time.sleep(0.05)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    ("transport", "framing", "out"),
    [("syslog+tcp", "octet", "octet"), ("syslog+tcp", "lf", "lf"), ("syslog+udp", "lf", "udp")],
)
def test_syslog_ng_reads_every_message_whole(
    syslog_ng: dict[str, int], tmp_path: Path, transport: str, framing: str, out: str
) -> None:
    target = f"127.0.0.1:{syslog_ng[out]}"
    account = _emit(
        tmp_path,
        "json",
        "--transport",
        transport,
        "--target",
        target,
        "--framing",
        framing,
        "--count",
        "400",
        "--rate",
        "2000",
        "--run-id",
        f"ng-{out}",
        "--seed",
        "5",
    )
    assert account["accepted"] == 400
    records = _records(tmp_path / f"{out}.log", 400)
    assert [r["seq"] for r in records] == list(range(400))
    assert {(r["run_id"], r["stream"]) for r in records} == {(f"ng-{out}", "emit-json")}
