"""The gateway as plain async Python: search pipeline, ingest, delete. No gRPC servicer code here."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import numpy as np

from encoder_service.client import AsyncEncoderClient
from gateway.config import GatewayConfig
from gateway.downstream import with_retries
from gateway.pipeline import SearchContext, Stage, run_pipeline
from index_service.attributes import Value
from index_service.client import IndexFanout, SearchHit, _records
from vitrine.serving.errors import InvalidArgument, NotFound, VitrineError

log = logging.getLogger("vitrine.gateway")


@dataclass
class Page:
    hits: list[SearchHit]
    next_token: str
    partial: bool
    stages_run: list[str]
    timings: list[tuple[str, float]]


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


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


class EncodeStage:
    name = "encode"

    def __init__(self, gw: Gateway):
        self.gw = gw

    async def run(self, ctx: SearchContext) -> None:
        cfg, enc = self.gw.config, self.gw.encoder
        parts = []
        if ctx.text:
            parts.append(
                with_retries(
                    lambda t: enc.embed_texts(cfg.text_model, [ctx.text], timeout=t),
                    ctx.deadline,
                    cfg.retries,
                )
            )
        if ctx.image:
            parts.append(
                with_retries(
                    lambda t: enc.embed_images(cfg.image_model, [ctx.image], timeout=t),
                    ctx.deadline,
                    cfg.retries,
                )
            )
        results = await asyncio.gather(*parts)
        vectors = [r.vectors[0] for r in results]
        if len(vectors) == 2:  # composite: weighted sum of the two unit vectors, renormalised
            query = ctx.text_weight * vectors[0] + ctx.image_weight * vectors[1]
        else:
            query = vectors[0]
        ctx.query = _normalise(query.astype(np.float32))


class SearchStage:
    name = "search"

    def __init__(self, gw: Gateway):
        self.gw = gw

    async def run(self, ctx: SearchContext) -> None:
        cfg = self.gw.config
        res = await self.gw.index.search(
            cfg.collection,
            ctx.query[None],
            k=ctx.k,
            filter=ctx.filter,
            include_attributes=True,
            timeout=ctx.remaining(),
            allow_partial=cfg.allow_partial,
            retries=cfg.retries,
        )
        ctx.hits = res.hits[0]
        ctx.partial = ctx.partial or res.partial


class Gateway:
    def __init__(self, config: GatewayConfig, stage_observer=None):
        self.config = config
        self.encoder = AsyncEncoderClient(config.encoder, timeout=config.default_timeout_s)
        self.index = IndexFanout(config.index_endpoints, timeout=config.default_timeout_s)
        available = {"encode": EncodeStage(self), "search": SearchStage(self)}
        self.stages: list[Stage] = [available[s] for s in config.stages]
        self._observe = stage_observer
        self._collection_ready = False
        self._create_lock = asyncio.Lock()

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
        if text_weight < 0 or image_weight < 0:
            raise InvalidArgument("weights: must be >= 0")
        if text_weight == 0 and image_weight == 0:
            text_weight, image_weight = cfg.text_weight, cfg.image_weight
        fingerprint = hashlib.sha256(
            b"|".join(
                [
                    text.encode(),
                    hashlib.sha256(image).digest(),
                    f"{text_weight:.6f},{image_weight:.6f},{k}".encode(),
                    filter.SerializeToString(deterministic=True) if filter is not None else b"",
                ]
            )
        ).hexdigest()[:16]
        offset = _read_token(page_token, fingerprint) if page_token else 0
        ctx = SearchContext(
            text=text,
            image=image,
            text_weight=text_weight,
            image_weight=image_weight,
            filter=filter,
            k=k,
            deadline=time.monotonic() + (timeout or cfg.default_timeout_s),
        )
        await run_pipeline(self.stages, ctx, self._observe)
        size = page_size or k
        page = ctx.hits[offset : offset + size]
        end = offset + size
        next_token = _make_token(end, fingerprint) if end < min(k, len(ctx.hits)) else ""
        return Page(page, next_token, ctx.partial, ctx.stages_run, ctx.timings)

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
                )
                log.info("collection created", extra={"collection": self.config.collection})
            self._collection_ready = True

    async def upsert_products(self, products: Sequence[ProductIn]) -> list[ItemResult]:
        """Embed and index products; one result per product, in order (bad items fail alone)."""
        await self.ensure_collection()
        results: dict[int, ItemResult] = {}
        vectors: dict[int, np.ndarray] = {}
        with_image, text_only = [], []
        for i, p in enumerate(products):
            if not p.id:
                results[i] = ItemResult(p.id, grpc.StatusCode.INVALID_ARGUMENT, "id: required")
            elif not p.title.strip():
                results[i] = ItemResult(p.id, grpc.StatusCode.INVALID_ARGUMENT, "title: required")
            elif p.image:
                with_image.append(i)
            else:
                text_only.append(i)
        batch = self.config.ingest_batch
        jobs = [
            self._embed_images(
                [products[i].image for i in with_image[s : s + batch]],
                with_image[s : s + batch],
                vectors,
                results,
                products,
            )
            for s in range(0, len(with_image), batch)
        ]
        jobs += [
            self._embed_titles(
                [products[i].title for i in text_only[s : s + batch]],
                text_only[s : s + batch],
                vectors,
                results,
                products,
            )
            for s in range(0, len(text_only), batch)
        ]
        await asyncio.gather(*jobs)
        ready = sorted(vectors)
        if ready:
            records = _records(
                [products[i].id for i in ready],
                np.stack([vectors[i] for i in ready]),
                [{**products[i].attributes, "title": products[i].title} for i in ready],
            )
            try:
                await self.index.upsert_records(self.config.collection, records)
                for i in ready:
                    results[i] = ItemResult(products[i].id, grpc.StatusCode.OK)
            except VitrineError as exc:
                for i in ready:
                    results[i] = ItemResult(products[i].id, exc.code, exc.message)
        return [results[i] for i in range(len(products))]

    async def _embed_images(self, images, rows, vectors, results, products) -> None:
        try:
            res = await self.encoder.embed_images(self.config.image_model, images)
            for i, v in zip(rows, res.vectors, strict=True):
                vectors[i] = v
            return
        except VitrineError as exc:
            if exc.code != grpc.StatusCode.INVALID_ARGUMENT or len(rows) == 1:
                for i in rows:
                    results[i] = ItemResult(products[i].id, exc.code, f"image: {exc.message}")
                return
        # Some image in the batch is bad: embed one by one so only the bad ones fail.
        await asyncio.gather(
            *(
                self._embed_images([products[i].image], [i], vectors, results, products)
                for i in rows
            )
        )

    async def _embed_titles(self, titles, rows, vectors, results, products) -> None:
        try:
            res = await self.encoder.embed_texts(self.config.text_model, titles)
            for i, v in zip(rows, res.vectors, strict=True):
                vectors[i] = v
        except VitrineError as exc:
            for i in rows:
                results[i] = ItemResult(products[i].id, exc.code, f"title: {exc.message}")

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


def _make_token(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "q": fingerprint}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_token(token: str, fingerprint: str) -> int:
    try:
        pad = "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(token + pad))
        offset = int(data["o"])
        if data["q"] != fingerprint or offset < 0:
            raise ValueError
    except (ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise InvalidArgument("page_token: not a token of this query") from exc
    return offset
