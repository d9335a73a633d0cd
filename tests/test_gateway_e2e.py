"""End to end: encoder + two index processes (half the shards each) + gateway, real gRPC."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from encoder_service.config import EncoderConfig
from encoder_service.server import EncoderServer
from gateway.client import SearchClient, product
from gateway.config import GatewayConfig
from gateway.server import GatewayServer
from index_service.collection import shard_of
from tests.support.servers import ServerProcess, ServerThread
from tests.support.tiny_models import publish_image, publish_text
from vitrine.filters import eq
from vitrine.serving import errors

N_PRODUCTS = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class IndexProc:
    """An index-service process on a fixed port, so it can be killed and come back there."""

    def __init__(self, tmp, name):
        self.port = _free_port()
        self.data = tmp / name
        self.tmp = tmp
        self.proc = None

    def start(self):
        self.proc = ServerProcess(
            ["serve", "index", "--data-dir", str(self.data)], self.tmp, port=self.port
        ).start()
        return self

    @property
    def target(self):
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_catalog):
    tmp = tmp_path_factory.mktemp("stack")
    repo = tmp / "models"
    publish_text(repo, "tiny-text", dim=16)
    publish_image(repo, "tiny-image", dim=16)
    enc_cfg = EncoderConfig(
        models_dir=str(repo), port=0, metrics_port=-1, intra_op_threads=1, log_format="text"
    )
    a, b = IndexProc(tmp, "a").start(), IndexProc(tmp, "b").start()
    with ServerThread(EncoderServer(enc_cfg)) as enc:
        gw_cfg = GatewayConfig(
            port=0,
            metrics_port=0,
            encoder=enc.target,
            index_endpoints=[a.target, b.target],
            text_model="tiny-text",
            image_model="tiny-image",
            index_spec="Flat",
            num_shards=4,
            default_timeout_s=5,
            log_format="text",
        )
        with ServerThread(GatewayServer(gw_cfg)) as gw, SearchClient(gw.target) as client:
            products = demo_catalog.products[:N_PRODUCTS]
            batches = [
                [
                    product(p.id, p.title, dict(p.attributes), p.image_path.read_bytes())
                    for p in products[s : s + 25]
                ]
                for s in range(0, N_PRODUCTS, 25)
            ]
            batches[1].append(product("broken-1", "Broken photo", {}, b"not an image"))
            report = client.ingest(batches)
            yield {"client": client, "products": products, "report": report, "a": a, "b": b}
    for proc in (a, b):
        proc.proc.kill()


def test_ingest_reports_per_item_failures(stack):
    r = stack["report"]
    assert r.received == N_PRODUCTS + 1 and r.succeeded == N_PRODUCTS and r.failed == 1
    assert r.failures[0].id == "broken-1" and r.failures[0].code == 3
    assert "image" in r.failures[0].message


def test_image_query_returns_that_product_first(stack):
    c = stack["client"]
    for p in stack["products"][:5]:
        resp = c.search(image=p.image_path.read_bytes(), k=5)
        assert resp.results[0].product_id == p.id
        assert resp.results[0].score == pytest.approx(1.0, abs=1e-4)
        assert resp.results[0].caption == p.title
        assert list(resp.stages_run) == ["encode", "search"] and not resp.partial
        assert [t.stage for t in resp.timings] == ["encode", "search"]


def test_text_and_composite_queries(stack):
    c = stack["client"]
    p = stack["products"][0]
    text = c.search(text=p.title, k=10)
    assert len(text.results) == 10
    composite = c.search(
        text="red", image=p.image_path.read_bytes(), k=10, image_weight=0.9, text_weight=0.1
    )
    assert composite.results[0].product_id == p.id  # mostly the photo
    with pytest.raises(errors.InvalidArgument, match="text or image"):
        c.search(k=5)


def test_filter_returns_only_matching_products(stack):
    c = stack["client"]
    resp = c.search(text="shirt", k=30, filter=eq("gender", "Women"))
    assert resp.results
    assert all(r.attributes["gender"].string_value == "Women" for r in resp.results)
    want = sum(p.attributes.get("gender") == "Women" for p in stack["products"])
    assert len(resp.results) == min(30, want)


def test_pages_do_not_overlap_and_equal_the_unpaged_top_k(stack):
    c = stack["client"]
    image = stack["products"][3].image_path.read_bytes()
    full = [r.product_id for r in c.search(image=image, k=20).results]
    pages, token = [], ""
    while True:
        resp = c.search(image=image, k=20, page_size=7, page_token=token)
        pages.append([r.product_id for r in resp.results])
        token = resp.next_page_token
        if not token:
            break
    assert [len(p) for p in pages] == [7, 7, 6]
    assert [i for page in pages for i in page] == full and len(set(full)) == 20
    with pytest.raises(errors.InvalidArgument, match="page_token"):
        c.search(text="other query", k=20, page_size=7, page_token=resp.next_page_token or "bm9wZQ")


def test_partial_results_when_an_index_process_dies_and_full_again(stack):
    c = stack["client"]
    image = stack["products"][7].image_path.read_bytes()
    before = [r.product_id for r in c.search(image=image, k=10).results]
    a = stack["a"]
    a.proc.kill()
    resp = c.search(image=image, k=10)
    assert resp.partial and resp.results
    # Only the surviving process's shards (2 and 3 of 4) answered.
    assert all(shard_of(r.product_id, 4) in (2, 3) for r in resp.results)
    survivors = [x for x in before if shard_of(x, 4) in (2, 3)]
    assert [r.product_id for r in resp.results][: len(survivors)] == survivors
    a.start()  # same port and data directory: recovers from its WAL/snapshot
    deadline = time.monotonic() + 30
    while True:
        resp = c.search(image=image, k=10)
        if not resp.partial:
            break
        assert time.monotonic() < deadline, "still partial after the index process came back"
        time.sleep(0.2)
    assert [r.product_id for r in resp.results] == before


def test_delete_products(stack):
    c = stack["client"]
    victim = stack["products"][10]
    statuses = c.delete([victim.id, "no-such-product"])
    assert [s.code for s in statuses] == [0, 5]
    resp = c.search(image=victim.image_path.read_bytes(), k=5)
    assert victim.id not in [r.product_id for r in resp.results]
    assert np.isfinite([r.score for r in resp.results]).all()


@pytest.fixture(scope="module")
def demo_towers(tmp_path_factory, demo_catalog, feature_cache_dir):
    """The real default towers trained briefly on the demo catalog (heads only, cached features)."""
    import torch

    from exporter.pipeline import run_training
    from exporter.train import TrainConfig

    torch.set_num_threads(2)
    models = tmp_path_factory.mktemp("demo-models")
    run_training(
        demo_catalog,
        models,
        TrainConfig(epochs=15, batch_size=64),
        with_probe=False,
        cache_dir=feature_cache_dir,
        quiet=True,
    )
    return models


@pytest.mark.slow
def test_title_query_finds_its_product_with_the_real_towers(tmp_path, demo_towers, demo_catalog):
    from vitrine.preprocess import normalize_title

    products = demo_catalog.products
    a, b = IndexProc(tmp_path, "a").start(), IndexProc(tmp_path, "b").start()
    enc_cfg = EncoderConfig(models_dir=str(demo_towers), port=0, metrics_port=-1, log_format="text")
    try:
        with ServerThread(EncoderServer(enc_cfg)) as enc:
            gw_cfg = GatewayConfig(
                port=0,
                metrics_port=-1,
                encoder=enc.target,
                index_endpoints=[a.target, b.target],
                log_format="text",
            )
            with ServerThread(GatewayServer(gw_cfg)) as gw, SearchClient(gw.target) as c:
                batches = [
                    [
                        product(p.id, p.title, dict(p.attributes), p.image_path.read_bytes())
                        for p in products[s : s + 50]
                    ]
                    for s in range(0, len(products), 50)
                ]
                assert c.ingest(batches).succeeded == len(products)
                rng = np.random.default_rng(1)
                probes = [products[i] for i in rng.choice(len(products), 10, replace=False)]
                found = 0
                for p in probes:
                    titles = {
                        normalize_title(r.caption) for r in c.search(text=p.title, k=10).results
                    }
                    found += normalize_title(p.title) in titles
                assert found == len(probes), f"{found}/{len(probes)} titles found in the top 10"
    finally:
        for proc in (a, b):
            proc.proc.kill()
