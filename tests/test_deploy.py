"""deploy/: the kustomize output renders, passes strict offline schema validation, and says what
the services need: two index replica groups of two coordinated by etcd, TLS on every listener
(probes on the plaintext health ports), API keys on the gateway, certificates for every name."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NS = "vitrine"  # the namespace $(POD_NAMESPACE) stands for here (the cert-manager overlay's)
GROUPS = ("g0", "g1")
SERVICES = {  # workload -> (service, config class)
    "vitrine-encoder": ("encoder", "encoder_service.config:EncoderConfig"),
    "vitrine-index-g0": ("index", "index_service.config:IndexConfig"),
    "vitrine-index-g1": ("index", "index_service.config:IndexConfig"),
    "vitrine-gateway": ("gateway", "gateway.config:GatewayConfig"),
}
VAR_RE = re.compile(r"\$\((\w+)\)")


def _kustomize(path: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    out = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    return _kustomize(ROOT / "deploy" / "base")


@pytest.fixture(scope="module")
def overlay() -> list[dict]:
    return _kustomize(ROOT / "deploy" / "overlays" / "cert-manager")


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
    return re.sub(r"^\w+://", "", address).rsplit(":", 1)[0]


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


def _covered(name: str, patterns: list[str]) -> bool:
    """gRPC's (and RFC 6125's) rule: a wildcard stands for exactly the first label, and the
    rest must have a dot (``*.vitrine-index-g0`` never matches: hence the ``.<ns>.svc`` names)."""
    rest = name.partition(".")[2]
    return name in patterns or ("." in rest and f"*.{rest}" in patterns)


# --- schema -------------------------------------------------------------------------------------


def test_manifests_pass_strict_schema_validation(rendered):
    import kubernetes_validate

    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in rendered)
    assert kinds == [
        "Deployment/vitrine-encoder",
        "Deployment/vitrine-gateway",
        "NetworkPolicy/vitrine-etcd",
        "PersistentVolumeClaim/vitrine-models",
        "PodDisruptionBudget/vitrine-etcd",
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
    for doc in rendered:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)


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
        assert ports == {"grpc": grpc_port, "metrics": metrics_port, "health": health_port}
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


def test_env_names_are_settings_and_the_services_accept_them(rendered, tmp_path):
    """Every VITRINE_* variable is a setting of that service (a typo would be ignored
    silently), $(VAR) references name variables defined before them (else Kubernetes leaves
    them as they are), and the config loader accepts the whole pod's settings."""
    import importlib

    from gateway.auth import create_key
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
    import kubernetes_validate

    for doc in overlay:
        if not doc["apiVersion"].startswith("cert-manager.io/"):
            kubernetes_validate.validate(doc, "1.37.0", strict=True)
            assert doc["metadata"].get("namespace") == NS
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
