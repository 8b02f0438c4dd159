"""The peer measurement: syslog-ng receiving syslog over TCP from ``loggen`` into a JSON file.

syslog-ng runs in the foreground with its own config, persist, pid and control files in
a temporary folder; ``loggen`` saturates it with several connections. The rate that
counts is lines actually written to the output file during the window, and the CPU
time syslog-ng used over the same window gives a per-core figure.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.bench.procstat import (
    CpuWindow,
    OthersWindow,
    memory_kib,
    stop_process,
    wait_until,
)

SYSLOG_NG = "/usr/sbin/syslog-ng"
LOGGEN = "/usr/bin/loggen"

CONFIG = """\
@version: 3.38
options {{
  stats-freq(0); use-dns(no); dns-cache(no); keep-hostname(yes); chain-hostnames(no);
  log-fifo-size(100000); time-reopen(1);
}};
source s_loggen {{
  syslog(transport(tcp) ip(127.0.0.1) port({port}) max-connections(64)
         log-iw-size(100000) log-fetch-limit(1000));
}};
destination d_json {{
  file("{out}" template("$(format-json --scope rfc5424 --scope nv-pairs)\\n")
       flush-lines(1000) log-fifo-size(100000));
}};
log {{ source(s_loggen); destination(d_json); flags(flow-control); }};
"""


@dataclass
class SyslogNgResult:
    version: str
    msgs_per_sec: float
    cores: float
    msgs_per_core: float
    loggen_reported_rate: float | None
    loggen_cores: float
    lines_in_window: int
    seconds: float
    connections: int
    peak_rss_mib: float
    other_cores: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def available() -> str | None:
    """None if syslog-ng and loggen are installed, else what is missing."""
    missing = [p for p in (SYSLOG_NG, LOGGEN) if shutil.which(p) is None]
    return ", ".join(missing) + " not found (apt-get install syslog-ng-core)" if missing else None


def version() -> str:
    out = subprocess.run([SYSLOG_NG, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"syslog-ng \d+ \(([\d.]+)\)", out.stdout)
    return match.group(1) if match else "unknown"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"syslog-ng exited with {proc.returncode} at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"syslog-ng did not listen on port {port} within {timeout:g} s")


class LineCounter:
    """Counts the lines of a growing file, reading only what was added since the last call."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.lines = path, 0, 0

    def count(self) -> int:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                while chunk := f.read(8 * 1024 * 1024):
                    self.lines += chunk.count(b"\n")
                    self.offset += len(chunk)
        except FileNotFoundError:
            pass
        return self.lines


def _loggen_rate(text: str) -> float | None:
    match = re.search(r"average rate = ([\d.]+) msg/sec", text)
    return float(match.group(1)) if match else None


def _start_syslog_ng(workdir: Path, port: int, out: Path) -> subprocess.Popen[bytes]:
    conf = workdir / "syslog-ng.conf"
    conf.write_text(CONFIG.format(port=port, out=out), encoding="utf-8")
    cmd = [SYSLOG_NG, "-F", "--no-caps", "-f", str(conf), "-R", str(workdir / "persist")]
    cmd += ["-p", str(workdir / "syslog-ng.pid"), "-c", str(workdir / "syslog-ng.ctl")]
    with (workdir / "syslog-ng.log").open("wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _start_loggen(
    workdir: Path, port: int, seconds: int, connections: int
) -> subprocess.Popen[bytes]:
    # --rate is per connection: ask for far more than syslog-ng can take.
    cmd = [LOGGEN, "--inet", "--stream", "--syslog-proto", "--rate", "500000"]
    cmd += [f"--active-connections={connections}", "--interval", str(seconds)]
    cmd += ["--size", "256", "127.0.0.1", str(port)]
    with (workdir / "loggen.log").open("wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def run_syslog_ng(
    workdir: Path, seconds: float, warmup: float, connections: int = 4
) -> SyslogNgResult:
    """Start syslog-ng, drive it with loggen for ``warmup + seconds``, measure the window."""
    port, out = free_port(), workdir / "out.json"
    sng = _start_syslog_ng(workdir, port, out)
    loggen: subprocess.Popen[bytes] | None = None
    try:
        _wait_for_port(port, sng)
        interval = int(warmup + seconds + 0.999)
        loggen = _start_loggen(workdir, port, interval, connections)
        started = time.monotonic()
        counter = LineCounter(out)
        sng_cpu, lg_cpu = CpuWindow((sng.pid,)), CpuWindow((loggen.pid,))
        others = OthersWindow()
        wait_until(started + warmup)
        first = counter.count()
        for w in (sng_cpu, lg_cpu, others):
            w.begin()
        wait_until(started + warmup + seconds)
        lines = counter.count() - first
        for w in (sng_cpu, lg_cpu, others):
            w.end()
        peak = memory_kib(sng.pid).get("VmHWM", 0) / 1024
        loggen.wait(timeout=interval + 30)
    finally:
        if loggen is not None:
            stop_process(loggen, grace=2)
        stop_process(sng, grace=5)
    rate = lines / sng_cpu.wall
    return SyslogNgResult(
        version=version(),
        msgs_per_sec=rate,
        cores=sng_cpu.cores,
        msgs_per_core=rate / sng_cpu.cores if sng_cpu.cores else 0.0,
        loggen_reported_rate=_loggen_rate((workdir / "loggen.log").read_text(errors="replace")),
        loggen_cores=lg_cpu.cores,
        lines_in_window=lines,
        seconds=sng_cpu.wall,
        connections=connections,
        peak_rss_mib=peak,
        other_cores=max(0.0, others.cores),
    )
