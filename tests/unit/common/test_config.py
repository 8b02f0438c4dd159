"""Config: defaults, YAML, LOGOPS_* environment and overrides, and clear failures."""

from pathlib import Path

import pytest

from services.common.config import ConfigError, load_config


def test_defaults_match_the_product_contract() -> None:
    cfg = load_config()
    assert (cfg.ingest.http.host, cfg.ingest.http.port) == ("127.0.0.1", 8080)
    assert cfg.ingest.grpc.port == 50051
    assert cfg.ingest.sink.dir == "data/ingest"
    assert cfg.ingest.sink.durability == "batch"
    assert cfg.ingest.limits.max_body_bytes == 4 * 1024 * 1024
    assert cfg.ingest.limits.max_records == 10_000
    assert cfg.ingest.limits.max_inflight == 64
    assert cfg.ingest.housekeeping.retention_days == 2.0
    assert cfg.ingest.pii.mode == "mask"


def test_yaml_then_env_then_overrides(tmp_path: Path) -> None:
    f = tmp_path / "logops.yaml"
    f.write_text("ingest:\n  http: {port: 9000}\n  sink: {dir: /tmp/a, durability: none}\n")
    env = {"LOGOPS_INGEST_SINK_DIR": "/tmp/b", "LOGOPS_INGEST_PII_FIELDS": "user,email"}
    cfg = load_config(f, env=env, overrides={"ingest.http.port": 0, "ingest.grpc.port": None})
    assert cfg.ingest.http.port == 0
    assert cfg.ingest.grpc.port == 50051
    assert cfg.ingest.sink.dir == "/tmp/b"
    assert cfg.ingest.sink.durability == "none"
    assert cfg.ingest.pii.fields == ("user", "email")
    assert cfg.ingest.http.host == "127.0.0.1"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("ingest:\n  htp: {port: 1}\n", "ingest.htp"),
        ("ingest:\n  sink: {max_file_bytes: big}\n", "ingest.sink.max_file_bytes"),
        ("ingest:\n  sink: {durability: sometimes}\n", "ingest.sink.durability"),
        ("ingset: {}\n", "ingset"),
        ("ingest:\n  limits: {max_inflight: -1}\n", "ingest.limits.max_inflight"),
        ("ingest:\n  http: {port: 70000}\n", "ingest.http.port"),
        ("ingest:\n  grpc: {port: -1}\n", "ingest.grpc.port"),
        ("ingest:\n  http_threads: 0\n", "ingest.http_threads"),
        ("ingest:\n  limits: {max_records: 0}\n", "ingest.limits.max_records"),
        ("ingest:\n  connections: {body_timeout_sec: 0}\n", "ingest.connections.body_timeout_sec"),
        ("ingest:\n  connections: {max_connections: 0}\n", "ingest.connections.max_connections"),
        ("- a\n- b\n", "top level"),
    ],
)
def test_bad_files_fail_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(f)


def test_unknown_env_setting_in_a_known_section_is_refused() -> None:
    with pytest.raises(ConfigError, match="LOGOPS_INGEST_SINK_DIRR"):
        load_config(env={"LOGOPS_INGEST_SINK_DIRR": "x"})


def test_other_logops_variables_are_left_alone() -> None:
    cfg = load_config(env={"LOGOPS_CONFIG": "x.yaml", "LOGOPS_AUTH_KEYS_FILE": "k.yaml"})
    assert cfg.ingest.http.port == 8080


def test_config_is_frozen() -> None:
    cfg = load_config()
    with pytest.raises(AttributeError):
        cfg.ingest.http.port = 1  # type: ignore[misc]


def test_auth_gateway_defaults_and_environment() -> None:
    cfg = load_config(
        env={
            "LOGOPS_AUTH_FORWARD_TARGET": "http://127.0.0.1:9",
            "LOGOPS_AUTH_REDIS": "redis://127.0.0.1:6379/2",
            # Keys given inline are read by the entry point, not refused as unknown.
            "LOGOPS_AUTH_KEYS": "keys: {}",
        }
    )
    auth = cfg.auth
    assert (auth.http.port, auth.grpc.port, auth.mode) == (8081, 50052, "hmac")
    assert auth.forward.target == "http://127.0.0.1:9"
    assert auth.redis == "redis://127.0.0.1:6379/2"
    assert auth.limits.max_body_bytes == cfg.ingest.limits.max_body_bytes
    with pytest.raises(ConfigError, match=r"auth\.mode"):
        load_config(env={"LOGOPS_AUTH_MODE": "open"})
    with pytest.raises(ConfigError, match=r"auth\.forward\.max_attempts"):
        load_config(env={"LOGOPS_AUTH_FORWARD_MAX_ATTEMPTS": "0"})
