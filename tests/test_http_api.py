"""The gateway's HTTP/JSON API against a real stack: encoder (tiny models) + index + gateway."""

from __future__ import annotations

import base64
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections import Counter

import pytest

from gateway.auth import ADMIN, SEARCH, WRITE, create_key
from gateway.client import SearchClient
from gateway.config import GatewayConfig
from gateway.http_app import ROUTES, http_status, message_schemas, schema_name
from tests.support.servers import ServerProcess, metric_value, scrape
from tests.support.stack import tiny_stack
from tests.support.tiny_caption import publish_caption
from tests.support.tiny_models import publish_image, publish_text
from vitrine.serving.config import ConfigError, load_config
from vitrine.v1 import gateway_pb2

N_PRODUCTS = 12


class Http:
    """A tiny JSON client (urllib: no extra dependency in the test)."""

    def __init__(self, port: int, key: str | None = None):
        self.base = f"http://127.0.0.1:{port}"
        self.key = key

    def call(self, method, path, body=None, *, raw=None, ctype="application/json", headers=None):
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        h = {"Content-Type": ctype} if data is not None else {}
        if self.key:
            h["Authorization"] = f"Bearer {self.key}"
        h.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null"), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null"), dict(e.headers)


def _product_json(p) -> dict:
    return {
        "id": p.id,
        "title": p.title,
        "attributes": {k: {"string_value": str(v)} for k, v in p.attributes.items()},
        "image": base64.b64encode(p.image_path.read_bytes()).decode(),
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_catalog):
    tmp = tmp_path_factory.mktemp("http")
    repo = tmp / "models"
    publish_text(repo, "tiny-text", dim=16)
    publish_image(repo, "tiny-image", dim=16)
    publish_caption(repo, demo_catalog.products)
    keys_file = tmp / "keys.yaml"
    keys = {
        "reader": create_key(keys_file, "reader", [SEARCH]),
        "writer": create_key(keys_file, "writer", [WRITE]),
        "admin": create_key(keys_file, "admin", [ADMIN]),
        "limited": create_key(keys_file, "limited", [SEARCH], rate_per_s=0.5, burst=2),
    }
    products = demo_catalog.products[:N_PRODUCTS]
    stack = tiny_stack(
        tmp,
        repo,
        metrics_port=0,
        http_port=0,
        num_shards=2,
        api_keys_file=str(keys_file),
        media_dir=str(demo_catalog.root / "images"),
    )
    with stack as (enc, idx, gw):
        port = gw.server.http_port
        clients = {name: Http(port, k) for name, k in keys.items()}
        clients["none"] = Http(port)
        status, body, _ = clients["writer"].call(
            "POST", "/v1/products", {"products": [_product_json(p) for p in products]}
        )
        assert status == 200 and all(s["code"] == 0 for s in body["statuses"]), body
        yield {
            **clients,
            "keys": keys,
            "products": products,
            "port": port,
            "server": gw.server,
            "metrics_port": gw.server.metrics_port,
            "encoder": enc.target,
            "index": idx.target,
            "grpc": gw.target,
            "tmp": tmp,
        }


def test_search_json_with_proto_field_names(stack):
    p = stack["products"][0]
    status, body, _ = stack["reader"].call(
        "POST",
        "/v1/search",
        {
            "text": p.title,
            "k": 5,
            "include_attributes": True,
            "retrieval_mode": "RETRIEVAL_MODE_VECTOR",
        },
    )
    assert status == 200, body
    fields = {f.name for f in gateway_pb2.SearchResponse.DESCRIPTOR.fields}
    # every field is present except an unset message (query_description without describe_query)
    assert set(body) == fields - {"query_description"}
    assert len(body["results"]) == 5 and body["retrieval_mode"] == "RETRIEVAL_MODE_VECTOR"
    first = body["results"][0]
    assert set(first) == {f.name for f in gateway_pb2.Result.DESCRIPTOR.fields}
    q = {x.id: x for x in stack["products"]}[first["product_id"]]
    assert first["caption"] == q.title  # (tiny text tower: not necessarily p itself)
    assert first["attributes"]["gender"] == {"string_value": q.attributes["gender"]}
    assert [t["stage"] for t in body["timings"]] == body["stages_run"]


def test_search_by_photo_base64_and_multipart_agree(stack):
    p = stack["products"][3]
    photo = p.image_path.read_bytes()
    s1, by_json, _ = stack["reader"].call(
        "POST", "/v1/search", {"image": base64.b64encode(photo).decode(), "k": 3}
    )
    boundary = "vitrineboundary"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="request"\r\n\r\n'
            '{"k": 3}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + photo
        + f"\r\n--{boundary}--\r\n".encode()
    )
    s2, by_form, _ = stack["reader"].call(
        "POST", "/v1/search", raw=form, ctype=f"multipart/form-data; boundary={boundary}"
    )
    assert s1 == s2 == 200
    assert by_json["results"][0]["product_id"] == p.id
    ids = [r["product_id"] for r in by_json["results"]]
    assert ids == [r["product_id"] for r in by_form["results"]]


def test_pages_with_the_token(stack):
    c, text = stack["reader"], stack["products"][1].title
    _, full, _ = c.call("POST", "/v1/search", {"text": text, "k": 8})
    _, page1, _ = c.call("POST", "/v1/search", {"text": text, "k": 8, "page_size": 5})
    token = page1["next_page_token"]
    _, page2, _ = c.call(
        "POST", "/v1/search", {"text": text, "k": 8, "page_size": 5, "page_token": token}
    )
    got = [r["product_id"] for r in page1["results"] + page2["results"]]
    assert got == [r["product_id"] for r in full["results"]] and not page2["next_page_token"]


def test_upsert_reports_per_item_statuses_and_delete(stack):
    p = stack["products"][0]
    new = {"id": "http-new-1", "title": "Blue denim jacket", "attributes": {}}
    bad = {"id": "http-bad", "title": "Broken", "image": base64.b64encode(b"no image").decode()}
    status, body, _ = stack["writer"].call("POST", "/v1/products", {"products": [new, bad]})
    assert status == 200
    assert [s["id"] for s in body["statuses"]] == ["http-new-1", "http-bad"]
    assert body["statuses"][0]["code"] == 0 and body["statuses"][1]["code"] == 3
    assert "image" in body["statuses"][1]["message"]
    status, body, _ = stack["writer"].call(
        "DELETE", "/v1/products", {"ids": ["http-new-1", "never-there"]}
    )
    assert status == 200 and body["statuses"][0] == {"id": "http-new-1", "code": 0, "message": ""}
    _, found, _ = stack["reader"].call("POST", "/v1/search", {"text": p.title, "k": 12})
    assert "http-new-1" not in [r["product_id"] for r in found["results"]]


def test_describe(stack):
    photo = stack["products"][2].image_path.read_bytes()
    status, body, _ = stack["reader"].call(
        "POST", "/v1/describe", {"image": base64.b64encode(photo).decode(), "beam": 1}
    )
    assert status == 200, body
    assert set(body["description"]) == {"title", "attributes", "model"}
    assert body["description"]["title"] and body["description"]["model"]


def test_facets_over_http_and_grpc(stack):
    products = stack["products"]
    status, body, _ = stack["reader"].call("POST", "/v1/facets", {"fields": ["gender"]})
    assert status == 200, body
    want = Counter(p.attributes["gender"] for p in products)
    (facet,) = body["facets"]
    got = {v["value"]["string_value"]: int(v["count"]) for v in facet["values"]}
    assert (
        facet["field"] == "gender" and got == dict(want) and body["matched"] == str(len(products))
    )
    flt = {"equals": {"field": "gender", "value": {"string_value": want.most_common(1)[0][0]}}}
    status, body, _ = stack["reader"].call("POST", "/v1/facets", {"limit": 2, "filter": flt})
    assert status == 200 and int(body["matched"]) == want.most_common(1)[0][1]
    assert all(len(f["values"]) <= 2 for f in body["facets"])
    fields = {f["field"] for f in body["facets"]}
    assert fields >= {"gender", "title", "articleType"}
    with SearchClient(stack["grpc"], api_key=stack["keys"]["reader"]) as c:
        resp = c.facets(["gender"])
        assert {v.value.string_value: v.count for v in resp.facets[0].values} == dict(want)
    status, body, _ = stack["reader"].call("POST", "/v1/facets", {"fields": ["a", ""]})
    assert status == 400 and "fields[1]" in body["error"]["message"]
    assert stack["none"].call("POST", "/v1/facets", {})[0] == 401


def test_image_url_attribute_is_served_not_indexed_as_text(stack):
    """A product's image URL: kept as an attribute (the playground shows it), left out of the
    lexical index and of the facets; /media serves the catalog photos and nothing else."""
    p = stack["products"][0]
    doc = _product_json(p) | {"id": "with-url"}
    doc["attributes"]["image_url"] = {"string_value": "/media/zzqqxx.jpg"}
    status, body, _ = stack["writer"].call("POST", "/v1/products", {"products": [doc]})
    assert status == 200 and body["statuses"][0]["code"] == 0
    try:
        req = {"text": "zzqqxx", "retrieval_mode": "RETRIEVAL_MODE_LEXICAL"}
        status, body, _ = stack["reader"].call("POST", "/v1/search", req)
        assert status == 200 and body["results"] == []
        req = {"text": p.title, "k": 3, "include_attributes": True}
        _, body, _ = stack["reader"].call("POST", "/v1/search", req)
        urls = {r["product_id"]: r["attributes"].get("image_url") for r in body["results"]}
        assert urls.get("with-url") == {"string_value": "/media/zzqqxx.jpg"}, urls
        _, body, _ = stack["reader"].call("POST", "/v1/facets", {})
        assert "image_url" not in {f["field"] for f in body["facets"]}
        _, body, _ = stack["reader"].call("POST", "/v1/facets", {"fields": ["image_url"]})
        assert body["facets"][0]["values"][0]["count"] == "1"
    finally:
        stack["writer"].call("DELETE", "/v1/products", {"ids": ["with-url"]})
    base = f"http://127.0.0.1:{stack['port']}"
    with urllib.request.urlopen(f"{base}/media/{p.id}.jpg", timeout=10) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"
        assert r.read() == p.image_path.read_bytes()
        etag = r.headers["ETag"]
        assert "max-age" in r.headers["Cache-Control"]
    req = urllib.request.Request(f"{base}/media/{p.id}.jpg", headers={"If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 304
    for bad in ("/media/../catalog.csv", "/media/%2e%2e/catalog.csv", "/media/", "/media/x.csv"):
        assert stack["none"].call("GET", bad)[0] == 404, bad


def test_playground_page_and_its_config(stack):
    base = f"http://127.0.0.1:{stack['port']}"
    with urllib.request.urlopen(base + "/", timeout=10) as r:
        page = r.read().decode()
        assert r.headers["Content-Type"].startswith("text/html")
    assert "/playground/playground.js" in page and "/playground/playground.css" in page
    for asset, ctype in (("playground.js", "javascript"), ("playground.css", "text/css")):
        with urllib.request.urlopen(f"{base}/playground/{asset}", timeout=10) as r:
            assert ctype in r.headers["Content-Type"] and r.read()
    status, cfg, _ = stack["none"].call("GET", "/playground/config.json")
    assert status == 200 and cfg["image_url_attribute"] == "image_url"
    assert cfg["auth_required"] is True and cfg["default_k"] == 10
    # tiny towers without a payload output, a caption model, no composer
    assert cfg["models"] == {"rerank": False, "compose": False, "describe": True}
    text = scrape(stack["metrics_port"])
    assert metric_value(text, "vitrine_http_requests_total", route="playground", code="200") > 0


def test_health_and_ready_and_openapi(stack):
    c = stack["none"]
    assert c.call("GET", "/healthz")[:2] == (200, {"status": "SERVING"})
    assert c.call("GET", "/readyz")[:2] == (200, {"status": "SERVING"})
    status, schema, _ = c.call("GET", "/openapi.json")
    assert status == 200 and set(schema["paths"]) >= {"/v1/search", "/v1/products", "/readyz"}


def test_auth_401_403_and_429_with_retry_after(stack):
    body = {"text": "shirt", "k": 2}
    status, err, headers = stack["none"].call("POST", "/v1/search", body)
    assert status == 401 and err["error"]["code"] == "UNAUTHENTICATED"
    assert headers.get("www-authenticate", headers.get("WWW-Authenticate")) == "Bearer"
    bad = Http(stack["port"], stack["keys"]["reader"][:-3] + "xyz")
    assert bad.call("POST", "/v1/search", body)[0] == 401
    # x-api-key works as on gRPC
    alt = Http(stack["port"])
    status, _, _ = alt.call(
        "POST", "/v1/search", body, headers={"X-Api-Key": stack["keys"]["reader"]}
    )
    assert status == 200
    # search cannot write, write cannot search
    status, err, _ = stack["reader"].call("DELETE", "/v1/products", {"ids": ["x"]})
    assert status == 403 and err["error"]["code"] == "PERMISSION_DENIED"
    assert "scope" in err["error"]["message"]
    assert stack["writer"].call("POST", "/v1/search", body)[0] == 403
    # rate limit: burst 2, then 429 with Retry-After (whole seconds)
    codes, headers = [], {}
    for _ in range(4):
        status, err, h = stack["limited"].call("POST", "/v1/search", body)
        codes.append(status)
        if status == 429:
            headers = h
            assert err["error"]["code"] == "RESOURCE_EXHAUSTED"
    assert codes[:2] == [200, 200] and 429 in codes[2:]
    assert int(headers.get("retry-after", headers.get("Retry-After"))) >= 1


def test_errors_are_400_naming_the_field(stack):
    c = stack["admin"]
    cases = [
        ({"k": 5}, "text or image"),  # neither
        ({"text": "x", "k": 100000}, "k"),  # out of range (Gateway's check)
        ({"text": "x", "k": "many"}, "k"),  # wrong type
        ({"text": "x", "retrieval_mode": "SOMETIMES"}, "retrieval_mode"),
        ({"text": "x", "no_such_field": 1}, "no_such_field"),
        ({"image": "***not base64***"}, "image"),
        ({"text": "x", "page_token": "garbage"}, "page_token"),
        ({"text": "x", "weights": {"text_weight": -1}}, "weights"),
        ({"text": "x", "filter": {"equals": {"field": "a"}, "range": {"field": "b"}}}, "oneof"),
        ([1, 2], "JSON object"),
    ]
    for body, field in cases:
        status, err, _ = c.call("POST", "/v1/search", body)
        assert status == 400, (body, err)
        assert err["error"]["code"] == "INVALID_ARGUMENT" and field in err["error"]["message"]
    status, err, _ = c.call("POST", "/v1/search", raw=b"{not json", ctype="application/json")
    assert status == 400 and "not valid JSON" in err["error"]["message"]
    status, err, _ = c.call("POST", "/v1/search", raw=b"x", ctype="text/plain")
    assert status == 400 and "Content-Type" in err["error"]["message"]
    status, err, _ = c.call(
        "POST", "/v1/search", {"text": "x"}, headers={"X-Request-Timeout": "-1"}
    )
    assert status == 400 and "X-Request-Timeout" in err["error"]["message"]
    status, err, _ = c.call("GET", "/v1/nothing")
    assert status == 404 and err["error"]["code"] == "NOT_FOUND"


def test_status_mapping():
    import grpc

    assert http_status(grpc.StatusCode.INVALID_ARGUMENT) == 400
    assert http_status(grpc.StatusCode.UNAUTHENTICATED) == 401
    assert http_status(grpc.StatusCode.PERMISSION_DENIED) == 403
    assert http_status(grpc.StatusCode.NOT_FOUND) == 404
    assert http_status(grpc.StatusCode.ALREADY_EXISTS) == 409
    assert http_status(grpc.StatusCode.FAILED_PRECONDITION) == 412
    assert http_status(grpc.StatusCode.RESOURCE_EXHAUSTED) == 429
    assert http_status(grpc.StatusCode.UNAVAILABLE) == 503
    assert http_status(grpc.StatusCode.DEADLINE_EXCEEDED) == 504
    assert http_status(grpc.StatusCode.INTERNAL) == 500
    assert http_status(grpc.StatusCode.DATA_LOSS) == 500


def _proto_fields(desc) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}

    def walk(d):
        name = schema_name(d)
        if name in out:
            return
        out[name] = {f.name for f in d.fields}
        for f in d.fields:
            mt = f.message_type
            if mt is not None:
                walk(mt.fields_by_name["value"].message_type if mt.GetOptions().map_entry else mt)

    walk(desc)
    return {k: v for k, v in out.items() if k}


def test_openapi_fields_equal_the_proto_descriptors(stack):
    _, schema, _ = stack["none"].call("GET", "/openapi.json")
    components = schema["components"]["schemas"]
    for r in ROUTES:
        op = schema["paths"][r.path][r.method.lower()]
        req = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        resp = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert req.endswith("/" + schema_name(r.request.DESCRIPTOR))
        assert resp.endswith("/" + schema_name(r.response.DESCRIPTOR))
        for desc in (r.request.DESCRIPTOR, r.response.DESCRIPTOR):
            for name, fields in _proto_fields(desc).items():
                assert set(components[name]["properties"]) == fields, name
    assert (
        message_schemas(gateway_pb2.SearchRequest.DESCRIPTOR)["SearchRequest"]
        == (components["SearchRequest"])
    )


def test_writes_are_audited_and_requests_counted(stack, caplog):
    caplog.set_level(logging.INFO, logger="vitrine.audit")
    stack["writer"].call("DELETE", "/v1/products", {"ids": ["a", "b"]})
    stack["reader"].call("DELETE", "/v1/products", {"ids": ["a"]})
    assert stack["reader"].call("POST", "/v1/search", {"text": "shirt"})[0] == 200
    lines = [r for r in caplog.records if r.name == "vitrine.audit"]
    ok = [r for r in lines if r.key_id == "writer"][-1]
    assert (ok.method, ok.records, ok.outcome, ok.scope) == ("DeleteProducts", 2, "OK", "write")
    refused = [r for r in lines if r.key_id == "reader"][-1]
    assert refused.outcome == "PERMISSION_DENIED" and refused.records == 0
    text = scrape(stack["metrics_port"])
    assert metric_value(text, "vitrine_http_requests_total", route="search", code="200") > 0
    assert metric_value(text, "vitrine_http_requests_total", route="delete_products", code="403")
    assert metric_value(text, "vitrine_gateway_auth_requests_total", outcome="ok") > 0
    assert metric_value(text, "vitrine_http_request_duration_seconds_count", route="search") > 0
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is not None:  # names and help lines promtool-clean
        out = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stdout + out.stderr


def test_config_http_settings(tmp_path):
    cfg = load_config(GatewayConfig, overrides={"http_port": 0}, env={})
    assert cfg.http_port == 0 and cfg.http_host == "127.0.0.1"
    assert GatewayConfig().http_port == -1  # off by default
    with pytest.raises(ConfigError, match="http_port"):
        load_config(GatewayConfig, overrides={"http_port": 70000}, env={})
    with pytest.raises(ConfigError, match="http_host"):
        load_config(GatewayConfig, overrides={"http_port": 0, "http_host": "0.0.0.0"}, env={})
    with pytest.raises(ConfigError, match="http_tls"):
        load_config(GatewayConfig, overrides={"http_tls": False, "http_host": "0.0.0.0"}, env={})
    with pytest.raises(ConfigError, match="media_dir"):
        load_config(GatewayConfig, overrides={"media_dir": str(tmp_path / "none")}, env={})
    cfg = load_config(GatewayConfig, env={"VITRINE_MEDIA_DIR": str(tmp_path)})
    assert cfg.media_dir == str(tmp_path) and cfg.playground and cfg.http_tls


def test_schemathesis_finds_no_server_error(stack):
    """Generated requests for every operation, from the live /openapi.json: never a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]

    base = f"http://127.0.0.1:{stack['port']}"
    with urllib.request.urlopen(base + "/openapi.json", timeout=10) as r:
        raw = json.loads(r.read())
    schema = schemathesis.openapi.from_dict(raw)
    auth = {"Authorization": f"Bearer {stack['keys']['admin']}"}
    seen: dict[str, list[int]] = {}
    started = time.monotonic()
    budget_s = 60.0
    operations = [op.ok() for op in schema.get_all_operations()]

    def check(op, codes, until):
        @settings(
            max_examples=30,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy())
        def run(case):
            if time.monotonic() > until:
                return
            response = case.call(base_url=base, headers=auth, timeout=30)
            codes.append(response.status_code)
            assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
            # and every answer matches its documented status, content type and schema
            case.validate_response(response, checks=checks)

        run()

    for op in operations:
        left = budget_s - (time.monotonic() - started)
        if left <= 0:
            break
        check(op, seen.setdefault(op.label, []), time.monotonic() + left)
    total = sum(len(v) for v in seen.values())
    by_status = {k: sorted(set(v)) for k, v in seen.items()}
    print("schemathesis:", {k: len(v) for k, v in seen.items()}, total, "requests", by_status)
    assert len(seen) == len(operations) == 7 and total >= 50


def test_vitrine_serve_gateway_reports_the_http_port_in_its_ready_file(stack):
    proc = ServerProcess(
        ["serve", "gateway", "--encoder", stack["encoder"], "--index", stack["index"]],
        stack["tmp"],
        env={"VITRINE_HTTP_PORT": "0", "VITRINE_TEXT_MODEL": "tiny-text"},
    ).start()
    try:
        port = proc.info["http_port"]
        assert port and port not in (proc.info["port"], proc.info["metrics_port"])
        assert Http(port).call("GET", "/readyz")[:2] == (200, {"status": "SERVING"})
        status, body, _ = Http(port).call("POST", "/v1/search", {"text": "shirt", "k": 3})
        assert status == 200 and len(body["results"]) == 3  # auth off: anonymous reads
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_tls_from_the_grpc_settings_client_certs_and_body_limit(tmp_path):
    """The HTTP listener alone (no stack): TLS from tls_cert_file/tls_key_file, client
    certificates with tls_client_auth, and the body limit (413) before any gateway call."""
    import asyncio
    import ssl

    from gateway.http_app import HttpApi
    from vitrine.serving.certs import create_ca, issue

    ca = create_ca(tmp_path / "ca")
    cert, key = issue(ca, tmp_path / "tls", "gateway")
    client_cert, client_key = issue(ca, tmp_path / "tls", "client")
    cfg = GatewayConfig(
        http_port=0,
        tls_cert_file=str(cert),
        tls_key_file=str(key),
        tls_ca_file=str(ca.cert_file),
        tls_client_auth=True,
        max_message_mb=1,
    )

    async def scenario():
        api = HttpApi(None, cfg, keys=None)
        port = await api.start()
        try:
            ctx = ssl.create_default_context(cafile=str(ca.cert_file))
            url = f"https://127.0.0.1:{port}"

            def get(context, path="/healthz", data=None):
                req = urllib.request.Request(
                    url + path, data=data, method="POST" if data else "GET"
                )
                if data:
                    req.add_header("Content-Type", "application/json")
                try:
                    with urllib.request.urlopen(req, context=context, timeout=10) as r:
                        return r.status, json.loads(r.read())
                except urllib.error.HTTPError as e:
                    return e.code, json.loads(e.read())

            with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
                await asyncio.to_thread(get, ctx)  # no client certificate: refused
            ctx.load_cert_chain(str(client_cert), str(client_key))
            assert await asyncio.to_thread(get, ctx) == (200, {"status": "SERVING"})

            def declare_big(context):
                # Only the headers: the server refuses on Content-Length and closes, so a client
                # still writing a real 1 MiB body may lose the answer (a race, not the server's).
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
                try:
                    conn.putrequest("POST", "/v1/search")
                    conn.putheader("Content-Type", "application/json")
                    conn.putheader("Content-Length", str(1024 * 1024 + 10))
                    conn.endheaders()
                    r = conn.getresponse()
                    return r.status, json.loads(r.read())
                finally:
                    conn.close()

            status, body = await asyncio.to_thread(declare_big, ctx)
            assert status == 413 and "max_message_mb" in body["error"]["message"]
            # readiness without a health servicer: not ready
            assert (await asyncio.to_thread(get, ctx, "/readyz"))[0] == 503
        finally:
            await api.stop()

    asyncio.run(scenario())
