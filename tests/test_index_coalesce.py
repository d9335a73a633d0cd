"""Cross-request search coalescing: the plain logic, then a real server under concurrent load."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from index_service.client import AsyncIndexClient, IndexClient
from index_service.coalesce import SearchCoalescer
from index_service.server import IndexServer
from tests.support.servers import ServerThread, metric_value, scrape
from tests.test_index_service import COLOURS, _config, clustered, exact, load
from vitrine.filters import eq


def _slow_search(calls: list[int], delay: float = 0.02):
    async def search(rows: np.ndarray) -> list:
        calls.append(len(rows))
        await asyncio.sleep(delay)
        return [float(r[0]) for r in rows]  # one result per row, identifiable

    return search


def test_concurrent_requests_share_calls_and_get_their_own_rows():
    async def main():
        calls: list[int] = []
        batches: list[tuple[int, int]] = []
        co = SearchCoalescer(max_rows=8, on_batch=lambda req, rows: batches.append((req, rows)))
        search = _slow_search(calls)
        reqs = [np.full((1 + i % 2, 4), float(i), dtype=np.float32) for i in range(12)]
        out = await asyncio.gather(*(co.run("k", q, search) for q in reqs))
        for i, res in enumerate(out):
            assert res == [float(i)] * (1 + i % 2)  # each caller gets exactly its rows back
        # Requests queued while a call runs share the next one, at most 8 rows per call.
        assert len(calls) < len(reqs) and max(calls) <= 8
        assert sum(calls) == sum(len(q) for q in reqs)
        assert sum(r for r, _ in batches) == len(reqs)
        assert not co._groups  # idle groups are dropped
        calls.clear()
        assert await co.run("k", np.full((1, 4), 7.0, np.float32), search) == [7.0]
        assert calls == [1]  # alone: one call of its own row, no waiting for company

    asyncio.run(main())


def test_different_keys_never_share_a_call_and_oversized_requests_go_alone():
    async def main():
        calls: list[int] = []
        co = SearchCoalescer(max_rows=4)
        search = _slow_search(calls)
        a = [co.run(("a", i % 2), np.full((1, 2), i, np.float32), search) for i in range(6)]
        big = co.run(("a", 0), np.zeros((5, 2), np.float32), search)
        out = await asyncio.gather(*a, big)
        assert [o[0] for o in out[:6]] == [float(i) for i in range(6)]
        assert 5 in calls  # the 5-row request ran on its own
        assert sum(calls) == 11

    asyncio.run(main())


def test_a_failure_reaches_every_member_and_a_cancelled_caller_is_skipped():
    async def main():
        calls: list[int] = []
        co = SearchCoalescer(max_rows=16)

        async def failing(rows):
            calls.append(len(rows))
            await asyncio.sleep(0.01)
            raise RuntimeError("boom")

        results = await asyncio.gather(
            *(co.run("k", np.zeros((1, 2), np.float32), failing) for _ in range(4)),
            return_exceptions=True,
        )
        assert all(isinstance(r, RuntimeError) for r in results)

        search = _slow_search(calls := [], delay=0.05)
        first = asyncio.create_task(co.run("k", np.zeros((1, 2), np.float32), search))
        await asyncio.sleep(0)
        doomed = asyncio.create_task(co.run("k", np.ones((1, 2), np.float32), search))
        kept = asyncio.create_task(co.run("k", np.full((1, 2), 2.0, np.float32), search))
        await asyncio.sleep(0.01)
        doomed.cancel()
        assert await first == [0.0] and await kept == [2.0]
        assert calls == [1, 1]  # the cancelled request's row was never searched

    asyncio.run(main())


@pytest.mark.parametrize("flt", [None, eq("colour", COLOURS[1])])
def test_server_coalesces_concurrent_searches_with_identical_results(tmp_path, flt):
    with ServerThread(IndexServer(_config(tmp_path, exact_max=0))) as server:
        with IndexClient(server.target) as c:
            x = load(c, "p", 20_000, shards=2, batch=5000)
        q = clustered(64, seed=5)
        mask = None
        if flt is not None:
            mask = np.array([i % 5 == 1 for i in range(len(x))])
        d, i = exact(x, q, 10, mask)

        async def burst():
            ac = AsyncIndexClient(server.target)
            try:
                return await asyncio.gather(
                    *(ac.search("p", q[j : j + 1], k=10, filter=flt) for j in range(len(q)))
                )
            finally:
                await ac.close()

        out = asyncio.run(burst())
        for j, hits in enumerate(out):
            assert [h.id for h in hits[0]] == [f"sku-{t}" for t in i[j]]
            assert np.allclose([h.score for h in hits[0]], d[j], atol=1e-5)
        text = scrape(server.server.metrics_port)
        calls = metric_value(text, "vitrine_index_search_batch_requests_count")
        answered = metric_value(text, "vitrine_index_search_batch_requests_sum")
        assert answered == len(q)
        assert calls < len(q)  # 64 simultaneous requests did share faiss calls


def test_cpu_hnsw_answers_each_request_alone(tmp_path):
    with ServerThread(IndexServer(_config(tmp_path))) as server:
        with IndexClient(server.target) as c:
            load(c, "h", 2000, spec="HNSW32", batch=1000)
        q = clustered(16, seed=5)

        async def burst():
            ac = AsyncIndexClient(server.target)
            try:
                return await asyncio.gather(*(ac.search("h", q[j : j + 1]) for j in range(16)))
            finally:
                await ac.close()

        assert all(len(r[0]) == 10 for r in asyncio.run(burst()))
        text = scrape(server.server.metrics_port)
        assert metric_value(text, "vitrine_index_search_batch_requests_count") == 0
