"""Python clients for the index service (blocking and asyncio), plus a shard fan-out client.

    with IndexClient("127.0.0.1:50052") as ix:
        ix.create_collection("products", dim=256, index_spec="HNSW32", num_shards=4)
        ix.upsert("products", ["sku-1"], vectors, [{"gender": "Men", "price": 19.9}])
        hits = ix.search("products", query, k=10, filter=eq("gender", "Men"))[0]

:class:`index_service.fanout.IndexFanout` builds on these for a collection spread over several
processes (shards, replicas).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from index_service.attributes import PbAttributes, Value, attrs_to_pb
from vitrine.serving.client import AsyncClientBase, SyncClientBase
from vitrine.tensors import to_tensor
from vitrine.v1 import common_pb2, index_pb2, index_pb2_grpc

METRICS = {"ip": index_pb2.METRIC_INNER_PRODUCT, "l2": index_pb2.METRIC_L2}


@dataclass
class SearchHit:
    id: str
    score: float
    attributes: Mapping[str, Value] = field(default_factory=dict)  # PbAttributes from a search
    payload: bytes = b""


def _records(ids, vectors, attributes, payloads=None, texts=None) -> list[index_pb2.Record]:
    vectors = np.ascontiguousarray(vectors, dtype="<f4")
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise ValueError("vectors must be [len(ids), dim]")
    attributes = attributes or [{}] * len(ids)
    payloads = payloads or [b""] * len(ids)
    texts = texts or [""] * len(ids)
    return [
        index_pb2.Record(id=i, vector=v.tobytes(), attributes=attrs_to_pb(a), payload=p, text=t)
        for i, v, a, p, t in zip(ids, vectors, attributes, payloads, texts, strict=True)
    ]


def _search_request(
    collection,
    queries,
    k,
    filter,
    ef_search,
    nprobe,
    include_attributes,
    shards,
    include_payloads=False,
    text_queries=(),
):
    """A vector search request, or (``text_queries`` given, ``queries`` None) a lexical one."""
    return index_pb2.IndexServiceSearchRequest(
        collection=collection,
        queries=None
        if queries is None
        else to_tensor(np.atleast_2d(np.asarray(queries, dtype=np.float32))),
        text_queries=list(text_queries),
        k=k,
        filter=filter,
        params=index_pb2.SearchParams(ef_search=ef_search, nprobe=nprobe),
        include_attributes=include_attributes,
        shards=list(shards or ()),
        include_payloads=include_payloads,
    )


def _hits(resp: index_pb2.IndexServiceSearchResponse) -> list[list[SearchHit]]:
    return [
        [SearchHit(h.id, h.score, PbAttributes(h.attributes), h.payload) for h in r.hits]
        for r in resp.results
    ]


def _facets_request(collection, fields, limit, filter) -> index_pb2.IndexServiceFacetsRequest:
    req = index_pb2.IndexServiceFacetsRequest(
        collection=collection, fields=list(fields), limit=limit
    )
    if filter is not None:
        req.filter.CopyFrom(filter)
    return req


def _create_request(
    name, dim, metric, index_spec, num_shards, local_shards, payload_bytes=0, replication_factor=0
):
    return index_pb2.CreateCollectionRequest(
        replication_factor=replication_factor,
        name=name,
        dim=dim,
        metric=METRICS[metric],
        index_spec=index_spec,
        num_shards=num_shards,
        local_shards=list(local_shards or ()),
        payload_bytes=payload_bytes,
    )


class IndexClient(SyncClientBase):
    stub_class = index_pb2_grpc.IndexServiceStub

    def create_collection(
        self,
        name: str,
        dim: int,
        metric: str = "ip",
        index_spec: str = "Flat",
        num_shards: int = 1,
        local_shards: Sequence[int] = (),
        payload_bytes: int = 0,
        replication_factor: int = 0,
    ) -> index_pb2.CollectionInfo:
        req = _create_request(
            name,
            dim,
            metric,
            index_spec,
            num_shards,
            local_shards,
            payload_bytes,
            replication_factor,
        )
        return self._call("CreateCollection", req).collection

    def list_collections(self) -> list[index_pb2.CollectionInfo]:
        return list(self._call("ListCollections", index_pb2.ListCollectionsRequest()).collections)

    def describe(self, name: str) -> index_pb2.CollectionInfo:
        return self._call(
            "DescribeCollection", index_pb2.DescribeCollectionRequest(name=name)
        ).collection

    def drop(self, name: str) -> bool:
        return self._call("DropCollection", index_pb2.DropCollectionRequest(name=name)).dropped

    def upsert(
        self,
        collection: str,
        ids,
        vectors,
        attributes=None,
        timeout=None,
        payloads=None,
        texts=None,
    ) -> int:
        req = index_pb2.UpsertRequest(
            collection=collection, records=_records(ids, vectors, attributes, payloads, texts)
        )
        return self._call("Upsert", req, timeout).upserted

    def upsert_records(self, collection: str, records, timeout=None) -> int:
        req = index_pb2.UpsertRequest(collection=collection, records=records)
        return self._call("Upsert", req, timeout).upserted

    def delete(self, collection: str, ids: Sequence[str]) -> int:
        return self._call(
            "Delete", index_pb2.DeleteRequest(collection=collection, ids=list(ids))
        ).deleted

    def get(
        self,
        collection: str,
        ids: Sequence[str],
        include_vectors: bool = False,
        include_payloads: bool = False,
    ):
        req = index_pb2.GetRequest(
            collection=collection,
            ids=list(ids),
            include_vectors=include_vectors,
            include_payloads=include_payloads,
        )
        return self._call("Get", req)

    def count(self, collection: str) -> int:
        return self._call("Count", index_pb2.CountRequest(collection=collection)).count

    def stats(self, collection: str) -> index_pb2.GetStatsResponse:
        return self._call("GetStats", index_pb2.GetStatsRequest(collection=collection))

    def search(
        self,
        collection: str,
        queries,
        k: int = 10,
        filter: common_pb2.Filter | None = None,
        ef_search: int = 0,
        nprobe: int = 0,
        include_attributes: bool = False,
        shards: Sequence[int] = (),
        timeout=None,
        include_payloads: bool = False,
    ) -> list[list[SearchHit]]:
        req = _search_request(
            collection,
            queries,
            k,
            filter,
            ef_search,
            nprobe,
            include_attributes,
            shards,
            include_payloads,
        )
        return _hits(self._call("Search", req, timeout))

    def facets(
        self,
        collection: str,
        fields: Sequence[str] = (),
        limit: int = 0,
        filter: common_pb2.Filter | None = None,
        timeout=None,
    ) -> index_pb2.IndexServiceFacetsResponse:
        """Attribute value counts (most frequent ``limit`` per field) of the local shards."""
        return self._call("Facets", _facets_request(collection, fields, limit, filter), timeout)

    def search_text(
        self,
        collection: str,
        texts: Sequence[str],
        k: int = 10,
        filter: common_pb2.Filter | None = None,
        include_attributes: bool = False,
        shards: Sequence[int] = (),
        timeout=None,
        include_payloads: bool = False,
    ) -> list[list[SearchHit]]:
        """Lexical (BM25) search: one hit list per text, scores higher-is-better."""
        req = _search_request(
            collection, None, k, filter, 0, 0, include_attributes, shards, include_payloads, texts
        )
        return _hits(self._call("Search", req, timeout))


class AsyncIndexClient(AsyncClientBase):
    stub_class = index_pb2_grpc.IndexServiceStub

    async def create_collection(
        self,
        name: str,
        dim: int,
        metric: str = "ip",
        index_spec: str = "Flat",
        num_shards: int = 1,
        local_shards: Sequence[int] = (),
        payload_bytes: int = 0,
        replication_factor: int = 0,
    ) -> index_pb2.CollectionInfo:
        req = _create_request(
            name,
            dim,
            metric,
            index_spec,
            num_shards,
            local_shards,
            payload_bytes,
            replication_factor,
        )
        return (await self._call("CreateCollection", req)).collection

    async def describe(self, name: str) -> index_pb2.CollectionInfo:
        req = index_pb2.DescribeCollectionRequest(name=name)
        return (await self._call("DescribeCollection", req)).collection

    async def upsert_records(self, collection: str, records, timeout=None) -> int:
        req = index_pb2.UpsertRequest(collection=collection, records=records)
        return (await self._call("Upsert", req, timeout)).upserted

    async def upsert(
        self, collection: str, ids, vectors, attributes=None, timeout=None, payloads=None
    ) -> int:
        records = _records(ids, vectors, attributes, payloads)
        return await self.upsert_records(collection, records, timeout)

    async def delete(self, collection: str, ids: Sequence[str]) -> int:
        req = index_pb2.DeleteRequest(collection=collection, ids=list(ids))
        return (await self._call("Delete", req)).deleted

    async def count(self, collection: str) -> int:
        return (await self._call("Count", index_pb2.CountRequest(collection=collection))).count

    async def get(self, collection: str, ids: Sequence[str], include_vectors: bool = False):
        req = index_pb2.GetRequest(
            collection=collection, ids=list(ids), include_vectors=include_vectors
        )
        return await self._call("Get", req)

    async def search_raw(self, req: index_pb2.IndexServiceSearchRequest, timeout=None):
        return await self._call("Search", req, timeout)

    async def facets(
        self,
        collection: str,
        fields: Sequence[str] = (),
        limit: int = 0,
        filter: common_pb2.Filter | None = None,
        timeout=None,
    ) -> index_pb2.IndexServiceFacetsResponse:
        return await self._call(
            "Facets", _facets_request(collection, fields, limit, filter), timeout
        )

    async def search(
        self,
        collection: str,
        queries,
        k: int = 10,
        filter: common_pb2.Filter | None = None,
        ef_search: int = 0,
        nprobe: int = 0,
        include_attributes: bool = False,
        shards: Sequence[int] = (),
        timeout=None,
        include_payloads: bool = False,
    ) -> list[list[SearchHit]]:
        req = _search_request(
            collection,
            queries,
            k,
            filter,
            ef_search,
            nprobe,
            include_attributes,
            shards,
            include_payloads,
        )
        return _hits(await self.search_raw(req, timeout))
