"""deploy/: the kustomize output renders and passes strict offline schema validation."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "base")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_manifests_pass_strict_schema_validation(rendered):
    import kubernetes_validate

    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in rendered)
    assert kinds == [
        "Deployment/vitrine-encoder",
        "Deployment/vitrine-gateway",
        "PersistentVolumeClaim/vitrine-models",
        "Service/vitrine-encoder",
        "Service/vitrine-gateway",
        "Service/vitrine-index",
        "StatefulSet/vitrine-index",
    ]
    for doc in rendered:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)


def test_pods_listen_on_all_interfaces_and_probe_their_own_ports(rendered):
    for doc in rendered:
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        (c,) = doc["spec"]["template"]["spec"]["containers"]
        args = c["args"]
        assert args[args.index("--host") + 1] == "0.0.0.0"
        grpc_port = int(args[args.index("--port") + 1])
        metrics_port = int(args[args.index("--metrics-port") + 1])
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports == {"grpc": grpc_port, "metrics": metrics_port}
        for probe in ("readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"]["port"] == grpc_port
        assert c["livenessProbe"]["grpc"]["service"] == "liveness"
        annotations = doc["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(metrics_port)
        assert {"name": "VITRINE_METRICS_HOST", "value": "0.0.0.0"} in c["env"]
