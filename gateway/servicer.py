"""Thin gRPC servicer over :class:`gateway.core.Gateway`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from google.protobuf.message import DecodeError

from gateway.core import Gateway, ItemResult, ProductIn
from gateway.generate import Description
from gateway.metrics import GatewayMetrics
from gateway.retrieval import HYBRID, LEXICAL, VECTOR
from index_service.attributes import attrs_from_pb, attrs_to_pb
from vitrine.serving.errors import InvalidArgument
from vitrine.serving.grpc_app import rpc
from vitrine.serving.metrics import RpcMetrics
from vitrine.v1 import gateway_pb2, gateway_pb2_grpc

MAX_PRODUCTS_PER_REQUEST = 1000
_RERANK = {
    gateway_pb2.RERANK_MODE_UNSPECIFIED: None,
    gateway_pb2.RERANK_MODE_ON: True,
    gateway_pb2.RERANK_MODE_OFF: False,
}


def _products(pbs, offset: int = 0) -> list[ProductIn]:
    if len(pbs) > MAX_PRODUCTS_PER_REQUEST:
        raise InvalidArgument(f"products: more than {MAX_PRODUCTS_PER_REQUEST} in one request")
    return [
        ProductIn(p.id, p.title, attrs_from_pb(p.attributes, f"products[{offset + i}]"), p.image)
        for i, p in enumerate(pbs)
    ]


_RETRIEVAL = {
    gateway_pb2.RETRIEVAL_MODE_UNSPECIFIED: None,
    gateway_pb2.RETRIEVAL_MODE_VECTOR: VECTOR,
    gateway_pb2.RETRIEVAL_MODE_LEXICAL: LEXICAL,
    gateway_pb2.RETRIEVAL_MODE_HYBRID: HYBRID,
}
_RETRIEVAL_PB = {v: k for k, v in _RETRIEVAL.items() if v}
_COMPOSE = {
    gateway_pb2.COMPOSE_MODE_UNSPECIFIED: None,
    gateway_pb2.COMPOSE_MODE_WEIGHTED: "weighted",
    gateway_pb2.COMPOSE_MODE_MODEL: "model",
}
_COMPOSE_PB = {v: k for k, v in _COMPOSE.items() if v}


def _enum(table: dict, value: int, field: str):
    if value not in table:
        raise InvalidArgument(f"{field}: unknown value {value}")
    return table[value]


def _rerank_mode(mode: int) -> bool | None:
    if mode not in _RERANK:
        raise InvalidArgument(f"rerank: unknown mode {mode}")
    return _RERANK[mode]


def _description_pb(d: Description) -> gateway_pb2.Description:
    return gateway_pb2.Description(
        title=d.title,
        attributes=[
            gateway_pb2.AttributeGuess(name=n, value=v, confidence=c) for n, v, c in d.attributes
        ],
        model=d.model,
    )


def _status(r: ItemResult) -> gateway_pb2.ItemStatus:
    return gateway_pb2.ItemStatus(id=r.id, code=r.code.value[0], message=r.message)


async def _messages(request_iterator) -> AsyncIterator:
    """The messages of a request stream; one that does not decode is INVALID_ARGUMENT.

    grpc decodes a stream's messages as the handler reads them, so the error surfaces here,
    inside the handler, where it would otherwise end the call INTERNAL."""
    n = 0
    stream = aiter(request_iterator)
    while True:
        try:
            message = await anext(stream)
        except StopAsyncIteration:
            return
        except DecodeError as exc:
            raise InvalidArgument(f"request stream: message {n} does not decode: {exc}") from exc
        n += 1
        yield message


class GatewayServicer(gateway_pb2_grpc.SearchServiceServicer):
    def __init__(self, gateway: Gateway, metrics: RpcMetrics, gw_metrics: GatewayMetrics):
        self.gateway = gateway
        self.metrics = metrics
        self.gw_metrics = gw_metrics

    @rpc
    async def Search(self, request, context):
        page = await self.gateway.search(
            text=request.text,
            image=request.image,
            text_weight=request.weights.text_weight,
            image_weight=request.weights.image_weight,
            filter=request.filter if request.HasField("filter") else None,
            k=request.k,
            page_size=request.page_size,
            page_token=request.page_token,
            timeout=context.time_remaining(),
            rerank=_rerank_mode(request.rerank),
            rerank_candidates=request.rerank_candidates,
            describe_query=request.describe_query,
            retrieval_mode=_enum(_RETRIEVAL, request.retrieval_mode, "retrieval_mode"),
            compose=_enum(_COMPOSE, request.compose_mode, "compose_mode"),
        )
        if page.partial:
            self.gw_metrics.partial.inc()
        reranked = page.rerank_scores or [None] * len(page.hits)
        return gateway_pb2.SearchResponse(
            results=[
                gateway_pb2.Result(
                    product_id=h.id,
                    score=h.score if rs is None else rs,
                    retrieval_score=h.score,
                    lexical_score=page.lexical_scores.get(h.id, 0.0),
                    caption=str(h.attributes.get("title", "")),
                    attributes=attrs_to_pb(h.attributes) if request.include_attributes else None,
                )
                for h, rs in zip(page.hits, reranked, strict=True)
            ],
            next_page_token=page.next_token,
            partial=page.partial,
            stages_run=page.stages_run,
            timings=[gateway_pb2.StageTiming(stage=s, seconds=t) for s, t in page.timings],
            reranked=page.reranked,
            degraded_stages=page.degraded or [],
            query_description=_description_pb(page.description) if page.description else None,
            retrieval_mode=_RETRIEVAL_PB[page.mode],
            compose_mode=_COMPOSE_PB.get(page.compose, 0),
        )

    @rpc
    async def GetFacets(self, request, context):
        out = await self.gateway.facets(
            list(request.fields),
            request.limit,
            request.filter if request.HasField("filter") else None,
            context.time_remaining(),
        )
        if out.partial:
            self.gw_metrics.partial.inc()
        return gateway_pb2.GetFacetsResponse(
            facets=out.facets, matched=out.matched, partial=out.partial
        )

    @rpc
    async def Describe(self, request, context):
        d = await self.gateway.describe(request.image, request.beam, context.time_remaining())
        return gateway_pb2.DescribeResponse(description=_description_pb(d))

    def _count(self, results: list[ItemResult]) -> None:
        for r in results:
            self.gw_metrics.ingested.labels(r.code.name).inc()

    @rpc
    async def UpsertProducts(self, request, context):
        results = await self.gateway.upsert_products(
            _products(request.products), request.fill_missing
        )
        self._count(results)
        return gateway_pb2.UpsertProductsResponse(statuses=[_status(r) for r in results])

    @rpc
    async def IngestProducts(self, request_iterator, context):
        """Batches are processed with at most ``ingest_inflight`` in flight: the stream is not
        read further until one finishes (gRPC flow control then pushes back on the client)."""
        sem = asyncio.Semaphore(self.gateway.config.ingest_inflight)
        tasks: list[asyncio.Task] = []
        received = 0

        async def one(products, fill):
            try:
                return await self.gateway.upsert_products(products, fill)
            finally:
                sem.release()

        async for req in _messages(request_iterator):
            products = _products(req.products, received)
            received += len(products)
            await sem.acquire()
            tasks.append(asyncio.create_task(one(products, req.fill_missing)))
        results = [r for batch in await asyncio.gather(*tasks) for r in batch]
        self._count(results)
        failures = [_status(r) for r in results if r.code.value[0] != 0]
        return gateway_pb2.IngestProductsResponse(
            received=received,
            succeeded=received - len(failures),
            failed=len(failures),
            failures=failures,
        )

    @rpc
    async def DeleteProducts(self, request, context):
        results = await self.gateway.delete_products(list(request.ids))
        return gateway_pb2.DeleteProductsResponse(statuses=[_status(r) for r in results])
