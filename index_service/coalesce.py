"""Cross-request coalescing of searches: concurrent queries with the same parameters share one
faiss call.

One faiss call over ``n`` stacked queries costs far less than ``n`` calls: a flat scan streams the
vectors once per call instead of once per query (and with ``n`` ≥ faiss's BLAS threshold it
becomes a matrix product), and the per-call fixed costs (thread hop, lock, selector set-up, result
conversion) are paid once. The coalescer adds no waiting: a request whose group is idle starts
at once; requests that arrive while that group's search runs queue up and go together in the next
call, up to ``max_rows`` query rows (the same "natural batching" as the WAL's group commit). At
concurrency 1 nothing changes; under load the batch grows with the load.

Requests are grouped by a key that holds every parameter of the search (collection instance, k,
filter, search options, shards, attributes wanted), so a batch is exactly the searches its members
would have run one by one; results are split back per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

import numpy as np

SearchFn = Callable[[np.ndarray], Awaitable[list]]


@dataclass
class _Group:
    pending: list[tuple[np.ndarray, asyncio.Future]] = field(default_factory=list)
    running: bool = False


class SearchCoalescer:
    def __init__(self, max_rows: int = 64, on_batch: Callable[[int, int], None] | None = None):
        """``max_rows`` ≤ 1 disables coalescing; ``on_batch(requests, rows)`` observes batches."""
        self.max_rows = max_rows
        self.on_batch = on_batch
        self._groups: dict[Hashable, _Group] = {}
        self._tasks: set[asyncio.Task] = set()  # strong references while a group drains

    async def run(self, key: Hashable, queries: np.ndarray, search: SearchFn) -> list:
        """Results of ``search(queries)`` (one entry per row), possibly computed in a shared call.

        ``search`` must be the same function of the query rows for every request with ``key``.
        """
        if self.max_rows <= 1 or len(queries) >= self.max_rows:
            if self.on_batch:
                self.on_batch(1, len(queries))
            return await search(queries)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group()
        fut = asyncio.get_running_loop().create_future()
        group.pending.append((queries, fut))
        if not group.running:
            group.running = True
            task = asyncio.create_task(self._drain(key, group, search))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await fut

    def _take(self, group: _Group) -> list[tuple[np.ndarray, asyncio.Future]]:
        batch, rows = [], 0
        while group.pending:
            q, fut = group.pending[0]
            if batch and rows + len(q) > self.max_rows:
                break
            group.pending.pop(0)
            if not fut.done():  # a cancelled caller is dropped before its search
                batch.append((q, fut))
                rows += len(q)
        return batch

    async def _drain(self, key: Hashable, group: _Group, search: SearchFn) -> None:
        try:
            while group.pending:
                batch = self._take(group)
                if not batch:
                    continue
                stacked = batch[0][0] if len(batch) == 1 else np.concatenate([q for q, _ in batch])
                if self.on_batch:
                    self.on_batch(len(batch), len(stacked))
                try:
                    results = await search(stacked)
                except Exception as exc:  # every member would have failed the same way
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                off = 0
                for q, fut in batch:
                    if not fut.done():
                        fut.set_result(results[off : off + len(q)])
                    off += len(q)
        except asyncio.CancelledError:  # loop shutting down: nobody is left to answer
            for _, fut in group.pending:
                fut.cancel()
            group.pending.clear()
            raise
        finally:
            group.running = False
            if not group.pending and self._groups.get(key) is group:
                del self._groups[key]
