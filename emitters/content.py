"""Realistic content for generated records: the knobs, the word pools and the app event.

Every format draws its records from a seeded ``random.Random`` so that ``--seed`` gives
the same lines; nothing here reads the clock or the global random state. A format's
``sample`` builds the record dict its own ``render`` takes; the generic application
event of :func:`app_record` serves the formats that carry ``ts level msg`` (json, csv,
logfmt, the syslog family, minimal, noise), the web and Windows formats add their own.

Addresses come from the documentation ranges of RFC 5737 (``192.0.2.0/24``,
``198.51.100.0/24``, ``203.0.113.0/24``) and the private ones of RFC 1918, names from
``example.com``/``example.net`` (RFC 2606), so generated traffic never names a real party.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
ERROR_LEVELS = ("ERROR", "FATAL")
# Weights of the non-error levels; error_ratio decides the share of ERROR and FATAL.
DEFAULT_LEVEL_MIX: Mapping[str, float] = MappingProxyType(
    {"TRACE": 0.02, "DEBUG": 0.18, "INFO": 0.65, "WARN": 0.15}
)
# Among error records, one in twenty is FATAL.
_FATAL_SHARE = 0.05


@dataclass(frozen=True, slots=True)
class ContentOptions:
    """What a run asks of its content; the same for every format.

    ``error_ratio`` is the share of records at ERROR or FATAL (for access logs, the
    share of 5xx answers); ``level_mix`` weighs the other levels. ``missing_ts_ratio``
    and ``missing_level_ratio`` drop ``ts`` / ``level`` from that share of records (the
    formats that can express an absent field write it so: ``-``, an empty column, or
    no key), which is how a run tests the missing-field counters downstream.
    """

    error_ratio: float = 0.05
    level_mix: Mapping[str, float] = field(default_factory=lambda: DEFAULT_LEVEL_MIX)
    missing_ts_ratio: float = 0.0
    missing_level_ratio: float = 0.0

    def __post_init__(self) -> None:
        for name in ("error_ratio", "missing_ts_ratio", "missing_level_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
        unknown = sorted(set(self.level_mix) - set(LEVELS))
        if unknown:
            raise ValueError(f"level_mix names unknown levels: {', '.join(unknown)}")
        weights = list(self.level_mix.values())
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError("level_mix weights must be >= 0 and not all zero")


# -- word pools ----------------------------------------------------------------------

SERVICES = (
    *("checkout", "payments", "orders", "inventory", "search", "auth", "gateway", "billing"),
    *("shipping", "catalog", "notifications", "recommendations", "users", "cart"),
)
HOSTS = tuple(
    f"{role}{n:02d}.{zone}.example.net"
    for role in ("web", "app", "api", "db", "worker")
    for n in range(1, 5)
    for zone in ("eu1", "us2")
)
USERS = (
    *("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"),
    *("mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter"),
)
DOMAINS = ("example.com", "example.net", "example.org", "shop.example", "corp.example")

_MESSAGES: Mapping[str, Sequence[str]] = MappingProxyType(
    {
        "TRACE": (
            "entering {fn} with {n} args",
            "cache probe key=user:{id} hit={hit}",
            "span {trace} child of {span}",
        ),
        "DEBUG": (
            "loaded {n} rows from {table} in {ms} ms",
            "retrying connection to {peer} (attempt {attempt})",
            "config reloaded from /etc/{svc}/{svc}.yaml",
            "query plan for {table}: index scan on {table}_pkey",
        ),
        "INFO": (
            "order {id} placed by {user}@{domain} total={amount}",
            "user {user} logged in from {ip}",
            "GET /api/v1/{table}/{id} 200 in {ms} ms",
            "payment {id} captured amount={amount} currency=EUR",
            "shipment {id} handed to carrier",
            "started worker pool size={n}",
            "health check passed for {peer}",
        ),
        "WARN": (
            "slow query on {table} took {ms} ms",
            "retry {attempt}/5 calling {peer}: timeout after {ms} ms",
            "disk usage at {pct}% on /var/lib/{svc}",
            "deprecated API /api/v0/{table} called by {ip}",
            "connection pool for {peer} near capacity ({n}/64)",
        ),
        "ERROR": (
            "payment {id} declined: card expired",
            "upstream {peer} returned 503 after {ms} ms",
            "failed to write {table} row {id}: deadlock detected",
            "request {trace} failed: connection reset by {ip}",
            "could not send mail to {user}@{domain}: 550 mailbox unavailable",
        ),
        "FATAL": (
            "out of memory: killed worker {n}",
            "cannot open database {table}: no space left on device",
            "panic: nil map assignment in {fn}",
        ),
    }
)
_TABLES = ("orders", "users", "payments", "items", "sessions", "carts", "invoices")
_FUNCTIONS = ("handle_request", "load_cart", "price_items", "authorize", "flush_batch")


def ipv4(rng: random.Random, public: bool = True) -> str:
    """An address from the documentation ranges (``public``) or from 10.0.0.0/8."""
    if public:
        prefix = rng.choice(("192.0.2", "198.51.100", "203.0.113"))
        return f"{prefix}.{rng.randint(1, 254)}"
    return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def hex_id(rng: random.Random, digits: int) -> str:
    """``digits`` random lowercase hex digits (trace ids, hashes, GUID parts)."""
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def pick_level(rng: random.Random, opts: ContentOptions) -> str:
    """A level: ERROR/FATAL with probability ``error_ratio``, else from ``level_mix``."""
    if rng.random() < opts.error_ratio:
        return "FATAL" if rng.random() < _FATAL_SHARE else "ERROR"
    levels = list(opts.level_mix)
    return rng.choices(levels, weights=[opts.level_mix[lv] for lv in levels])[0]


def message(rng: random.Random, level: str, service: str) -> str:
    """A plausible message for ``level`` from ``service``."""
    template = rng.choice(_MESSAGES[level])
    return template.format(
        fn=rng.choice(_FUNCTIONS),
        n=rng.randint(1, 64),
        id=rng.randint(1000, 999_999),
        hit=rng.choice(("true", "false")),
        trace=hex_id(rng, 16),
        span=hex_id(rng, 8),
        table=rng.choice(_TABLES),
        ms=rng.randint(1, 30_000) if level in ("WARN", "ERROR") else rng.randint(1, 400),
        peer=f"{rng.choice(SERVICES)}.svc.cluster.local",
        attempt=rng.randint(1, 5),
        svc=service,
        user=rng.choice(USERS),
        domain=rng.choice(DOMAINS),
        amount=f"{rng.randint(1, 2000)}.{rng.randint(0, 99):02d}",
        ip=ipv4(rng),
        pct=rng.randint(80, 99),
    )


def rfc3339_ms(epoch: float) -> str:
    """``epoch`` as RFC 3339 UTC with milliseconds and ``Z``: ``2024-03-12T14:05:09.482Z``."""
    moment = dt.datetime.fromtimestamp(epoch, dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def app_record(rng: random.Random, opts: ContentOptions, now: float) -> dict[str, Any]:
    """The generic application event: ``ts level msg service host pid`` and a trace id.

    ``ts`` is RFC 3339 text (:func:`rfc3339_ms`); ``ts`` and ``level`` are left out at the
    options' missing ratios.
    """
    level = pick_level(rng, opts)
    service = rng.choice(SERVICES)
    rec: dict[str, Any] = {}
    if rng.random() >= opts.missing_ts_ratio:
        rec["ts"] = rfc3339_ms(now)
    if rng.random() >= opts.missing_level_ratio:
        rec["level"] = level
    rec["msg"] = message(rng, level, service)
    rec["service"] = service
    rec["host"] = rng.choice(HOSTS)
    rec["pid"] = rng.randint(300, 65_000)
    rec["trace_id"] = hex_id(rng, 32)
    return rec
