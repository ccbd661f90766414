"""deploy/k8s/: the manifests validate offline against the Kubernetes schemas (kubernetes-validate),
and the names that tie them together agree: labels and selectors, ports, probes, the HPA's metrics
and the prometheus-adapter rules that define them, the image's paths. No cluster is needed.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30"  # validated against this API version's schemas
FILES = sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
DOCS = [doc for path in FILES for doc in yaml.safe_load_all(path.read_text()) if doc]


def only(kind: str, name: str | None = None) -> dict:
    (doc,) = [d for d in DOCS if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return doc


DEPLOYMENT = only("Deployment")
POD = DEPLOYMENT["spec"]["template"]
(CONTAINER,) = POD["spec"]["containers"]
POD_LABELS = POD["metadata"]["labels"]


def selects(selector: dict, labels: dict) -> bool:
    return selector.items() <= labels.items()


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_manifest_validates_against_the_kubernetes_schemas(doc):
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        # A custom resource (the Prometheus Operator's ServiceMonitor): no schema offline.
        assert doc["apiVersion"].startswith("monitoring.coreos.com/")
        warnings.warn(f"{doc['kind']}: custom resource, not validated offline", stacklevel=2)


def test_validation_is_not_vacuous():
    import copy

    bad = copy.deepcopy(DEPLOYMENT)
    bad["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in FILES)


def test_deployment_serves_the_image_with_the_gpu_and_triton_probes():
    spec = DEPLOYMENT["spec"]
    assert selects(spec["selector"]["matchLabels"], POD_LABELS)
    ports = {p["name"]: p["containerPort"] for p in CONTAINER["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}  # Triton's defaults, as in the image
    assert CONTAINER["resources"]["limits"]["nvidia.com/gpu"] == 1
    probes = {k: CONTAINER[k] for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert probes["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert all(p["httpGet"]["port"] in ports for p in probes.values())
    startup = probes["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 20 * 60  # TensorRT engine builds
    # The image's user, and the engine cache and /dev/shm volumes.
    assert POD["spec"]["securityContext"]["runAsNonRoot"] is True
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert f"USER {POD['spec']['securityContext']['runAsUser']}" in dockerfile
    mounts = {m["mountPath"]: m["name"] for m in CONTAINER["volumeMounts"]}
    volumes = {v["name"]: v for v in POD["spec"]["volumes"]}
    assert set(mounts.values()) == set(volumes)
    assert "/cache/trt" in mounts and "VOLUME /cache/trt" in dockerfile
    claim = volumes[mounts["/cache/trt"]]["persistentVolumeClaim"]["claimName"]
    assert only("PersistentVolumeClaim", claim)
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    # The model repository comes from the image: no volume over it.
    assert not any(path.startswith("/opt/retouch") for path in mounts)


def test_services_select_the_pods_and_name_their_ports():
    container_ports = {p["name"] for p in CONTAINER["ports"]}
    services = [d for d in DOCS if d["kind"] == "Service"]
    assert {"grpc", "http", "metrics"} <= {p["name"] for s in services for p in s["spec"]["ports"]}
    for service in services:
        assert selects(service["spec"]["selector"], POD_LABELS)
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports


def test_service_monitor_scrapes_the_metrics_port():
    monitor = only("ServiceMonitor")
    service = only("Service", "retouch-triton")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


def test_pdb_covers_the_pods_and_the_hpa_keeps_one_spare():
    pdb, hpa = only("PodDisruptionBudget"), only("HorizontalPodAutoscaler")
    assert selects(pdb["spec"]["selector"]["matchLabels"], POD_LABELS)
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", DEPLOYMENT["metadata"]["name"])


def adapter_rules() -> list[dict]:
    return yaml.safe_load(only("ConfigMap", "prometheus-adapter-retouch")["data"]["config.yaml"])["rules"]


def test_hpa_metrics_are_defined_by_the_adapter_rules():
    hpa = only("HorizontalPodAutoscaler")
    wanted = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    rules = {r["name"]["as"]: r for r in adapter_rules()}
    assert wanted and wanted <= set(rules)
    for name in wanted:
        rule = rules[name]
        assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
        # The series the rule discovers is the one its query reads, and a Triton metric.
        series = rule["seriesQuery"].split("{")[0]
        assert series in rule["metricsQuery"] and series.startswith("nv_inference_")
        assert rule["name"]["matches"] == f"^{series}$"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus) not installed")
def test_adapter_queries_are_valid_promql(tmp_path):
    """The adapter fills in <<.GroupBy>> and <<.LabelMatchers>>; rendered as it would, each query
    must pass promtool's rule check."""
    rules = [
        {
            "record": f"retouch:adapter_{i}",
            "expr": r["metricsQuery"]
            .replace("<<.GroupBy>>", "namespace, pod")
            .replace("<<.LabelMatchers>>", 'namespace="default", pod=~"retouch-.*"'),
        }
        for i, r in enumerate(adapter_rules())
    ]
    path = tmp_path / "adapter.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "adapter", "rules": rules}]}))
    check = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_neural_models_in_the_adapter_queries_exist():
    import re

    neural = {p.parents[1].name for p in ROOT.glob("model_repository/*/configs/gpu.pbtxt")}
    for rule in adapter_rules():
        (pattern,) = set(re.findall(r'model=~"([^"]+)"', rule["metricsQuery"]))
        assert {
            m for m in (p.parent.name for p in ROOT.glob("model_repository/*/config.pbtxt")) if re.fullmatch(pattern, m)
        } == neural
