"""Vector, lexical and hybrid retrieval through the gateway (encoder + index + gateway, real
gRPC, tiny towers): brands, model numbers, filters, modes and their errors."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from encoder_service.client import EncoderClient
from exporter.rerank.labels import brand_of
from gateway.client import SearchClient
from gateway.config import GatewayConfig
from gateway.retrieval import adaptive_weight, blend, lexical_text
from index_service.client import SearchHit
from tests.support.catalog import ingest_batches
from tests.support.stack import tiny_stack
from tests.support.tiny_compose import publish_compose, unit_rows
from tests.support.tiny_models import publish_image, publish_text
from vitrine.filters import eq
from vitrine.serving import errors
from vitrine.v1 import gateway_pb2


def model_number(title: str) -> str:
    """The title's first token with letters and digits, at least 7 characters ("MTP-1191A")."""
    for tok in title.split():
        tok = tok.strip("()")
        if len(tok) >= 7 and re.search(r"\d", tok) and re.search(r"[A-Za-z]", tok):
            return tok
    return ""


def _products(catalog):
    numbered = [p for p in catalog.products if model_number(p.title)]
    return list({p.id: p for p in [*catalog.products[:150], *numbered]}.values())


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_catalog):
    tmp = tmp_path_factory.mktemp("hybrid")
    repo = tmp / "models"
    publish_text(repo, "tiny-text", dim=16)
    publish_image(repo, "tiny-image", dim=16)
    publish_compose(repo, dim=16)
    with tiny_stack(tmp, repo, num_shards=3) as (enc, _idx, gw), SearchClient(gw.target) as client:
        products = _products(demo_catalog)
        assert client.ingest(ingest_batches(products)).failed == 0
        yield client, products, enc.target, repo


def _brand(products, name):
    return {p.id for p in products if brand_of(p) == name}


def test_brand_query_returns_only_that_brand(stack):
    client, products, *_ = stack
    brands = Counter(brand_of(p) for p in products)
    name = next(b for b, n in brands.most_common() if b and n >= 10)
    resp = client.search(text=name.lower(), k=10)
    assert resp.retrieval_mode == gateway_pb2.RETRIEVAL_MODE_HYBRID  # the default for text
    assert {r.product_id for r in resp.results} <= _brand(products, name)
    assert len(resp.results) == 10 and all(r.lexical_score > 0 for r in resp.results)
    # Vector retrieval alone (tiny random towers) does not know brands.
    vec = client.search(text=name.lower(), k=10, retrieval_mode="vector")
    assert vec.retrieval_mode == gateway_pb2.RETRIEVAL_MODE_VECTOR
    assert all(r.lexical_score == 0 for r in vec.results)


def test_model_number_fragment_finds_its_product_first(stack):
    client, products, *_ = stack
    numbered = [(p, model_number(p.title)) for p in products if model_number(p.title)]
    assert len(numbered) >= 5
    for p, number in numbered:
        fragment = number[: max(6, len(number) - 3)]  # "MTP-1191A-1ADF" -> "MTP-1191A-1"
        for mode in ("hybrid", "lexical"):
            resp = client.search(text=fragment, k=5, retrieval_mode=mode)
            assert resp.results[0].product_id == p.id, (fragment, mode, p.title)


def test_hybrid_with_filters_returns_only_matching_products(stack):
    client, products, *_ = stack
    gender = {p.id: p.attributes.get("gender") for p in products}
    for text in ("black", "puma shoes", "watch"):
        resp = client.search(text=text, k=20, filter=eq("gender", "Women"), include_attributes=True)
        assert resp.results
        assert all(gender[r.product_id] == "Women" for r in resp.results)
        assert all(r.attributes["gender"].string_value == "Women" for r in resp.results)


def test_lexical_mode_skips_encoding_and_modes_need_text_only(stack, demo_catalog):
    client, products, *_ = stack
    resp = client.search(text="Black", k=5, retrieval_mode="lexical")
    assert list(resp.stages_run) == ["search"]
    assert resp.retrieval_mode == gateway_pb2.RETRIEVAL_MODE_LEXICAL
    assert len(resp.results) == 5
    assert all(
        "black" in r.caption.lower() or r.attributes["baseColour"].string_value == "Black"
        for r in resp.results
    )
    scores = [r.score for r in resp.results]
    assert scores == sorted(scores, reverse=True) and scores[0] == pytest.approx(1.0)
    photo = products[0].image_path.read_bytes()
    with pytest.raises(errors.InvalidArgument, match="retrieval_mode: lexical needs a text-only"):
        client.search(text="red", image=photo, retrieval_mode="lexical")
    with pytest.raises(errors.InvalidArgument, match="retrieval_mode: hybrid needs a text-only"):
        client.search(image=photo, retrieval_mode="hybrid")
    # Photo queries stay vector; pages of a hybrid query are consistent.
    assert client.search(image=photo, k=3).retrieval_mode == gateway_pb2.RETRIEVAL_MODE_VECTOR
    first = client.search(text="men shirts", k=10, page_size=5)
    second = client.search(text="men shirts", k=10, page_size=5, page_token=first.next_page_token)
    whole = client.search(text="men shirts", k=10)
    assert [r.product_id for r in (*first.results, *second.results)] == [
        r.product_id for r in whole.results
    ]


def test_blend_keeps_lexical_matches_on_top_and_bounds_missing_scores():
    vector = [SearchHit("a", 0.9), SearchHit("b", 0.5), SearchHit("c", 0.4)]
    lexical = [SearchHit("c", 20.0), SearchHit("d", 10.0)]
    fused = blend(vector, lexical, 0.2, lexical_depth=50, k=4)
    assert [h.id for h in fused.hits] == ["c", "d", "a", "b"]
    # c: 0.2*0.4 + 0.8*1; d: cosine bounded by the vector list's lowest (0.4); a: BM25 0.
    assert fused.hits[0].score == pytest.approx(0.08 + 0.8)
    assert fused.hits[1].score == pytest.approx(0.08 + 0.4)
    assert fused.hits[2].score == pytest.approx(0.18)
    hit = SearchHit("x", 1.0, {"title": "Puma Men Shoes", "gender": "Men"})
    assert adaptive_weight("puma shoes", [hit], 0.1, 0.7) == pytest.approx(0.1)
    assert adaptive_weight("puma trainers", [hit], 0.1, 0.7) == pytest.approx(0.4)
    assert adaptive_weight("gents trainers", [hit], 0.1, 0.7) == pytest.approx(0.7)
    assert fused.bm25 == {"c": 20.0, "d": 10.0, "a": 0.0, "b": 0.0}
    # A full lexical list: products it missed get its lowest BM25 as their bound.
    full = blend(vector, lexical, 0.2, lexical_depth=2, k=4)
    assert [h.id for h in full.hits] == ["c", "a", "b", "d"]
    assert full.hits[1].score == pytest.approx(0.18 + 0.8 * 0.5)
    assert lexical_text("Puma Men Shoes", {"gender": "Men", "price": 3.0, "tags": ["sale"]}) == (
        "Puma Men Shoes Men sale"
    )


def test_compose_rpc_matches_the_model_and_refuses_bad_shapes(stack):
    import onnxruntime as ort

    from vitrine.model_repo import ModelRepository

    _, _, encoder, repo = stack
    img, txt = unit_rows(3, 16, 1), unit_rows(3, 16, 2)
    with EncoderClient(encoder) as enc:
        (info,) = enc.model_info("vitrine-compose")
        assert info.modality == 5  # MODALITY_COMPOSE
        out = enc.compose("vitrine-compose", img, txt)
        assert out.vectors.shape == (3, 16)
        assert np.allclose(np.linalg.norm(out.vectors, axis=1), 1.0, atol=1e-5)
        version = ModelRepository(repo).load("vitrine-compose")
        sess = ort.InferenceSession(str(version.onnx_path), providers=["CPUExecutionProvider"])
        (want,) = sess.run(None, {"image_embedding": img, "text_embedding": txt})
        assert np.allclose(out.vectors, want, atol=1e-5)
        with pytest.raises(errors.InvalidArgument, match=r"text_embeddings: shape \[3, 8\]"):
            enc.compose("vitrine-compose", img, txt[:, :8])
        with pytest.raises(errors.InvalidArgument, match="text_embeddings: 2 rows"):
            enc.compose("vitrine-compose", img, txt[:2])
        with pytest.raises(errors.InvalidArgument, match="is a text model, not compose"):
            enc.compose("tiny-text", img, txt)


def test_composite_queries_use_the_model_and_fall_back_to_the_weighted_sum(stack):
    client, products, encoder, _ = stack
    photo = products[3].image_path.read_bytes()
    model = client.search(text="in red", image=photo, k=10)
    assert model.compose_mode == gateway_pb2.COMPOSE_MODE_MODEL and not model.degraded_stages
    assert model.retrieval_mode == gateway_pb2.RETRIEVAL_MODE_VECTOR
    weighted = client.search(text="in red", image=photo, k=10, compose="weighted")
    assert weighted.compose_mode == gateway_pb2.COMPOSE_MODE_WEIGHTED
    assert [r.score for r in model.results] != [r.score for r in weighted.results]
    # Explicit weights ask for the weighted sum.
    explicit = client.search(text="in red", image=photo, k=10, text_weight=0.5, image_weight=0.5)
    assert explicit.compose_mode == gateway_pb2.COMPOSE_MODE_WEIGHTED
    assert [r.product_id for r in explicit.results] == [r.product_id for r in weighted.results]
    # Single-modality queries are not composed.
    assert client.search(image=photo, k=3).compose_mode == gateway_pb2.COMPOSE_MODE_UNSPECIFIED
    # The model unloaded: the next query degrades to the weighted sum and says so, the one
    # after knows the model is gone.
    with EncoderClient(encoder) as enc:
        enc.unload_model("vitrine-compose")
    try:
        gone = client.search(text="in red", image=photo, k=10)
        assert gone.compose_mode == gateway_pb2.COMPOSE_MODE_WEIGHTED
        assert list(gone.degraded_stages) == ["compose"]
        after = client.search(text="in red", image=photo, k=10)
        assert after.compose_mode == gateway_pb2.COMPOSE_MODE_WEIGHTED
        assert not after.degraded_stages
    finally:
        with EncoderClient(encoder) as enc:
            enc.load_model("vitrine-compose")


def test_composer_must_pair_with_the_loaded_towers(stack):
    """A composer trained for other tower versions is never used: its queries would be in
    another embedding space."""
    import asyncio

    from encoder_service.client import AsyncEncoderClient
    from gateway.compose import Composer

    _, _, encoder, repo = stack
    publish_compose(repo, dim=16, version=2, text_model="tiny-text/9")

    async def loaded() -> int | None:
        client = AsyncEncoderClient(encoder)
        try:
            cfg = GatewayConfig(text_model="tiny-text", image_model="tiny-image")
            return await Composer(client, cfg).loaded()
        finally:
            await client.close()

    with EncoderClient(encoder) as enc:
        enc.load_model("vitrine-compose", 2)
        try:
            assert asyncio.run(loaded()) == 1  # v2 is newer but pairs with tiny-text/9
            enc.unload_model("vitrine-compose", 1)
            assert asyncio.run(loaded()) is None  # only the stale one: the weighted sum
        finally:
            enc.unload_model("vitrine-compose", 2)
            enc.load_model("vitrine-compose", 1)
