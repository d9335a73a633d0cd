"""deploy/: every overlay (cpu, gpu, cert-manager) renders with kustomize, passes strict offline
schema validation and checkov (waivers in deploy/checkov-waivers.yaml), and says what the
services need: two index replica groups of two coordinated by etcd, TLS on every listener
(probes on the plaintext health ports), API keys on the gateway, certificates for every name,
hardened pods with requests and limits, a PodDisruptionBudget per workload, autoscaling of the
stateless services, and network policies that admit exactly the flows the services use."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.support import tools

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
NS = "vitrine"  # the namespace $(POD_NAMESPACE) stands for here (the overlays')
GROUPS = ("g0", "g1")
SERVICES = {  # workload -> (service, config class)
    "vitrine-encoder": ("encoder", "encoder_service.config:EncoderConfig"),
    "vitrine-index-g0": ("index", "index_service.config:IndexConfig"),
    "vitrine-index-g1": ("index", "index_service.config:IndexConfig"),
    "vitrine-gateway": ("gateway", "gateway.config:GatewayConfig"),
}
WORKLOADS = (*SERVICES, "vitrine-etcd")
OVERLAYS = ("cpu", "gpu", "cert-manager")
VAR_RE = re.compile(r"\$\((\w+)\)")
K8S_VERSION = "1.37.0"


def _kustomize(path: Path) -> list[dict]:
    kubectl = tools.kubectl()
    if kubectl is None:
        pytest.skip("kubectl not installed")
    out = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module")
def manifests() -> dict[str, list[dict]]:
    """The rendered base and every overlay."""
    paths = {"base": DEPLOY / "base"} | {o: DEPLOY / "overlays" / o for o in OVERLAYS}
    return {name: _kustomize(path) for name, path in paths.items()}


@pytest.fixture(scope="module")
def rendered(manifests) -> list[dict]:
    return manifests["base"]


@pytest.fixture(scope="module")
def overlay(manifests) -> list[dict]:
    return manifests["cert-manager"]


# --- helpers ------------------------------------------------------------------------------------


def _doc(rendered: list[dict], kind: str, name: str) -> dict:
    (doc,) = [d for d in rendered if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _workloads(rendered: list[dict]) -> list[dict]:
    return [d for d in rendered if d["kind"] in ("Deployment", "StatefulSet")]


def _container(doc: dict) -> dict:
    (c,) = doc["spec"]["template"]["spec"]["containers"]
    return c


def _env(c: dict) -> dict[str, str | None]:
    """Literal env values (None for valueFrom)."""
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def _pod_names(doc: dict) -> list[str]:
    return [f"{doc['metadata']['name']}-{i}" for i in range(doc["spec"]["replicas"])]


def _expand(value: str, pod: str = "") -> str:
    return value.replace("$(POD_NAME)", pod).replace("$(POD_NAMESPACE)", NS)


def _host(address: str) -> str:
    return re.sub(r"^\w+:///?", "", address).rsplit(":", 1)[0]


def _secret_of(doc: dict, path: str) -> str:
    """The Secret whose volume holds the file ``path`` in the pod of ``doc``."""
    spec = doc["spec"]["template"]["spec"]
    for m in _container(doc)["volumeMounts"]:
        if path.startswith(m["mountPath"].rstrip("/") + "/"):
            assert "subPath" not in m, f"{m['name']}: a subPath mount is never updated in place"
            assert m.get("readOnly") is True
            (vol,) = [v for v in spec["volumes"] if v["name"] == m["name"]]
            return vol["secret"]["secretName"]
    raise AssertionError(f"{doc['metadata']['name']}: nothing mounted at {path}")


def _vitrine(rendered: list[dict]) -> list[dict]:
    docs = [d for d in _workloads(rendered) if d["metadata"]["name"] in SERVICES]
    assert sorted(d["metadata"]["name"] for d in docs) == sorted(SERVICES)
    return docs


def _index_sets(rendered: list[dict]) -> list[dict]:
    return [d for d in _workloads(rendered) if d["metadata"]["name"].startswith("vitrine-index-")]


def _tls_names(rendered: list[dict]) -> dict[str, set[str]]:
    """Secret -> the host names its certificate must cover (every name a peer dials)."""
    names: dict[str, set[str]] = {}
    gateway = _env(_container(_doc(rendered, "Deployment", "vitrine-gateway")))
    for doc in _vitrine(rendered):
        secret = _secret_of(doc, _env(_container(doc))["VITRINE_TLS_CERT_FILE"])
        names.setdefault(secret, set())
    names["vitrine-encoder-tls"].add(_host(_expand(gateway["VITRINE_ENCODER"])))
    names["vitrine-gateway-tls"].add(f"vitrine-gateway.{NS}.svc")
    etcd = _doc(rendered, "StatefulSet", "vitrine-etcd")
    etcd_env = _env(_container(etcd))
    etcd_secret = _secret_of(etcd, etcd_env["ETCD_CERT_FILE"])
    names.setdefault(etcd_secret, set())
    for doc in _index_sets(rendered):
        env = _env(_container(doc))
        names[etcd_secret].add(_host(_expand(env["VITRINE_COORDINATOR"])))
        for pod in _pod_names(doc):
            names["vitrine-index-tls"].add(_host(_expand(env["VITRINE_ADVERTISE_ADDRESS"], pod)))
    for pod in _pod_names(etcd):
        for var in ("ETCD_INITIAL_ADVERTISE_PEER_URLS", "ETCD_ADVERTISE_CLIENT_URLS"):
            names[etcd_secret].add(_host(_expand(etcd_env[var], pod)))
    return names


def _cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _mem(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    return int(quantity[:-2]) * units[quantity[-2:]] if quantity[-2:] in units else int(quantity)


def _env_from(doc: dict, e: dict) -> str:
    """What the kubelet puts in a ``resourceFieldRef: limits.cpu`` variable (rounded up)."""
    ref = e["valueFrom"]["resourceFieldRef"]
    assert ref["resource"] == "limits.cpu" and ref.get("divisor", "1") in ("1", 1)
    (c,) = [
        c
        for c in doc["spec"]["template"]["spec"]["containers"]
        if c["name"] == ref["containerName"]
    ]
    return str(math.ceil(_cpu(c["resources"]["limits"]["cpu"])))


def _pods(rendered: list[dict]) -> list[dict]:
    """Pod templates (with their workload's name) of every workload."""
    return [d for d in rendered if d["kind"] in ("Deployment", "StatefulSet")]


def _selects(selector: dict, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (``{}`` selects everything)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def _covered(name: str, patterns: list[str]) -> bool:
    """gRPC's (and RFC 6125's) rule: a wildcard stands for exactly the first label, and the
    rest must have a dot (``*.vitrine-index-g0`` never matches: hence the ``.<ns>.svc`` names)."""
    rest = name.partition(".")[2]
    return name in patterns or ("." in rest and f"*.{rest}" in patterns)


# --- schema -------------------------------------------------------------------------------------


BASE_KINDS = [
    "Deployment/vitrine-encoder",
    "Deployment/vitrine-gateway",
    "HorizontalPodAutoscaler/vitrine-encoder",
    "HorizontalPodAutoscaler/vitrine-gateway",
    "NetworkPolicy/vitrine-default-deny",
    "NetworkPolicy/vitrine-dns",
    "NetworkPolicy/vitrine-encoder",
    "NetworkPolicy/vitrine-etcd",
    "NetworkPolicy/vitrine-gateway",
    "NetworkPolicy/vitrine-index",
    "NetworkPolicy/vitrine-index-g0",
    "NetworkPolicy/vitrine-index-g1",
    "PersistentVolumeClaim/vitrine-models",
    "PodDisruptionBudget/vitrine-encoder",
    "PodDisruptionBudget/vitrine-etcd",
    "PodDisruptionBudget/vitrine-gateway",
    "PodDisruptionBudget/vitrine-index-g0",
    "PodDisruptionBudget/vitrine-index-g1",
    "Service/vitrine-encoder",
    "Service/vitrine-etcd",
    "Service/vitrine-etcd-peer",
    "Service/vitrine-gateway",
    "Service/vitrine-index-g0",
    "Service/vitrine-index-g1",
    "StatefulSet/vitrine-etcd",
    "StatefulSet/vitrine-index-g0",
    "StatefulSet/vitrine-index-g1",
]


def _kinds(docs: list[dict]) -> list[str]:
    return sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)


def test_manifests_pass_strict_schema_validation(manifests):
    """The base and every overlay: the Kubernetes objects validate strictly (no unknown or
    misplaced field); the overlays put everything in the namespace, which enforces the
    `restricted` Pod Security Standard (the pods below comply)."""
    import kubernetes_validate

    assert _kinds(manifests["base"]) == BASE_KINDS
    cert_manager = [
        "Certificate/vitrine-ca",
        *(f"Certificate/vitrine-{s}-tls" for s in ("encoder", "etcd", "gateway", "index")),
        "Issuer/vitrine-ca",
        "Issuer/vitrine-selfsigned",
    ]
    for name, docs in manifests.items():
        for doc in docs:
            if not doc["apiVersion"].startswith("cert-manager.io/"):
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        if name == "base":
            continue
        extra = cert_manager if name == "cert-manager" else []
        assert _kinds(docs) == sorted([*BASE_KINDS, "Namespace/vitrine", *extra]), name
        for doc in docs:
            if doc["kind"] == "Namespace":
                labels = doc["metadata"]["labels"]
                assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
            else:
                assert doc["metadata"].get("namespace") == NS, (name, doc["metadata"]["name"])


# --- every service ------------------------------------------------------------------------------


def test_pods_listen_on_all_interfaces_and_probe_the_plaintext_health_port(rendered):
    for doc in _vitrine(rendered):
        c = _container(doc)
        args = c["args"]
        assert args[args.index("--host") + 1] == "0.0.0.0"
        grpc_port = int(args[args.index("--port") + 1])
        metrics_port = int(args[args.index("--metrics-port") + 1])
        health_port = int(args[args.index("--health-port") + 1])
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        want = {"grpc": grpc_port, "metrics": metrics_port, "health": health_port}
        if doc["metadata"]["name"] == "vitrine-gateway":  # and the HTTPS API, on every address
            env = _env(c)
            want["https"] = int(env["VITRINE_HTTP_PORT"])
            assert env["VITRINE_HTTP_HOST"] == "0.0.0.0" and "VITRINE_HTTP_TLS" not in env
        assert ports == want
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert c[probe]["grpc"]["port"] == health_port  # the TLS port would fail the probe
        assert c["readinessProbe"]["grpc"]["service"] == ""
        assert c["livenessProbe"]["grpc"]["service"] == "liveness"
        annotations = doc["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(metrics_port)
        assert _env(c)["VITRINE_METRICS_HOST"] == "0.0.0.0"


def test_no_plaintext_anywhere(rendered):
    for doc in _workloads(rendered):
        c = _container(doc)
        assert "VITRINE_PLAINTEXT" not in _env(c)
        assert not any("plaintext" in a for a in c.get("args", []))
    assert "PLAINTEXT" not in yaml.safe_dump_all(rendered).upper()


def test_every_service_serves_tls_from_its_mounted_secret(rendered):
    for doc in _vitrine(rendered):
        name = doc["metadata"]["name"]
        service = SERVICES[name][0]
        env = _env(_container(doc))
        files = [env[f"VITRINE_TLS_{k}_FILE"] for k in ("CERT", "KEY", "CA")]
        assert [Path(f).name for f in files] == ["tls.crt", "tls.key", "ca.crt"]
        assert {_secret_of(doc, f) for f in files} == {f"vitrine-{service}-tls"}
        # mTLS between the services; the gateway's public callers present API keys instead.
        assert env.get("VITRINE_TLS_CLIENT_AUTH") == ("false" if service == "gateway" else None)


@pytest.mark.parametrize("variant", ["base", "cpu", "gpu"])
def test_env_names_are_settings_and_the_services_accept_them(
    manifests, variant, tmp_path, monkeypatch
):
    """Every VITRINE_* variable is a setting of that service (a typo would be ignored
    silently), $(VAR) references name variables defined before them (else Kubernetes leaves
    them as they are), and the config loader accepts the whole pod's settings and flags, in
    every variant (``--providers cuda`` / ``--index-device gpu`` included)."""
    import importlib

    from gateway.auth import create_key
    from index_service import devices

    monkeypatch.setattr(devices, "gpu_count", lambda: 1)  # as on the GPU nodes
    rendered = manifests[variant]
    from vitrine.serving.certs import ensure_local_tls
    from vitrine.serving.config import load_config

    tls = ensure_local_tls(tmp_path / "tls", ["pod"])["pod"]
    keys = tmp_path / "keys.yaml"
    create_key(keys, "shop", ["search"])
    files = {"tls.crt": tls.cert_file, "tls.key": tls.key_file, "ca.crt": tls.ca_file}
    files["keys.yaml"] = keys
    for doc in _vitrine(rendered):
        module, cls_name = SERVICES[doc["metadata"]["name"]][1].split(":")
        cls = getattr(importlib.import_module(module), cls_name)
        fields = {f.name for f in dataclasses.fields(cls)}
        c = _container(doc)
        defined: list[str] = []
        env: dict[str, str] = {}
        for e in c["env"]:
            for ref in VAR_RE.findall(e.get("value", "")):
                assert ref in defined, f"{e['name']}: $({ref}) is not defined before it"
            defined.append(e["name"])
            if e["name"].startswith("VITRINE_"):
                assert e["name"][len("VITRINE_") :].lower() in fields, e["name"]
                if "valueFrom" in e:
                    env[e["name"]] = _env_from(doc, e)
                    continue
                value = _expand(e["value"], f"{doc['metadata']['name']}-0")
                env[e["name"]] = str(files.get(Path(value).name, value))
        args = c["args"][2:]  # serve <service>
        flags = dict(zip(args[::2], args[1::2], strict=True))
        overrides = {k.lstrip("-").replace("-", "_"): v for k, v in flags.items()}
        if "models" in overrides:  # the flag --models sets models_dir
            overrides["models_dir"] = overrides.pop("models")
        cfg = load_config(cls, None, overrides, env)
        assert cfg.tls_enabled and not cfg.plaintext and cfg.health_port > 0


# --- index: replica groups ----------------------------------------------------------------------


def test_index_is_two_replica_groups_of_two_coordinated_by_etcd(rendered):
    sets = _index_sets(rendered)
    assert sorted(d["metadata"]["name"] for d in sets) == [f"vitrine-index-{g}" for g in GROUPS]
    etcd_client = _doc(rendered, "Service", "vitrine-etcd")
    (client_port,) = [p["port"] for p in etcd_client["spec"]["ports"] if p["name"] == "client"]
    bodies = []
    for doc, group in zip(sorted(sets, key=lambda d: d["metadata"]["name"]), GROUPS, strict=True):
        name = f"vitrine-index-{group}"
        spec = doc["spec"]
        assert spec["replicas"] == 2
        labels = spec["template"]["metadata"]["labels"]
        assert labels["vitrine.dev/replica-group"] == group
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        env = _env(_container(doc))
        assert env["VITRINE_REPLICA_GROUP"] == group
        assert env["VITRINE_REPLICAS"] == "2"  # the replication factor of new collections
        assert env["VITRINE_LEASE_TTL_S"] == "2"
        assert _expand(env["VITRINE_COORDINATOR"]) == f"https://vitrine-etcd.{NS}.svc:{client_port}"
        # The coordinator's etcd client uses the service's own certificate and CA (mTLS).
        assert env["VITRINE_TLS_CA_FILE"] and env["VITRINE_TLS_CERT_FILE"]
        # Each pod advertises its own stable name under its group's headless Service.
        assert env["VITRINE_ADVERTISE_ADDRESS"] == f"$(POD_NAME).{name}.$(POD_NAMESPACE).svc:50052"
        pod_env = {e["name"]: e for e in _container(doc)["env"]}
        assert pod_env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
        assert spec["serviceName"] == name
        svc = _doc(rendered, "Service", name)["spec"]
        assert svc["clusterIP"] == "None" and svc["publishNotReadyAddresses"] is True
        assert svc["selector"] == spec["selector"]["matchLabels"]
        assert [t["metadata"]["name"] for t in spec["volumeClaimTemplates"]] == ["data"]
        pdb = _doc(rendered, "PodDisruptionBudget", name)["spec"]
        assert pdb["maxUnavailable"] == 1 and pdb["selector"] == spec["selector"]
        (term,) = spec["template"]["spec"]["affinity"]["podAntiAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        assert term["labelSelector"] == spec["selector"]
        bodies.append(yaml.safe_dump(doc).replace(group, "GROUP"))
    assert bodies[0] == bodies[1]  # the groups differ in their name only


def test_gateway_lists_every_index_pod(rendered):
    env = _env(_container(_doc(rendered, "Deployment", "vitrine-gateway")))
    endpoints = [_expand(e.strip()) for e in env["VITRINE_INDEX_ENDPOINTS"].split(",")]
    advertised = [
        _expand(_env(_container(doc))["VITRINE_ADVERTISE_ADDRESS"], pod)
        for doc in _index_sets(rendered)
        for pod in _pod_names(doc)
    ]
    assert len(advertised) == 4
    assert sorted(endpoints) == sorted(advertised)


def test_etcd_is_a_three_member_cluster_with_tls(rendered):
    sts = _doc(rendered, "StatefulSet", "vitrine-etcd")
    spec = sts["spec"]
    assert spec["replicas"] == 3 and spec["podManagementPolicy"] == "Parallel"
    peer = _doc(rendered, "Service", spec["serviceName"])["spec"]
    assert peer["clusterIP"] == "None" and peer["publishNotReadyAddresses"] is True
    c = _container(sts)
    assert c["image"].startswith(("quay.io/coreos/etcd:v3.5.", "registry.k8s.io/etcd:3.5."))
    env = _env(c)
    members = dict(m.split("=", 1) for m in _expand(env["ETCD_INITIAL_CLUSTER"]).split(","))
    assert members == {
        pod: f"https://{pod}.{spec['serviceName']}.{NS}.svc:2380" for pod in _pod_names(sts)
    }
    assert (
        _expand(env["ETCD_INITIAL_ADVERTISE_PEER_URLS"], "vitrine-etcd-1")
        == members["vitrine-etcd-1"]
    )
    assert env["ETCD_LISTEN_CLIENT_URLS"].startswith("https://")
    assert env["ETCD_PEER_CLIENT_CERT_AUTH"] == "true"
    assert env["ETCD_CLIENT_CERT_AUTH"] == "true"  # index pods present their certificates
    assert _secret_of(sts, env["ETCD_CERT_FILE"]) == "vitrine-etcd-tls"
    assert _secret_of(sts, env["ETCD_PEER_TRUSTED_CA_FILE"]) == "vitrine-etcd-tls"
    metrics = int(env["ETCD_LISTEN_METRICS_URLS"].rsplit(":", 1)[1])
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] == metrics
    assert [t["metadata"]["name"] for t in spec["volumeClaimTemplates"]] == ["data"]
    assert _doc(rendered, "PodDisruptionBudget", "vitrine-etcd")["spec"]["maxUnavailable"] == 1
    # Its client port admits index pods (and the members) only: it checks no client certificate.
    rules = _doc(rendered, "NetworkPolicy", "vitrine-etcd")["spec"]["ingress"]
    for rule in rules:
        if any(p["port"] == 2379 for p in rule["ports"]):
            names = {
                f["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for f in rule["from"]
            }
            assert names <= {"vitrine-index", "vitrine-etcd"}


# --- gateway: API keys --------------------------------------------------------------------------


def test_api_keys_secret_is_mounted_as_a_directory(rendered):
    doc = _doc(rendered, "Deployment", "vitrine-gateway")
    env = _env(_container(doc))
    assert env["VITRINE_AUTH_REQUIRED"] == "true"
    path = env["VITRINE_API_KEYS_FILE"]
    assert Path(path).name == "keys.yaml"
    assert _secret_of(doc, path) == "vitrine-api-keys"  # and no subPath (checked there)


# --- certificates -------------------------------------------------------------------------------


def test_cert_manager_overlay_issues_every_mounted_secret_for_every_name(rendered, overlay):
    # (validated, and in namespace NS, with the other overlays in the schema test)
    certs = {
        d["spec"]["secretName"]: d["spec"]
        for d in overlay
        if d["kind"] == "Certificate" and not d["spec"].get("isCA")
    }
    wanted = _tls_names(rendered)
    assert sorted(certs) == sorted(wanted)
    for secret, names in wanted.items():
        spec = certs[secret]
        assert {"server auth", "client auth"} <= set(spec["usages"]), secret
        for name in names:
            assert _covered(name, spec["dnsNames"]), f"{secret}: {name} not in {spec['dnsNames']}"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_make_certs_script_covers_every_name_and_mtls_handshakes(rendered, tmp_path):
    import grpc
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    from vitrine.serving.tls import ClientTLS, channel

    out = tmp_path / "certs"
    script = ROOT / "deploy" / "tls" / "make-certs.sh"
    subprocess.run(["bash", str(script), NS, str(out)], check=True, capture_output=True)
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    for secret, names in _tls_names(rendered).items():
        service = secret.removeprefix("vitrine-").removesuffix("-tls")
        cert = x509.load_pem_x509_certificate((out / f"{service}.crt").read_bytes())
        cert.verify_directly_issued_by(ca)
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(eku)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = sans.get_values_for_type(x509.DNSName)
        for name in names:
            assert _covered(name, dns), f"{service}: {name} not in {dns}"

    def serve(service: str) -> tuple[grpc.Server, int]:
        server = grpc.server(ThreadPoolExecutor(2))
        health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
        creds = grpc.ssl_server_credentials(
            [((out / f"{service}.key").read_bytes(), (out / f"{service}.crt").read_bytes())],
            root_certificates=(out / "ca.crt").read_bytes(),
            require_client_auth=True,
        )
        port = server.add_secure_port("127.0.0.1:0", creds)
        server.start()
        return server, port

    def check(port: int, caller: str, server_name: str) -> None:
        tls = ClientTLS(out / "ca.crt", out / f"{caller}.crt", out / f"{caller}.key", server_name)
        with channel(f"127.0.0.1:{port}", tls) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            stub.Check(health_pb2.HealthCheckRequest(), timeout=10)

    gateway = _env(_container(_doc(rendered, "Deployment", "vitrine-gateway")))
    index_server, index_port = serve("index")
    encoder_server, encoder_port = serve("encoder")
    try:
        for endpoint in gateway["VITRINE_INDEX_ENDPOINTS"].split(","):
            host = _host(_expand(endpoint))
            check(index_port, "gateway", host)  # gateway -> index
            check(index_port, "index", host)  # index -> index (followers fetch from primary)
        check(encoder_port, "gateway", _host(_expand(gateway["VITRINE_ENCODER"])))
        with pytest.raises(grpc.RpcError):  # the short name is no match for the wildcard
            check(index_port, "gateway", "vitrine-index-g0-0.vitrine-index-g0")
    finally:
        index_server.stop(None)
        encoder_server.stop(None)


# --- hardening: security contexts, resources, writable paths -------------------------------------

RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral"}
RESTRICTED_VOLUMES |= {"persistentVolumeClaim", "projected", "secret"}


@pytest.mark.parametrize("variant", OVERLAYS)
def test_every_pod_is_hardened_with_requests_and_limits(manifests, variant):
    """The `restricted` Pod Security Standard and more: non-root (a high uid), no privilege
    escalation, no capabilities, the runtime's seccomp profile, a read-only root filesystem
    (writable: the data volumes and an emptyDir /tmp), no service-account token, no service
    links (their VITRINE_*_PORT variables would sit beside the settings); CPU and memory
    requests and limits on every container, and thread pools sized by the CPU limit."""
    pods = _pods(manifests[variant])
    assert sorted(d["metadata"]["name"] for d in pods) == sorted(WORKLOADS)
    for doc in pods:
        name = doc["metadata"]["name"]
        spec = doc["spec"]["template"]["spec"]
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True and pod_sc["runAsUser"] >= 10000, name
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["enableServiceLinks"] is False, name
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), name
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in doc["spec"].get("volumeClaimTemplates", [])}
        for vol in volumes.values():
            assert set(vol) - {"name"} <= RESTRICTED_VOLUMES, (name, vol)
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert not sc.get("privileged") and sc.get("runAsUser", 65532) != 0, name
            res = c["resources"]
            for kind in ("cpu", "memory"):
                assert kind in res["requests"] and kind in res["limits"], (name, kind)
            assert _cpu(res["requests"]["cpu"]) <= _cpu(res["limits"]["cpu"]), name
            assert _mem(res["requests"]["memory"]) <= _mem(res["limits"]["memory"]), name
            for extended in set(res["limits"]) - {"cpu", "memory"}:  # nvidia.com/gpu
                assert res["requests"][extended] == res["limits"][extended], name
            # Every writable path is a volume: the data volume, an emptyDir; the rest read-only.
            for m in c.get("volumeMounts", []):
                if m.get("readOnly"):
                    continue
                vol = volumes.get(m["name"])
                assert m["name"] in claims or "emptyDir" in vol, (name, m)
                if vol and "emptyDir" in vol:
                    assert vol["emptyDir"].get("sizeLimit"), (name, m)  # no node disk filling
            env = {e["name"]: e for e in c.get("env", [])}
            threads = {
                "vitrine-encoder": ["VITRINE_INTRA_OP_THREADS", "VITRINE_DECODE_WORKERS"],
                "vitrine-gateway": ["OMP_NUM_THREADS"],
                "vitrine-etcd": ["GOMAXPROCS"],
            }.get(name, ["VITRINE_SEARCH_THREADS", "OMP_NUM_THREADS"])
            for var in threads:
                ref = env[var]["valueFrom"]["resourceFieldRef"]
                assert ref == {"containerName": c["name"], "resource": "limits.cpu"}, (name, var)
        if name in SERVICES:  # the image's HOME and anything temporary
            (c,) = spec["containers"]
            (tmp,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert "emptyDir" in volumes[tmp["name"]]
    encoder = _doc(manifests[variant], "Deployment", "vitrine-encoder")
    (models,) = [m for m in _container(encoder)["volumeMounts"] if m["mountPath"] == "/models"]
    assert models["readOnly"] is True  # the model repository: read-only (and its claim too)
    (vol,) = [v for v in encoder["spec"]["template"]["spec"]["volumes"] if v["name"] == "models"]
    assert vol["persistentVolumeClaim"]["readOnly"] is True


# --- availability: disruption budgets, spreading, autoscaling -------------------------------------


@pytest.mark.parametrize("variant", OVERLAYS)
def test_every_workload_has_a_disruption_budget_and_spreads_its_replicas(manifests, variant):
    docs = manifests[variant]
    pdbs = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for doc in _pods(docs):
        name = doc["metadata"]["name"]
        labels = doc["spec"]["template"]["metadata"]["labels"]
        (pdb,) = [p for p in pdbs if _selects(p["spec"]["selector"], labels)]
        assert pdb["spec"]["maxUnavailable"] == 1, name
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow", name
        spec = doc["spec"]["template"]["spec"]
        if doc["kind"] == "StatefulSet":  # index groups and etcd: never two members on a node
            (term,) = spec["affinity"]["podAntiAffinity"][
                "requiredDuringSchedulingIgnoredDuringExecution"
            ]
            assert term["topologyKey"] == "kubernetes.io/hostname", name
            assert term["labelSelector"] == doc["spec"]["selector"], name
        else:  # stateless: spread over nodes where there are enough
            keys = {
                t["topologyKey"]
                for t in spec["topologySpreadConstraints"]
                if _selects(t["labelSelector"], labels) and t["maxSkew"] == 1
            }
            assert "kubernetes.io/hostname" in keys, name
        zones = [t for t in spec["topologySpreadConstraints"] if t["topologyKey"].endswith("/zone")]
        assert zones and all(_selects(t["labelSelector"], labels) for t in zones), name


@pytest.mark.parametrize("variant", OVERLAYS)
def test_encoder_and_gateway_autoscale_on_cpu(manifests, variant):
    docs = manifests[variant]
    for name in ("vitrine-encoder", "vitrine-gateway"):
        deployment = _doc(docs, "Deployment", name)
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
        hpa = _doc(docs, "HorizontalPodAutoscaler", name)
        assert hpa["apiVersion"] == "autoscaling/v2"
        spec = hpa["spec"]
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert 2 <= spec["minReplicas"] < spec["maxReplicas"]  # 2: a PDB of 1 still leaves one
        (cpu,) = [m for m in spec["metrics"] if m["type"] == "Resource"]
        assert cpu["resource"]["name"] == "cpu"
        assert cpu["resource"]["target"]["type"] == "Utilization"
        assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
        container = _container(deployment)
        assert "cpu" in container["resources"]["requests"]  # utilisation is of the request
        # Connections are re-made every few minutes, so added replicas take load.
        assert float(_env(container)["VITRINE_MAX_CONNECTION_AGE_S"]) > 0
    # The gateways reach every encoder pod (a headless Service, "dns:///", round-robin calls):
    # with one connection to a ClusterIP, each gateway would feed a single encoder pod.
    encoder_svc = _doc(docs, "Service", "vitrine-encoder")
    assert encoder_svc["spec"]["clusterIP"] == "None"
    gateway_env = _env(_container(_doc(docs, "Deployment", "vitrine-gateway")))
    assert gateway_env["VITRINE_ENCODER"].startswith("dns:///vitrine-encoder.")


def test_encoder_queue_time_autoscaling_uses_the_adapter_rule(manifests):
    """components/encoder-queue-time (in the gpu overlay): the HPA's Pods metric is the one the
    prometheus-adapter rule serves, computed from the encoder's real queue-time histogram; the
    rule's query is valid PromQL (promtool, when installed)."""
    from prometheus_client import CollectorRegistry

    from encoder_service.metrics import EncoderMetrics

    registry = CollectorRegistry()
    EncoderMetrics(registry)
    families = {m.name: m.type for m in registry.collect()}
    component = DEPLOY / "components" / "encoder-queue-time"
    (rule,) = yaml.safe_load((component / "prometheus-adapter-rules.yaml").read_text())["rules"][
        "custom"
    ]
    series = re.match(r"(\w+)\{", rule["seriesQuery"]).group(1)
    histogram = series.removesuffix("_count")
    assert series.endswith("_count") and families[histogram] == "histogram"
    assert f"{histogram}_sum" in rule["metricsQuery"] and "<<.Series>>" in rule["metricsQuery"]
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
    metric = rule["name"]["as"]
    assert re.fullmatch(rule["name"]["matches"], series)
    hpa = _doc(manifests["gpu"], "HorizontalPodAutoscaler", "vitrine-encoder")["spec"]
    (pods,) = [m for m in hpa["metrics"] if m["type"] == "Pods"]
    assert pods["pods"]["metric"]["name"] == metric
    assert pods["pods"]["target"]["type"] == "AverageValue"
    assert [m["type"] for m in hpa["metrics"]].count("Resource") == 1  # CPU stays beside it
    for variant in ("cpu", "cert-manager"):  # the component is opt-in
        hpa = _doc(manifests[variant], "HorizontalPodAutoscaler", "vitrine-encoder")["spec"]
        assert [m["type"] for m in hpa["metrics"]] == ["Resource"]
    promtool = shutil.which("promtool")
    if promtool is None:
        return
    query = (
        rule["metricsQuery"]
        .replace("<<.Series>>", series)
        .replace("<<.LabelMatchers>>", f'namespace="{NS}",pod=~"vitrine-encoder-.*"')
        .replace("<<.GroupBy>>", "pod")
    )
    rules = {"groups": [{"name": "adapter", "rules": [{"record": metric, "expr": query}]}]}
    out = subprocess.run(
        [promtool, "check", "rules", "/dev/stdin"],
        input=yaml.safe_dump(rules),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr


# --- network policies ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Peer:
    name: str
    namespace: str | None  # None: outside the cluster
    labels: tuple[tuple[str, str], ...] = ()
    ports: tuple[tuple[int, str], ...] = ()  # what it listens on

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


def _peer_matches(element: dict, policy_ns: str, peer: _Peer) -> bool:
    assert "ipBlock" not in element  # not used here: pods are selected by label
    if peer.namespace is None:
        return False
    if "namespaceSelector" in element:
        ns_labels = {"kubernetes.io/metadata.name": peer.namespace}
        if not _selects(element["namespaceSelector"], ns_labels):
            return False
    elif peer.namespace != policy_ns:
        return False
    return "podSelector" not in element or _selects(element["podSelector"], peer.label_dict)


def _direction_allows(policies, pod: _Peer, other: _Peer, port: int, proto: str, d: str) -> bool:
    """Whether the policies of ``pod``'s namespace admit ``other`` as the peer of ``pod`` in
    direction ``d`` (Ingress: other -> pod; Egress: pod -> other) on ``port``."""
    key = "from" if d == "Ingress" else "to"
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and _selects(p["spec"]["podSelector"], pod.label_dict)
        and d in p["spec"].get("policyTypes", ["Ingress"])
    ]
    if not selecting:
        return True  # not isolated in this direction
    for p in selecting:
        for rule in p["spec"].get(d.lower(), []):
            ports = rule.get("ports")
            if ports and not any(
                x["port"] == port and x.get("protocol", "TCP") == proto for x in ports
            ):
                continue
            peers = rule.get(key)
            if not peers or any(_peer_matches(e, p["metadata"]["namespace"], other) for e in peers):
                return True
    return False


def _allowed_flows(docs: list[dict]) -> set[tuple[str, str, int]]:
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    pods = []
    for doc in _pods(docs):
        (c,) = doc["spec"]["template"]["spec"]["containers"]
        labels = doc["spec"]["template"]["metadata"]["labels"]
        name = doc["metadata"]["name"].removeprefix("vitrine-")
        ports = tuple((p["containerPort"], "TCP") for p in c["ports"])
        pods.append(_Peer(name, NS, tuple(sorted(labels.items())), ports))
    # Outside the namespace, "internet" and "shop" (another namespace's pod) listen on every
    # port in play, so that egress a policy would admit to them too is seen.
    every_port = tuple(sorted({p for pod in pods for p in pod.ports} | {(443, "TCP"), (53, "UDP")}))
    others = [
        _Peer("internet", None, (), every_port),
        _Peer("shop", "shop", (("app", "frontend"),), every_port),
        _Peer("prometheus", "monitoring", (("app.kubernetes.io/name", "prometheus"),)),
        _Peer("kube-dns", "kube-system", (("k8s-app", "kube-dns"),), ((53, "UDP"), (53, "TCP"))),
    ]
    flows = set()
    for src in pods + others:
        for dst in pods + others:
            if src.namespace != NS and dst.namespace != NS:
                continue  # not ours to rule
            for port, proto in dst.ports:
                egress = _direction_allows(policies, src, dst, port, proto, "Egress")
                ingress = _direction_allows(policies, dst, src, port, proto, "Ingress")
                if egress and ingress:
                    flows.add((src.name, dst.name, port))
    return flows


@pytest.mark.parametrize("variant", OVERLAYS)
def test_network_policies_admit_exactly_the_flows_the_services_use(manifests, variant):
    """Default deny both ways; only the gateway's gRPC and HTTPS ports are reachable from outside the
    namespace; encoder and index only from the gateway (and an index group's members from each
    other); etcd's client port only from index pods; metrics ports only from the monitoring
    namespace; DNS for everyone. The health ports appear nowhere: the kubelet's probes come
    from the node, whose traffic the common implementations admit anyway."""
    flows = _allowed_flows(manifests[variant])
    ours = ["gateway", "encoder", "index-g0", "index-g1", "etcd"]
    # anyone outside the namespace (not its own pods: their egress is ruled too)
    outside = ["internet", "shop", "prometheus", "kube-dns"]
    expected = {(src, "gateway", port) for src in outside for port in (50050, 8443)}
    expected |= {(src, "kube-dns", 53) for src in ours}
    expected |= {("prometheus", "gateway", 9400), ("prometheus", "encoder", 9401)}
    expected |= {("prometheus", "index-g0", 9402), ("prometheus", "index-g1", 9402)}
    expected |= {("prometheus", "etcd", 2381)}
    expected |= {("gateway", "encoder", 50051)}
    expected |= {("gateway", g, 50052) for g in ("index-g0", "index-g1")}
    expected |= {(g, g, 50052) for g in ("index-g0", "index-g1")}
    expected |= {(g, "etcd", 2379) for g in ("index-g0", "index-g1")}
    expected |= {("etcd", "etcd", 2379), ("etcd", "etcd", 2380)}
    assert sorted(flows - expected) == [], "admitted but not needed"
    assert sorted(expected - flows) == [], "needed but denied"
    (deny,) = [
        d
        for d in manifests[variant]
        if d["kind"] == "NetworkPolicy"
        and d["spec"]["podSelector"] == {}
        and "ingress" not in d["spec"]
        and "egress" not in d["spec"]
    ]
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]


# --- variants -----------------------------------------------------------------------------------


def _arg(c: dict, flag: str) -> str | None:
    args = c.get("args", [])
    return args[args.index(flag) + 1] if flag in args else None


def test_cpu_and_gpu_variants(manifests):
    """cpu: the -cpu image everywhere, onnxruntime's CPU provider, shards in host memory, no
    GPU asked for. gpu: encoder and index pods on the -gpu image with one nvidia.com/gpu each,
    on GPU nodes (selector and toleration), `--providers cuda` and `--index-device gpu` (both
    refuse to start without a GPU instead of running on the CPU unnoticed); the gateway stays
    on the -cpu image and CPU nodes."""
    for variant in ("cpu", "cert-manager"):
        for doc in _vitrine(manifests[variant]):
            c = _container(doc)
            spec = doc["spec"]["template"]["spec"]
            assert c["image"] == "vitrine:0.1.0-cpu"
            assert "nvidia.com/gpu" not in c["resources"]["limits"]
            assert "nodeSelector" not in spec and "tolerations" not in spec
        cpu = manifests[variant]
        assert _arg(_container(_doc(cpu, "Deployment", "vitrine-encoder")), "--providers") == "cpu"
        for doc in _index_sets(cpu):
            assert _arg(_container(doc), "--index-device") == "cpu"
    gpu = manifests["gpu"]
    for doc in _vitrine(gpu):
        name = doc["metadata"]["name"]
        c = _container(doc)
        spec = doc["spec"]["template"]["spec"]
        if name == "vitrine-gateway":
            assert c["image"] == "vitrine:0.1.0-cpu"
            assert "nvidia.com/gpu" not in c["resources"]["limits"]
            continue
        assert c["image"] == "vitrine:0.1.0-gpu", name
        assert c["resources"]["limits"]["nvidia.com/gpu"] == "1", name
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}, name
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
            "tolerations"
        ]
        flag, value = (
            ("--providers", "cuda") if name == "vitrine-encoder" else ("--index-device", "gpu")
        )
        assert _arg(c, flag) == value, name
        assert c["args"].count(flag) == 1, name
    # The CLI really has those options (a renamed flag would fail at start only).
    from typer.testing import CliRunner

    from vitrine.cli import app

    runner = CliRunner()
    for service, flag in (("encoder", "--providers"), ("index", "--index-device")):
        out = runner.invoke(app, ["serve", service, "--help"], env={"COLUMNS": "200"})
        assert out.exit_code == 0 and flag in out.output


# --- the image ----------------------------------------------------------------------------------


def _dockerfile_stages() -> list[list[tuple[str, str]]]:
    """deploy/Dockerfile as stages of (INSTRUCTION, arguments), continuations joined."""
    text = (DEPLOY / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    stages: list[list[tuple[str, str]]] = [[]]
    for line in joined.splitlines():
        if not line.strip():
            continue
        instr, _, rest = line.strip().partition(" ")
        if instr.upper() == "FROM":
            stages.append([])
        stages[-1].append((instr.upper(), rest.strip()))
    return stages


def test_dockerfile_builds_both_variants_in_stages_and_runs_as_non_root():
    _, *stages = _dockerfile_stages()  # (the part before the first FROM)
    assert len(stages) >= 2, "multi-stage"
    names = [re.search(r"\bAS (\w+)", dict(s)["FROM"], re.I).group(1) for s in stages]
    assert names[0] == "build"
    for stage in stages:
        assert ("ARG", "VARIANT=cpu") in stage
        base = dict(stage)["FROM"].split()[0]
        assert base.startswith("python:3.11-slim"), base  # no compilers in the base either
    build, final = stages[0], stages[-1]
    build_runs = " ".join(a for i, a in build if i == "RUN")
    assert 'image_requirements.py "${VARIANT}"' in build_runs
    assert "--only-binary=:all:" in build_runs  # wheels only: nothing is compiled
    assert "pip install --no-deps ." in build_runs
    final_text = " ".join(a for _, a in final)
    assert any(i == "COPY" and a.startswith("--from=build ") for i, a in final)
    for tool in ("apt-get", "gcc", "build-essential", "make ", "pip install", "git "):
        assert tool not in final_text, f"{tool!r} in the final stage"
    assert "pip uninstall" in final_text  # no pip (nor setuptools, wheel) left
    users = [a for i, a in final if i == "USER"]
    assert users and users[-1] == "65532:65532"  # numeric: runAsNonRoot can verify it
    entry = json.loads(dict(final)["ENTRYPOINT"])
    assert entry[0] == "vitrine"
    env = " ".join(a for i, a in final if i == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "HOME=/tmp" in env  # read-only root
    # The build context (deploy/Dockerfile.dockerignore) holds every file COPY names.
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {ln[1:] for ln in ignore if ln.startswith("!")}
    for instr, args in build:
        if instr == "COPY":
            for src in args.split()[:-1]:
                assert src in kept, f"{src} is not in the build context"


def test_image_requirements_swap_in_the_gpu_wheels():
    spec = importlib.util.spec_from_file_location(
        "image_requirements", DEPLOY / "image_requirements.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    cpu, gpu = mod.requirements("cpu"), mod.requirements("gpu")
    assert cpu == [d.split("#")[0].strip() for d in deps]

    def names(reqs):
        return {re.match(r"[\w.-]+", r).group(0).lower(): r for r in reqs}

    cpu_names, gpu_names = names(cpu), names(gpu)
    assert len(gpu) == len(cpu)
    assert not {"onnxruntime", "faiss-cpu"} & set(gpu_names)  # never both builds of a module
    assert {"onnxruntime-gpu", "faiss-gpu"} <= set(gpu_names)
    for name in set(cpu_names) - {"onnxruntime", "faiss-cpu"}:
        assert gpu_names[name] == cpu_names[name]
    version = cpu_names["faiss-cpu"].split("==")[1]
    assert gpu_names["faiss-gpu"] == f"faiss-gpu=={version}"  # same faiss, other build
    assert "[cuda,cudnn]" in gpu_names["onnxruntime-gpu"]  # CUDA and cuDNN as wheels
    with pytest.raises(ValueError):
        mod.requirements("tpu")


# --- checkov ------------------------------------------------------------------------------------


def _checkov() -> list[str] | None:
    """checkov in this interpreter, else in its own venv (`make checkov` builds it and sets
    CHECKOV_BIN: its pins conflict with the services', so it is not in the dev extras)."""
    if importlib.util.find_spec("checkov") is not None:
        return [sys.executable, "-m", "checkov.main"]
    exe = Path(os.environ.get("CHECKOV_BIN") or ROOT / ".venv-checkov" / "bin" / "checkov")
    return [str(exe)] if exe.exists() else None


def test_checkov_passes_every_overlay_and_the_dockerfile_but_the_waived_checks(manifests, tmp_path):
    """One checkov run (framework kubernetes over each overlay's rendered manifests, dockerfile
    over deploy/Dockerfile): every failed check is waived in deploy/checkov-waivers.yaml, every
    waiver has its reason and still matches a failure."""
    command = _checkov()
    if command is None:
        pytest.skip("checkov is not installed: `make checkov` (deploy/requirements-checkov.txt)")
    waivers = yaml.safe_load((DEPLOY / "checkov-waivers.yaml").read_text())["waivers"]
    for w in waivers:
        assert re.fullmatch(r"CKV2?_[A-Z0-9]+_\d+", w["check"]) and len(w["reason"]) > 40, w
    for variant in OVERLAYS:
        (tmp_path / f"{variant}.yaml").write_text(yaml.safe_dump_all(manifests[variant]))
    shutil.copy(DEPLOY / "Dockerfile", tmp_path / "Dockerfile")
    args = ["--directory", ".", "--framework", "kubernetes", "dockerfile", "--output", "json"]
    out = subprocess.run(
        [*command, *args, "--compact", "--skip-download"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode in (0, 1), out.stderr[-3000:]  # 1: some check failed
    reports = json.loads(out.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert sorted(r["check_type"] for r in reports) == ["dockerfile", "kubernetes"]
    for r in reports:
        assert r["summary"]["parsing_errors"] == 0 and r["summary"]["passed"] > 0, r["summary"]
    files = {f"/{v}.yaml" for v in OVERLAYS} | {"/Dockerfile"}
    seen = {c["file_path"] for r in reports for c in r["results"]["passed_checks"]}
    assert seen == files  # every overlay (and the Dockerfile) was read
    used: set[str] = set()
    unwaived = []
    for r in reports:
        for c in r["results"]["failed_checks"]:
            matching = [
                w
                for w in waivers
                if w["check"] == c["check_id"]
                and ("resources" not in w or c["resource"] in w["resources"])
            ]
            if matching:
                used.add(matching[0]["check"])
            else:
                unwaived.append(
                    f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})"
                )
    assert unwaived == []
    assert used == {w["check"] for w in waivers}, "a waiver matches no failure: remove it"
