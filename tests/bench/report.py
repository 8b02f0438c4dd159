"""Printing and summarising the ingest benchmark: header, result tables, ratio to syslog-ng."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

TARGET_PER_PROCESS = 150_000
TARGET_HALF_LOAD_P99_MS = 25.0
BEST_BATCH = 1000
# Above this much CPU used by processes outside the benchmark, a pass is flagged.
OTHER_CORES_NOTICE = 0.15
BASELINE_S = 3.0  # hostile phase: good-client traffic before each attack starts
# The last line of a traceback the gateway printed: the exception and its message.
_EXC_LINE = re.compile(r"^\w+(Error|Exception|Exit)\b")


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
        name = f"{p.get('path') or p['front']} batch {p['batch']} {p['mode']}"
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
        name = f"{p.get('path') or p['front']} batch {p['batch']} {p['mode']}"
        print(f"\nprofile {name} ({p['profile_file']}):")
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


def front_stats(samples: list[tuple[float, float, str]], t0: float, t1: float) -> dict[str, Any]:
    """Requests sent in [t0, t1): successes, failures by reason, latency of the successes."""
    inside = [(lat, why) for began, lat, why in samples if t0 <= began < t1]
    lat = sorted(lat for lat, why in inside if not why)
    failed = Counter(why for _, why in inside if why)
    out: dict[str, Any] = {"ok": len(lat), "failed": sum(failed.values()), "reasons": dict(failed)}
    out["p50_ms"] = pct_ms(lat, 0.50) if lat else None
    out["p99_ms"] = pct_ms(lat, 0.99) if lat else None
    out["max_ms"] = lat[-1] * 1e3 if lat else None
    return out


def pct_ms(sorted_seconds: list[float], q: float) -> float:
    """The ``q`` quantile of sorted seconds, in milliseconds."""
    rank = max(0, min(len(sorted_seconds) - 1, int(q * len(sorted_seconds) + 0.5) - 1))
    return sorted_seconds[rank] * 1e3


def gateway_log_problems(entries: list[dict[str, Any]]) -> dict[str, int]:
    """Warnings, errors and the exception lines of tracebacks the gateway wrote."""
    found: Counter[str] = Counter()
    for e in entries:
        level = str(e.get("level", "")).upper()
        msg = str(e.get("msg", ""))
        if level in ("WARNING", "ERROR", "CRITICAL"):
            found[f"{level} {e.get('event') or msg[:80]}"] += 1
        elif "level" not in e and _EXC_LINE.match(msg):
            found[f"traceback: {msg[:100]}"] += 1
    return dict(found)


def _table(head: list[str], rows: list[list[str]]) -> None:
    """First column left-aligned, the rest right-aligned, widths from the contents."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                        enumerate(zip(r, widths, strict=True))).rstrip())  # fmt: skip


def _ms(value: float | None) -> str:
    return f"{value:,.0f}" if value is not None else "-"


def _okfail(s: dict[str, Any]) -> str:
    return f"{s['ok']}/{s['failed']}"


def _triple(g: dict[str, Any], key: str, fmt: str) -> str:
    whens = ("baseline", "peak", "after_idle")
    return "/".join(format(g[w][key], fmt) if g.get(w) else "-" for w in whens)


def _answers(checks: dict[str, str]) -> str:
    out = []
    for front in ("http", "grpc"):
        bad = {k: v for k, v in checks.items() if k.startswith(front) and v != "ok"}
        detail = ", ".join(f"{k.split('_', 1)[1]} {v}" for k, v in bad.items())
        out.append(f"{front} {'yes' if not bad else 'NO (' + detail + ')'}")
    return "; ".join(out)


def _hostile_notes(attacks: list[dict[str, Any]]) -> list[str]:
    notes = []
    for a in attacks:
        for front, g in a["good"].items():
            for phase in ("attack", "idle"):
                if g[phase]["reasons"]:
                    why = ", ".join(f"{k} x{n}" for k, n in sorted(g[phase]["reasons"].items()))
                    notes.append(f"{a['attack']}: good {front} client, {phase}: {why}")
            if g["failure"]:
                notes.append(f"{a['attack']}: good {front} client broke: {g['failure']}")
        att = a["attacker"]
        counts = ", ".join(f"{k} {v:,}" for k, v in sorted(att["counts"].items()))
        lat = f"; its requests p50 {att['p50_ms']:,.0f} ms, p99 {att['p99_ms']:,.0f} ms" if \
            att.get("requests") else ""  # fmt: skip
        notes.append(f"{a['attack']}: attacker saw {counts}{lat}")
        for what, n in sorted(a["gateway"]["log"].items()):
            notes.append(f"{a['attack']}: gateway logged {n} x {what}")
        if a["gateway"]["exit_code"] not in (None, 0):
            notes.append(f"{a['attack']}: gateway exited with {a['gateway']['exit_code']}")
        if a["restarted_after"]:
            notes.append(f"{a['attack']}: a fresh gateway was started for the next attack")
    return notes


def _baseline(attacks: list[dict[str, Any]]) -> str:
    out = []
    for front in ("grpc", "http"):
        p99 = [a["good"][front]["baseline"]["p99_ms"] for a in attacks if front in a["good"]]
        p99 = [v for v in p99 if v is not None]
        out.append(f"{front} {min(p99):,.0f}-{max(p99):,.0f} ms" if p99 else f"{front} -")
    return ", ".join(out)


def print_hostile(h: dict[str, Any]) -> None:
    """The attack-then-idle phase (tests/bench/hostile.py): good client and gateway, per attack."""
    attacks = h["attacks"]
    if not attacks:
        print(f"\nhostile phase: not measured ({h['failure'] or 'no attack ran'})")
        return
    print(
        f"\nhostile phase: good client, one request at a time, {h['good_rate_per_front']:g}/s of "
        f"{h['good_batch']} records per front; ok/failed requests and p99 ms of the successes, "
        f"during each {h['window_s']:g} s attack and in the {h['idle_s']:g} s idle after it"
    )
    rows = []
    for a in attacks:
        g, row = a["good"], [a["attack"]]
        for front in ("grpc", "http"):
            f = g.get(front)
            if f is None:
                row += ["-"] * 4
                continue
            row += [_okfail(f["attack"]), _ms(f["attack"]["p99_ms"]), _ms(f["attack"]["max_ms"])]
            row.append(_okfail(f["idle"]))
        rows.append(row)
    _table(["attack", "gRPC ok/fail", "p99", "max", "idle ok/fail",
            "HTTP ok/fail", "p99", "max", "idle ok/fail"], rows)  # fmt: skip
    print(
        f"good client p99 before each attack (the {BASELINE_S:g} s baseline): {_baseline(attacks)}"
    )
    print(
        f"\ngateway process (fd soft limit {h.get('gateway_fd_limit', '?')}, "
        f"{'C hot path' if h.get('native') else 'pure Python'}): "
        "baseline/peak during/after idle; answering = health and a push after the idle"
    )
    rows = []
    for a in attacks:
        g = a["gateway"]
        rows.append([
            a["attack"], _triple(g, "rss_mib", ".0f"), _triple(g, "threads", "d"),
            _triple(g, "fds", "d"), f"{g['cores_during']:.2f}", "yes" if g["alive"] else "NO",
            _answers(g["answering"]),
        ])  # fmt: skip
    _table(["attack", "RSS MiB", "threads", "open fds", "gw cores", "alive", "answering"], rows)
    print("\nhostile notes:\n  " + "\n  ".join(_hostile_notes(attacks)))
    if h["failure"]:
        print(f"  {h['failure'].splitlines()[-1]}")
