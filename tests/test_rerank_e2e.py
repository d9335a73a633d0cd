"""The rerank stage end to end: encoder (tiny towers + tiny reranker) + index + gateway."""

from __future__ import annotations

import time

import numpy as np
import onnxruntime as ort
import pytest

from encoder_service.client import EncoderClient
from encoder_service.config import EncoderConfig
from encoder_service.server import EncoderServer
from gateway.client import SearchClient, product
from gateway.config import GatewayConfig
from gateway.server import GatewayServer
from index_service.client import IndexClient
from index_service.config import IndexConfig
from index_service.server import IndexServer
from tests.support.servers import ServerThread
from tests.support.tiny_models import publish_image, publish_rerank, publish_text
from vitrine.filters import eq
from vitrine.model_repo import ModelRepository
from vitrine.preprocess import TextTokenizer
from vitrine.serving import errors

N_PRODUCTS = 80
WIDTH = 8


def _stack(tmp, catalog, rerank_graph=None, **gw):
    repo = tmp / "models"
    publish_text(repo, "tiny-text", dim=16)
    publish_image(repo, "tiny-image", dim=16, payload_width=WIDTH)
    publish_image(repo, "plain-image", dim=16)  # no payload output
    publish_rerank(repo, "tiny-rerank", payload_width=WIDTH, **(rerank_graph or {}))
    enc = ServerThread(
        EncoderServer(
            EncoderConfig(
                models_dir=str(repo), port=0, metrics_port=-1, intra_op_threads=1, log_format="text"
            )
        )
    )
    index = ServerThread(
        IndexServer(
            IndexConfig(data_dir=str(tmp / "index"), port=0, metrics_port=-1, log_format="text")
        )
    )
    return repo, enc, index, gw


class Stack:
    def __init__(self, tmp, catalog, rerank_graph=None, **gw):
        self.repo, self.enc, self.index, self.gw_kw = _stack(tmp, catalog, rerank_graph, **gw)
        self.catalog = catalog

    def __enter__(self):
        self.enc.__enter__()
        self.index.__enter__()
        cfg = GatewayConfig(
            port=0,
            metrics_port=-1,
            encoder=self.enc.target,
            index_endpoints=[self.index.target],
            text_model="tiny-text",
            image_model="tiny-image",
            rerank_model="tiny-rerank",
            index_spec="Flat",
            num_shards=2,
            log_format="text",
            **self.gw_kw,
        )
        self.gw = ServerThread(GatewayServer(cfg)).__enter__()
        self.client = SearchClient(self.gw.target)
        self.products = self.catalog.products[:N_PRODUCTS]
        report = self.client.ingest(
            [
                [
                    product(p.id, p.title, dict(p.attributes), p.image_path.read_bytes())
                    for p in self.products[s : s + 20]
                ]
                for s in range(0, N_PRODUCTS, 20)
            ]
        )
        assert report.succeeded == N_PRODUCTS
        return self

    def __exit__(self, *exc):
        self.client.close()
        for s in (self.gw, self.index, self.enc):
            s.__exit__(*exc)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_catalog):
    with Stack(tmp_path_factory.mktemp("rerank"), demo_catalog) as s:
        yield s


def expected_order(stack, ids, retrieval, text="", payload=None, titles=None, weights=(0.5, 0.5)):
    """The tiny reranker called in process on the same candidates: the order it gives."""
    version = ModelRepository(stack.repo).load("tiny-rerank")
    sess = ort.InferenceSession(str(version.onnx_path), providers=["CPUExecutionProvider"])
    tok = TextTokenizer(version.tokenizer_path, 16)
    with IndexClient(stack.index.target) as ix:
        stored = {r.id: r.payload for r in ix.get("products", ids, include_payloads=True).records}
    n = len(ids)
    parts = []
    if text:
        b = tok.encode([text] * n)
        pay = np.stack([np.frombuffer(stored[i], "<f2") for i in ids])
        parts.append((b, pay, 0))
    if payload is not None:
        b = tok.encode(titles)
        pay = np.repeat(np.frombuffer(payload, "<f2")[None], n, axis=0)
        parts.append((b, pay, 1))
    scores = []
    for b, pay, direction in parts:
        scores.append(
            sess.run(
                ["score"],
                {
                    "text_ids": b.input_ids,
                    "text_mask": b.attention_mask,
                    "payload": pay.astype(np.float16),
                    "retrieval": np.asarray(retrieval, np.float32),
                    "direction": np.full(n, direction, np.int64),
                },
            )[0]
        )
    score = scores[0] if len(scores) == 1 else weights[0] * scores[0] + weights[1] * scores[1]
    return [ids[i] for i in np.argsort(-score, kind="stable")], score


def _retrieval(stack, n, **query):
    resp = stack.client.search(k=n, rerank=False, **query)
    return [r.product_id for r in resp.results], [r.retrieval_score for r in resp.results]


def test_text_search_returns_the_rerankers_order(stack):
    ids, retrieval = _retrieval(stack, 20, text="men black shirts")
    resp = stack.client.search(text="men black shirts", k=10, rerank_candidates=20)
    assert list(resp.stages_run) == ["encode", "search", "rerank"]
    assert resp.reranked == 20 and not resp.degraded_stages
    want, scores = expected_order(stack, ids, retrieval, text="men black shirts")
    assert [r.product_id for r in resp.results] == want[:10]
    assert [r.score for r in resp.results] == pytest.approx(sorted(scores, reverse=True)[:10])
    by_id = dict(zip(ids, retrieval, strict=True))
    assert [r.retrieval_score for r in resp.results] == [by_id[r.product_id] for r in resp.results]
    assert want[:10] != ids[:10]  # the tiny reranker does reorder


def test_photo_and_composite_queries_rerank(stack):
    p = stack.products[3]
    photo = p.image_path.read_bytes()
    with EncoderClient(stack.enc.target) as enc:
        payload = enc.embed_images("tiny-image", [photo], include_payloads=True).payloads[0]
    titles_of = {q.id: q.title for q in stack.products}
    ids, retrieval = _retrieval(stack, 15, image=photo)
    resp = stack.client.search(image=photo, k=15, rerank_candidates=15)
    assert resp.reranked == 15 and "rerank" in resp.stages_run
    want, _ = expected_order(
        stack, ids, retrieval, payload=payload, titles=[titles_of[i] for i in ids]
    )
    assert [r.product_id for r in resp.results] == want
    ids, retrieval = _retrieval(stack, 15, text="red", image=photo)
    resp = stack.client.search(text="red", image=photo, k=15, rerank_candidates=15)
    assert resp.reranked == 15
    want, _ = expected_order(
        stack, ids, retrieval, "red", payload, [titles_of[i] for i in ids], (0.5, 0.5)
    )
    assert [r.product_id for r in resp.results] == want


def test_rerank_off_filters_and_stable_pages(stack):
    off = stack.client.search(text="women shoes", k=10, rerank=False)
    assert list(off.stages_run) == ["encode", "search"] and off.reranked == 0
    assert all(r.score == r.retrieval_score for r in off.results)
    men = stack.client.search(text="shirts", k=10, filter=eq("gender", "Men"))
    assert men.reranked > 0
    assert all(r.attributes["gender"].string_value == "Men" for r in men.results)
    full = stack.client.search(text="casual", k=15, rerank_candidates=30)
    pages, token = [], ""
    while True:
        page = stack.client.search(
            text="casual", k=15, rerank_candidates=30, page_size=4, page_token=token
        )
        assert page.reranked == 30
        pages += [r.product_id for r in page.results]
        token = page.next_page_token
        if not token:
            break
    assert pages == [r.product_id for r in full.results] and len(set(pages)) == 15


def test_bad_rerank_arguments(stack):
    with pytest.raises(errors.InvalidArgument, match="rerank_candidates: 500"):
        stack.client.search(text="x shirts", rerank_candidates=500)
    with EncoderClient(stack.enc.target) as enc:
        from encoder_service.client import Candidate

        good = Candidate(b"\x00" * (2 * WIDTH), "Men Shirts", 0.5)
        with pytest.raises(errors.InvalidArgument, match=r"candidates\[1\]\.payload: 3 bytes"):
            enc.rerank("tiny-rerank", [good, Candidate(b"abc", "t", 0.1)], query_text="shirt")
        with pytest.raises(errors.InvalidArgument, match="candidates: 201, at most 200"):
            enc.rerank("tiny-rerank", [good] * 201, query_text="shirt")
        with pytest.raises(errors.InvalidArgument, match=r"candidates\[0\]\.title: required"):
            enc.rerank(
                "tiny-rerank", [Candidate(good.payload, "", 0.1)], query_payload=good.payload
            )
        with pytest.raises(errors.InvalidArgument, match="query_payload: 4 bytes"):
            enc.rerank("tiny-rerank", [good], query_payload=b"abcd")
        with pytest.raises(errors.InvalidArgument, match="query_text or query_payload"):
            enc.rerank("tiny-rerank", [good])
        with pytest.raises(errors.InvalidArgument, match="model: 'tiny-text' is a text model"):
            enc.rerank("tiny-text", [good], query_text="shirt")
        with pytest.raises(errors.NotFound, match="model 'nope'"):
            enc.rerank("nope", [good], query_text="shirt")
        photo = stack.products[0].image_path.read_bytes()
        with pytest.raises(errors.InvalidArgument, match="include_payloads: model plain-image"):
            enc.embed_images("plain-image", [photo], include_payloads=True)


def test_unavailable_reranker_degrades_to_retrieval_order(tmp_path, demo_catalog):
    with Stack(tmp_path, demo_catalog, rerank_refresh_s=0) as s:
        ids, _ = _retrieval(s, 10, text="blue jeans")
        with EncoderClient(s.enc.target) as enc:
            assert enc.unload_model("tiny-rerank") == [1]
        resp = s.client.search(text="blue jeans", k=10)
        assert [r.product_id for r in resp.results] == ids
        assert resp.reranked == 0 and "rerank" not in resp.stages_run
        forced = s.client.search(text="blue jeans", k=10, rerank=True)
        assert [r.product_id for r in forced.results] == ids
        assert list(forced.degraded_stages) == ["rerank"] and not forced.partial
        with EncoderClient(s.enc.target) as enc:
            enc.load_model("tiny-rerank")
        assert s.client.search(text="blue jeans", k=10).reranked == 50  # the model default


def test_tight_deadline_shrinks_the_shortlist(tmp_path, demo_catalog):
    # A slow reranker (square matmuls per pair): most of a search's time is the rerank stage.
    graph = {"burn": 1024, "burn_layers": 12}
    with Stack(tmp_path, demo_catalog, graph, rerank_initial_cost_ms=1.0) as s:
        for _ in range(3):  # the stage learns its cost per candidate
            s.client.search(text="watch", k=10, rerank_candidates=40, timeout=5)
        generous = s.client.search(text="watch", k=10, rerank_candidates=80, timeout=5)
        assert generous.reranked == 80
        # Time for encode, search and half of what reranking all 80 took (whatever this
        # machine's speed): the full shortlist cannot fit.
        took = {t.stage: t.seconds for t in generous.timings}
        deadline = took["encode"] + took["search"] + 0.003 + took["rerank"] / 2
        t0 = time.perf_counter()
        tight = s.client.search(text="watch", k=10, rerank_candidates=80, timeout=deadline)
        elapsed = time.perf_counter() - t0
        assert 0 <= tight.reranked < 80 and len(tight.results) == 10
        assert elapsed < deadline + 0.05  # answered about in time (the call did not fail)
