"""deploy/monitoring/ and the gateway's retrieval-quality metrics.

The rules pass `promtool check rules` and their unit tests (each alert fires and stays silent on
synthetic series), name only series the services export, and link runbooks that exist; the
PrometheusRule and the dashboard are generated from their sources; the manifests validate and
select the pods of deploy/base; and a real Prometheus (Debian's) scrapes a real local stack and
evaluates the rules and every dashboard query.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests.support import tools

ROOT = Path(__file__).resolve().parents[1]
MON = ROOT / "deploy" / "monitoring"
RULES = MON / "vitrine-rules.yml"
RUNBOOK = ROOT / "docs" / "operations.md"
ROWS = ["Search pipeline", "Retrieval quality", "Gateway", "Encoder", "Index"]
SEVERITIES = {"critical", "warning", "info"}
JOBS = {"vitrine-encoder", "vitrine-index", "vitrine-gateway"}

# A series name in PromQL: a recording rule (has colons), one of ours, kubelet's, or `up`.
NAME_RE = re.compile(
    r"(?<![\w:$])([a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]*|vitrine_\w+|kubelet_\w+|up)(?![\w:(])"
)
STRING_RE = re.compile(r'"(?:[^"\\]|\\.)*"')


def _generate():
    spec = importlib.util.spec_from_file_location("monitoring_generate", MON / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _groups() -> list[dict]:
    return yaml.safe_load(RULES.read_text())["groups"]


def _rules() -> list[dict]:
    return [r for g in _groups() for r in g["rules"]]


def _alerts() -> list[dict]:
    return [r for r in _rules() if "alert" in r]


def _names(expr: str) -> set[str]:
    return set(NAME_RE.findall(STRING_RE.sub('""', expr)))


def _exported() -> set[str]:
    """Every series name the services' metric classes expose (the registries, not a list)."""
    from prometheus_client import CollectorRegistry

    from encoder_service.metrics import EncoderMetrics
    from gateway.metrics import GatewayMetrics
    from index_service.metrics import IndexMetrics
    from vitrine.serving.metrics import RpcMetrics

    reg = CollectorRegistry()
    GatewayMetrics(reg)
    EncoderMetrics(reg)
    RpcMetrics(reg, "test")
    IndexMetrics(reg).watch_replication(SimpleNamespace(role=1, term=1, role_changes=0), reg)
    names = set()
    for family in reg.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            names.add(family.name)
    return names


def _known() -> set[str]:
    recorded = {r["record"] for r in _rules() if "record" in r}
    kubelet = {"kubelet_volume_stats_available_bytes", "kubelet_volume_stats_capacity_bytes"}
    return _exported() | recorded | kubelet | {"up"}


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (.ci/run installs Debian's prometheus)")
    return promtool


def _dashboard() -> dict:
    return json.loads((MON / "vitrine-dashboard.json").read_text())


def _dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every query, the Grafana variables filled in as Grafana would."""
    out = []
    for panel in _dashboard()["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "1m").replace("$namespace", ".*")
            out.append((panel["title"], expr))
    return out


# --- rules ----------------------------------------------------------------------------------------


def test_rules_pass_promtool_check():
    out = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in out.stdout


def test_rules_unit_tests_pass():
    files = sorted(str(p) for p in (MON / "tests").glob("*.yml"))
    assert len(files) >= 4
    out = subprocess.run(
        [_promtool(), "test", "rules", *files], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("SUCCESS") == len(files), out.stdout


def test_every_alert_is_tested_firing_and_silent():
    fired, silent = set(), set()
    for path in (MON / "tests").glob("*.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for t in test.get("alert_rule_test", []):
                (fired if t.get("exp_alerts") else silent).add(t["alertname"])
    alerts = {a["alert"] for a in _alerts()}
    assert len(alerts) == len(_alerts()), "duplicate alert names"
    assert alerts - fired == set(), "alerts no test makes fire"
    assert alerts - silent == set(), "alerts no test shows silent"
    assert (fired | silent) - alerts == set(), "tests of alerts that do not exist"


def test_every_alert_has_a_severity_and_a_runbook_section():
    headings = set(re.findall(r"^### (\w+)$", RUNBOOK.read_text(), flags=re.M))
    for a in _alerts():
        name = a["alert"]
        assert a["labels"]["severity"] in SEVERITIES, name
        assert {"summary", "description", "runbook_url"} <= set(a["annotations"]), name
        assert a["annotations"]["runbook_url"] == f"docs/operations.md#{name.lower()}"
        assert name in headings, f"docs/operations.md has no '### {name}' runbook"
    # and no runbook for an alert that is gone
    assert {h for h in headings if h.startswith("Vitrine")} == {a["alert"] for a in _alerts()}


def test_rules_read_only_series_that_exist():
    known = _known()
    recorded_so_far: set[str] = set()
    for group in _groups():
        for rule in group["rules"]:
            names = _names(rule["expr"])
            assert names, rule
            assert names <= known, (rule.get("record") or rule.get("alert"), names - known)
            if "record" in rule:
                # a recording rule reads only rules defined before it (within a group rules run
                # in order, so a ratio reads this evaluation's rate, not the previous one's)
                assert names & {r["record"] for r in _rules() if "record" in r} <= recorded_so_far
                recorded_so_far.add(rule["record"])
    # and every recording rule is used: by an alert, the dashboard or another rule
    used = {n for a in _alerts() for n in _names(a["expr"])}
    used |= {n for _, expr in _dashboard_queries() for n in _names(expr)}
    used |= {n for r in _rules() if "record" in r for n in _names(r["expr"])}
    assert {r["record"] for r in _rules() if "record" in r} <= used


def test_rules_group_only_by_bounded_labels():
    """No rule aggregates by an id-like label (the services export none either)."""
    for rule in _rules():
        for labels in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", rule["expr"]):
            for label in (s.strip() for s in labels.split(",")):
                assert label in {
                    "namespace",
                    "service",
                    "method",
                    "stage",
                    "query",
                    "filter_shape",
                    "model",
                    "reason",
                    "collection",
                    "mode",
                    "le",
                    "replica_group",
                    "pod",
                }, (rule, label)


def test_prometheus_rule_is_generated_from_the_rules_file():
    text = (MON / "prometheusrule.yaml").read_text()
    doc = yaml.safe_load(text)
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    assert doc["spec"]["groups"] == _groups()
    assert text == _generate().prometheus_rule(), "stale: run `make monitoring`"


# --- dashboard ------------------------------------------------------------------------------------


def test_dashboard_has_a_row_per_service_and_the_pipeline():
    board = _dashboard()
    assert board["uid"] == "vitrine-overview" and board["title"] == "Vitrine"
    panels = board["panels"]
    assert [p["title"] for p in panels if p["type"] == "row"] == ROWS
    assert panels[0]["type"] == "row"
    rows, current = {}, None
    for p in panels:
        if p["type"] == "row":
            current = rows.setdefault(p["title"], [])
        else:
            current.append(p)
            assert p["targets"], p["title"]
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert all(len(v) >= 4 for v in rows.values()), {k: len(v) for k, v in rows.items()}
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert set(variables) == {"datasource", "namespace"}


def test_dashboard_queries_name_existing_series_and_parse(tmp_path):
    known = _known()
    queries = _dashboard_queries()
    assert len(queries) > 40
    for title, expr in queries:
        names = _names(expr)
        assert names, (title, expr)
        assert names <= known, (title, names - known)
    # PromQL syntax: promtool parses each one as a recording rule
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:q{i}", "expr": e} for i, (_, e) in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    out = subprocess.run(
        [_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_dashboard_is_generated_by_the_generator():
    pytest.importorskip(
        "grafana_foundation_sdk",
        reason="grafana-foundation-sdk not installed (a dev extra of pyproject.toml)",
    )
    text = (MON / "vitrine-dashboard.json").read_text()
    assert text == _generate().dashboard(), "stale: run `make monitoring`"


# --- manifests ------------------------------------------------------------------------------------


def _schema_validator(kind: str):
    import jsonschema

    schema = json.loads((MON / "schemas" / f"{kind.lower()}-monitoring-v1.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _monitoring_docs() -> list[dict]:
    docs = [d for d in yaml.safe_load_all((MON / "podmonitors.yaml").read_text()) if d]
    return [*docs, yaml.safe_load((MON / "prometheusrule.yaml").read_text())]


def test_monitoring_manifests_validate_against_the_crd_schemas():
    docs = _monitoring_docs()
    assert sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs) == [
        "PodMonitor/vitrine-encoder",
        "PodMonitor/vitrine-gateway",
        "PodMonitor/vitrine-index",
        "PrometheusRule/vitrine",
    ]
    for doc in docs:
        errors = list(_schema_validator(doc["kind"]).iter_errors(doc))
        assert not errors, [e.message for e in errors]
    # the schemas are strict: a misspelt field is an error, as are a bad duration and action
    bad = json.loads(json.dumps(docs[0]))
    bad["spec"]["podMetricEndpoints"] = bad["spec"].pop("podMetricsEndpoints")
    assert not _schema_validator("PodMonitor").is_valid(bad)
    bad = json.loads(json.dumps(docs[2]))
    bad["spec"]["podMetricsEndpoints"][0]["interval"] = "30 seconds"
    assert not _schema_validator("PodMonitor").is_valid(bad)
    bad["spec"]["podMetricsEndpoints"][0].update(interval="30s")
    bad["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["action"] = "rename"
    assert not _schema_validator("PodMonitor").is_valid(bad)
    rule = json.loads(json.dumps(docs[3]))
    rule["spec"]["groups"][0]["rules"][0]["alert"] = "Both"  # a record and an alert
    assert not _schema_validator("PrometheusRule").is_valid(rule)


def test_monitoring_kustomization_renders_and_validates():
    import kubernetes_validate

    kubectl = tools.kubectl()
    if kubectl is None:
        pytest.skip("kubectl not installed")
    out = subprocess.run(
        [kubectl, "kustomize", str(MON)], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    assert kinds == [
        "ConfigMap/vitrine-dashboard",
        "PodMonitor/vitrine-encoder",
        "PodMonitor/vitrine-gateway",
        "PodMonitor/vitrine-index",
        "PrometheusRule/vitrine",
    ]
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "vitrine"
        if doc["kind"] == "ConfigMap":
            kubernetes_validate.validate(doc, "1.37.0", strict=True)
            assert doc["metadata"]["labels"]["grafana_dashboard"] == "1"
            assert json.loads(doc["data"]["vitrine-dashboard.json"]) == _dashboard()
        else:
            errors = list(_schema_validator(doc["kind"]).iter_errors(doc))
            assert not errors, [e.message for e in errors]


def _base_workloads() -> list[dict]:
    docs = []
    for path in sorted((ROOT / "deploy" / "base").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def _selects(selector: dict, labels: dict) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        present, value = e["key"] in labels, labels.get(e["key"])
        if not {
            "Exists": present,
            "DoesNotExist": not present,
            "In": value in e.get("values", []),
            "NotIn": value not in e.get("values", []),
        }[e["operator"]]:
            return False
    return True


def test_pod_monitors_scrape_the_metrics_port_of_every_vitrine_pod():
    monitors = [d for d in _monitoring_docs() if d["kind"] == "PodMonitor"]
    vitrine = [
        w
        for w in _base_workloads()
        if w["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/name", "") in JOBS
    ]
    names = sorted(w["metadata"]["name"] for w in vitrine)
    assert {"vitrine-encoder", "vitrine-gateway", "vitrine-index-g0", "vitrine-index-g1"} <= set(
        names
    )
    for w in vitrine:
        pod = w["spec"]["template"]
        labels = pod["metadata"]["labels"]
        (mon,) = [m for m in monitors if _selects(m["spec"]["selector"], labels)]
        # job = the pod's app.kubernetes.io/name, as the rules expect
        assert labels[mon["spec"]["jobLabel"]] in JOBS
        (c,) = pod["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for ep in mon["spec"]["podMetricsEndpoints"]:
            assert ep["port"] in ports, (w["metadata"]["name"], ep["port"])
            args = c.get("args", [])
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            # the port the service listens on: its flag, else its VITRINE_* variable
            served = (
                args[args.index("--metrics-port") + 1]
                if "--metrics-port" in args
                else env.get("VITRINE_METRICS_PORT")
            )
            assert str(ports[ep["port"]]) == served, w["metadata"]["name"]
            assert env.get("VITRINE_METRICS_HOST") == "0.0.0.0"  # reachable from Prometheus
            if labels[mon["spec"]["jobLabel"]] == "vitrine-index":
                (rl,) = ep["relabelings"]
                assert rl["targetLabel"] == "replica_group"
                key = "vitrine.dev/replica-group"
                assert rl["sourceLabels"] == [
                    "__meta_kubernetes_pod_label_" + re.sub(r"\W", "_", key)
                ]
                assert labels[key] == w["metadata"]["name"].removeprefix("vitrine-index-")
    # each monitor scrapes something
    for m in monitors:
        assert any(
            _selects(m["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
            for w in vitrine
        )


def test_local_prometheus_config_is_valid():
    out = subprocess.run(
        [_promtool(), "check", "config", str(MON / "prometheus-local.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    jobs = {
        j["job_name"]
        for j in yaml.safe_load((MON / "prometheus-local.yml").read_text())["scrape_configs"]
    }
    assert jobs == JOBS


# --- the gateway's retrieval-quality metrics -------------------------------------------------------


def test_filter_shapes_are_a_small_fixed_set():
    from gateway.metrics import FILTER_SHAPES, filter_shape
    from vitrine.filters import all_of, any_of, between, eq, is_in, not_
    from vitrine.v1 import common_pb2

    cases = [
        (None, "none"),
        (common_pb2.Filter(), "none"),
        (all_of(), "none"),
        (eq("gender", "Men"), "equals"),
        (all_of(eq("gender", "Men")), "equals"),  # what the CLI sends for one --filter
        (is_in("baseColour", ["Navy Blue", "Blue"]), "in"),
        (between("price", lt=50), "range"),
        (not_(eq("usage", "Sports")), "not"),
        (all_of(eq("gender", "Men"), between("price", lt=50)), "compound"),
        (any_of(eq("gender", "Men"), eq("gender", "Boys")), "compound"),
        (any_of(), "compound"),
        (not_(all_of(eq("a", "b"), eq("c", "d"))), "compound"),
        (all_of(all_of(between("price", gte=1))), "range"),
    ]
    for f, shape in cases:
        assert filter_shape(f) == shape, (f, shape)
        assert shape in FILTER_SHAPES


def test_rank_correlation_and_top1_change():
    from prometheus_client import CollectorRegistry

    from gateway.metrics import GatewayMetrics, spearman
    from tests.support.servers import metric_value

    assert spearman([0, 1, 2, 3]) == pytest.approx(1.0)
    assert spearman([3, 2, 1, 0]) == pytest.approx(-1.0)
    assert spearman([1, 0, 2, 3]) == pytest.approx(1 - 6 * 2 / (4 * 15))
    reg = CollectorRegistry()
    m = GatewayMetrics(reg)
    m.observe_rerank_order([0, 2, 1])
    m.observe_rerank_order([1, 0])
    m.observe_rerank_order([0])  # one candidate: top-1 kept, no correlation
    from prometheus_client import generate_latest

    text = generate_latest(reg).decode()
    assert metric_value(text, "vitrine_gateway_rerank_top1_changed_total") == 1
    # disagreement = (1 - rho) / 2: rho 0.5 -> 0.25, rho -1 -> 1
    assert metric_value(text, "vitrine_gateway_rerank_disagreement_ratio_count") == 2
    assert metric_value(text, "vitrine_gateway_rerank_disagreement_ratio_sum") == pytest.approx(
        0.25 + 1.0
    )
    assert metric_value(text, "vitrine_gateway_rerank_disagreement_ratio_bucket", le="0.3") == 1


def test_search_quality_counters_and_exposition_format():
    from prometheus_client import CollectorRegistry, generate_latest

    from gateway.metrics import GatewayMetrics
    from tests.support.servers import metric_value

    reg = CollectorRegistry()
    m = GatewayMetrics(reg)
    m.observe_search("text", "none", 10, 0.62, threshold=0.4)
    m.observe_search("text", "none", 10, 0.31, threshold=0.4)
    m.observe_search("text", "range", 0, None, threshold=0.4)  # nothing found: no similarity
    m.observe_search("image", "equals", 3, 0.9, threshold=0.4)
    text = generate_latest(reg).decode()
    assert metric_value(text, "vitrine_gateway_searches_total", query="text") == 3
    assert metric_value(text, "vitrine_gateway_empty_results_total", filter_shape="range") == 1
    assert metric_value(text, "vitrine_gateway_empty_results_total") == 1
    assert metric_value(text, "vitrine_gateway_search_top_similarity_count", query="text") == 2
    assert metric_value(text, "vitrine_gateway_low_similarity_searches_total", query="text") == 1
    assert metric_value(text, "vitrine_gateway_low_similarity_searches_total", query="image") == 0
    out = subprocess.run(
        [_promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_low_similarity_threshold_is_a_validated_setting():
    from gateway.config import GatewayConfig
    from vitrine.serving.config import ConfigError

    assert GatewayConfig().low_similarity_threshold == 0.4
    GatewayConfig(low_similarity_threshold=0.3).validate()
    with pytest.raises(ConfigError, match="low_similarity_threshold"):
        GatewayConfig(low_similarity_threshold=1.5).validate()


# --- a real Prometheus against a real stack ---------------------------------------------------------


class _Prometheus:
    def __init__(self, binary: str, config: Path, data: Path, port: int, log: Path):
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str, **params):
        url = f"{self.url}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.get("/api/v1/query", query=expr)["result"]

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError("prometheus not ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _local_config(ports: dict[str, int]) -> dict:
    """deploy/monitoring/prometheus-local.yml with the test stack's ports and 1 s intervals."""
    config = yaml.safe_load((MON / "prometheus-local.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES)]
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [f"127.0.0.1:{ports[static['labels']['pod']]}"]
    return config


def _values(result: list[dict], label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in result}


@pytest.mark.slow
def test_real_prometheus_scrapes_the_stack_and_evaluates_every_rule(tmp_path, demo_catalog):
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("the prometheus binary is not installed (.ci/run installs Debian's prometheus)")
    from gateway.client import SearchClient, product
    from tests.support.replicas import free_port
    from tests.support.tiny_models import publish_image, publish_rerank, publish_text
    from vitrine.cli.stack import LocalStack
    from vitrine.filters import all_of, between, eq

    t0 = time.monotonic()
    models = tmp_path / "models"
    publish_text(models, "vitrine-text", dim=16)
    publish_image(models, "vitrine-image", dim=16, payload_width=8)
    publish_rerank(
        models, "vitrine-rerank", text_model="vitrine-text/1", image_model="vitrine-image/1"
    )
    products = demo_catalog.products[:24]
    photos = [p.image_path.read_bytes() for p in products]
    with LocalStack(
        models,
        tmp_path / "data",
        ports=(0, 0, 0, 0),
        metrics_ports=(0, 0, 0, 0),
        tls=False,
        index_spec="Flat",
        num_shards=2,
    ) as stack:
        ports = {s.name: s.info["metrics_port"] for s in stack.services}
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump(_local_config(ports)))
        prom = _Prometheus(
            prometheus, config, tmp_path / "tsdb", free_port(), tmp_path / "prometheus.log"
        )
        client = SearchClient(stack.gateway)
        try:
            prom.wait_ready()
            statuses = client.upsert(
                [
                    product(p.id, p.title, dict(p.attributes), photo)
                    for p, photo in zip(products, photos, strict=True)
                ]
            )
            assert all(s.code == 0 for s in statuses), statuses

            rounds = iter(range(1000))

            def load():
                n = next(rounds)  # a new text each round: past the query-embedding cache
                client.search(text=f"pink summer dress {n}", k=5)
                client.search(text="navy shirt", k=5, filter=all_of(eq("gender", "Men")))
                client.search(text="dress", k=5, filter=between("year", gte=3000))  # empty
                client.search(image=photos[3], k=5)
                client.search(
                    text="casual",
                    k=5,
                    filter=all_of(eq("gender", "Women"), eq("usage", "Casual")),
                )

            # Rates need two scrapes that differ: keep the load going while Prometheus scrapes.
            wanted = {
                "targets up": 'up{job=~"vitrine-.+"} == 1',
                "stage p99": 'stage:vitrine_gateway_stage_duration_seconds:histogram_quantile{quantile="0.99"} >= 0',
                "search p99": 'service_method:vitrine_grpc_request_duration_seconds:histogram_quantile{service="gateway", method="Search", quantile="0.99"} >= 0',
                "errors": 'service_method:vitrine_grpc_request_errors:ratio_rate5m{service="gateway", method="Search"}',
                "partial": "namespace:vitrine_gateway_partial_results:ratio_rate5m",
                "empty": "filter_shape:vitrine_gateway_empty_results:ratio_rate5m",
                "no good answer": "query:vitrine_gateway_low_similarity_searches:ratio_rate5m",
                "top-1 changed": "namespace:vitrine_gateway_rerank_top1_changed:ratio_rate5m",
                "batch": "model:vitrine_encoder_batch_size_items:mean_rate5m",
                "encoder queue": 'model:vitrine_encoder_queue_duration_seconds:histogram_quantile{quantile="0.99"} >= 0',
                "index search": 'collection_mode:vitrine_index_search_duration_seconds:histogram_quantile{quantile="0.99"} >= 0',
                "lag": "pod_collection:vitrine_index_replica_applied_seq:lag",
                "primaries": "replica_group:vitrine_index_replica_primary:sum",
            }
            got: dict[str, list] = {}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                load()
                got = {k: prom.query(q) for k, q in wanted.items()}
                stages = {r["metric"]["stage"] for r in got["stage p99"]}
                shapes = set(_values(got["empty"], "filter_shape"))
                if (
                    len(got["targets up"]) == 4
                    and {"encode", "search", "rerank"} <= stages
                    and {"none", "equals", "range", "compound"} <= shapes
                    and all(got.values())
                ):
                    break
                time.sleep(0.5)
            missing = [k for k, v in got.items() if not v]
            assert not missing, f"no values for {missing}:\n{prom.log.read_text()[-2000:]}"

            targets = prom.get("/api/v1/targets")["activeTargets"]
            assert sorted((t["labels"]["job"], t["health"]) for t in targets) == [
                ("vitrine-encoder", "up"),
                ("vitrine-gateway", "up"),
                ("vitrine-index", "up"),
                ("vitrine-index", "up"),
            ]
            assert set(_values(got["targets up"], "pod")) == {
                "encoder",
                "index-a",
                "index-b",
                "gateway",
            }
            assert {r["metric"]["stage"] for r in got["stage p99"]} >= {
                "encode",
                "search",
                "rerank",
            }
            assert _values(got["errors"], "method") == {"Search": 0.0}
            assert _values(got["partial"], "namespace") == {"": 0.0}
            empty = _values(got["empty"], "filter_shape")
            assert empty["range"] == 1.0 and empty["none"] == 0.0, empty
            assert set(_values(got["no good answer"], "query")) >= {"text", "image"}
            assert 0 <= _values(got["top-1 changed"], "namespace")[""] <= 1
            batch = _values(got["batch"], "model")
            assert batch["vitrine-text"] >= 1 and batch["vitrine-image"] >= 1, batch
            assert _values(got["lag"], "pod") == {"index-a": 0.0, "index-b": 0.0}
            assert _values(got["primaries"], "replica_group") == {"a": 1.0, "b": 1.0}

            # every rule evaluated without an error; nothing fires on a healthy stack
            groups = prom.get("/api/v1/rules")["groups"]
            rules = [r for g in groups for r in g["rules"]]
            assert len(rules) == len(_rules())
            bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
            assert not bad, bad
            states = {
                a["labels"]["alertname"]: a["state"] for a in prom.get("/api/v1/alerts")["alerts"]
            }
            assert "firing" not in states.values(), states  # pending ones are listed too

            # every dashboard query runs on this Prometheus
            for title, expr in _dashboard_queries():
                try:
                    prom.query(expr)  # asserts status success
                except Exception as exc:
                    raise AssertionError(f"dashboard panel {title!r}: {expr}") from exc
        finally:
            client.close()
            prom.stop()
    elapsed = time.monotonic() - t0
    print(f"real Prometheus test: {elapsed:.1f} s", file=sys.stderr)
    assert elapsed < 90
