"""Config: defaults, YAML, LOGOPS_* environment and overrides, and clear failures."""

import re
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
        ("ingest:\n  pii: {fields: 5}\n", "ingest.pii.fields"),
        ("ingest:\n  grpc_reflection: 1\n", "ingest.grpc_reflection"),
        ("ingest:\n  sink: {dir: [a, b]}\n", "ingest.sink.dir"),
        ("ingest:\n  sink: {dir: true}\n", "ingest.sink.dir"),
        ("ingest: 5\n", "ingest"),
        ("ingest:\n  http: 8080\n", "ingest.http"),
        ("ingest:\n  sink: [dir, x]\n", "ingest.sink"),
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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "ingest:\n  http: {port: 70000}\n",
            "ingest.http.port: expected a whole number from 0 to 65535, got 70000",
        ),
        (
            "ingest:\n  limits: {max_records: 0}\n",
            "ingest.limits.max_records: expected a whole number >= 1, got 0",
        ),
        (
            "ingest:\n  connections: {body_timeout_sec: 0}\n",
            "ingest.connections.body_timeout_sec: expected a number > 0, got 0",
        ),
        (
            "ingest:\n  limits: {retry_after_sec: -1}\n",
            "ingest.limits.retry_after_sec: expected a number >= 0, got -1",
        ),
        (
            "ingest:\n  sink: {durability: sometimes}\n",
            "ingest.sink.durability: expected one of batch, interval, none, got 'sometimes'",
        ),
        (
            "ingest:\n  http: {hots: x}\n",
            "ingest.http.hots: unknown key (known in ingest.http: host, port)",
        ),
        ("ingest:\n  http: 8080\n", "ingest.http: expected a mapping, got 8080"),
    ],
)
def test_a_bad_value_says_what_the_key_accepts(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert str(info.value) == message


def test_an_unknown_section_lists_the_known_ones(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("ingset: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    message = str(info.value)
    assert message.startswith("ingset: unknown key (known in config: ") and message.endswith(")")
    known = message.removeprefix("ingset: unknown key (known in config: ")[:-1].split(", ")
    assert {"ingest", "logging"} <= set(known)


def test_the_edges_of_each_range_are_accepted(tmp_path: Path) -> None:
    f = tmp_path / "edges.yaml"
    f.write_text(
        "ingest:\n  http: {port: 65535}\n  http_threads: 1024\n"
        "  connections: {header_timeout_sec: 0.5}\n  limits: {retry_after_sec: 0}\n"
    )
    cfg = load_config(f)
    assert (cfg.ingest.http.port, cfg.ingest.http_threads) == (65535, 1024)
    assert cfg.ingest.connections.header_timeout_sec == 0.5
    assert cfg.ingest.limits.retry_after_sec == 0.0


def test_logging_level_is_taken_in_any_case() -> None:
    assert load_config(env={"LOGOPS_LOGGING_LEVEL": "debug"}).logging.level == "DEBUG"
    assert load_config(overrides={"logging.level": "Warning"}).logging.level == "WARNING"
    assert load_config(env={"LOGOPS_INGEST_PII_MODE": "HASH"}).ingest.pii.mode == "hash"


def test_environment_values_are_read_as_yaml_scalars(tmp_path: Path) -> None:
    f = tmp_path / "logops.yaml"
    f.write_text("auth:\n  redis: redis://127.0.0.1:6379/0\n")
    env = {
        # Read by the entry point itself; the variables after it still count.
        "LOGOPS_AUTH_KEYS": "keys: {}",
        "LOGOPS_INGEST_HTTP_PORT": "9000",
        "LOGOPS_INGEST_GRPC_REFLECTION": "false",
        "LOGOPS_INGEST_CONNECTIONS_IDLE_TIMEOUT_SEC": "2.5",
        "LOGOPS_INGEST_PII_FIELDS": "user, ,email,",
        # Set but empty, as `LOGOPS_AUTH_REDIS=` in a shell: an empty value, not "unset".
        "LOGOPS_AUTH_REDIS": "",
    }
    cfg = load_config(f, env=env)
    assert cfg.ingest.http.port == 9000
    assert cfg.ingest.grpc_reflection is False
    assert cfg.ingest.connections.idle_timeout_sec == 2.5
    assert cfg.ingest.pii.fields == ("user", "email")
    assert cfg.auth.redis == ""


def test_an_unknown_variable_is_refused_with_the_known_names() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={"LOGOPS_INGEST_SINK_DIRR": "x"})
    message = str(info.value)
    listed = r"LOGOPS_INGEST_SINK_DIRR: unknown setting \(known: (LOGOPS_\w+, )+LOGOPS_\w+\)"
    assert re.fullmatch(listed, message)
    assert "LOGOPS_INGEST_SINK_DIR, " in message


def test_a_setting_under_a_value_that_is_not_a_section_names_both(tmp_path: Path) -> None:
    f = tmp_path / "logops.yaml"
    f.write_text("ingest: off\n")
    with pytest.raises(ConfigError) as info:
        load_config(f, env={"LOGOPS_INGEST_SINK_DIR": "/tmp/x"})
    assert str(info.value) == "ingest.sink.dir: ingest is not a section"


@pytest.mark.parametrize("content", [None, "ingest: {http: [port\n"])
def test_an_unreadable_file_is_named(tmp_path: Path, content: str | None) -> None:
    f = tmp_path / "logops.yaml"
    if content is not None:
        f.write_text(content)
    with pytest.raises(ConfigError, match=f"^cannot read config file {re.escape(str(f))}: "):
        load_config(f)


def test_a_section_given_in_part_keeps_the_gateways_other_defaults(tmp_path: Path) -> None:
    # ListenConfig's own port is 0; each gateway's listeners have ports of their own.
    f = tmp_path / "logops.yaml"
    f.write_text("ingest:\n  http: {host: 0.0.0.0}\n  grpc:\nauth:\n  http: {host: 0.0.0.0}\n")
    cfg = load_config(f)
    assert (cfg.ingest.http.host, cfg.ingest.http.port) == ("0.0.0.0", 8080)
    assert cfg.ingest.grpc.port == 50051
    assert (cfg.auth.http.host, cfg.auth.http.port) == ("0.0.0.0", 8081)
