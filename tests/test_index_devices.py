"""Shard placement: CPU everywhere by default here; GPU shards give the CPU's results."""

from __future__ import annotations

import numpy as np
import pytest

from index_service import devices
from index_service.client import IndexClient
from index_service.server import IndexServer
from tests.support.servers import ServerThread
from tests.test_index_service import _config, clustered, exact, load
from vitrine.filters import eq
from vitrine.serving.config import ConfigError


def test_placement_is_validated_at_start(tmp_path):
    with pytest.raises(ConfigError, match="index_device"):
        _config(tmp_path, index_device="tpu").validate()
    if devices.gpu_count() == 0:
        with pytest.raises(ConfigError, match="sees no GPU"):
            _config(tmp_path, index_device="gpu").validate()
        assert devices.resolve("auto") == 0  # falls back to the CPU
    assert devices.resolve("cpu") == 0
    _config(tmp_path, index_device="cpu").validate()


@pytest.mark.gpu
@pytest.mark.skipif(devices.gpu_count() == 0, reason="needs faiss with a GPU (faiss-gpu)")
@pytest.mark.parametrize("spec", ["Flat", "IVF16,Flat"])
def test_gpu_shards_answer_like_the_cpu(tmp_path, spec):
    cfg = _config(tmp_path, index_device="gpu", exact_max=0, snapshot_wal_mb=1)
    with ServerThread(IndexServer(cfg)) as s, IndexClient(s.target) as c:
        x = load(c, "p", 6000, spec=spec, shards=2, batch=1000)
        shard = s.server.store.get("p").shards[0]
        shard.wait_idle()
        assert devices.is_gpu(shard.state.index)
        q = clustered(20, seed=3)
        d, i = exact(x, q, 10)
        hits = c.search("p", q, k=10, nprobe=16)
        for r in range(len(q)):
            assert [h.id for h in hits[r]] == [f"sku-{j}" for j in i[r]]
            assert np.allclose([h.score for h in hits[r]], d[r], atol=1e-4)
        mask = np.array([j % 5 == 1 for j in range(len(x))])
        _, fi = exact(x, q, 10, mask)
        hits = c.search("p", q, k=10, filter=eq("colour", "blue"), nprobe=16)
        assert [h.id for h in hits[0]] == [f"sku-{j}" for j in fi[0]]
    with ServerThread(IndexServer(cfg)) as s, IndexClient(s.target) as c:  # snapshot round trip
        assert c.count("p") == 6000
        assert [h.id for h in c.search("p", q[:1], k=10, nprobe=16)[0]] == [
            f"sku-{j}" for j in i[0]
        ]
