"""Grafana's provisioning files: the datasources the dashboards refer to, and the provider
that loads the generated JSON. Structural checks: no Grafana binary runs here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "observability" / "grafana"
PROVISIONING = GRAFANA / "provisioning"
# Where the compose file mounts observability/grafana/dashboards in the container.
DASHBOARDS_MOUNT = "/var/lib/grafana/dashboards"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def datasources() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in sorted((PROVISIONING / "datasources").glob("*.yml")):
        config = load(path)
        assert config["apiVersion"] == 1, path
        for source in config["datasources"]:
            assert source["uid"] not in found, f"uid {source['uid']} provisioned twice"
            found[source["uid"]] = source
    return found


def test_the_stack_datasources_are_provisioned_read_only() -> None:
    sources = datasources()
    expected = {
        "prometheus": ("prometheus", "http://prometheus:9090"),
        "loki": ("loki", "http://loki:3100"),
        "alertmanager": ("alertmanager", "http://alertmanager:9093"),
    }
    assert {uid: (s["type"], s["url"]) for uid, s in sources.items()} == expected
    assert all(s["access"] == "proxy" and s["editable"] is False for s in sources.values())
    assert [uid for uid, s in sources.items() if s.get("isDefault")] == ["prometheus"]
    assert sources["alertmanager"]["jsonData"]["implementation"] == "prometheus"
    assert sources["prometheus"]["jsonData"]["alertmanagerUid"] == "alertmanager"


def test_grafana_knows_the_scrape_interval_prometheus_uses() -> None:
    # $__rate_interval is at least four times Grafana's idea of the scrape interval: a
    # smaller value than Prometheus's would leave rate() windows with under two samples.
    prometheus = load(ROOT / "observability" / "prometheus" / "prometheus.yml")
    time_interval = datasources()["prometheus"]["jsonData"]["timeInterval"]
    assert time_interval == prometheus["global"]["scrape_interval"]


def refs(node: Any) -> Iterator[dict[str, str]]:
    """Every ``datasource`` reference in a dashboard, wherever it sits."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_dashboards_refer_only_to_provisioned_datasources() -> None:
    sources = datasources()
    seen = set()
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        for ref in refs(json.loads(path.read_text(encoding="utf-8"))):
            assert ref["uid"] in sources, (path.name, ref)
            assert ref["type"] == sources[ref["uid"]]["type"], (path.name, ref)
            seen.add(ref["uid"])
    assert seen == {"prometheus", "loki"}


def test_the_provider_loads_the_mounted_dashboards_folder_and_refuses_ui_edits() -> None:
    providers = [
        provider
        for path in sorted((PROVISIONING / "dashboards").glob("*.yml"))
        for provider in load(path)["providers"]
    ]
    assert len(providers) == 1
    provider = providers[0]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == DASHBOARDS_MOUNT
    # The JSON is generated: an edit saved in the UI would be lost at the next build.
    assert provider["allowUiUpdates"] is False
    assert provider["disableDeletion"] is True
