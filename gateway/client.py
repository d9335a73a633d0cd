"""Python clients for the gateway's public search API (blocking and asyncio).

with SearchClient("127.0.0.1:50050", api_key=key) as shop:
    page = shop.search(text="navy blue men shirt", k=10, filter=eq("gender", "Men"))
    for r in page.results: print(r.product_id, r.caption, r.score)

``api_key`` (a gateway API key, see docs/gateway.md "API keys") goes with every call as
``authorization: Bearer <key>``, the ``ingest`` stream included; without one, a gateway with
keys answers UNAUTHENTICATED.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from index_service.attributes import attrs_to_pb
from vitrine.serving.client import AsyncClientBase, SyncClientBase
from vitrine.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc


def product(pid: str, title: str, attributes: dict | None = None, image: bytes = b""):
    return gateway_pb2.Product(
        id=pid, title=title, attributes=attrs_to_pb(attributes or {}), image=image
    )


_RERANK_MODES = {
    None: gateway_pb2.RERANK_MODE_UNSPECIFIED,
    True: gateway_pb2.RERANK_MODE_ON,
    False: gateway_pb2.RERANK_MODE_OFF,
}

_RETRIEVAL_MODES = {
    None: gateway_pb2.RETRIEVAL_MODE_UNSPECIFIED,
    "vector": gateway_pb2.RETRIEVAL_MODE_VECTOR,
    "lexical": gateway_pb2.RETRIEVAL_MODE_LEXICAL,
    "hybrid": gateway_pb2.RETRIEVAL_MODE_HYBRID,
}
_COMPOSE_MODES = {
    None: gateway_pb2.COMPOSE_MODE_UNSPECIFIED,
    "weighted": gateway_pb2.COMPOSE_MODE_WEIGHTED,
    "model": gateway_pb2.COMPOSE_MODE_MODEL,
}


def _search_request(
    text,
    image,
    k,
    filter,
    page_size,
    page_token,
    text_weight,
    image_weight,
    include_attributes,
    rerank=None,
    rerank_candidates=0,
    describe_query=False,
    retrieval_mode=None,
    compose=None,
):
    return gateway_pb2.SearchRequest(
        text=text,
        image=image,
        k=k,
        filter=filter,
        page_size=page_size,
        page_token=page_token,
        weights=gateway_pb2.CompositeWeights(text_weight=text_weight, image_weight=image_weight),
        include_attributes=include_attributes,
        rerank=_RERANK_MODES[rerank],
        rerank_candidates=rerank_candidates,
        describe_query=describe_query,
        retrieval_mode=_RETRIEVAL_MODES[retrieval_mode],
        compose_mode=_COMPOSE_MODES[compose],
    )


class SearchClient(SyncClientBase):
    stub_class = gateway_pb2_grpc.SearchServiceStub

    def search(
        self,
        text: str = "",
        image: bytes = b"",
        k: int = 0,
        filter: common_pb2.Filter | None = None,
        page_size: int = 0,
        page_token: str = "",
        text_weight: float = 0.0,
        image_weight: float = 0.0,
        include_attributes: bool = True,
        timeout: float | None = None,
        rerank: bool | None = None,
        rerank_candidates: int = 0,
        describe_query: bool = False,
        retrieval_mode: str | None = None,
        compose: str | None = None,
    ) -> gateway_pb2.SearchResponse:
        """``rerank``: None = the server default, True/False = on/off; ``retrieval_mode``:
        None (the server default), "vector", "lexical" or "hybrid"; ``compose`` (photo + text):
        None, "model" or "weighted"."""
        req = _search_request(
            text,
            image,
            k,
            filter,
            page_size,
            page_token,
            text_weight,
            image_weight,
            include_attributes,
            rerank,
            rerank_candidates,
            describe_query,
            retrieval_mode,
            compose,
        )
        return self._call("Search", req, timeout)

    def upsert(
        self, products: Sequence[gateway_pb2.Product], timeout=None, fill_missing: bool = False
    ) -> list[gateway_pb2.ItemStatus]:
        req = gateway_pb2.UpsertProductsRequest(products=list(products), fill_missing=fill_missing)
        return list(self._call("UpsertProducts", req, timeout).statuses)

    def ingest(
        self,
        batches: Iterable[Sequence[gateway_pb2.Product]],
        timeout=None,
        fill_missing: bool = False,
    ):
        def requests() -> Iterator[gateway_pb2.IngestProductsRequest]:
            for b in batches:
                yield gateway_pb2.IngestProductsRequest(products=list(b), fill_missing=fill_missing)

        return self._call("IngestProducts", requests(), timeout)

    def describe(self, image: bytes, beam: int = 0, timeout=None) -> gateway_pb2.Description:
        req = gateway_pb2.DescribeRequest(image=image, beam=beam)
        return self._call("Describe", req, timeout).description

    def facets(
        self,
        fields: Sequence[str] = (),
        limit: int = 0,
        filter: common_pb2.Filter | None = None,
        timeout=None,
    ) -> gateway_pb2.GetFacetsResponse:
        """Attribute values and their counts (the ``limit`` most frequent per attribute)."""
        req = gateway_pb2.GetFacetsRequest(fields=list(fields), limit=limit, filter=filter)
        return self._call("GetFacets", req, timeout)

    def delete(self, ids: Sequence[str]) -> list[gateway_pb2.ItemStatus]:
        return list(
            self._call("DeleteProducts", gateway_pb2.DeleteProductsRequest(ids=list(ids))).statuses
        )


class AsyncSearchClient(AsyncClientBase):
    stub_class = gateway_pb2_grpc.SearchServiceStub

    async def search(
        self,
        text: str = "",
        image: bytes = b"",
        k: int = 0,
        filter: common_pb2.Filter | None = None,
        page_size: int = 0,
        page_token: str = "",
        text_weight: float = 0.0,
        image_weight: float = 0.0,
        include_attributes: bool = True,
        timeout: float | None = None,
        rerank: bool | None = None,
        rerank_candidates: int = 0,
        describe_query: bool = False,
        retrieval_mode: str | None = None,
        compose: str | None = None,
    ) -> gateway_pb2.SearchResponse:
        """``rerank``: None = the server default, True/False = on/off; ``retrieval_mode``:
        None (the server default), "vector", "lexical" or "hybrid"; ``compose`` (photo + text):
        None, "model" or "weighted"."""
        req = _search_request(
            text,
            image,
            k,
            filter,
            page_size,
            page_token,
            text_weight,
            image_weight,
            include_attributes,
            rerank,
            rerank_candidates,
            describe_query,
            retrieval_mode,
            compose,
        )
        return await self._call("Search", req, timeout)

    async def upsert(
        self, products: Sequence[gateway_pb2.Product], timeout=None, fill_missing: bool = False
    ):
        req = gateway_pb2.UpsertProductsRequest(products=list(products), fill_missing=fill_missing)
        return list((await self._call("UpsertProducts", req, timeout)).statuses)

    async def describe(self, image: bytes, beam: int = 0, timeout=None) -> gateway_pb2.Description:
        req = gateway_pb2.DescribeRequest(image=image, beam=beam)
        return (await self._call("Describe", req, timeout)).description

    async def facets(
        self,
        fields: Sequence[str] = (),
        limit: int = 0,
        filter: common_pb2.Filter | None = None,
        timeout=None,
    ) -> gateway_pb2.GetFacetsResponse:
        req = gateway_pb2.GetFacetsRequest(fields=list(fields), limit=limit, filter=filter)
        return await self._call("GetFacets", req, timeout)

    async def delete(self, ids: Sequence[str]):
        req = gateway_pb2.DeleteProductsRequest(ids=list(ids))
        return list((await self._call("DeleteProducts", req)).statuses)
