"""Thin gRPC servicer over :class:`index_service.core.IndexStore`."""

from __future__ import annotations

import time

from index_service.attributes import DEFAULT_FACET_VALUES, attrs_to_pb
from index_service.collection import CollectionMeta
from index_service.core import IndexStore
from index_service.metrics import IndexMetrics
from index_service.shard import IP, L2, SearchOptions
from vitrine.serving.errors import InvalidArgument, Unavailable, VitrineError
from vitrine.serving.grpc_app import rpc
from vitrine.serving.metrics import RpcMetrics
from vitrine.tensors import from_tensor
from vitrine.v1 import index_pb2, index_pb2_grpc, replication_pb2_grpc

MAX_FACET_VALUES = 10_000
_METRICS = {index_pb2.METRIC_INNER_PRODUCT: IP, index_pb2.METRIC_L2: L2}


class IndexServicer(index_pb2_grpc.IndexServiceServicer):
    def __init__(self, store: IndexStore, metrics: RpcMetrics, index_metrics: IndexMetrics):
        self.store = store
        self.metrics = metrics
        self.index_metrics = index_metrics

    def _writable(self, c=None) -> None:
        """Writes go to the replica group's primary (UNAVAILABLE elsewhere: clients re-route)."""
        if self.store.replication is not None:
            self.store.replication.check_writable(c)

    def _readable(self, name: str):
        """The collection, if this process serves reads of it (a follower: once in sync)."""
        c = self.store.get(name)
        if not c.in_sync:
            raise Unavailable(f"collection {name}: this replica is catching up with the primary")
        return c

    @rpc
    async def CreateCollection(self, request, context):
        if request.metric not in _METRICS:
            raise InvalidArgument("metric: must be METRIC_INNER_PRODUCT or METRIC_L2")
        self._writable()
        meta = CollectionMeta(
            name=request.name,
            dim=request.dim,
            metric=_METRICS[request.metric],
            index_spec=request.index_spec or "Flat",
            num_shards=request.num_shards or 1,
            local_shards=sorted(set(request.local_shards)),
            payload_bytes=request.payload_bytes,
            replication_factor=request.replication_factor or self.store.config.replicas,
        )
        c = await self.store.create(meta)
        self.index_metrics.refresh(c)
        return index_pb2.CreateCollectionResponse(collection=c.info())

    @rpc
    async def ListCollections(self, request, context):
        return index_pb2.ListCollectionsResponse(
            collections=[self.store.collections[n].info() for n in sorted(self.store.collections)]
        )

    @rpc
    async def DescribeCollection(self, request, context):
        return index_pb2.DescribeCollectionResponse(collection=self.store.get(request.name).info())

    @rpc
    async def DropCollection(self, request, context):
        self._writable()
        dropped = await self.store.drop(request.name)
        if dropped:
            self.index_metrics.forget(request.name)
        return index_pb2.DropCollectionResponse(dropped=dropped)

    @rpc
    async def Upsert(self, request, context):
        c = self.store.get(request.collection)
        self._writable(c)
        if len(request.records) > self.store.config.max_records_per_request:
            raise InvalidArgument(
                f"records: {len(request.records)} > {self.store.config.max_records_per_request}"
            )
        n = await c.upsert(request.records)
        self.index_metrics.upserted.labels(c.meta.name).inc(n)
        self.index_metrics.refresh(c)
        return index_pb2.UpsertResponse(upserted=n)

    @rpc
    async def Delete(self, request, context):
        c = self.store.get(request.collection)
        self._writable(c)
        n = await c.delete(list(request.ids))
        self.index_metrics.deleted.labels(c.meta.name).inc(n)
        self.index_metrics.refresh(c)
        return index_pb2.DeleteResponse(deleted=n)

    @rpc
    async def Get(self, request, context):
        c = self._readable(request.collection)
        found = c.get(list(request.ids))
        present = [rid for rid in request.ids if rid in found] if request.include_payloads else []
        payloads = dict(zip(present, c.get_payloads(present), strict=True))
        kept = [rid for rid in request.ids if rid in found]
        texts = dict(zip(kept, c.texts.get_many(kept), strict=True))
        records, missing = [], []
        for rid in request.ids:
            if rid in found:
                vec, attrs = found[rid]
                records.append(
                    index_pb2.Record(
                        id=rid,
                        vector=vec.astype("<f4").tobytes() if request.include_vectors else b"",
                        attributes=attrs_to_pb(attrs),
                        payload=payloads.get(rid, b""),
                        text=texts[rid].decode("utf-8"),
                    )
                )
            else:
                missing.append(rid)
        return index_pb2.GetResponse(records=records, missing_ids=missing)

    @rpc
    async def Count(self, request, context):
        return index_pb2.CountResponse(count=self._readable(request.collection).count())

    @rpc
    async def GetStats(self, request, context):
        c = self.store.get(request.collection)
        shards = [
            index_pb2.ShardStats(
                shard=s,
                num_vectors=sh.count(),
                memory_bytes=sh.memory_bytes(),
                tombstones=sh.state.tombstones,
                rebuilds=sh.compactions,
                trained=sh.trained,
            )
            for s, sh in sorted(c.shards.items())
        ]
        self.index_metrics.refresh(c)
        payload_stats = c.payloads.stats()
        return index_pb2.GetStatsResponse(
            collection=c.meta.name,
            shards=shards,
            total_vectors=sum(s.num_vectors for s in shards),
            total_memory_bytes=sum(s.memory_bytes for s in shards),
            recovery_seconds=c.recovery_seconds,
            replayed_entries=c.replayed,
            snapshot_seq=c.snapshot_seq,
            payloads=payload_stats["entries"],
            payload_disk_bytes=payload_stats["disk_bytes"],
            lexical_documents=c.lexical_count(),
        )

    @rpc
    async def Search(self, request, context):
        t0 = time.perf_counter()
        c = self._readable(request.collection)
        flt = request.filter if request.HasField("filter") else None
        if request.text_queries:
            if request.HasField("queries") and request.queries.data:
                raise InvalidArgument("queries, text_queries: set one of them, not both")
            results, searched = await self.store.search_lexical(
                c.meta.name,
                list(request.text_queries),
                request.k,
                flt,
                list(request.shards),
                request.include_attributes,
                request.include_payloads,
            )
            mode = "lexical"
        else:
            try:
                queries = from_tensor(request.queries, "queries")
            except ValueError as exc:
                raise InvalidArgument(str(exc)) from exc
            if queries.ndim == 1:
                queries = queries.reshape(1, -1)
            if queries.ndim != 2:
                raise InvalidArgument(f"queries: shape {list(queries.shape)}, expected [n, dim]")
            if request.params.ef_search < 0 or request.params.nprobe < 0:
                raise InvalidArgument("params: ef_search and nprobe must be >= 0")
            opts = SearchOptions(
                ef_search=request.params.ef_search,
                nprobe=request.params.nprobe,
                exact_max=self.store.config.exact_max,
            )
            results, searched = await self.store.search(
                c.meta.name,
                queries,
                request.k,
                flt,
                opts,
                list(request.shards),
                request.include_attributes,
                request.include_payloads,
            )
            mode = "vector"
        resp = index_pb2.IndexServiceSearchResponse(shards_searched=searched)
        for hits in results:
            out = resp.results.add().hits
            for h in hits:
                hit = out.add()
                if h.attributes_pb:  # the record's attribute map, serialized once per record
                    hit.MergeFromString(h.attributes_pb)
                hit.id = h.id
                hit.score = h.score
                if h.payload:
                    hit.payload = h.payload
        self.index_metrics.search_time.labels(c.meta.name, mode).observe(time.perf_counter() - t0)
        self.index_metrics.queries.labels(c.meta.name, mode).inc(len(results))
        return resp

    @rpc
    async def Facets(self, request, context):
        c = self._readable(request.collection)
        if not 0 <= request.limit <= MAX_FACET_VALUES:
            raise InvalidArgument(f"limit: {request.limit} must be in 0..{MAX_FACET_VALUES}")
        flt = request.filter if request.HasField("filter") else None
        counted = await self.store.facets(c.meta.name, list(request.fields), flt)
        return index_pb2.IndexServiceFacetsResponse(
            facets=counted.to_pb(request.limit or DEFAULT_FACET_VALUES),
            matched=counted.matched,
        )


class ReplicationServicer(replication_pb2_grpc.ReplicationServiceServicer):
    """Thin gRPC layer over :class:`index_service.replication.Replication`."""

    def __init__(self, replication, metrics: RpcMetrics):
        self.replication = replication
        self.metrics = metrics

    @rpc
    async def GetReplicaStatus(self, request, context):
        return self.replication.status()

    @rpc
    async def Fetch(self, request, context):
        return await self.replication.fetch(request)

    async def Dump(self, request, context):
        try:
            async for part in self.replication.dump(request):
                yield part
        except VitrineError as exc:
            await context.abort(exc.code, exc.message)
