"""The syslog listener's settings: defaults, environment, refusals that name the key."""

from __future__ import annotations

import pytest

from services.common.config import ConfigError, load_config


def test_defaults_are_the_products() -> None:
    syslog = load_config(env={}).ingest.syslog
    assert (syslog.enabled, syslog.host, syslog.port) == (True, "127.0.0.1", 5514)
    assert syslog.batch_records == 1000 and syslog.max_message_bytes == 65536


def test_environment_and_flags_set_it() -> None:
    env = {"LOGOPS_INGEST_SYSLOG_PORT": "0", "LOGOPS_INGEST_SYSLOG_IDLE_TIMEOUT_SEC": "2.5"}
    cfg = load_config(env=env, overrides={"ingest.syslog.enabled": False}).ingest.syslog
    assert (cfg.port, cfg.idle_timeout_sec, cfg.enabled) == (0, 2.5, False)
    off = load_config(env={"LOGOPS_INGEST_SYSLOG_ENABLED": "false"}).ingest.syslog
    assert off.enabled is False


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"LOGOPS_INGEST_SYSLOG_PORT": "-1"}, "ingest.syslog.port"),
        ({"LOGOPS_INGEST_SYSLOG_PORT": "70000"}, "ingest.syslog.port"),
        ({"LOGOPS_INGEST_SYSLOG_MAX_MESSAGE_BYTES": "0"}, "ingest.syslog.max_message_bytes"),
        ({"LOGOPS_INGEST_SYSLOG_BATCH_RECORDS": "0"}, "ingest.syslog.batch_records"),
        ({"LOGOPS_INGEST_SYSLOG_MAX_PENDING": "0"}, "ingest.syslog.max_pending"),
        ({"LOGOPS_INGEST_SYSLOG_ENABLED": "maybe"}, "ingest.syslog.enabled"),
        ({"LOGOPS_INGEST_SYSLOG_FRAMING": "lf"}, "LOGOPS_INGEST_SYSLOG_FRAMING"),
    ],
)
def test_bad_values_stop_start_up_naming_the_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config(env=env)
