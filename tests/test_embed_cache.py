"""The gateway's query-embedding cache: plain logic, then through real servers."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from encoder_service.config import EncoderConfig
from encoder_service.server import EncoderServer
from gateway.client import SearchClient, product
from gateway.config import GatewayConfig
from gateway.embed_cache import EmbeddingCache, normalise
from gateway.server import GatewayServer
from index_service.config import IndexConfig
from index_service.server import IndexServer
from tests.support.servers import ServerThread
from tests.support.tiny_models import publish_image, publish_text
from vitrine.serving import errors


class Encoder:
    """Counts calls; returns a vector per text and the current model version."""

    def __init__(self):
        self.calls = 0
        self.version = 1
        self.fail = False
        self.delay = 0.0

    def embed(self, text: str):
        async def call():
            self.calls += 1
            await asyncio.sleep(self.delay)
            if self.fail:
                raise errors.Unavailable("encoder down")
            v = np.full(4, float(len(normalise(text)) + 10 * self.version), dtype=np.float32)
            return v, self.version

        return call


def test_normalised_texts_share_an_entry_and_versions_invalidate():
    async def run():
        enc, cache = Encoder(), EmbeddingCache(100, 60)
        a = await cache.get("m", "Navy  Blue Shirt", enc.embed("Navy  Blue Shirt"))
        b = await cache.get("m", " navy blue shirt", enc.embed(" navy blue shirt"))
        assert enc.calls == 1 and np.array_equal(a, b)
        assert not a.flags.writeable  # shared: read-only
        enc.version = 2  # a new model version: the next miss reveals it ...
        await cache.get("m", "red shoes", enc.embed("red shoes"))
        c = await cache.get("m", "navy blue shirt", enc.embed("navy blue shirt"))
        assert enc.calls == 3  # ... and the old entry is no longer used
        assert c[0] == len("navy blue shirt") + 20
        assert await cache.get("other", "navy blue shirt", enc.embed("x")) is not None
        assert enc.calls == 4  # keyed by model too

    asyncio.run(run())


def test_entries_expire_and_size_is_bounded():
    async def run():
        enc, cache = Encoder(), EmbeddingCache(2, 0.05)
        for t in ("a", "b", "c"):
            await cache.get("m", t, enc.embed(t))
        assert len(cache) == 2
        await cache.get("m", "c", enc.embed("c"))
        assert enc.calls == 3
        await asyncio.sleep(0.08)
        await cache.get("m", "c", enc.embed("c"))
        assert enc.calls == 4

    asyncio.run(run())


def test_concurrent_misses_share_one_call_and_failures_are_not_cached():
    async def run():
        enc, cache = Encoder(), EmbeddingCache(100, 60)
        enc.delay = 0.02
        out = await asyncio.gather(*(cache.get("m", "red", enc.embed("red")) for _ in range(5)))
        assert enc.calls == 1 and all(np.array_equal(o, out[0]) for o in out)
        enc.fail = True
        with pytest.raises(errors.Unavailable):
            await cache.get("m", "blue", enc.embed("blue"))
        enc.fail = False
        assert (await cache.get("m", "blue", enc.embed("blue")))[0] == 14
        lookups = []
        off = EmbeddingCache(0, 60, lookups.append)
        await off.get("m", "red", enc.embed("red"))
        await off.get("m", "red", enc.embed("red"))
        assert lookups == [] and len(off) == 0  # size 0: off

    asyncio.run(run())


def test_cached_searches_answer_like_uncached_ones(tmp_path, demo_catalog):
    repo = tmp_path / "models"
    publish_text(repo, "tiny-text", dim=16)
    publish_image(repo, "tiny-image", dim=16)
    enc = ServerThread(
        EncoderServer(
            EncoderConfig(models_dir=str(repo), port=0, metrics_port=-1, log_format="text")
        )
    )
    index = ServerThread(
        IndexServer(
            IndexConfig(
                data_dir=str(tmp_path / "index"), port=0, metrics_port=-1, log_format="text"
            )
        )
    )
    with enc, index:

        def gateway(cache_size):
            cfg = GatewayConfig(
                port=0,
                metrics_port=-1,
                encoder=enc.target,
                index_endpoints=[index.target],
                text_model="tiny-text",
                image_model="tiny-image",
                index_spec="Flat",
                num_shards=2,
                log_format="text",
                embed_cache_size=cache_size,
            )
            return ServerThread(GatewayServer(cfg))

        with gateway(100) as cached, gateway(0) as plain:
            products = demo_catalog.products[:40]
            with SearchClient(cached.target) as c, SearchClient(plain.target) as p:
                c.ingest(
                    [
                        [
                            product(x.id, x.title, dict(x.attributes), x.image_path.read_bytes())
                            for x in products
                        ]
                    ]
                )
                queries = ["Men Navy Blue Shirts", "men navy  blue shirts", "red shoes"]
                for q in queries * 2:
                    got, want = c.search(text=q, k=5), p.search(text=q, k=5)
                    assert [(r.product_id, r.score) for r in got.results] == [
                        (r.product_id, r.score) for r in want.results
                    ]
            counts = {
                s.labels["result"]: s.value
                for m in cached.server.gw_metrics.embed_cache.collect()
                for s in m.samples
                if s.name.endswith("_total")
            }
            assert counts == {"miss": 2.0, "hit": 4.0}
