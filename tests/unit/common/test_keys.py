"""Keys files: what loads, what is refused (naming the key and field), and secrets kept quiet."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from services.common.config import ConfigError
from services.common.keys import ApiKey, KeyRing, keys_from_env, load_keys_file, parse_keys_yaml

ROOT = Path(__file__).resolve().parents[3]
SECRET = "s3cr3t-value-that-is-long-enough"

GOOD = f"""
keys:
  k1:
    emitter: web frontend
    secrets: [{SECRET}, older-secret-still-valid]
    rate: {{records_per_sec: 500, requests_per_sec: 5, burst: 1000}}
  k2:
    emitter: batch
    secrets: ["{SECRET}-2"]
"""


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_keys_file_loads_every_field(tmp_path: Path) -> None:
    ring = load_keys_file(write(tmp_path, GOOD))
    assert len(ring) == 2 and "k1" in ring and "k3" not in ring
    k1 = ring.get("k1")
    assert k1 == ApiKey(
        "k1", "web frontend", (SECRET.encode(), b"older-secret-still-valid"), 500.0, 5.0, 1000
    )
    assert k1.signing_secret == SECRET.encode()
    k2 = ring.get("k2")
    assert k2 is not None
    assert (k2.records_per_sec, k2.requests_per_sec, k2.burst) == (None, None, None)
    assert ring.get("nobody") is None
    assert [k.key_id for k in ring] == ["k1", "k2"]


def test_the_shipped_example_loads_and_its_secrets_are_placeholders() -> None:
    ring = load_keys_file(ROOT / "services" / "auth" / "keys.example.yaml")
    assert len(ring) >= 2
    assert all(s.startswith(b"CHANGE-ME") for key in ring for s in key.secrets)


def test_rate_without_requests_per_sec_or_burst() -> None:
    text = key_yaml(f"emitter: e\nsecrets: [{SECRET}]\nrate: {{records_per_sec: 7}}", "k")
    key = parse_keys_yaml(text, "t").get("k")
    assert key is not None
    assert (key.records_per_sec, key.requests_per_sec, key.burst) == (7.0, None, None)


def key_yaml(body: str, key_id: str = "k1") -> str:
    return f"keys:\n  {key_id}:\n" + "".join(f"    {line}\n" for line in body.splitlines())


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (key_yaml("emitter: e\nsecrets: [short-secret]"), "keys.k1.secrets[0]: 12 bytes"),
        (key_yaml(f"emitter: e\nsecrets: [{SECRET}, tiny]"), "keys.k1.secrets[1]"),
        (key_yaml("emitter: e\nsecrets: []"), "keys.k1.secrets"),
        (key_yaml("emitter: e"), "keys.k1.secrets"),
        (key_yaml(f"emitter: e\nsecrets: {SECRET}"), "keys.k1.secrets"),
        (key_yaml("emitter: e\nsecrets: [12345678901234567890]"), "keys.k1.secrets[0]"),
        (key_yaml(f"secrets: [{SECRET}]"), "keys.k1.emitter"),
        (key_yaml(f"emitter: {'e' * 65}\nsecrets: [{SECRET}]"), "keys.k1.emitter: longer"),
        (key_yaml(f"emitter: émetteur\nsecrets: [{SECRET}]"), "keys.k1.emitter"),
        (key_yaml(f"emitter: e\nsecrets: [{SECRET}]", "k" * 65), "key id longer than 64"),
        (key_yaml(f"emitter: e\nsecrets: [{SECRET}]", "'a b'"), "keys.a b: key id"),
        (key_yaml(f"emitter: e\nsecrets: [{SECRET}]", "2024"), "keys.2024: a key id must be"),
        (key_yaml(f"emitter: e\nsecrets: [{SECRET}]\nsecret: x"), "keys.k1.secret: unknown"),
        (key_yaml(f"emitter: e\nsecrets: [{SECRET}]\nrate: 5"), "keys.k1.rate: expected"),
        (key_yaml(f"emitter: e\nsecrets: [{SECRET}]\nrate: {{rps: 5}}"), "keys.k1.rate.rps"),
        (key_yaml(f"emitter: e\nsecrets: [{SECRET}]\nrate: {{burst: 5}}"), "keys.k1.rate: set"),
        (
            key_yaml(f"emitter: e\nsecrets: [{SECRET}]\nrate: {{records_per_sec: -1}}"),
            "keys.k1.rate.records_per_sec",
        ),
        (
            key_yaml(f"emitter: e\nsecrets: [{SECRET}]\nrate: {{records_per_sec: 1, burst: 0}}"),
            "keys.k1.rate.burst",
        ),
        (
            key_yaml(f"emitter: e\nsecrets: [{SECRET}]\nrate: {{requests_per_sec: true}}"),
            "keys.k1.rate.requests_per_sec",
        ),
        (key_yaml("- a list"), "keys.k1: expected a mapping"),
        ("keys: {}", "keys: expected a mapping"),
        ("keys: [a, b]", "keys: expected a mapping"),
        ("[1, 2]", "top level"),
        ("", "top level"),
        (f"keys: {{k: {{emitter: e, secrets: [{SECRET}]}}}}\nextra: 1\n", "top level"),
        ("keys: {k: [unclosed", "not valid YAML"),
    ],
)
def test_bad_keys_are_refused_naming_the_key_and_field(text: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_keys_yaml(text, "keys.yaml")
    assert named in str(info.value)
    assert str(info.value).startswith("keys.yaml: ")
    assert SECRET not in str(info.value) and "short-secret" not in str(info.value)


def test_a_key_id_given_twice_is_refused() -> None:
    entry = f"{{emitter: a, secrets: [{SECRET}]}}"
    text = f"keys:\n  k1: {entry}\n  k1: {entry}\n"
    with pytest.raises(ConfigError, match=r"duplicate key 'k1' \(line 3\)"):
        parse_keys_yaml(text, "keys.yaml")


def test_a_key_ring_refuses_duplicate_ids() -> None:
    key = ApiKey("k", "e", (SECRET.encode(),))
    with pytest.raises(ConfigError, match=r"keys\.k: duplicate key id"):
        KeyRing([key, key])


def test_a_key_without_secrets_cannot_exist() -> None:
    with pytest.raises(ValueError, match="no secret"):
        ApiKey("k", "e", ())


def test_secrets_never_show_in_repr_or_str() -> None:
    ring = parse_keys_yaml(GOOD, "t")
    key = ring.get("k1")
    for text in (repr(key), str(key), repr(ring), f"{key}", repr(list(ring))):
        assert SECRET not in text and "older-secret" not in text
    assert "secrets=<2 hidden>" in repr(key)


def test_a_file_others_can_read_is_loaded_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="services.common.keys"):
        assert len(load_keys_file(write(tmp_path, GOOD, 0o644))) == 2
    [record] = caplog.records
    assert record.event == "keys_file_permissions"  # type: ignore[attr-defined]
    assert "644" in record.getMessage() and SECRET not in record.getMessage()


def test_a_private_file_loads_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="services.common.keys"):
        load_keys_file(write(tmp_path, GOOD, 0o600))
    assert caplog.records == []


def test_a_missing_file_names_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read keys file .*nope\.yaml"):
        load_keys_file(tmp_path / "nope.yaml")


def test_errors_in_a_file_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, key_yaml("emitter: e\nsecrets: [short]"))
    with pytest.raises(ConfigError, match=f"^{path}: keys.k1.secrets"):
        load_keys_file(path)


def test_keys_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    assert keys_from_env({}) is None
    assert keys_from_env({"LOGOPS_AUTH_KEYS_FILE": ""}) is None
    from_file = keys_from_env({"LOGOPS_AUTH_KEYS_FILE": str(path)})
    assert from_file is not None and "k1" in from_file
    inline = keys_from_env({"LOGOPS_AUTH_KEYS": GOOD})
    assert inline is not None and "k2" in inline
    with pytest.raises(ConfigError, match=r"LOGOPS_AUTH_KEYS: keys\.k1\.secrets"):
        keys_from_env({"LOGOPS_AUTH_KEYS": key_yaml("emitter: e\nsecrets: [short]")})
    with pytest.raises(ConfigError, match="both set"):
        keys_from_env({"LOGOPS_AUTH_KEYS_FILE": str(path), "LOGOPS_AUTH_KEYS": GOOD})


def test_a_key_is_a_client_unless_it_says_it_forwards() -> None:
    ring = parse_keys_yaml(
        "keys:\n"
        "  app: {emitter: app, secrets: [" + "a" * 20 + "]}\n"
        "  hop: {emitter: auth, secrets: [" + "b" * 20 + "], role: forwarder}\n",
        "inline",
    )
    app, hop = ring.get("app"), ring.get("hop")
    assert app is not None and hop is not None
    assert (app.role, app.forwarder, hop.forwarder) == ("client", False, True)
    with pytest.raises(ConfigError, match=r"keys\.app\.role"):
        parse_keys_yaml(
            "keys:\n  app: {emitter: app, secrets: [" + "a" * 20 + "], role: admin}\n", "inline"
        )
