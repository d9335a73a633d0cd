"""The index service as plain Python: collections, writes, parallel shard search and merge."""

from __future__ import annotations

import asyncio
import heapq
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index_service import devices
from index_service.attributes import FacetCounts, check_facet_fields
from index_service.coalesce import SearchCoalescer
from index_service.collection import META, Collection, CollectionMeta
from index_service.config import IndexConfig
from index_service.shard import IP, SearchOptions
from vitrine.serving.errors import AlreadyExists, InvalidArgument, NotFound

log = logging.getLogger("vitrine.index")


@dataclass
class Hit:
    id: str
    score: float
    attributes: dict | None = None
    payload: bytes = b""
    attributes_pb: bytes = b""  # the attributes serialized as a Hit (see shard._State.attr_bytes)


def merge_topk(per_shard: list[list[tuple[float, str, object]]], k: int, higher_better: bool):
    """Merge per-shard best-first hit lists into one top-k (ties broken by id for stability)."""
    if higher_better:
        return heapq.nsmallest(k, (h for hs in per_shard for h in hs), key=lambda h: (-h[0], h[1]))
    return heapq.nsmallest(k, (h for hs in per_shard for h in hs), key=lambda h: (h[0], h[1]))


class IndexStore:
    def __init__(self, config: IndexConfig):
        self.config = config
        self.root = Path(config.data_dir)
        self.collections: dict[str, Collection] = {}
        self._search_pool = ThreadPoolExecutor(config.threads, thread_name_prefix="search")
        self._background = ThreadPoolExecutor(1, thread_name_prefix="rebuild")
        self._lock = asyncio.Lock()
        self.coalescer = SearchCoalescer(config.search_batch_rows)
        self._gpus = devices.resolve(config.index_device)
        self.replication = None  # index_service.replication.Replication, set by the server

    def _kw(self) -> dict:
        return {
            "fsync": self.config.fsync,
            "snapshot_wal_bytes": self.config.snapshot_wal_mb * 1024 * 1024,
            "compact_ratio": self.config.compact_ratio,
            "gpus": self._gpus,
            "max_payload_bytes": self.config.max_payload_bytes,
            "replication_log_bytes": self.config.replication_log_mb << 20,
        }

    async def start(self) -> None:
        """Recover every collection on disk (snapshot + WAL replay)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for d in sorted(self.root.iterdir()):
            if d.name.startswith("."):
                if d.name.endswith((".creating", ".dropping")):
                    shutil.rmtree(d, ignore_errors=True)
                continue
            if (d / META).is_file():
                c = await asyncio.to_thread(Collection.open, d, self._background, **self._kw())
                self.collections[c.meta.name] = c

    async def close(self) -> None:
        for c in list(self.collections.values()):
            await c.close(snapshot=True)
        self._background.shutdown(wait=True)
        self._search_pool.shutdown(wait=True)

    def get(self, name: str) -> Collection:
        if not name:
            raise InvalidArgument("collection: required")
        c = self.collections.get(name)
        if c is None:
            raise NotFound(f"collection {name!r} does not exist")
        return c

    async def create(self, meta: CollectionMeta) -> Collection:
        async with self._lock:
            meta.validate()
            if meta.name in self.collections:
                raise AlreadyExists(f"collection {meta.name!r} already exists")
            c = await asyncio.to_thread(
                Collection.create, meta, self.root / meta.name, self._background, **self._kw()
            )
            if self.replication is not None:
                self.replication.attach(c)
            self.collections[meta.name] = c
            log.info("collection created", extra={"collection": meta.name, "spec": meta.index_spec})
            return c

    async def drop(self, name: str) -> bool:
        async with self._lock:
            return await self._drop(name)

    async def _drop(self, name: str) -> bool:
        c = self.collections.pop(name, None)
        if c is None:
            return False
        c.dropped = True
        await c.close(snapshot=False)
        tomb = self.root / f".{name}.dropping"
        c.dir.rename(tomb)
        await asyncio.to_thread(shutil.rmtree, tomb, True)
        return True

    async def replace(self, meta: CollectionMeta, parts, seq: int, epochs) -> Collection:
        """Swap a collection for a primary's copy as of ``seq`` (a follower's resync)."""
        async with self._lock:
            await self._drop(meta.name)
            meta.validate()
            c = await asyncio.to_thread(
                Collection.create, meta, self.root / meta.name, self._background, **self._kw()
            )
            await asyncio.to_thread(c.load_dump, parts, seq, epochs)
            if self.replication is not None:
                self.replication.attach(c)
            self.collections[meta.name] = c
            return c

    def _target(
        self, name: str, k: int, n: int, field: str, shards: list[int] | None
    ) -> tuple[Collection, list[int]]:
        """The collection and the shards a search of ``n`` queries for ``k`` hits runs on."""
        c = self.get(name)
        if not 1 <= k <= self.config.max_k:
            raise InvalidArgument(f"k: {k} must be in 1..{self.config.max_k}")
        if n > self.config.max_queries:
            raise InvalidArgument(f"{field}: more than {self.config.max_queries} rows")
        targets = shards or c.meta.local_shards
        missing = [s for s in targets if s not in c.shards]
        if missing:
            raise InvalidArgument(f"shards: {missing} not held by this process")
        return c, targets

    async def facets(self, name: str, fields: list[str], flt=None) -> FacetCounts:
        """Attribute value counts over the local shards' records ``flt`` selects."""
        c = self.get(name)
        check_facet_fields(fields)
        loop = asyncio.get_running_loop()
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(self._search_pool, c.facets_shard, s, fields, flt)
                for s in c.meta.local_shards
            )
        )
        total = FacetCounts()
        for part in parts:
            total.add(part)
        return total

    async def search(
        self,
        name: str,
        queries: np.ndarray,
        k: int,
        flt=None,
        opts: SearchOptions | None = None,
        shards: list[int] | None = None,
        include_attributes: bool = False,
        include_payloads: bool = False,
    ) -> tuple[list[list[Hit]], list[int]]:
        c, targets = self._target(name, k, len(queries), "queries", shards)
        c.check_queries(queries)
        opts = opts or SearchOptions(exact_max=self.config.exact_max)
        queries = np.ascontiguousarray(queries, dtype=np.float32)

        async def run(rows: np.ndarray) -> list[list[Hit]]:
            return await self._search_now(
                c, rows, k, flt, opts, targets, include_attributes, include_payloads
            )

        if not any(c.shards[s].batches_well for s in targets):
            return await run(queries), list(targets)
        key = (  # every parameter of the search: a shared call is exactly the separate ones
            id(c),
            k,
            flt.SerializeToString(deterministic=True) if flt is not None else b"",
            (opts.ef_search, opts.nprobe, opts.exact_max),
            tuple(targets),
            include_attributes,
            include_payloads,
        )
        return await self.coalescer.run(key, queries, run), list(targets)

    async def _search_now(
        self,
        c: Collection,
        queries: np.ndarray,
        k: int,
        flt,
        opts: SearchOptions,
        targets: list[int],
        include_attributes: bool,
        include_payloads: bool = False,
    ) -> list[list[Hit]]:
        """Search ``targets`` shards of ``c`` in parallel (thread pool) and merge per query."""
        loop = asyncio.get_running_loop()
        if len(targets) == 1:
            parts = [
                await loop.run_in_executor(
                    self._search_pool, c.search_shard, targets[0], queries, k, flt, opts
                )
            ]
        else:
            parts = await asyncio.gather(
                *(
                    loop.run_in_executor(
                        self._search_pool, c.search_shard, s, queries, k, flt, opts
                    )
                    for s in targets
                )
            )
        per_query = [
            [
                [
                    (sc, rid, (st, label))
                    for sc, rid, label in zip(scores[q], ids[q], labels[q], strict=True)
                ]
                for scores, ids, labels, st in parts
            ]
            for q in range(len(queries))
        ]
        return await self._merge(
            c, per_query, k, c.meta.metric == IP, include_attributes, include_payloads
        )

    async def _merge(
        self, c: Collection, per_query, k: int, higher: bool, include_attributes, include_payloads
    ) -> list[list[Hit]]:
        """Per query, merge the shards' ``(score, id, (state, label))`` lists into the top-k."""
        results = [
            [
                Hit(
                    rid,
                    float(sc),
                    st.attrs[label] if include_attributes else None,
                    attributes_pb=st.attr_bytes(label) if include_attributes else b"",
                )
                for sc, rid, (st, label) in merge_topk(per_shard, k, higher)
            ]
            for per_shard in per_query
        ]
        if include_payloads:  # only the merged top-k: read from the disk store, off the loop
            ids = [h.id for hits in results for h in hits]
            loop = asyncio.get_running_loop()
            blobs = iter(await loop.run_in_executor(self._search_pool, c.get_payloads, ids))
            for hits in results:
                for h in hits:
                    h.payload = next(blobs)
        return results

    async def search_lexical(
        self,
        name: str,
        texts: list[str],
        k: int,
        flt=None,
        shards: list[int] | None = None,
        include_attributes: bool = False,
        include_payloads: bool = False,
    ) -> tuple[list[list[Hit]], list[int]]:
        """BM25 search of the shards' lexical indexes (see :mod:`index_service.lexical`)."""
        c, targets = self._target(name, k, len(texts), "text_queries", shards)
        for i, t in enumerate(texts):
            if not t.strip():
                raise InvalidArgument(f"text_queries[{i}]: empty")
            if len(t) > 1024:
                raise InvalidArgument(f"text_queries[{i}]: longer than 1024 characters")
        loop = asyncio.get_running_loop()
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(self._search_pool, c.search_lexical_shard, s, texts, k, flt)
                for s in targets
            )
        )
        per_query = [
            [[(sc, rid, (st, label)) for sc, rid, label in hits[q]] for hits, st in parts]
            for q in range(len(texts))
        ]
        return await self._merge(c, per_query, k, True, include_attributes, include_payloads), list(
            targets
        )
