"""``make obs-up`` / ``make obs-down``: the observability stack, by compose or from Debian.

``python -m services.obs_stack up|down|status``. With a Docker engine that answers
(``docker info`` succeeds) it runs ``docker compose -f observability/docker-compose.yml
up -d`` (or ``docker-compose``): Prometheus, Alertmanager, Loki, Grafana, log shipping.
Without one it runs Debian's ``prometheus`` and ``prometheus-alertmanager`` with the same
configuration files (local mode: no Loki or Grafana), each in a session of its own, pid and
log in ``data/run/obs/``, data in ``data/run/obs/prometheus`` and ``.../alertmanager``.
``up`` returns once each answers ``/-/ready``; on failure it prints the log's tail, stops
what it started and exits 1. A second ``up`` starts nothing and checks readiness again.
``down`` sends SIGTERM, then SIGKILL after a grace period; it is fine when nothing runs.

Alertmanager reads the Slack webhook URL from a file (``api_url_file``) when it sends, not
at start-up, so it runs without one: ``up`` says so, and alerts are still visible in its UI
and API (docs/observability.md). No placeholder is written: a made-up URL would only turn
into failed notifications.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.background import alive, log_tail

RUN_DIR = Path("data/run")
COMPOSE_FILE = Path("observability/docker-compose.yml")
PROMETHEUS_CONFIG = Path("observability/prometheus/prometheus.yml")
ALERTMANAGER_CONFIG = Path("observability/alertmanager/alertmanager.yml")
SLACK_SECRET = Path("observability/alertmanager/secrets/slack_webhook_url")
PROMETHEUS_LISTEN = "127.0.0.1:9090"
ALERTMANAGER_LISTEN = "127.0.0.1:9093"
START_TIMEOUT_SEC = 60.0
STOP_TIMEOUT_SEC = 30.0
POLL_SEC = 0.2
_LISTENING = re.compile(r'msg="Listening on" address=(\S+)')
INSTALL_HINT = (
    "Install one of them:\n"
    "  Debian/Ubuntu: sudo apt-get install prometheus prometheus-alertmanager\n"
    "    (the packages also start system services on 9090/9093: "
    "sudo systemctl disable --now prometheus prometheus-alertmanager)\n"
    "  or Docker Engine with the compose plugin: https://docs.docker.com/engine/install/"
)


class StartFailed(RuntimeError):
    """A daemon exited, or did not answer ``/-/ready`` in time."""


@dataclass(frozen=True, slots=True)
class Daemon:
    """One background program of the local mode: how to start it and where its pid, log and
    data go."""

    name: str
    binary: str
    args: tuple[str, ...]
    run_dir: Path
    cwd: Path | None = None

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"


def local_daemons(
    run_dir: Path,
    prometheus_config: Path = PROMETHEUS_CONFIG,
    alertmanager_config: Path = ALERTMANAGER_CONFIG,
    prometheus_listen: str = PROMETHEUS_LISTEN,
    alertmanager_listen: str = ALERTMANAGER_LISTEN,
) -> list[Daemon]:
    """Alertmanager, then Prometheus (which sends to it); ``*_listen`` may use port 0.

    Alertmanager runs in its config's folder: it resolves ``api_url_file`` (the Slack
    webhook's ``secrets/slack_webhook_url``) against its working directory, as compose
    does in ``/etc/alertmanager``."""
    obs = run_dir.resolve() / "obs"
    alertmanager_config = alertmanager_config.resolve()
    alertmanager = Daemon("alertmanager", "prometheus-alertmanager", (
        f"--config.file={alertmanager_config}",
        f"--storage.path={obs / 'alertmanager'}",
        f"--web.listen-address={alertmanager_listen}",
        "--cluster.listen-address=",  # one instance: no gossip port
    ), obs, cwd=alertmanager_config.parent)
    prometheus = Daemon("prometheus", "prometheus", (
        f"--config.file={prometheus_config.resolve()}",
        f"--storage.tsdb.path={obs / 'prometheus'}",
        f"--web.listen-address={prometheus_listen}",
        "--web.enable-lifecycle",  # POST /-/reload after editing rules or targets
    ), obs)
    return [alertmanager, prometheus]


# -- one daemon ---------------------------------------------------------------------------


def running_pid(d: Daemon) -> int | None:
    """The pid in the daemon's pid file if that process is alive and runs its binary (a pid
    the system has since given to another program is not ours to signal)."""
    try:
        pid = int(d.pid_file.read_text().strip())
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except (OSError, ValueError):
        return None
    return pid if Path(os.fsdecode(argv0)).name == d.binary and alive(pid) else None


def listening(log_file: Path) -> str | None:
    """The address the daemon bound, from its ``Listening on`` log line (port 0 works)."""
    try:
        text = log_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = _LISTENING.findall(text)
    return f"http://{found[-1]}" if found else None


def is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def spawn(d: Daemon) -> subprocess.Popen[bytes]:
    """Start the daemon in a session of its own, its output in its log, its pid written."""
    d.run_dir.mkdir(parents=True, exist_ok=True)
    with open(d.log_file, "wb") as log:
        proc = subprocess.Popen(
            [d.binary, *d.args], stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, cwd=d.cwd,
        )
    d.pid_file.write_text(f"{proc.pid}\n")
    return proc


def wait_ready(d: Daemon, pid: int, timeout: float = START_TIMEOUT_SEC) -> str:
    """Poll until the daemon answers ``/-/ready``; its base URL. ``StartFailed`` with the
    reason otherwise (the caller shows the log's tail)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            raise StartFailed(f"{d.name} exited")
        url = listening(d.log_file)
        if url is not None and is_ready(url):
            return url
        time.sleep(POLL_SEC)
    raise StartFailed(f"{d.name} did not answer /-/ready within {timeout:.0f} s")


def stop_daemon(d: Daemon, timeout: float = STOP_TIMEOUT_SEC) -> str:
    """SIGTERM, then SIGKILL after ``timeout``; what happened, in words."""
    pid = running_pid(d)
    if pid is None:
        d.pid_file.unlink(missing_ok=True)
        return f"{d.name} is not running"
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(POLL_SEC)
    how = "stopped"
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        how = f"did not stop within {timeout:.0f} s: killed (SIGKILL)"
    d.pid_file.unlink(missing_ok=True)
    return f"{d.name} (pid {pid}) {how}"


# -- local mode ---------------------------------------------------------------------------


def local_up(daemons: Sequence[Daemon]) -> int:
    started: list[Daemon] = []
    urls: list[str] = []
    for d in daemons:
        pid = running_pid(d)
        if pid is not None:
            print(f"{d.name} is already running (pid {pid}): not starting a second; "
                  "checking that it is ready ...")
        else:
            pid = spawn(d).pid
            started.append(d)
            print(f"Started {d.name} (pid {pid}, log {d.log_file}); waiting for /-/ready ...")
        try:
            urls.append(wait_ready(d, pid))
        except StartFailed as exc:
            print(f"obs-up: {exc}. The end of {d.log_file}:\n{log_tail(d.log_file)}",
                  file=sys.stderr)
            for s in reversed(started):
                stop_daemon(s, timeout=5.0)
            return 1
    print("Observability stack (local mode: Prometheus and Alertmanager; Loki and Grafana "
          "need the compose mode):")
    for d, url in zip(daemons, urls, strict=True):
        print(f"  {d.name:<13} {url}  (pid {running_pid(d)}, log {d.log_file})")
    _secret_notice()
    print("  `make obs-down` stops them")
    return 0


def _secret_notice() -> None:
    if not SLACK_SECRET.is_file():
        print(f"  no Slack webhook at {SLACK_SECRET}: alerts show in Alertmanager's UI and "
              f"API, but its Slack notifications fail until you put the URL there (see "
              f"{SLACK_SECRET.name}.example)")


def local_down(daemons: Sequence[Daemon]) -> int:
    for d in reversed(daemons):  # Prometheus first: it sends to Alertmanager
        print(stop_daemon(d))
    return 0


def local_status(daemons: Sequence[Daemon]) -> int:
    """Exit 0 when every daemon runs and is ready, 3 otherwise (as ``systemctl status``)."""
    up = 0
    for d in daemons:
        pid = running_pid(d)
        url = listening(d.log_file) if pid is not None else None
        ready = url is not None and is_ready(url)
        state = "not running" if pid is None else f"pid {pid}, {url}, " + (
            "ready" if ready else "NOT ready")
        print(f"{d.name}: {state}")
        up += ready
    return 0 if up == len(daemons) else 3


# -- compose mode -------------------------------------------------------------------------


def docker_engine() -> tuple[bool, str]:
    """Whether ``docker info`` succeeds, and why not."""
    if shutil.which("docker") is None:
        return False, "no docker command"
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=15,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    why = (done.stderr.strip().splitlines() or ["docker info failed"])[-1]
    return done.returncode == 0, why


def compose_command() -> list[str] | None:
    """``docker compose`` (the plugin) when it works, else ``docker-compose``, else None."""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        done = subprocess.run(["docker", "compose", "version"], capture_output=True,
                              timeout=15, check=False)
        if done.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def missing_secrets(compose_file: Path) -> list[Path]:
    """The files the compose file's ``secrets:`` name that do not exist (compose refuses to
    start without them; they are git-ignored and have no defaults)."""
    import yaml

    try:
        doc = yaml.safe_load(compose_file.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    files = [Path(str(v["file"])) for v in (doc.get("secrets") or {}).values()
             if isinstance(v, dict) and "file" in v]
    return [f for f in files if not (compose_file.parent / f).is_file()]


def compose(action: str, compose_file: Path = COMPOSE_FILE) -> int:
    missing = missing_secrets(compose_file) if action == "up" else []
    if missing:
        names = "\n".join(f"  {compose_file.parent / f}" for f in missing)
        print(f"obs-up: compose needs these secret files first (git-ignored, no defaults; "
              f"see observability/README.md, 'Before the first up'):\n{names}",
              file=sys.stderr)
        return 1
    cmd = compose_command()
    if cmd is None:
        print("obs: Docker answers but neither `docker compose` nor `docker-compose` is "
              "installed.", file=sys.stderr)
        return 1
    extra = {"up": ["up", "-d"], "down": ["down"], "status": ["ps"]}[action]
    print("+ " + " ".join([*cmd, "-f", str(compose_file), *extra]))
    code = subprocess.run([*cmd, "-f", str(compose_file), *extra], check=False).returncode
    if action == "up" and code == 0:
        print(f"Prometheus http://{PROMETHEUS_LISTEN}, Alertmanager "
              f"http://{ALERTMANAGER_LISTEN}, Grafana http://127.0.0.1:3000, Loki "
              "http://127.0.0.1:3100")
        _secret_notice()
    return code


# -- the command --------------------------------------------------------------------------


def choose_mode(requested: str) -> tuple[str, str]:
    """``compose`` or ``local`` (or ``none``), and why."""
    if requested != "auto":
        return requested, f"--mode {requested}"
    engine, why = docker_engine()
    if engine:
        return "compose", "a Docker engine answers"
    missing = [b for b in ("prometheus", "prometheus-alertmanager") if shutil.which(b) is None]
    if missing:
        return "none", (f"no Docker engine ({why}) and no {' or '.join(missing)} on the PATH")
    return "local", f"no Docker engine ({why}): Debian's prometheus and prometheus-alertmanager"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.obs_stack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--mode", choices=("auto", "compose", "local"), default="auto",
                        help="compose, local (Debian's binaries), or auto (compose when "
                        "`docker info` succeeds)")
    parser.add_argument("--run-dir", default=str(RUN_DIR), help="pid, log and data folder "
                        "(default data/run; the stack's files go in its obs/)")
    parser.add_argument("--prometheus-listen", default=PROMETHEUS_LISTEN, metavar="H:P",
                        help=f"local mode: Prometheus's address (default {PROMETHEUS_LISTEN}; "
                        "port 0 picks a free one)")
    parser.add_argument("--alertmanager-listen", default=ALERTMANAGER_LISTEN, metavar="H:P",
                        help=f"local mode: Alertmanager's address (default "
                        f"{ALERTMANAGER_LISTEN}; Prometheus's targets/alertmanager.yml "
                        "names the default)")
    parser.add_argument("--rules-scale", type=float, metavar="F",
                        help="local mode: run the rules with every time divided by F (30: "
                        "for: 2m becomes 4s, 5m windows 10s, scrapes every second), so "
                        "alerts fire within a scenario's run (services/obs_rules.py)")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir)
    config = PROMETHEUS_CONFIG
    if args.action == "up" and args.rules_scale is not None:
        from services.obs_rules import write_overlay

        try:
            config = write_overlay(run_dir / "obs" / "config", args.rules_scale)
        except (OSError, ValueError) as exc:
            print(f"obs-up: --rules-scale: {exc}", file=sys.stderr)
            return 2
    daemons = local_daemons(run_dir, prometheus_config=config,
                            prometheus_listen=args.prometheus_listen,
                            alertmanager_listen=args.alertmanager_listen)
    if args.action != "up" and any(running_pid(d) is not None for d in daemons):
        # What the local mode started is stopped (or shown) whatever Docker says now.
        return local_down(daemons) if args.action == "down" else local_status(daemons)
    mode, why = choose_mode(args.mode)
    if mode == "none":
        if args.action == "up":
            print(f"obs-up: cannot run the stack: {why}.\n{INSTALL_HINT}", file=sys.stderr)
            return 1
        print("The observability stack is not running (nothing to stop)."
              if args.action == "down" else "The observability stack is not running.")
        return 0 if args.action == "down" else 3
    print(f"obs-{args.action}: {mode} mode ({why})")
    if mode == "compose" and args.rules_scale is not None:
        print("obs-up: --rules-scale works in local mode only (compose mounts the shipped "
              "rules); add --mode local", file=sys.stderr)
        return 2
    if mode == "compose":
        return compose(args.action)
    actions = {"up": local_up, "down": local_down, "status": local_status}
    return actions[args.action](daemons)


if __name__ == "__main__":
    sys.exit(main())
