"""Integration: towers and the query composer trained on the demo catalog, served by the real
encoder, index and gateway; "a photo of product X" + "in <colour>" answers X's type in that
colour, where the weighted sum stays with the photo."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from encoder_service.config import EncoderConfig
from encoder_service.server import EncoderServer
from gateway.client import SearchClient
from gateway.config import GatewayConfig
from gateway.server import GatewayServer
from index_service.config import IndexConfig
from index_service.server import IndexServer
from tests.support.catalog import ingest_batches
from tests.support.servers import ServerThread
from vitrine.v1 import gateway_pb2

pytestmark = pytest.mark.slow
COLOURS = ("Black", "Blue", "White", "Red", "Green", "Grey", "Navy Blue", "Brown", "Pink")


@pytest.fixture(scope="module")
def composed_stack(tmp_path_factory, demo_catalog, feature_cache_dir):
    from exporter.compose.train import ComposeConfig
    from exporter.pipeline import run_training
    from exporter.train import TrainConfig

    torch.set_num_threads(2)
    tmp = tmp_path_factory.mktemp("composed")
    models = tmp / "models"
    run_training(
        demo_catalog,
        models,
        TrainConfig(epochs=10, batch_size=64),
        with_probe=False,
        cache_dir=feature_cache_dir,
        quiet=True,
        compose=ComposeConfig(epochs=4, samples_per_epoch=8192),
    )
    enc_cfg = EncoderConfig(models_dir=str(models), port=0, metrics_port=-1, log_format="text")
    idx_cfg = IndexConfig(data_dir=str(tmp / "data"), port=0, metrics_port=-1, log_format="text")
    with ServerThread(EncoderServer(enc_cfg)) as enc, ServerThread(IndexServer(idx_cfg)) as idx:
        gw_cfg = GatewayConfig(
            port=0,
            metrics_port=-1,
            encoder=enc.target,
            index_endpoints=[idx.target],
            index_spec="Flat",
            num_shards=2,
            log_format="text",
        )
        with ServerThread(GatewayServer(gw_cfg)) as gw, SearchClient(gw.target) as client:
            products = demo_catalog.products
            assert client.ingest(ingest_batches(products)).failed == 0
            yield client, products


def _cases(products, n: int):
    """(reference, colour): a product and a colour it is not in, where the catalog has at least
    five products of its type and gender in that colour."""
    have = Counter(
        (
            p.attributes.get("articleType"),
            p.attributes.get("gender"),
            p.attributes.get("baseColour"),
        )
        for p in products
    )
    out = []
    for p in products[::7]:
        a = p.attributes
        for colour in COLOURS:
            if (
                colour != a.get("baseColour")
                and have[(a.get("articleType"), a.get("gender"), colour)] >= 5
            ):
                out.append((p, colour))
                break
        if len(out) == n:
            break
    return out


def test_composed_query_returns_the_type_in_that_colour(composed_stack):
    client, products = composed_stack
    by_id = {p.id: p for p in products}
    cases = _cases(products, 6)
    assert len(cases) == 6
    hits = {"model": 0, "weighted": 0}
    for ref, colour in cases:
        photo = ref.image_path.read_bytes()
        for mode in hits:
            resp = client.search(text=f"in {colour.lower()}", image=photo, k=5, compose=mode)
            want = (
                gateway_pb2.COMPOSE_MODE_MODEL
                if mode == "model"
                else gateway_pb2.COMPOSE_MODE_WEIGHTED
            )
            assert resp.compose_mode == want
            hits[mode] += sum(
                by_id[r.product_id].attributes.get("articleType") == ref.attributes["articleType"]
                and by_id[r.product_id].attributes.get("baseColour") == colour
                for r in resp.results
            )
    print("composed-query hits (of 30):", hits)
    # Of the 30 results (6 queries x top 5): most are the reference's type in the asked colour
    # with the model, and clearly more than with the weighted sum.
    assert hits["model"] >= 20, hits
    assert hits["model"] >= hits["weighted"] + 6, hits
