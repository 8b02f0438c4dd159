"""Loki's config: a Loki 3 single binary whose 48 h retention really deletes, and which
adds no labels of its own to the shippers' four.

Structural: no Loki binary runs here (`loki -verify-config` would be the real check), so
this reads the YAML for the settings each property depends on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from services.common.config import HousekeepingConfig

ROOT = Path(__file__).resolve().parents[3]
LOKI = ROOT / "observability" / "loki" / "loki.yml"


@pytest.fixture(scope="module")
def loki() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(LOKI.read_text())
    return config


def hours(text: str) -> float:
    value, unit = text[:-1], text[-1]
    return float(value) * {"h": 1, "d": 24}[unit]


def test_retention_is_48h_and_the_compactor_applies_it(loki: dict[str, Any]) -> None:
    assert hours(loki["limits_config"]["retention_period"]) == 48
    compactor = loki["compactor"]
    # Without both, Loki keeps everything forever (retention is the compactor's job, and
    # Loki 3 refuses retention without a store for delete requests).
    assert compactor["retention_enabled"] is True
    assert compactor["delete_request_store"] == "filesystem"
    assert compactor["working_directory"].startswith(loki["common"]["path_prefix"])


def test_retention_matches_the_sink_housekeeping_default(loki: dict[str, Any]) -> None:
    days = HousekeepingConfig().retention_days
    assert hours(loki["limits_config"]["retention_period"]) == days * 24
    assert hours(loki["limits_config"]["reject_old_samples_max_age"]) == days * 24


def test_store_is_filesystem_tsdb_v13_with_daily_tables(loki: dict[str, Any]) -> None:
    (schema,) = loki["schema_config"]["configs"]
    assert schema["store"] == "tsdb"
    assert schema["object_store"] == "filesystem"
    # v13 is the schema that stores structured metadata; retention works per daily table.
    assert schema["schema"] == "v13"
    assert schema["index"]["period"] == "24h"
    assert set(loki["common"]["storage"]) == {"filesystem"}
    assert loki["common"]["replication_factor"] == 1
    assert loki["common"]["ring"]["kvstore"]["store"] == "inmemory"


def test_structured_metadata_allowed_and_no_labels_of_lokis_own(loki: dict[str, Any]) -> None:
    limits = loki["limits_config"]
    assert limits["allow_structured_metadata"] is True
    # Loki 3 would derive service_name from the job label and a detected level.
    assert limits["discover_service_name"] == []
    assert limits["discover_log_levels"] is False


def test_single_tenant_for_local_use(loki: dict[str, Any]) -> None:
    assert loki["auth_enabled"] is False
    assert loki["server"]["http_listen_port"] == 3100
