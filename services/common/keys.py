"""API keys for signed requests: the ``ApiKey`` model, a ``KeyRing`` and the keys-file loader.

A keys file (``--keys-file F``, ``LOGOPS_AUTH_KEYS_FILE``) or the same YAML inline in
``LOGOPS_AUTH_KEYS``::

    keys:
      KEY_ID:
        emitter: NAME
        secrets: [SECRET, ...]        # the first signs, every one verifies (rotation)
        rate: {records_per_sec: N, requests_per_sec: N, burst: N}   # optional
        role: client                  # optional: client (default) or forwarder

A ``client`` key's pushes carry its emitter, whatever the body claims. A ``forwarder``
key (the Auth Gateway's own, for its hop to Ingest, or a relay in front of the Auth
Gateway) pushes other emitters' batches, which keep their names, on either gateway.
``burst`` is the records limit's; a key's own ``requests_per_sec`` has one second's worth
of requests as its burst, and a key without one has the gateway's ``requests_per_key``.

Validation is strict and every message names the key and the field, never a secret's
value. Secrets shorter than 16 bytes are refused: a guessable secret is a configuration
error, not a warning.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from services.common.config import ConfigError

log = logging.getLogger(__name__)

MIN_SECRET_BYTES = 16
MAX_NAME_CHARS = 64
ENV_KEYS_FILE = "LOGOPS_AUTH_KEYS_FILE"
ENV_KEYS_INLINE = "LOGOPS_AUTH_KEYS"

_KEY_FIELDS = frozenset({"emitter", "secrets", "rate", "role"})
ROLES = ("client", "forwarder")
_RATE_FIELDS = frozenset({"records_per_sec", "requests_per_sec", "burst"})


@dataclass(frozen=True)
class ApiKey:
    """One client key: who it is (``emitter``), how it signs, and its rate limits."""

    key_id: str
    emitter: str
    # First signs, all verify. Kept out of repr so a logged key never shows them.
    secrets: tuple[bytes, ...] = field(repr=False)
    records_per_sec: float | None = None
    requests_per_sec: float | None = None
    burst: int | None = None
    role: str = "client"

    def __post_init__(self) -> None:
        if not self.secrets:
            raise ValueError(f"key {self.key_id!r} has no secret")
        if self.role not in ROLES:
            raise ValueError(f"key {self.key_id!r}: role must be one of {', '.join(ROLES)}")

    @property
    def forwarder(self) -> bool:
        """Pushes other emitters' batches (a gateway's hop): their names are kept."""
        return self.role == "forwarder"

    def __repr__(self) -> str:
        return (
            f"ApiKey(key_id={self.key_id!r}, emitter={self.emitter!r}, "
            f"secrets=<{len(self.secrets)} hidden>, records_per_sec={self.records_per_sec!r}, "
            f"requests_per_sec={self.requests_per_sec!r}, burst={self.burst!r}, "
            f"role={self.role!r})"
        )

    @property
    def signing_secret(self) -> bytes:
        return self.secrets[0]


class KeyRing:
    """The known keys, looked up by id. Immutable once built."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        by_id: dict[str, ApiKey] = {}
        for key in keys:
            if key.key_id in by_id:
                raise ConfigError(f"keys.{key.key_id}: duplicate key id")
            by_id[key.key_id] = key
        self._keys = by_id

    def get(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __iter__(self) -> Iterator[ApiKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing({sorted(self._keys)!r})"


def load_keys_file(path: str | Path) -> KeyRing:
    """Read and validate a keys file; warn when group or others may read it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read keys file {path}: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "keys file %s is accessible to group or others (mode %o); chmod 600 it",
            path, stat.S_IMODE(mode), extra={"event": "keys_file_permissions"},
        )
    return parse_keys_yaml(text, str(path))


def keys_from_env(env: Mapping[str, str]) -> KeyRing | None:
    """Keys from ``LOGOPS_AUTH_KEYS_FILE`` (a path) or ``LOGOPS_AUTH_KEYS`` (inline YAML).

    None when neither is set; both at once is refused, since which one wins would be a guess.
    """
    file_path, inline = env.get(ENV_KEYS_FILE), env.get(ENV_KEYS_INLINE)
    if file_path and inline:
        raise ConfigError(f"{ENV_KEYS_FILE} and {ENV_KEYS_INLINE} are both set; use one")
    if file_path:
        return load_keys_file(file_path)
    if inline:
        return parse_keys_yaml(inline, ENV_KEYS_INLINE)
    return None


def parse_keys_yaml(text: str, source: str) -> KeyRing:
    """Validate keys-file YAML; ``source`` (a path or a variable name) prefixes errors."""
    try:
        doc = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_yaml_problem(exc)}") from exc
    if not isinstance(doc, dict) or set(doc) != {"keys"}:
        raise ConfigError(f"{source}: the top level must be a mapping with one key, 'keys'")
    entries = doc["keys"]
    if not isinstance(entries, dict) or not entries:
        raise ConfigError(f"{source}: keys: expected a mapping of key id to key, with one or more")
    try:
        return KeyRing(_parse_key(key_id, spec) for key_id, spec in entries.items())
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _parse_key(key_id: Any, spec: Any) -> ApiKey:
    if not isinstance(key_id, str):
        raise ConfigError(f"keys.{key_id}: a key id must be a string (quote it)")
    where = f"keys.{key_id}"
    problem = _name_problem(key_id, allow_space=False)
    if problem:
        raise ConfigError(f"{where}: key id {problem}")
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping with emitter and secrets")
    unknown = sorted(str(k) for k in set(spec) - _KEY_FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown field (known: emitter, rate, role, secrets)"
        )
    emitter = spec.get("emitter")
    if not isinstance(emitter, str):
        raise ConfigError(f"{where}.emitter: required, a string")
    problem = _name_problem(emitter, allow_space=True)
    if problem:
        raise ConfigError(f"{where}.emitter: {problem}")
    rate = _parse_rate(spec.get("rate"), f"{where}.rate")
    role = spec.get("role", "client")
    if role not in ROLES:
        raise ConfigError(f"{where}.role: expected one of {', '.join(ROLES)}, got {role!r}")
    secrets = _parse_secrets(spec.get("secrets"), where)
    return ApiKey(key_id, emitter, secrets, *rate, role=role)


def _parse_secrets(raw: Any, where: str) -> tuple[bytes, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}.secrets: required, a list of one or more secrets")
    secrets: list[bytes] = []
    for i, item in enumerate(raw):
        # Never echo the value: a mistyped secret is still a secret.
        if not isinstance(item, str):
            raise ConfigError(f"{where}.secrets[{i}]: expected a string (quote it)")
        secret = item.encode("utf-8")
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"{where}.secrets[{i}]: {len(secret)} bytes, at least {MIN_SECRET_BYTES} "
                "required (e.g. `openssl rand -hex 32`)"
            )
        secrets.append(secret)
    return tuple(secrets)


def _parse_rate(raw: Any, where: str) -> tuple[float | None, float | None, int | None]:
    if raw is None:
        return None, None, None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping (records_per_sec, requests_per_sec, burst)")
    unknown = sorted(str(k) for k in set(raw) - _RATE_FIELDS)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown field (known: burst, records_per_sec, requests_per_sec)"
        )
    records = _positive(raw.get("records_per_sec"), f"{where}.records_per_sec")
    requests = _positive(raw.get("requests_per_sec"), f"{where}.requests_per_sec")
    if records is None and requests is None:
        raise ConfigError(f"{where}: set records_per_sec, requests_per_sec or both")
    burst = raw.get("burst")
    if burst is not None and (isinstance(burst, bool) or not isinstance(burst, int) or burst < 1):
        raise ConfigError(f"{where}.burst: expected a whole number >= 1, got {burst!r}")
    return records, requests, burst


def _positive(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{where}: expected a number > 0, got {value!r}")
    return float(value)


def _name_problem(name: str, *, allow_space: bool) -> str | None:
    lowest = " " if allow_space else "!"
    if not name:
        return "must not be empty"
    if len(name) > MAX_NAME_CHARS:
        return f"longer than {MAX_NAME_CHARS} characters"
    if not all(lowest <= ch <= "~" for ch in name):
        kind = "printable ASCII" if allow_space else "printable ASCII without spaces"
        return f"{name!r} must be {kind}"
    return None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    # The problem and its line only: PyYAML's full message quotes the offending text.
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    return f"{problem} (line {mark.line + 1})" if mark is not None else str(problem)


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a repeated mapping key instead of keeping the last one."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            repeated = key in seen
            seen.add(key)
        except TypeError:  # unhashable: construct_mapping reports it
            continue
        if repeated:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)

