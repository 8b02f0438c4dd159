"""Typed, frozen configuration: YAML file, then ``LOGOPS_*`` environment, then flags.

Each section is a frozen dataclass; the loader walks the dataclass fields, so a key
that no field declares, or a value of the wrong type, fails at start-up with a message
that names the key (``ingest.sink.max_file_bytes: expected an integer, got 'big'``).
Environment names are derived from the key path: ``ingest.sink.dir`` is
``LOGOPS_INGEST_SINK_DIR``. Only the entry point calls :func:`load_config`.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml


class ConfigError(ValueError):
    """A configuration key is unknown or its value is invalid; the message names it."""


@dataclass(frozen=True)
class ListenConfig:
    host: str = "127.0.0.1"
    port: int = 0


@dataclass(frozen=True)
class LimitsConfig:
    # Applied before buffering: bytes after decompression, records per batch, in flight.
    max_body_bytes: int = 4 * 1024 * 1024
    max_records: int = 10_000
    max_inflight: int = 64
    # One record's text (msg or raw line) beyond this is rejected on its own.
    max_record_bytes: int = 256 * 1024
    retry_after_sec: float = 1.0


@dataclass(frozen=True)
class ConnectionsConfig:
    """What one client connection may hold, on both fronts (as nginx's
    client_header_timeout, client_body_timeout and keepalive_timeout, Envoy's
    request_headers_timeout and gRPC's connection management)."""

    # HTTP connections open at once; the file-descriptor limit is raised to fit them.
    max_connections: int = 4096
    # A complete request head (HTTP), or the connection's handshake (gRPC), within this.
    header_timeout_sec: float = 10.0
    # The whole body (HTTP) or request message (gRPC) within this, once the head is in.
    body_timeout_sec: float = 30.0
    # HTTP keep-alive connections with no request in progress are closed after this.
    idle_timeout_sec: float = 15.0
    # gRPC: connections without RPCs are closed (GOAWAY) after this; every connection
    # is asked to reconnect after the maximum age, with a grace for calls in progress.
    grpc_idle_timeout_sec: float = 300.0
    grpc_max_connection_age_sec: float = 3600.0
    # gRPC: concurrent streams one connection may open; clients queue beyond it.
    grpc_max_streams_per_connection: int = 16


@dataclass(frozen=True)
class SinkConfig:
    dir: str = "data/ingest"
    max_file_bytes: int = 256 * 1024 * 1024
    # batch: fsync before every acknowledgement; interval: every fsync_interval_ms; none.
    durability: str = "batch"
    fsync_interval_ms: int = 1000
    # How long and how many batch ids are remembered for idempotency.
    dedup_window_sec: int = 86_400
    dedup_max_ids: int = 2_000_000


@dataclass(frozen=True)
class PiiConfig:
    # mask (j***@example.com, 83.11.x.x), hash (stable keyed digest) or off.
    mode: str = "mask"
    fields: tuple[str, ...] = ()
    hash_salt: str = ""


@dataclass(frozen=True)
class HousekeepingConfig:
    retention_days: float = 2.0
    # delete, or archive (gzip in place).
    action: str = "delete"
    # 0 turns the in-process schedule off; `logops housekeeping` still works.
    interval_sec: int = 0


@dataclass(frozen=True)
class SyslogConfig:
    """The Ingest Gateway's syslog listener: TCP (RFC 6587 octet counting or LF framing)
    and UDP (RFC 5426) on the same port number. ``enabled: false`` turns it off."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 5514
    # A message over this is dropped and counted (RFC 5424 asks receivers for 2048).
    max_message_bytes: int = 64 * 1024
    max_connections: int = 1024
    # A TCP connection that sends nothing for this long is closed; 0: never.
    idle_timeout_sec: float = 300.0
    # Messages per stored batch, and the longest a message waits for its batch.
    batch_records: int = 1000
    batch_delay_ms: int = 50
    # Messages read but not stored yet: at this, reading stops until the sink catches up.
    max_pending: int = 20_000


@dataclass(frozen=True)
class IngestConfig:
    http: ListenConfig = field(default_factory=lambda: ListenConfig(port=8080))
    grpc: ListenConfig = field(default_factory=lambda: ListenConfig(port=50051))
    http_threads: int = 8
    grpc_reflection: bool = True
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    connections: ConnectionsConfig = field(default_factory=ConnectionsConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    pii: PiiConfig = field(default_factory=PiiConfig)
    housekeeping: HousekeepingConfig = field(default_factory=HousekeepingConfig)
    syslog: SyslogConfig = field(default_factory=SyslogConfig)
    shutdown_grace_sec: float = 5.0
    # YAML keys file (the Auth Gateway's format): pushes must be signed with one of its keys
    # (the Auth Gateway's hop key). Empty: LOGOPS_AUTH_KEYS_FILE / LOGOPS_AUTH_KEYS if set
    # (read by the entry point), else every push is taken unsigned.
    keys_file: str = ""


@dataclass(frozen=True)
class RateConfig:
    """A rate with a burst; 0 per second means no limit."""

    per_sec: float = 0.0
    burst: int = 0


@dataclass(frozen=True)
class ForwardConfig:
    # grpc://HOST:PORT (default) or http://HOST:PORT: the Ingest Gateway.
    target: str = "grpc://127.0.0.1:50051"
    # The gateway's own key for the hop (id, and a file holding its secret); empty: unsigned.
    key_id: str = ""
    secret_file: str = ""
    attempt_timeout_sec: float = 2.0
    # A push's whole budget, attempts and backoff included, when its client sets none.
    deadline_sec: float = 10.0
    max_attempts: int = 4
    backoff_base_sec: float = 0.05
    backoff_max_sec: float = 2.0
    breaker_fail_max: int = 5
    breaker_reset_sec: float = 10.0


@dataclass(frozen=True)
class SpoolConfig:
    dir: str = "data/spool"
    max_bytes: int = 1024 * 1024 * 1024
    max_batches: int = 100_000
    # batch: fsync before the 202; interval; none.
    durability: str = "batch"


@dataclass(frozen=True)
class AuthConfig:
    http: ListenConfig = field(default_factory=lambda: ListenConfig(port=8081))
    grpc: ListenConfig = field(default_factory=lambda: ListenConfig(port=50052))
    http_threads: int = 8
    grpc_reflection: bool = True
    # hmac: every push signed (LOGOPS1-HMAC-SHA256); none: open, for local use only.
    mode: str = "hmac"
    # YAML keys file; LOGOPS_AUTH_KEYS_FILE / LOGOPS_AUTH_KEYS are read by the entry point.
    keys_file: str = ""
    # redis://HOST:PORT/DB: nonces and rate limits shared by several replicas; empty: memory.
    redis: str = ""
    max_clock_skew_sec: int = 300
    nonce_ttl_sec: int = 600
    # Requests/s per key (records/s and burst come from each key's entry), and a cap on
    # records/s across all keys.
    requests_per_key: RateConfig = field(default_factory=lambda: RateConfig(50.0, 100))
    records_per_key: RateConfig = field(default_factory=lambda: RateConfig(100_000.0, 200_000))
    global_records: RateConfig = field(default_factory=RateConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    connections: ConnectionsConfig = field(default_factory=ConnectionsConfig)
    forward: ForwardConfig = field(default_factory=ForwardConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    shutdown_grace_sec: float = 5.0


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"


@dataclass(frozen=True)
class Config:
    ingest: IngestConfig = field(default_factory=IngestConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)


# Whole-number settings with bounds of their own, by key name (``port`` in any section).
_INT_RANGES: dict[str, tuple[int, int | None]] = {
    "port": (0, 65535),
    "http_threads": (1, 1024),
    "max_body_bytes": (1, None),
    "max_records": (1, None),
    "max_record_bytes": (1, None),
    "max_file_bytes": (1, None),
    "dedup_max_ids": (1, None),
    "max_connections": (1, None),
    "grpc_max_streams_per_connection": (1, None),
    "max_attempts": (1, 100),
    "breaker_fail_max": (1, None),
    "max_batches": (1, None),
    "max_clock_skew_sec": (1, 3600),
    "nonce_ttl_sec": (1, None),
    "max_message_bytes": (1, None),
    "batch_records": (1, None),
    "max_pending": (1, None),
}

_CHOICES: dict[str, tuple[str, ...]] = {
    "ingest.sink.durability": ("batch", "interval", "none"),
    "ingest.pii.mode": ("mask", "hash", "off"),
    "ingest.housekeeping.action": ("delete", "archive"),
    "auth.mode": ("hmac", "none"),
    "auth.spool.durability": ("batch", "interval", "none"),
    "logging.level": ("DEBUG", "INFO", "WARNING", "ERROR"),
}


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the process config: defaults < YAML file < ``LOGOPS_*`` env < overrides.

    ``overrides`` uses dotted keys (``{"ingest.http.port": 0}``), as the CLI flags do.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        raw = loaded or {}
    for dotted, value in _env_values(env or {}).items():
        _set_dotted(raw, dotted, value)
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, dotted, value)
    config: Config = _build(Config, raw, "")
    return config


def env_name(dotted: str) -> str:
    return "LOGOPS_" + dotted.replace(".", "_").upper()


def _leaf_keys(cls: type, prefix: str = "") -> list[str]:
    keys: list[str] = []
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        dotted = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys.extend(_leaf_keys(tp, dotted + "."))  # type: ignore[arg-type]
        else:
            keys.append(dotted)
    return keys


# Variables that are not settings, read by the entry point itself: keys given inline.
_NOT_SETTINGS = frozenset({"LOGOPS_AUTH_KEYS"})


def _env_values(env: Mapping[str, str]) -> dict[str, Any]:
    known = {env_name(k): k for k in _leaf_keys(Config)}
    sections = {env_name(f.name) + "_" for f in dataclasses.fields(Config)}
    values: dict[str, Any] = {}
    for name, value in env.items():
        if name in _NOT_SETTINGS:
            continue
        if name in known:
            values[known[name]] = yaml.safe_load(value) if value else value
        elif any(name.startswith(s) for s in sections):
            raise ConfigError(f"{name}: unknown setting (known: {', '.join(sorted(known))})")
    return values


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part} is not a section")
        node = child
    node[leaf] = value


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "config"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(
            f"{prefix}{unknown[0]}: unknown key (known in {where}: {', '.join(sorted(names))})"
        )
    kwargs: dict[str, Any] = {}
    for name, value in raw.items():
        tp = hints[name]
        dotted = f"{prefix}{name}"
        if dataclasses.is_dataclass(tp):
            default = getattr(cls(), name)
            # Anything else (``http: 8080``, ``pii: off``) is refused by _build, named.
            if value is None or isinstance(value, dict):
                value = {**dataclasses.asdict(default), **(value or {})}
            kwargs[name] = _build(tp, value, dotted + ".")  # type: ignore[arg-type]
        else:
            kwargs[name] = _coerce(tp, value, dotted)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, dotted: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return _coerce(next(a for a in get_args(tp) if a is not type(None)), value, dotted)
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{dotted}: expected a list, got {value!r}")
        return tuple(str(i).strip() for i in items if str(i).strip())
    scalar = _SCALARS.get(tp)
    if scalar is not None:
        return scalar(value, dotted)
    return _coerce_str(value, dotted)


def _coerce_bool(value: Any, dotted: str) -> bool:
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{dotted}: expected true or false, got {value!r}")


def _coerce_int(value: Any, dotted: str) -> int:
    low, high = _INT_RANGES.get(dotted.rsplit(".", 1)[-1], (0, None))
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value >= low
        and (high is None or value <= high)
    ):
        return value
    expected = f"from {low} to {high}" if high is not None else f">= {low}"
    raise ConfigError(f"{dotted}: expected a whole number {expected}, got {value!r}")


def _coerce_float(value: Any, dotted: str) -> float:
    # A connection timeout of zero would close every connection at once.
    positive = ".connections." in dotted
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (value > 0 if positive else value >= 0)
    ):
        return float(value)
    bound = "> 0" if positive else ">= 0"
    raise ConfigError(f"{dotted}: expected a number {bound}, got {value!r}")


_SCALARS: dict[Any, Any] = {bool: _coerce_bool, int: _coerce_int, float: _coerce_float}


def _coerce_str(value: Any, dotted: str) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ConfigError(f"{dotted}: expected a string, got {value!r}")
    text = str(value)
    choices = _CHOICES.get(dotted)
    if choices is not None:
        norm = text.upper() if dotted == "logging.level" else text.lower()
        if norm not in choices:
            raise ConfigError(f"{dotted}: expected one of {', '.join(choices)}, got {text!r}")
        return norm
    return text
