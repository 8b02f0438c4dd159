"""observability/docker-compose.yml as docker-compose 1.29 resolves it with the example
environment: pinned images, health checks, no passwords, host paths that exist, config
paths that reach the shipped files, and the gateways' flags as the CLI parses them.

`docker-compose config` runs for real (Debian's docker-compose 1.29; it needs no Docker
engine). Nothing is started: there is no Docker engine here, so the health checks and
images are checked by reading them, not by running them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from services.cli import build_parser
from tests.unit.observability.logs_pipeline_labels import alloy_pipeline, promtail_pipeline

ROOT = Path(__file__).resolve().parents[3]
OBS = ROOT / "observability"
COMPOSE = OBS / "docker-compose.yml"
ENV_EXAMPLE = OBS / ".env.example"
README = OBS / "README.md"

SERVICES = {"prometheus", "alertmanager", "loki", "alloy", "promtail", "grafana", "ingest", "auth"}
PROFILES = {"promtail": ["promtail"], "ingest": ["gateways"], "auth": ["gateways"]}
# An exact release: v2.53.5, 3.7.8, 11.6.16 (no latest, no bare major or minor).
PINNED = re.compile(r"[\w./-]+:v?\d+\.\d+\.\d+(-[\w.-]+)?")
# The port each service serves its health endpoint on.
HEALTH_PORTS = {
    "prometheus": 9090, "alertmanager": 9093, "loki": 3100, "alloy": 12345, "promtail": 9080,
    "grafana": 3000, "ingest": 8080, "auth": 8081,
}  # fmt: skip


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is missing: the Debian package docker-compose provides it"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGOPS_", "GRAFANA_"))}
    done = subprocess.run(
        [exe, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE), "config"],
        capture_output=True, text=True, timeout=60, check=False, env=env, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def binds(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts (secrets included)."""
    out: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("/"):
            out[target] = Path(source)
    return out


def secret_targets(compose: dict[str, Any], service: dict[str, Any]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for entry in service.get("secrets", []):
        if isinstance(entry, str):
            entry = {"source": entry}
        name, target = entry["source"], entry.get("target")
        out[target or f"/run/secrets/{name}"] = Path(compose["secrets"][name]["file"])
    return out


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """Where a file seen inside the container lives on the host, through its bind mounts
    (the most specific mount wins, as in Docker)."""
    path = PurePosixPath(container_path)
    for target, source in sorted(binds(service).items(), key=lambda kv: -len(kv[0])):
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return source / path.relative_to(target)
    raise AssertionError(f"{container_path} is not mounted from the host")


def flag(command: list[str], name: str) -> str:
    for i, arg in enumerate(command):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name:
            return command[i + 1]
    raise AssertionError(f"{name} not in {command}")


def test_the_example_environment_resolves_every_service(services: dict[str, Any]) -> None:
    assert set(services) == SERVICES
    for name, service in services.items():
        assert service.get("profiles", []) == PROFILES.get(name, []), name


def test_every_image_is_an_exact_version(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert PINNED.fullmatch(service["image"]), (name, service["image"])


def test_images_built_here_start_from_exact_versions(services: dict[str, Any]) -> None:
    dockerfiles = {
        Path(s["build"]["context"]) / s["build"].get("dockerfile", "Dockerfile")
        for s in services.values()
        if "build" in s
    }
    assert len(dockerfiles) == 2
    for dockerfile in dockerfiles:
        text = dockerfile.read_text()
        args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
        for base in re.findall(r"^FROM (\S+)", text, re.M):
            image = args.get(base.strip("${}"), base)
            assert PINNED.fullmatch(image), (dockerfile, base)


def test_every_service_has_a_health_check_on_its_own_port(services: dict[str, Any]) -> None:
    for name, service in services.items():
        check = service["healthcheck"]
        assert check["test"][0] == "CMD" and not check.get("disable"), name
        assert {"interval", "timeout", "retries"} <= set(check), name
        probe = " ".join(check["test"])
        port = re.search(r"127\.0\.0\.1[:/](\d+)", probe)
        assert port and int(port.group(1)) == HEALTH_PORTS[name], (name, probe)
        published = {int(p.split(":")[-1].split("/")[0]) for p in service.get("ports", [])}
        assert published <= set(HEALTH_PORTS.values()) | {50051, 50052, 5514}, name
        if name != "promtail":
            assert HEALTH_PORTS[name] in published, name
    # Promtail publishes nothing: its health port is the one its config listens on.
    promtail = yaml.safe_load((OBS / "promtail" / "promtail.yml").read_text())
    assert promtail["server"]["http_listen_port"] == HEALTH_PORTS["promtail"]
    alloy = flag(services["alloy"]["command"], "--server.http.listen-addr")
    assert alloy == f"0.0.0.0:{HEALTH_PORTS['alloy']}"


def test_ports_are_published_on_loopback_only(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), (name, port)


def test_no_literal_passwords(services: dict[str, Any]) -> None:
    secretish = re.compile(r"PASSWORD|SECRET|TOKEN|API_?KEY", re.I)
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if secretish.search(key):
                # Only the *_FILE form: a path to a mounted secret, never the value.
                assert key.endswith("_FILE") and str(value).startswith("/run/secrets/"), (
                    name, key,
                )  # fmt: skip
    for line in ENV_EXAMPLE.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            assert not secretish.search(line.split("=")[0]), line
    for line in COMPOSE.read_text().splitlines():
        key = re.match(r"\s*-?\s*([\w.]+)\s*[:=]\s*\S", line)
        if key and secretish.search(key.group(1)):
            assert key.group(1).endswith("_FILE") or line.strip().endswith(":"), line


def test_the_example_environment_lists_every_variable_the_file_reads() -> None:
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    listed = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if re.match(r"\w+=", line)
    }
    assert used == listed


def test_grafana_password_comes_from_a_secret_file(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    grafana = services["grafana"]
    target = grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"]
    assert target in secret_targets(compose, grafana)


def test_every_host_path_is_in_the_repository_or_documented(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    readme = README.read_text()
    for name, service in services.items():
        for target, source in binds(service).items():
            rel = source.relative_to(ROOT)
            if rel.parts[0] == "data":
                # Runtime folders of the gateways (git-ignored data/), made by `make up`.
                assert str(rel) in readme, (name, rel)
            else:
                assert source.exists(), (name, target, rel)
    for secret in compose["secrets"].values():
        rel = Path(secret["file"]).relative_to(ROOT)
        assert str(rel) in readme, rel
        tracked = subprocess.run(
            ["git", "ls-files", "--", str(rel)], capture_output=True, text=True, cwd=ROOT
        )
        assert tracked.stdout == "", f"{rel} is a secret and must not be committed"


@pytest.mark.parametrize(
    ("service", "option", "shipped"),
    [
        ("prometheus", "--config.file", "prometheus/prometheus.yml"),
        ("alertmanager", "--config.file", "alertmanager/alertmanager.yml"),
        ("loki", "-config.file", "loki/loki.yml"),
        ("promtail", "-config.file", "promtail/promtail.yml"),
    ],
)
def test_config_flags_reach_the_shipped_files(
    services: dict[str, Any], service: str, option: str, shipped: str
) -> None:
    command = services[service]["command"]
    assert host_path(services[service], flag(command, option)) == OBS / shipped


def test_alloy_runs_the_shipped_config(services: dict[str, Any]) -> None:
    command = services["alloy"]["command"]
    assert command[0] == "run"
    assert host_path(services["alloy"], command[-1]) == OBS / "alloy" / "config.alloy"


def test_prometheus_reads_the_compose_targets_over_the_local_ones(
    services: dict[str, Any],
) -> None:
    prometheus = services["prometheus"]
    targets = host_path(prometheus, "/etc/prometheus/targets")
    assert targets == OBS / "prometheus" / "targets-compose"
    # prometheus.yml names its target files: the compose folder must have each of them.
    local = {p.name for p in (OBS / "prometheus" / "targets").glob("*.yml")}
    assert local and local == {p.name for p in targets.glob("*.yml")}
    assert "host.docker.internal:host-gateway" in prometheus["extra_hosts"]


def test_alertmanager_finds_its_webhook_file_from_its_working_directory(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    am = services["alertmanager"]
    config_file = flag(am["command"], "--config.file")
    assert am["working_dir"] == str(PurePosixPath(config_file).parent)
    config = yaml.safe_load(host_path(am, config_file).read_text())
    paths = {
        slack["api_url_file"] for r in config["receivers"] for slack in r.get("slack_configs", [])
    }
    assert paths == {"secrets/slack_webhook_url"}
    secret = secret_targets(compose, am)[f"{am['working_dir']}/secrets/slack_webhook_url"]
    assert secret == OBS / "alertmanager" / "secrets" / "slack_webhook_url"
    assert host_path(am, f"{am['working_dir']}/templates") == OBS / "alertmanager" / "templates"
    assert flag(am["command"], "--cluster.listen-address") == ""


def test_grafana_mounts_the_provisioning_and_the_dashboards_where_they_are_looked_for(
    services: dict[str, Any],
) -> None:
    grafana = services["grafana"]
    provisioning = host_path(grafana, "/etc/grafana/provisioning")
    assert provisioning == OBS / "grafana" / "provisioning"
    for provider_file in (provisioning / "dashboards").glob("*.yml"):
        for provider in yaml.safe_load(provider_file.read_text())["providers"]:
            path = provider["options"]["path"]
            assert host_path(grafana, path) == OBS / "grafana" / "dashboards", path
    for target in ("/etc/grafana/provisioning", "/var/lib/grafana/dashboards"):
        assert any(v.startswith(f"{OBS / 'grafana'}") and f":{target}:ro" in v
                   for v in grafana["volumes"]), target  # fmt: skip


def test_shippers_tail_the_sink_the_ingest_container_writes(services: dict[str, Any]) -> None:
    sink = host_path(services["ingest"], flag(services["ingest"]["command"], "--sink-dir"))
    for name, pipeline in (("alloy", alloy_pipeline()), ("promtail", promtail_pipeline())):
        service = services[name]
        folder = str(PurePosixPath(pipeline.path).parent)
        assert service["environment"]["LOGOPS_SINK_DIR"] == folder, name
        assert host_path(service, folder) == sink == ROOT / "data" / "ingest", name
        assert any(v.endswith(f":{folder}:ro") for v in service["volumes"]), name
        assert service["environment"]["LOKI_PUSH_URL"] == pipeline.push_url, name
        assert service["depends_on"]["loki"]["condition"] == "service_healthy"


def test_state_lives_in_named_volumes(compose: dict[str, Any], services: dict[str, Any]) -> None:
    state = {
        "prometheus": "/prometheus", "alertmanager": "/alertmanager", "loki": "/loki",
        "alloy": "/var/lib/alloy/data", "promtail": "/var/lib/promtail",
        "grafana": "/var/lib/grafana",
    }  # fmt: skip
    for name, path in state.items():
        named = [v.split(":")[0] for v in services[name]["volumes"] if f":{path}:" in v]
        assert len(named) == 1 and named[0] in compose["volumes"], name


def test_gateway_commands_parse_as_the_cli_reads_them(services: dict[str, Any]) -> None:
    parser = build_parser()
    ingest = parser.parse_args(services["ingest"]["command"])
    auth = parser.parse_args(services["auth"]["command"])
    assert (ingest.command, auth.command) == ("ingest", "auth")
    # Reachable from the other containers and the published ports.
    assert ingest.host == auth.host == "0.0.0.0"
    keys = "/run/secrets/logops"
    assert ingest.keys_file.startswith(keys + "/") and auth.keys_file.startswith(keys + "/")
    assert auth.forward == "grpc://ingest:50051"
    env = services["auth"]["environment"]
    assert env["LOGOPS_AUTH_FORWARD_SECRET_FILE"].startswith(keys + "/")
    for name in ("ingest", "auth"):
        assert host_path(services[name], keys) == ROOT / "data" / "run" / "keys"
        assert any(v.endswith(f":{keys}:ro") for v in services[name]["volumes"])
    assert services["auth"]["depends_on"]["ingest"]["condition"] == "service_healthy"


def test_gateway_image_builds_the_c_extension_and_runs_unprivileged() -> None:
    text = (OBS / "logops" / "Dockerfile").read_text()
    build, runtime = re.split(r"^FROM .*$", text, flags=re.M)[1:]
    assert "gcc" in build and "pip install ." in build
    assert 'import services.ingest._native"' in build
    assert "gcc" not in runtime and "COPY --from=build /opt/logops /opt/logops" in runtime
    user = re.findall(r"^USER (\S+)", runtime, re.M)
    assert user and user[-1] not in ("root", "0")
    entry = re.search(r'^ENTRYPOINT \["(\w+)"\]', runtime, re.M)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert entry and f'{entry.group(1)} = "services.cli:main"' in pyproject
