"""The gateway as plain async Python: search pipeline, ingest, delete. No gRPC servicer code here."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np

from encoder_service.client import AsyncEncoderClient
from gateway.compose import Composer
from gateway.config import GatewayConfig
from gateway.embed_cache import EmbeddingCache
from gateway.generate import Description, GenerateStage, Generator
from gateway.metrics import filter_shape, query_kind
from gateway.pipeline import SearchContext, Stage, run_pipeline
from gateway.rerank import RerankPlanner
from gateway.retrieval import HYBRID, LEXICAL, MODES, VECTOR, lexical_text
from gateway.stages import EncodeStage, RerankStage, SearchStage
from index_service.attributes import DEFAULT_FACET_VALUES, Value, check_facet_fields
from index_service.client import SearchHit, _records
from index_service.fanout import FacetsResult, IndexFanout
from vitrine.serving.errors import InvalidArgument, NotFound, VitrineError

log = logging.getLogger("vitrine.gateway")
MAX_FACET_VALUES = 1000


@dataclass
class Page:
    hits: list[SearchHit]
    next_token: str
    partial: bool
    stages_run: list[str]
    timings: list[tuple[str, float]]
    reranked: int = 0
    degraded: list[str] | None = None
    rerank_scores: list[float | None] | None = None  # per hit of this page
    description: Description | None = None  # the query photo's, with describe_query
    mode: str = VECTOR  # the retrieval mode used
    compose: str = ""  # how a photo + text query was composed ("model" | "weighted")
    lexical_scores: dict[str, float] = field(default_factory=dict)  # BM25 by id


@dataclass
class ProductIn:
    id: str
    title: str
    attributes: dict[str, Value]
    image: bytes


@dataclass
class ItemResult:
    id: str
    code: grpc.StatusCode
    message: str = ""


@dataclass
class _Embedded:
    """What ingest has computed so far for a batch of products, by row."""

    products: Sequence[ProductIn]
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    payloads: dict[int, bytes] = field(default_factory=dict)
    results: dict[int, ItemResult] = field(default_factory=dict)


class Gateway:
    def __init__(self, config: GatewayConfig, metrics=None):
        """``metrics``: a :class:`gateway.metrics.GatewayMetrics` (optional)."""
        self.config = config
        self.encoder = AsyncEncoderClient(
            config.encoder, timeout=config.default_timeout_s, tls=config.client_tls()
        )
        self.index = IndexFanout(
            config.index_endpoints, timeout=config.default_timeout_s, tls=config.client_tls()
        )
        self.rerank = RerankPlanner(self.encoder, config)
        self.composer = Composer(self.encoder, config)
        self.generator = Generator(self)
        self.embed_cache = EmbeddingCache(
            config.embed_cache_size,
            config.embed_cache_ttl_s,
            metrics.observe_cache if metrics is not None else None,
        )
        available = {
            "encode": EncodeStage(self),
            "search": SearchStage(self),
            "rerank": RerankStage(self),
            "generate": GenerateStage(self),
        }
        self.stages: list[Stage] = [available[s] for s in config.stages]
        self.metrics = metrics
        self._collection_ready = False
        self._create_lock = asyncio.Lock()

    def observe_degraded(self, stage: str, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.degraded.labels(stage, reason).inc()

    def observe_rerank_order(self, order: list[int]) -> None:
        if self.metrics is not None:
            self.metrics.observe_rerank_order(order)

    async def close(self) -> None:
        await self.encoder.close()
        await self.index.close()

    # -- search ------------------------------------------------------------------------------
    async def search(
        self,
        *,
        text: str = "",
        image: bytes = b"",
        text_weight: float = 0.0,
        image_weight: float = 0.0,
        filter=None,
        k: int = 0,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
        rerank: bool | None = None,
        rerank_candidates: int = 0,
        describe_query: bool = False,
        retrieval_mode: str | None = None,
        compose: str | None = None,
    ) -> Page:
        cfg = self.config
        text = text.strip()
        if not text and not image:
            raise InvalidArgument("text or image: at least one is required")
        if len(text) > 2048:
            raise InvalidArgument("text: longer than 2048 characters")
        k = k or cfg.default_k
        if not 1 <= k <= cfg.max_k:
            raise InvalidArgument(f"k: {k} must be in 1..{cfg.max_k}")
        if page_size < 0:
            raise InvalidArgument("page_size: must be >= 0")
        if not (math.isfinite(text_weight) and math.isfinite(image_weight)):
            raise InvalidArgument("text_weight, image_weight: must be finite numbers")
        if text_weight < 0 or image_weight < 0:
            raise InvalidArgument("weights: must be >= 0")
        if not 0 <= rerank_candidates <= cfg.max_rerank_candidates:
            raise InvalidArgument(
                f"rerank_candidates: {rerank_candidates} must be in 0..{cfg.max_rerank_candidates}"
            )
        if retrieval_mode is not None and retrieval_mode not in MODES:
            raise InvalidArgument(f"retrieval_mode: {retrieval_mode!r} is not one of {MODES}")
        if retrieval_mode in (LEXICAL, HYBRID) and (image or not text):
            raise InvalidArgument(f"retrieval_mode: {retrieval_mode} needs a text-only query")
        mode = retrieval_mode or (cfg.retrieval_default if text and not image else VECTOR)
        if compose not in (None, "model", "weighted"):
            raise InvalidArgument(f"compose_mode: {compose!r} is not model or weighted")
        if text and image:  # explicit weights ask for the weighted sum unless the model is asked
            weighted = text_weight or image_weight or not cfg.compose_model
            compose = compose or ("weighted" if weighted else "model")
        else:
            compose = ""
        if text_weight == 0 and image_weight == 0:
            text_weight, image_weight = cfg.text_weight, cfg.image_weight
        fingerprint = hashlib.sha256(
            b"|".join(
                [
                    text.encode(),
                    hashlib.sha256(image).digest(),
                    f"{text_weight:.6f},{image_weight:.6f},{k}".encode(),
                    filter.SerializeToString(deterministic=True) if filter is not None else b"",
                    f"{rerank},{rerank_candidates},{mode},{compose}".encode(),
                ]
            )
        ).hexdigest()[:16]
        offset, fixed = _read_token(page_token, fingerprint) if page_token else (0, None)
        ctx = SearchContext(
            text=text,
            image=image,
            text_weight=text_weight,
            image_weight=image_weight,
            filter=filter,
            k=k,
            deadline=time.monotonic() + (timeout or cfg.default_timeout_s),
            rerank=rerank,
            rerank_candidates=rerank_candidates,
            rerank_fixed=fixed,
            describe_query=describe_query,
            mode=mode,
            compose=compose,
        )
        observe = self.metrics.observe_stage if self.metrics is not None else None
        try:
            await run_pipeline(self.stages, ctx, observe)
        finally:
            for task in (ctx.description_task, ctx.lexical_task):
                if task is not None and not task.done():
                    task.cancel()
                elif task is not None and not task.cancelled():
                    task.exception()  # retrieved: a failure the pipeline did not reach is dropped
        if self.metrics is not None and ctx.reranked:
            self.metrics.reranked.observe(ctx.reranked)
        if self.metrics is not None and not page_token:  # retrieval quality, once per query
            self.metrics.observe_search(
                query_kind(text, image),
                filter_shape(filter),
                len(ctx.hits),
                ctx.top_similarity,
                cfg.low_similarity_threshold,
            )
        size = page_size or k
        end = offset + size
        hits = ctx.hits[:k]
        next_token = (
            _make_token(end, fingerprint, ctx.rerank_n if ctx.reranked else 0)
            if end < len(hits)
            else ""
        )
        scores = ctx.rerank_scores[:k][offset:end] if ctx.rerank_scores else None
        return Page(
            hits[offset:end],
            next_token,
            ctx.partial,
            ctx.stages_run,
            ctx.timings,
            ctx.reranked,
            ctx.degraded,
            scores,
            ctx.description,
            ctx.mode,
            ctx.compose,
            ctx.lexical_scores,
        )

    async def facets(
        self,
        fields: Sequence[str] = (),
        limit: int = 0,
        filter=None,
        timeout: float | None = None,
    ) -> FacetsResult:
        """Attribute values with their counts over the products ``filter`` selects (all
        attributes but the image URL when ``fields`` is empty); none before the first ingest."""
        if not 0 <= limit <= MAX_FACET_VALUES:
            raise InvalidArgument(f"limit: {limit} must be in 0..{MAX_FACET_VALUES}")
        check_facet_fields(fields)  # before the collection is looked up (it may not exist)
        try:
            out = await self.index.facets(
                self.config.collection,
                list(fields),
                limit or DEFAULT_FACET_VALUES,
                filter,
                timeout or self.config.default_timeout_s,
                self.config.allow_partial,
            )
        except NotFound:
            return FacetsResult([], 0)
        if not fields:
            out.facets = [f for f in out.facets if f.field != self.config.image_url_attribute]
        return out

    async def capabilities(self) -> dict[str, bool]:
        """Which optional stages the loaded models offer: rerank, compose (the composition
        model) and describe (a caption model). From the same cached readings searches use."""
        describe = False
        if self.config.caption_model:
            try:
                describe = bool(await self.encoder.model_info(self.config.caption_model))
            except VitrineError:
                describe = False
        return {
            "rerank": await self.rerank.refresh() is not None,
            "compose": await self.composer.loaded() is not None,
            "describe": describe,
        }

    async def describe(self, image: bytes, beam: int = 0, timeout: float | None = None):
        """The listing assistant: a suggested title and attributes for a product photo."""
        return await self.generator.describe(image, beam, timeout or self.config.default_timeout_s)

    # -- ingest ----------------------------------------------------------------------------------
    async def ensure_collection(self) -> None:
        if self._collection_ready:
            return
        async with self._create_lock:
            if self._collection_ready:
                return
            try:
                await self.index.refresh(self.config.collection)
            except NotFound:
                infos = await self.encoder.model_info(self.config.image_model)
                dim = max(infos, key=lambda m: m.version).dim
                await self.index.create_collection(
                    self.config.collection,
                    dim,
                    "ip",
                    self.config.index_spec,
                    self.config.num_shards,
                    replication_factor=self.config.replication_factor,
                )
                log.info("collection created", extra={"collection": self.config.collection})
            self._collection_ready = True

    async def upsert_products(
        self, products: Sequence[ProductIn], fill_missing: bool = False
    ) -> list[ItemResult]:
        """Embed and index products; one result per product, in order (bad items fail alone).

        Products with a photo are indexed by its embedding and, when the image tower has a
        payload output (the reranker's), store the payload from the same call. With
        ``fill_missing``, products with a photo get a generated title and attributes where
        theirs are missing (:mod:`gateway.generate`)."""
        await self.ensure_collection()
        await self.rerank.refresh()
        products = list(products)
        failed: dict[int, ItemResult] = {}
        if fill_missing:
            products, failed = await self._fill_missing(products)
        out = _Embedded(products)
        results = out.results
        results.update(failed)
        with_image, text_only = [], []
        for i, p in enumerate(products):
            if i in results:
                continue
            if not p.id:
                results[i] = ItemResult(p.id, grpc.StatusCode.INVALID_ARGUMENT, "id: required")
            elif not p.title.strip():
                hint = " (or a photo with fill_missing)" if not fill_missing else ""
                results[i] = ItemResult(
                    p.id, grpc.StatusCode.INVALID_ARGUMENT, f"title: required{hint}"
                )
            elif p.image:
                with_image.append(i)
            else:
                text_only.append(i)
        batch = self.config.ingest_batch
        payloads = self.rerank.image_has_payload
        jobs = [
            self._embed_images(with_image[s : s + batch], out, payloads)
            for s in range(0, len(with_image), batch)
        ]
        jobs += [
            self._embed_titles(text_only[s : s + batch], out)
            for s in range(0, len(text_only), batch)
        ]
        await asyncio.gather(*jobs)
        ready = sorted(out.vectors)
        if ready:
            url_attr = self.config.image_url_attribute
            records = _records(
                [products[i].id for i in ready],
                np.stack([out.vectors[i] for i in ready]),
                [{**products[i].attributes, "title": products[i].title} for i in ready],
                [out.payloads.get(i, b"") for i in ready],
                [lexical_text(products[i].title, products[i].attributes, url_attr) for i in ready],
            )
            try:
                await self.index.upsert_records(
                    self.config.collection, records, self.config.ingest_timeout_s
                )
                for i in ready:
                    results[i] = ItemResult(products[i].id, grpc.StatusCode.OK)
            except VitrineError as exc:
                for i in ready:
                    results[i] = ItemResult(products[i].id, exc.code, exc.message)
        return [results[i] for i in range(len(products))]

    async def _fill_missing(
        self, products: list[ProductIn]
    ) -> tuple[list[ProductIn], dict[int, ItemResult]]:
        """Generated titles/attributes for the products that lack them (and have a photo).

        A product without a title fails if generation fails; one that only lacks attributes is
        indexed as given (the failure is logged and counted as a degraded "generate")."""
        gen, cfg = self.generator, self.config
        failed: dict[int, ItemResult] = {}
        try:
            infos = await self.encoder.model_info(cfg.caption_model)
        except VitrineError as exc:  # no caption model: only the title-less products fail
            self.observe_degraded("generate", exc.code.name)
            for i, p in enumerate(products):
                if p.id and p.image and not p.title.strip():
                    failed[i] = ItemResult(p.id, exc.code, f"fill_missing: {exc.message}")
            return products, failed
        info = max(infos, key=lambda m: m.version)
        predicted = list(info.caption.attributes)
        rows = [
            i
            for i, p in enumerate(products)
            if p.id and p.image and gen.needs_fill(p.title, p.attributes, predicted)
        ]
        batch = min(cfg.ingest_batch, info.max_batch_size or cfg.ingest_batch)

        async def one(part: list[int]) -> None:
            try:
                descs = await gen.describe_images(
                    [products[i].image for i in part], timeout=cfg.ingest_timeout_s
                )
            except VitrineError as exc:
                self.observe_degraded("generate", exc.code.name)
                if exc.code == grpc.StatusCode.INVALID_ARGUMENT and len(part) > 1:
                    await asyncio.gather(*(one([i]) for i in part))  # isolate the bad photo
                    return
                for i in part:
                    if not products[i].title.strip():
                        failed[i] = ItemResult(products[i].id, exc.code, f"generate: {exc.message}")
                return
            for i, d in zip(part, descs, strict=True):
                p = products[i]
                title, attrs = gen.fill(p.title, p.attributes, d)
                products[i] = ProductIn(p.id, title, attrs, p.image)

        await asyncio.gather(*(one(rows[s : s + batch]) for s in range(0, len(rows), batch)))
        return products, failed

    async def _embed_images(self, rows: list[int], out: _Embedded, payloads: bool) -> None:
        products = out.products
        try:
            res = await self.encoder.embed_images(
                self.config.image_model,
                [products[i].image for i in rows],
                include_payloads=payloads,
                timeout=self.config.ingest_timeout_s,
            )
            for j, (i, v) in enumerate(zip(rows, res.vectors, strict=True)):
                out.vectors[i] = v
                if res.payloads:
                    out.payloads[i] = res.payloads[j]
            return
        except VitrineError as exc:
            if exc.code != grpc.StatusCode.INVALID_ARGUMENT or len(rows) == 1:
                for i in rows:
                    out.results[i] = ItemResult(products[i].id, exc.code, f"image: {exc.message}")
                return
        # Some image in the batch is bad: embed one by one so only the bad ones fail.
        await asyncio.gather(*(self._embed_images([i], out, payloads) for i in rows))

    async def _embed_titles(self, rows: list[int], out: _Embedded) -> None:
        products = out.products
        try:
            res = await self.encoder.embed_texts(
                self.config.text_model,
                [products[i].title for i in rows],
                timeout=self.config.ingest_timeout_s,
            )
            for i, v in zip(rows, res.vectors, strict=True):
                out.vectors[i] = v
        except VitrineError as exc:
            for i in rows:
                out.results[i] = ItemResult(products[i].id, exc.code, f"title: {exc.message}")

    async def delete_products(self, ids: Sequence[str]) -> list[ItemResult]:
        await self.ensure_collection()
        bad = [i for i, rid in enumerate(ids) if not rid]
        if bad:
            raise InvalidArgument(f"ids[{bad[0]}]: empty id")
        present = await self.index.existing(self.config.collection, ids)
        if present:
            await self.index.delete(self.config.collection, sorted(present))
        return [
            ItemResult(rid, grpc.StatusCode.OK)
            if rid in present
            else ItemResult(rid, grpc.StatusCode.NOT_FOUND, "no such product")
            for rid in ids
        ]


def _make_token(offset: int, fingerprint: str, reranked: int) -> str:
    """``reranked``: how many candidates the first page reranked, so later pages rerank the
    same shortlist (deterministic pages) even if their deadline would allow more or fewer."""
    raw = json.dumps({"o": offset, "q": fingerprint, "r": reranked}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_token(token: str, fingerprint: str) -> tuple[int, int]:
    try:
        pad = "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(token + pad))
        offset, reranked = int(data["o"]), int(data.get("r", 0))
        if data["q"] != fingerprint or offset < 0 or reranked < 0:
            raise ValueError
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise InvalidArgument("page_token: not a token of this query") from exc
    return offset, reranked
