"""Throwaway keys for local runs (``logops up``, ``make demo``): a client key and the hop key.

Written as the gateways read them (docs/signing.md): ``auth-keys.yaml`` holds the client
key ``demo`` for the Auth Gateway; ``ingest-keys.yaml`` holds the Auth Gateway's hop key as a
``forwarder`` (and ``demo`` as a client, so it may push to Ingest directly); each secret is
also in a file of its own (``demo.secret``, ``hop.secret``) for ``hmac_curl.sh`` and
``auth.forward.secret_file``. Everything is ``chmod 600`` in a ``chmod 700`` folder. These
keys are for one machine and one developer: never copy them anywhere else.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

CLIENT_KEY_ID = "demo"
HOP_KEY_ID = "auth-gateway"
# Generous enough for scenarios on one machine; the per-key request limit still applies.
CLIENT_RATE = "{records_per_sec: 5000, burst: 10000}"


@dataclass(frozen=True)
class DevKeys:
    """Where the keys are. ``auth_keys`` and ``client_secret`` are None when the Auth
    Gateway's client keys come from elsewhere (the user's own)."""

    dir: Path
    ingest_keys: Path
    hop_secret: Path
    auth_keys: Path | None = None
    client_secret: Path | None = None

    @property
    def hop_env(self) -> dict[str, str]:
        """The Auth Gateway's settings that sign its hop to Ingest with the hop key."""
        return {
            "LOGOPS_AUTH_FORWARD_KEY_ID": HOP_KEY_ID,
            "LOGOPS_AUTH_FORWARD_SECRET_FILE": str(self.hop_secret),
        }


def ensure_keys(directory: str | Path, with_client: bool = True) -> tuple[DevKeys, bool]:
    """The keys in ``directory``, made where missing; also says whether any were made.

    Existing secrets are kept, so a secret file a developer already uses stays valid
    across runs. ``with_client=False``: only the hop key (the client keys are the user's).
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    hop, made_hop = _secret(folder / "hop.secret")
    client, made_client = (
        _secret(folder / f"{CLIENT_KEY_ID}.secret") if with_client else (None, False)
    )
    ingest_entries = [_entry(HOP_KEY_ID, "auth-gateway", hop, "role: forwarder")]
    keys = DevKeys(folder, folder / "ingest-keys.yaml", folder / "hop.secret")
    if client is not None:
        client_entry = _entry(CLIENT_KEY_ID, CLIENT_KEY_ID, client, f"rate: {CLIENT_RATE}")
        ingest_entries.append(client_entry)
        _write(folder / "auth-keys.yaml", _keys_yaml([client_entry]))
        keys = DevKeys(
            folder, keys.ingest_keys, keys.hop_secret,
            folder / "auth-keys.yaml", folder / f"{CLIENT_KEY_ID}.secret",
        )
    _write(keys.ingest_keys, _keys_yaml(ingest_entries))
    return keys, made_hop or made_client


def _secret(path: Path) -> tuple[str, bool]:
    """The secret in ``path``, or a new one written there (64 hex characters)."""
    if path.is_file():
        text = path.read_text(encoding="ascii").strip()
        if len(text) >= 32:
            return text, False
    secret = secrets.token_hex(32)
    _write(path, secret + "\n")
    return secret, True


def _entry(key_id: str, emitter: str, secret: str, extra: str) -> str:
    # Quoted: a hex secret of digits only would otherwise load as a number.
    return (
        f"  {key_id}:\n    emitter: {emitter}\n    secrets: [\"{secret}\"]\n    {extra}\n"
    )


def _keys_yaml(entries: list[str]) -> str:
    head = "# Throwaway keys made by LogOps for local use (services/devkeys.py).\nkeys:\n"
    return head + "".join(entries)


def _write(path: Path, text: str) -> None:
    """Written readable by the owner only from the first byte (no window at 0644)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(text)
    path.chmod(0o600)
