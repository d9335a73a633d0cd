"""API keys on the gateway: the key file, scopes, rate limits, reload, the audit log, metrics,
the CLI — units without gRPC, then a real gateway (tiny towers, one in-process index) with keys."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import stat
import subprocess
import time

import grpc
import pytest
from typer.testing import CliRunner

from gateway.auth import (
    ADMIN,
    SEARCH,
    WRITE,
    KeyEntry,
    KeyStore,
    TokenBucket,
    create_key,
    current_principal,
    hash_key,
    key_id_of,
    new_key,
    parse_keys,
    read_keys,
    revoke_key,
    write_keys,
)
from gateway.auth_interceptor import AuthInterceptor, bearer_key, scope_of
from gateway.client import SearchClient, product
from gateway.config import GatewayConfig
from gateway.server import GatewayServer
from index_service.client import IndexClient
from tests.support.catalog import ingest_batches
from tests.support.servers import metric_value, scrape
from tests.support.stack import tiny_stack
from tests.support.tiny_models import publish_image, publish_text
from vitrine.cli import app
from vitrine.logs import JsonFormatter
from vitrine.serving import errors
from vitrine.serving.config import ConfigError, load_config
from vitrine.serving.tls import is_loopback as _is_loopback


class FakeClock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _entry(key: str, scopes, **kw) -> KeyEntry:
    return KeyEntry(key_id_of(key), hash_key(key), tuple(scopes), **kw)


# --- keys and the key file ----------------------------------------------------------------------


def test_key_format_and_hash():
    key = new_key("shop-1")
    assert key.startswith("vk_shop-1_") and key_id_of(key) == "shop-1"
    assert len(key.split("_", 2)[2]) >= 43  # token_urlsafe(32): 256 bits
    assert new_key("shop-1") != key
    assert hash_key(key) == hash_key(key) and len(hash_key(key)) == 64
    for bad in ("", "vk_", "vk_shop", "vk__secret", "xx_shop_secret", "vk_bad id_x"):
        assert key_id_of(bad) is None
    with pytest.raises(ConfigError, match="no '_'"):
        new_key("has_underscore")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("keys: {a: 1}", "'keys' must be a list"),
        ("other: 1", "one field, 'keys'"),
        ("keys: [{id: a, scopes: [search]}]", r"keys\[0\] \(id 'a'\): sha256"),
        ("keys: [{id: a, sha256: XYZ, scopes: [search]}]", "sha256 must be 64"),
        (f"keys: [{{id: a, sha256: {'a' * 64}, scopes: []}}]", "non-empty list"),
        (f"keys: [{{id: a, sha256: {'a' * 64}, scopes: [serch]}}]", r"unknown \['serch'\]"),
        (f"keys: [{{id: a, sha256: {'a' * 64}, scopes: [search], rate_per_s: -1}}]", "rate_per_s"),
        (f"keys: [{{id: a, sha256: {'a' * 64}, scopes: [search], burst: 0}}]", "burst"),
        (f"keys: [{{id: a, sha256: {'a' * 64}, scopes: [search], colour: red}}]", "unknown fields"),
        ("keys: [{id: a, key: vk_a_secret, scopes: [search]}]", "plaintext key"),
        ("keys: [{id: a_b, sha256: x, scopes: [search]}]", r"keys\[0\]: id must be"),
        (
            f"keys: [{{id: a, sha256: {'a' * 64}, scopes: [search]}},"
            f" {{id: a, sha256: {'b' * 64}, scopes: [write]}}]",
            r"keys\[1\]: duplicate id 'a'",
        ),
        ("keys: [", "not valid YAML"),
    ],
)
def test_key_file_validation_names_the_entry(text, match):
    with pytest.raises(ConfigError, match=match):
        parse_keys(text, "keys.yaml")


def test_empty_key_file_has_no_keys_and_missing_file_is_an_error(tmp_path):
    assert parse_keys("") == [] and parse_keys("keys: []") == []
    with pytest.raises(ConfigError, match="api keys file"):
        KeyStore.load(tmp_path / "absent.yaml")


def test_create_list_revoke_write_hashes_only_mode_0600(tmp_path):
    path = tmp_path / "keys.yaml"
    key = create_key(path, "shop", [SEARCH, WRITE], rate_per_s=5, burst=10, description="x")
    other = create_key(path, "ops", [ADMIN])
    text = path.read_text()
    assert key not in text and key.split("_", 2)[2] not in text
    assert hash_key(key) in text and hash_key(other) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    entries = read_keys(path)
    assert [(e.id, e.scopes, e.rate_per_s, e.burst) for e in entries] == [
        ("shop", ("search", "write"), 5.0, 10),
        ("ops", ("admin",), None, None),
    ]
    with pytest.raises(ConfigError, match="exists"):
        create_key(path, "shop", [SEARCH])
    revoke_key(path, "shop")
    assert [e.id for e in read_keys(path)] == ["ops"]
    with pytest.raises(ConfigError, match="no key with id 'shop'"):
        revoke_key(path, "shop")
    assert [p.name for p in tmp_path.iterdir()] == ["keys.yaml"]  # no temp files left


def test_cli_prints_the_key_once_and_stores_its_hash(tmp_path):
    path = tmp_path / "keys.yaml"
    runner = CliRunner()
    r = runner.invoke(
        app, ["keys", "create", "--file", str(path), "--id", "feed", "--scopes", "search,write"]
    )
    assert r.exit_code == 0, r.output
    key = r.stdout.strip()
    assert key_id_of(key) == "feed" and key not in path.read_text()
    store = KeyStore.load(path)
    assert store.authenticate(key).key_id == "feed"
    r = runner.invoke(app, ["keys", "create", "--file", str(path), "--id", "x", "--scopes", "no"])
    assert r.exit_code == 1 and "unknown ['no']" in r.stderr
    r = runner.invoke(
        app, ["keys", "create", "--file", str(path), "--id", "lim", "--rate", "2", "--burst", "3"]
    )
    assert r.exit_code == 0
    r = runner.invoke(app, ["keys", "list", "--file", str(path)])
    lines = r.stdout.splitlines()
    assert [ln.split("\t")[:3] for ln in lines] == [
        ["feed", "search,write", "default"],
        ["lim", "search", "2/s burst 3"],
    ]
    assert hash_key(key) not in r.stdout
    r = runner.invoke(app, ["keys", "revoke", "--file", str(path), "--id", "feed"])
    assert r.exit_code == 0 and [e.id for e in read_keys(path)] == ["lim"]
    r = runner.invoke(app, ["keys", "revoke", "--file", str(path), "--id", "feed"])
    assert r.exit_code == 1


# --- authentication, scopes, buckets, reload ----------------------------------------------------


def test_authenticate_and_scopes():
    reader, writer, admin = new_key("reader"), new_key("writer"), new_key("admin")
    store = KeyStore([_entry(reader, [SEARCH]), _entry(writer, [WRITE]), _entry(admin, [ADMIN])])
    p = store.authenticate(reader)
    assert p.key_id == "reader" and p.scopes == {SEARCH}
    store.authorize(p, SEARCH)
    with pytest.raises(errors.PermissionDenied, match="lacks scope 'write'"):
        store.authorize(p, WRITE)
    w = store.authenticate(writer)
    with pytest.raises(errors.PermissionDenied):  # write does not imply search
        store.authorize(w, SEARCH)
    a = store.authenticate(admin)
    for scope in (SEARCH, WRITE, ADMIN):
        store.authorize(a, scope)  # admin implies all
    wrong_secret = reader[:-4] + ("AAAA" if not reader.endswith("AAAA") else "BBBB")
    unknown = "vk_nobody_" + reader.split("_", 2)[2]
    for bad in (wrong_secret, unknown, "garbage", "Bearer " + reader):
        with pytest.raises(errors.Unauthenticated, match=r"^invalid API key$"):
            store.authenticate(bad)
    with pytest.raises(errors.Unauthenticated, match="missing API key"):
        store.authenticate(None)


def test_token_bucket_burst_wait_and_refill():
    clock = FakeClock()
    b = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [b.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take() == pytest.approx(0.5)  # one token every 0.5 s
    assert b.take() == pytest.approx(0.5)  # a refusal takes nothing
    clock.t += 0.25
    assert b.take() == pytest.approx(0.25)
    clock.t += 0.25
    assert b.take() == 0.0
    clock.t += 100  # saves at most burst
    assert [b.take() for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(0.5)]
    with pytest.raises(ValueError):
        TokenBucket(0, 1)


def test_rate_limits_per_key_with_defaults():
    clock = FakeClock()
    fast, slow, free = new_key("fast"), new_key("slow"), new_key("free")
    store = KeyStore(
        [
            _entry(fast, [SEARCH]),  # the default: 4/s, burst 4 (one second's worth)
            _entry(slow, [SEARCH], rate_per_s=1, burst=1),
            _entry(free, [SEARCH], rate_per_s=0),  # no limit
        ],
        default_rate_per_s=4,
        clock=clock,
    )
    p_fast, p_slow, p_free = (store.authenticate(k) for k in (fast, slow, free))
    for _ in range(4):
        store.limit(p_fast)
    with pytest.raises(errors.ResourceExhausted, match="'fast' \\(4/s") as exc:
        store.limit(p_fast)
    assert exc.value.retry_after_s == pytest.approx(0.25)
    store.limit(p_slow)
    with pytest.raises(errors.ResourceExhausted) as exc:
        store.limit(p_slow)  # its own bucket: fast's debt does not matter
    assert exc.value.retry_after_s == pytest.approx(1.0)
    for _ in range(1000):
        store.limit(p_free)
    clock.t += 1
    store.limit(p_slow)


def test_reload_when_the_file_changes_at_most_once_per_second(tmp_path, caplog):
    clock = FakeClock()
    path = tmp_path / "keys.yaml"
    a = create_key(path, "a", [SEARCH], rate_per_s=0.1, burst=1)
    store = KeyStore.load(path, clock=clock)
    pa = store.authenticate(a)
    store.limit(pa)  # a's bucket is empty now
    b = create_key(path, "b", [WRITE])
    with pytest.raises(errors.Unauthenticated):
        store.authenticate(b)  # not looked at again within the second
    clock.t += 1.0
    assert store.authenticate(b).key_id == "b"
    with pytest.raises(errors.ResourceExhausted):
        store.limit(pa)  # the reload kept a's bucket: no fresh burst by touching the file
    revoke_key(path, "a")
    clock.t += 1.0
    with pytest.raises(errors.Unauthenticated):
        store.authenticate(a)
    # A broken file, or one missing for a moment, keeps the keys last loaded.
    path.write_text("keys: [")
    clock.t += 1.0
    with caplog.at_level(logging.ERROR, logger="vitrine.auth"):
        assert store.authenticate(b).key_id == "b"
    assert "not reloaded" in caplog.text
    path.unlink()
    clock.t += 1.0
    assert store.authenticate(b).key_id == "b"
    write_keys(path, [])
    clock.t += 1.0
    with pytest.raises(errors.Unauthenticated):
        store.authenticate(b)


def test_kubernetes_secret_layout_is_followed_through_its_symlinks(tmp_path):
    """A Secret volume: keys.yaml -> ..data/keys.yaml, ..data -> ..<timestamp>/ (swapped)."""
    clock = FakeClock()
    first, second = tmp_path / "..2025_01", tmp_path / "..2025_02"
    first.mkdir()
    second.mkdir()
    a = create_key(first / "keys.yaml", "a", [SEARCH])
    b = create_key(second / "keys.yaml", "b", [SEARCH])
    (tmp_path / "..data").symlink_to(first.name)
    (tmp_path / "keys.yaml").symlink_to("..data/keys.yaml")
    store = KeyStore.load(tmp_path / "keys.yaml", clock=clock)
    assert store.key_ids == ["a"]
    (tmp_path / "..data_tmp").symlink_to(second.name)
    (tmp_path / "..data_tmp").replace(tmp_path / "..data")  # what the kubelet does
    clock.t += 1.0
    assert store.authenticate(b).key_id == "b"
    with pytest.raises(errors.Unauthenticated):
        store.authenticate(a)


def test_scope_table_and_metadata():
    assert scope_of("/vitrine.v1.SearchService/Search") == SEARCH
    assert scope_of("/vitrine.v1.SearchService/Describe") == SEARCH
    for m in ("UpsertProducts", "IngestProducts", "DeleteProducts"):
        assert scope_of(f"/vitrine.v1.SearchService/{m}") == WRITE
    assert scope_of("/vitrine.v1.SearchService/DropEverything") == ADMIN  # unknown: closed
    assert scope_of("/grpc.health.v1.Health/Check") is None
    assert scope_of("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") is None
    assert scope_of("/other.Service/Call") == ADMIN
    assert bearer_key([("authorization", "Bearer vk_a_b")]) == "vk_a_b"
    assert bearer_key([("authorization", "bearer  vk_a_b ")]) == "vk_a_b"
    assert bearer_key([("x-api-key", "vk_a_b")]) == "vk_a_b"
    assert bearer_key([("authorization", "Basic xyz")]) is None
    assert bearer_key([]) is None


def test_config_validates_the_key_file(tmp_path):
    path = tmp_path / "keys.yaml"
    create_key(path, "a", [SEARCH])
    cfg = load_config(GatewayConfig, overrides={"api_keys_file": str(path)}, env={})
    assert cfg.api_keys_file == str(path)
    with pytest.raises(ConfigError, match=r"absent\.yaml"):
        load_config(
            GatewayConfig, overrides={"api_keys_file": str(tmp_path / "absent.yaml")}, env={}
        )
    path.write_text("keys: [{id: a, scopes: [search]}]")
    with pytest.raises(ConfigError, match=r"keys\[0\] \(id 'a'\): sha256"):
        load_config(GatewayConfig, overrides={"api_keys_file": str(path)}, env={})
    with pytest.raises(ConfigError, match="auth_required"):
        load_config(GatewayConfig, overrides={"auth_required": True}, env={})
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("localhost")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("10.1.2.3")


# --- the interceptor on a bare grpc.aio server --------------------------------------------------


def test_interceptor_sets_the_principal_for_the_handler_and_its_tasks():
    key = new_key("who")
    store = KeyStore([_entry(key, [SEARCH])])

    async def in_task():
        await asyncio.sleep(0)
        return current_principal()

    async def search(request: bytes, context) -> bytes:
        inner = await asyncio.create_task(in_task())
        return f"{current_principal().key_id}/{inner.key_id}".encode()

    handler = grpc.method_handlers_generic_handler(
        "vitrine.v1.SearchService", {"Search": grpc.unary_unary_rpc_method_handler(search)}
    )

    async def run():
        server = grpc.aio.server(interceptors=[AuthInterceptor(store)])
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                call = ch.unary_unary("/vitrine.v1.SearchService/Search")
                ok = await call(b"", metadata=(("x-api-key", key),))
                with pytest.raises(grpc.aio.AioRpcError) as exc:
                    await call(b"")
                return ok, exc.value.code(), current_principal()
        finally:
            await server.stop(0)

    ok, code, outside = asyncio.run(run())
    assert ok == b"who/who" and code == grpc.StatusCode.UNAUTHENTICATED and outside is None


# --- a real gateway with keys -------------------------------------------------------------------

N_PRODUCTS = 12


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_catalog):
    tmp = tmp_path_factory.mktemp("auth")
    repo = tmp / "models"
    publish_text(repo, "tiny-text", dim=16)
    publish_image(repo, "tiny-image", dim=16)
    keys_file = tmp / "keys.yaml"
    keys = {
        "reader": create_key(keys_file, "reader", [SEARCH]),
        "writer": create_key(keys_file, "writer", [WRITE]),
        "admin": create_key(keys_file, "admin", [ADMIN]),
        "limited": create_key(keys_file, "limited", [SEARCH], rate_per_s=4, burst=2),
        "doomed": create_key(keys_file, "doomed", [SEARCH, WRITE]),
    }
    products = demo_catalog.products[:N_PRODUCTS]
    stack = tiny_stack(tmp, repo, metrics_port=0, num_shards=2, api_keys_file=str(keys_file))
    with stack as (_enc, idx, gw):
        clients = {name: SearchClient(gw.target, api_key=k) for name, k in keys.items()}
        clients["none"] = SearchClient(gw.target)
        clients["bad"] = SearchClient(gw.target, api_key=keys["reader"][:-3] + "xyz")
        with IndexClient(idx.target) as index:
            report = clients["writer"].ingest(ingest_batches(products, size=5))
            assert report.succeeded == N_PRODUCTS, report
            yield {
                **clients,
                "keys": keys,
                "file": keys_file,
                "products": products,
                "index": index,
                "metrics_port": gw.server.metrics_port,
                "target": gw.target,
            }
        for c in clients.values():
            c.close()


def _count(stack) -> int:
    return stack["index"].count("products")


def _new(pid="new-1"):
    return product(pid, "Navy Blue Men Shirt", {"gender": "Men"})


def test_no_or_bad_key_is_unauthenticated_for_reads_and_writes(stack):
    before = _count(stack)
    pid = stack["products"][0].id
    for name in ("none", "bad"):
        c = stack[name]
        with pytest.raises(errors.Unauthenticated):
            c.search(text="shirt", k=3)
        with pytest.raises(errors.Unauthenticated):
            c.upsert([_new()])
        with pytest.raises(errors.Unauthenticated):
            c.ingest([[_new("new-2")], [_new("new-3")]])
        with pytest.raises(errors.Unauthenticated):
            c.delete([pid])
        with pytest.raises(errors.Unauthenticated):
            c.describe(b"x")
    assert _count(stack) == before
    assert stack["index"].get("products", [pid]).records  # not deleted


def test_search_key_reads_but_cannot_write(stack):
    before = _count(stack)
    reader = stack["reader"]
    assert len(reader.search(text="shirt", k=3).results) == 3
    pid = stack["products"][1].id
    with pytest.raises(errors.PermissionDenied, match="lacks scope 'write'"):
        reader.upsert([_new()])
    with pytest.raises(errors.PermissionDenied):
        reader.ingest([[_new("new-2")]])
    with pytest.raises(errors.PermissionDenied):
        reader.delete([pid])
    assert _count(stack) == before
    assert stack["index"].get("products", [pid]).records


def test_write_key_writes_and_admin_does_everything(stack):
    writer, admin = stack["writer"], stack["admin"]
    with pytest.raises(errors.PermissionDenied, match="lacks scope 'search'"):
        writer.search(text="shirt", k=3)  # write does not imply search
    before = _count(stack)
    statuses = writer.upsert([_new("w-1"), _new("w-2")])
    assert [s.code for s in statuses] == [0, 0]
    assert _count(stack) == before + 2
    assert [s.code for s in admin.delete(["w-1"])] == [0]
    assert [s.code for s in writer.delete(["w-2"])] == [0]
    assert _count(stack) == before
    assert admin.search(text="shirt", k=2).results


def test_rate_limit_answers_resource_exhausted_with_pushback(stack):
    limited = stack["limited"]
    time.sleep(0.6)  # a full bucket (burst 2, 4/s)
    limited.search(text="shirt", k=1)
    limited.search(text="shirt", k=1)
    with pytest.raises(errors.ResourceExhausted, match="rate limit of API key 'limited'") as exc:
        limited.search(text="shirt", k=1)
    assert 0 < exc.value.retry_after_s <= 0.25 + 0.01  # from grpc-retry-pushback-ms
    # The raw trailing metadata carries it too.
    with grpc.insecure_channel(stack["target"]) as ch:
        call = ch.unary_unary("/vitrine.v1.SearchService/Search")
        with pytest.raises(grpc.RpcError) as raw:
            call(b"", metadata=(("authorization", f"Bearer {stack['keys']['limited']}"),))
        assert raw.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert int(dict(raw.value.trailing_metadata())["grpc-retry-pushback-ms"]) >= 1
    time.sleep(exc.value.retry_after_s + 0.3)
    assert limited.search(text="shirt", k=1).results


def test_revoked_key_is_refused_without_a_restart(stack):
    doomed = stack["doomed"]
    assert doomed.search(text="shirt", k=1).results
    revoke_key(stack["file"], "doomed")
    deadline = time.monotonic() + 5
    while True:
        try:
            doomed.search(text="shirt", k=1)
        except errors.Unauthenticated:
            break
        assert time.monotonic() < deadline, "revoked key still accepted"
        time.sleep(0.1)
    with pytest.raises(errors.Unauthenticated):
        doomed.upsert([_new("d-1")])
    assert stack["reader"].search(text="shirt", k=1).results  # the others still work


def test_audit_lines_for_writes_never_show_keys(stack, caplog):
    before = _count(stack)
    with caplog.at_level(logging.INFO):
        stack["writer"].upsert([_new("a-1"), _new("a-2"), product("a-bad", "", {})])
        stack["writer"].ingest([[_new("a-3"), _new("a-4")], [_new("a-5")]])
        stack["writer"].delete(["a-1", "a-2", "a-3", "a-4", "a-5"])
        with pytest.raises(errors.PermissionDenied):
            stack["reader"].upsert([_new("a-6")])
        with pytest.raises(errors.Unauthenticated):
            stack["none"].delete(["a-7"])
        stack["reader"].search(text="shirt", k=1)  # reads are not audited
    assert _count(stack) == before
    audit = [r for r in caplog.records if r.name == "vitrine.audit"]
    got = [(r.key_id, r.method, r.records, r.failed, r.outcome) for r in audit]
    assert got == [
        ("writer", "UpsertProducts", 3, 1, "OK"),
        ("writer", "IngestProducts", 3, 0, "OK"),
        ("writer", "DeleteProducts", 5, 0, "OK"),
        ("reader", "UpsertProducts", 0, 0, "PERMISSION_DENIED"),
        ("anonymous", "DeleteProducts", 0, 0, "UNAUTHENTICATED"),
    ]
    line = json.loads(JsonFormatter().format(audit[0]))
    assert line["logger"] == "vitrine.audit" and line["collection"] == "products"
    assert line["peer"].startswith(("ipv4:127.0.0.1", "ipv6:")) and line["scope"] == "write"
    secrets_ = [k.split("_", 2)[2] for k in stack["keys"].values()]
    for r in caplog.records:
        text = JsonFormatter().format(r)
        assert not any(s in text for s in secrets_), text


def test_auth_metrics_by_scope_and_outcome_never_by_key(stack):
    port = stack["metrics_port"]
    with pytest.raises(errors.PermissionDenied):
        stack["writer"].search(text="x", k=1)
    with pytest.raises(errors.PermissionDenied):
        stack["reader"].delete(["x"])
    with pytest.raises(errors.Unauthenticated):
        stack["none"].delete(["x"])
    stack["writer"].delete(["x"])
    with pytest.raises(errors.ResourceExhausted):
        for _ in range(10):
            stack["limited"].search(text="x", k=1)
    text = scrape(port)
    name = "vitrine_gateway_auth_requests_total"
    for scope, outcome in [
        ("search", "ok"),
        ("search", "unauthenticated"),
        ("search", "permission_denied"),
        ("search", "rate_limited"),
        ("write", "ok"),
        ("write", "unauthenticated"),
        ("write", "permission_denied"),
    ]:
        assert metric_value(text, name, scope=scope, outcome=outcome) > 0, (scope, outcome)
    before = metric_value(text, name, scope="search", outcome="unauthenticated")
    with pytest.raises(errors.Unauthenticated):
        stack["bad"].search(text="x", k=1)
    after = metric_value(scrape(port), name, scope="search", outcome="unauthenticated")
    assert after == before + 1
    for key_id in stack["keys"]:
        assert f'"{key_id}"' not in text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    out = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_health_is_never_gated(stack):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(stack["target"]) as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_auth_off_passes_calls_and_still_audits_writes(caplog):
    from vitrine.v1 import gateway_pb2

    async def ingest(requests, context):
        n = 0
        async for req in requests:
            n += len(req.products)
        assert current_principal().key_id == "anonymous"
        return gateway_pb2.IngestProductsResponse(received=n, succeeded=n)

    handler = grpc.method_handlers_generic_handler(
        "vitrine.v1.SearchService",
        {
            "IngestProducts": grpc.stream_unary_rpc_method_handler(
                ingest,
                request_deserializer=gateway_pb2.IngestProductsRequest.FromString,
                response_serializer=gateway_pb2.IngestProductsResponse.SerializeToString,
            )
        },
    )

    async def run():
        server = grpc.aio.server(interceptors=[AuthInterceptor(None, collection="c")])
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                call = ch.stream_unary(
                    "/vitrine.v1.SearchService/IngestProducts",
                    request_serializer=gateway_pb2.IngestProductsRequest.SerializeToString,
                    response_deserializer=gateway_pb2.IngestProductsResponse.FromString,
                )
                reqs = [gateway_pb2.IngestProductsRequest(products=[_new(), _new()])] * 3
                return await call(iter(reqs))
        finally:
            await server.stop(0)

    with caplog.at_level(logging.INFO, logger="vitrine.audit"):
        assert asyncio.run(run()).received == 6
    (line,) = [r for r in caplog.records if r.name == "vitrine.audit"]
    assert (line.key_id, line.method, line.records, line.outcome) == (
        "anonymous",
        "IngestProducts",
        6,
        "OK",
    )


def test_warns_when_auth_is_off_on_a_reachable_host(caplog):
    with caplog.at_level(logging.WARNING, logger="vitrine.gateway"):
        GatewayServer(GatewayConfig(host="0.0.0.0", port=0, metrics_port=-1))
        assert "API keys are off" in caplog.text
        caplog.clear()
        GatewayServer(GatewayConfig(host="127.0.0.1", port=0, metrics_port=-1))
        assert "API keys are off" not in caplog.text
