"""Reads a process's CPU time and memory from /proc, and manages the benchmark's child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its threads so far (0.0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return 0.0
    # The command name may hold spaces; the fields after it are fixed.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of ``pid`` in KiB; empty once it is gone."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def _process_table() -> dict[tuple[int, int], tuple[int, float]]:
    """(pid, start time) -> (parent pid, CPU seconds) for every process now running."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICKS
        table[(int(entry.name), int(fields[19]))] = (int(fields[1]), cpu)
    return table


def _own_tree(table: dict[tuple[int, int], tuple[int, float]]) -> set[int]:
    """This process and all its descendants."""
    children: dict[int, list[int]] = {}
    for (pid, _), (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(children.get(pid, ()))
    return tree


class OthersWindow:
    """CPU used by user processes that are not this benchmark's, over a window.

    Kernel threads (children of kthreadd, pid 2) are left out: their work, writeback above
    all, is mostly done for the benchmark itself.
    """

    def __init__(self) -> None:
        self._start: dict[tuple[int, int], tuple[int, float]] = {}
        self._began = 0.0
        self.cores = 0.0

    def begin(self) -> None:
        self._began = time.monotonic()
        self._start = _process_table()

    def end(self) -> None:
        wall = time.monotonic() - self._began
        table = _process_table()
        ours = _own_tree(table)
        used = 0.0
        for key, (ppid, cpu) in table.items():
            if key[0] in ours or key[0] == 2 or ppid == 2:
                continue
            used += cpu - self._start.get(key, (0, 0.0))[1]
        self.cores = used / wall if wall > 0 else 0.0


@dataclass
class CpuWindow:
    """CPU time used by a set of processes between :meth:`begin` and :meth:`end`."""

    pids: tuple[int, ...]
    started_at: float = 0.0
    cpu_at_start: float = 0.0
    wall: float = 0.0
    cpu: float = 0.0

    def _total(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def begin(self) -> None:
        self.started_at = time.monotonic()
        self.cpu_at_start = self._total()

    def end(self) -> None:
        self.cpu = self._total() - self.cpu_at_start
        self.wall = time.monotonic() - self.started_at

    @property
    def cores(self) -> float:
        """Average number of cores busy over the window."""
        return self.cpu / self.wall if self.wall > 0 else 0.0


def wait_until(deadline: float) -> None:
    """Sleep until ``time.monotonic()`` reaches ``deadline``."""
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    try:
        return proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return None
