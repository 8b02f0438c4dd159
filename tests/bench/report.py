"""Printing and summarising the ingest benchmark: header, result tables, ratio to syslog-ng."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

TARGET_PER_PROCESS = 150_000
TARGET_HALF_LOAD_P99_MS = 25.0
BEST_BATCH = 1000
# Above this much CPU used by processes outside the benchmark, a pass is flagged.
OTHER_CORES_NOTICE = 0.15


def filesystem(path: Path) -> str:
    out = subprocess.run(
        ["df", "--output=fstype", str(path)], capture_output=True, text=True, check=False
    )
    lines = out.stdout.split()
    return lines[-1] if len(lines) > 1 else "unknown"


def print_header(env: dict[str, Any]) -> None:
    senders = f"{env['client_processes']} client processes x {env['senders_per_process']} senders"
    if env.get("soak_only"):
        load = f"load: {senders} each, open loop; memory soak only, {env['soak_seconds']:g} s"
    else:
        soak = f"; then a {env['soak_seconds']:g} s memory soak" if env.get("soak_seconds") else ""
        load = (
            f"load: {senders} each (closed loop: "
            f"{env['client_processes'] * env['senders_per_process']} requests in flight), "
            f"{env['seconds']:g} s measured after {env['warmup']:g} s warm-up{soak}"
        )
    print(
        f"Ingest Gateway benchmark: {env['cores']} cores ({env['cpu']}), Python {env['python']}\n"
        f"{load}\n"
        f"gateway: one process per pass, "
        f"{'C hot path' if env.get('native') else 'pure Python (C extension not built)'}, "
        f"durability {env['durability']}, "
        f"sink on {env['sink_filesystem']}, config {env['config'] or 'defaults'}; "
        f"load average at start {env['load_average_at_start']:.2f}",
        flush=True,
    )


def summary(
    started: str,
    env: dict[str, Any],
    passes: list[dict[str, Any]],
    half: list[dict[str, Any]],
    peer: dict[str, Any] | None,
) -> dict[str, Any]:
    full = [p for p in passes if p["batch"] == BEST_BATCH and p["records_per_core"] > 0]
    best = max(full, key=lambda p: p["records_per_core"], default=None)
    ratio = None
    if best is not None and peer and peer.get("msgs_per_core"):
        ratio = {
            "front": best["front"],
            "records_per_core": best["records_per_core"],
            "syslog_ng_msgs_per_core": peer["msgs_per_core"],
            "ratio": best["records_per_core"] / peer["msgs_per_core"],
        }
    return {
        "started": started,
        "environment": env,
        "passes": passes,
        "half_load": half,
        "syslog_ng": peer,
        "per_core_ratio": ratio,
        "targets": {
            "records_per_sec_per_process_batch_1000": TARGET_PER_PROCESS,
            "half_load_p99_ms": TARGET_HALF_LOAD_P99_MS,
        },
    }


def _errors(p: dict[str, Any]) -> str:
    return str(sum(p["errors"].values())) if not p["failure"] else "FAILED"


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.rjust(w) if i > 1 else c.ljust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def print_passes(passes: list[dict[str, Any]]) -> None:
    head = [
        "front",
        "batch",
        "records/s",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "gw CPU cores",
        "records/s/core",
        "peak RSS MiB",
        "client cores",
    ]
    widths = [len(h) for h in head]
    widths[2] = 10
    print(_row(head, widths))
    for p in passes:
        print(_row([
            p["front"], str(p["batch"]), f"{p['records_per_sec']:,.0f}",
            f"{p['requests_per_sec']:,.0f}", f"{p['p50_ms']:.1f}", f"{p['p99_ms']:.1f}",
            _errors(p), f"{p['gw_cores']:.2f}", f"{p['records_per_core']:,.0f}",
            f"{p['peak_rss_mib']:.0f}", f"{p['client_cores']:.2f}",
        ], widths))  # fmt: skip


def print_half(half: list[dict[str, Any]]) -> None:
    print(
        f"\nlatency at half load: open loop at 50 % of the max rate, batches of {BEST_BATCH}, "
        "timed from the planned send"
    )
    head = [
        "front",
        "batch",
        "target rec/s",
        "records/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "late sends",
        "errors",
        "gw CPU cores",
    ]
    widths = [len(h) for h in head]
    print(_row(head, widths))
    for p in half:
        print(_row([
            p["front"], str(p["batch"]), f"{p['target_records_per_sec']:,.0f}",
            f"{p['records_per_sec']:,.0f}", f"{p['p50_ms']:.1f}", f"{p['p99_ms']:.1f}",
            f"{p['max_ms']:.1f}", str(p["late_sends"]), _errors(p), f"{p['gw_cores']:.2f}",
        ], widths))  # fmt: skip


def print_peer(doc: dict[str, Any]) -> None:
    peer = doc["syslog_ng"]
    if peer and not peer.get("failure"):
        lg = peer["loggen_reported_rate"]
        sent = f", reports {lg:,.0f} msgs/s sent" if lg is not None else ""
        print(
            f"\nsyslog-ng {peer['version']} tcp->json file: {peer['msgs_per_sec']:,.0f} msgs/s "
            f"written, {peer['cores']:.2f} cores, {peer['msgs_per_core']:,.0f} msgs/s/core, "
            f"peak RSS {peer['peak_rss_mib']:.0f} MiB "
            f"(loggen: {peer['connections']} connections, {peer['loggen_cores']:.2f} cores{sent})"
        )
        if peer["other_cores"] > OTHER_CORES_NOTICE:
            print(
                f"  (other processes kept {peer['other_cores']:.2f} cores busy meanwhile; "
                "disturbed)"
            )
    elif peer:
        print(f"\nsyslog-ng: not measured ({peer['failure']})")
    ratio = doc["per_core_ratio"]
    if ratio:
        print(
            f"ratio LogOps ({ratio['front']}, batches of {BEST_BATCH}, per core) / syslog-ng "
            f"(per core): {ratio['ratio']:.2f}"
        )


def print_checks(passes: list[dict[str, Any]], title: str = "checks") -> None:
    """Anything a reader should not miss: failures, records lost in the sink, logged errors."""
    lines = []
    for p in passes:
        name = f"{p['front']} batch {p['batch']} {p['mode']}"
        if p["failure"]:
            # A start failure carries the child's last log lines; the last one says why.
            lines.append(f"{name}: {p['failure'].splitlines()[-1]}")
        if p["errors"]:
            lines.append(f"{name}: errors {p['errors']}")
        if not p["failure"].startswith("did not start") and p["stored_lines"] != p["acked_records"]:
            lines.append(
                f"{name}: sink holds {p['stored_lines']:,} lines for "
                f"{p['acked_records']:,} acknowledged records"
            )
        if p["other_cores"] > OTHER_CORES_NOTICE:
            lines.append(
                f"{name}: other processes kept {p['other_cores']:.2f} cores busy during the "
                "window; these numbers are disturbed"
            )
        if p["gateway_exit"] not in (0, None):
            lines.append(f"{name}: gateway exited with {p['gateway_exit']}")
        for what, n in sorted(p["gateway_log"].items()):
            lines.append(f"{name}: gateway logged {n} x {what}")
    if not lines:
        print(f"\n{title}: sink lines match acknowledged records in every pass; machine quiet")
    else:
        print(f"\n{title}:\n  " + "\n  ".join(lines))


def print_profiles(passes: list[dict[str, Any]], limit: int = 8) -> None:
    for p in passes:
        if not p.get("profile"):
            continue
        print(f"\nprofile {p['front']} batch {p['batch']} {p['mode']} ({p['profile_file']}):")
        print("  self  total  function")
        for frame, own, total in p["profile"][:limit]:
            print(f"  {own:4.0%}  {total:5.0%}  {frame}")


def print_tables(doc: dict[str, Any]) -> None:
    print()
    print_passes(doc["passes"])
    if doc["half_load"]:
        print_half(doc["half_load"])
    print_peer(doc)
    print(
        f"target: >= {TARGET_PER_PROCESS:,} records/s per process on each front (batches of "
        f"{BEST_BATCH}); p99 < {TARGET_HALF_LOAD_P99_MS:g} ms at half load"
    )
    print_checks(doc["passes"] + doc["half_load"])
    print_profiles(doc["passes"] + doc["half_load"])
