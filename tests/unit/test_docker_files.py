"""docker/: the compose file, Dockerfile, Prometheus and Grafana provisioning fit together.

Docker cannot run on the test machines, so this checks what can be checked without it: every file
parses, every path the compose file and the Dockerfile name exists, and the names that tie the
services together (hosts, ports, mount points, datasource uid) agree.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def load(path: Path):
    return yaml.safe_load(path.read_text())


COMPOSE = load(DOCKER / "docker-compose.yml")
SERVICES = COMPOSE["services"]


def bind_mounts(service: str) -> dict[str, Path]:
    """container path -> host path, for the service's ./ and ../ volumes."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (DOCKER / source).resolve()
    return mounts


def test_compose_services_and_their_files_exist():
    assert set(SERVICES) == {"tritonserver", "prometheus", "grafana"}
    build = SERVICES["tritonserver"]["build"]
    context = (DOCKER / build["context"]).resolve()
    assert context == ROOT and (context / build["dockerfile"]).is_file()
    for service in SERVICES:
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{service}: {source} (mounted at {target}) does not exist"


def test_dockerfile_builds_from_ngc_and_serves_the_gpu_configs():
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM nvcr\.io/nvidia/tritonserver:24\.10-py3$", text, re.M)
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        *sources, _ = shlex.split(line)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    (cmd,) = re.findall(r"^CMD (\[.*?\])$", text, re.M | re.S)
    args = json.loads(cmd.replace("\\\n", ""))
    assert args[0] == "tritonserver"
    assert {"--model-config-name=gpu", "--metrics-config=summary_latencies=true"} <= set(args)


def test_prometheus_scrapes_the_compose_triton_and_loads_the_rules():
    mounts = bind_mounts("prometheus")
    config = load(DOCKER / "prometheus" / "prometheus.yml")
    assert mounts["/etc/prometheus/prometheus.yml"] == DOCKER / "prometheus" / "prometheus.yml"
    for rule_file in config["rule_files"]:  # relative to the config file, in and out of the container
        assert (DOCKER / "prometheus" / rule_file).is_file()
        assert mounts["/etc/prometheus/rules"] == (DOCKER / "prometheus" / rule_file).parent
    (job,) = config["scrape_configs"]
    (target,) = [t for s in job["static_configs"] for t in s["targets"]]
    host, port = target.split(":")
    assert host in SERVICES and port == "8002"  # Triton's default metrics port


def test_grafana_provisions_the_datasource_and_dashboard():
    mounts = bind_mounts("grafana")
    provisioning = mounts["/etc/grafana/provisioning"]
    (datasource,) = load(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert urlsplit(datasource["url"]).hostname in SERVICES
    (provider,) = load(provisioning / "dashboards" / "retouch.yml")["providers"]
    dashboards = mounts[provider["options"]["path"]]
    (path,) = dashboards.glob("*.json")
    dashboard = json.loads(path.read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in [p, *p["targets"]]}
    assert uids == {datasource["uid"]}
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{path.name}"
