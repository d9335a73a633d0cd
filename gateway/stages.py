"""The search stages: encode → search → rerank (see :mod:`gateway.pipeline`); the generate
stage is in :mod:`gateway.generate`."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from encoder_service.client import Candidate
from gateway.downstream import with_retries
from gateway.pipeline import SearchContext
from gateway.rerank import reorder
from gateway.retrieval import HYBRID, LEXICAL, VECTOR, adaptive_weight, blend
from vitrine.serving.errors import NotFound, VitrineError

log = logging.getLogger("vitrine.gateway")


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-12)


def wants_rerank(gw, ctx: SearchContext) -> bool:
    if ctx.rerank_fixed is not None:
        return ctx.rerank_fixed > 0
    if ctx.rerank is None and ctx.model_composed and not gw.config.rerank_composed:
        return False  # the reranker pulls composed queries back toward the photo (compose_eval)
    on = gw.config.rerank_default if ctx.rerank is None else ctx.rerank
    return on and gw.rerank.target is not None


class EncodeStage:
    name = "encode"

    def __init__(self, gw):
        self.gw = gw

    async def run(self, ctx: SearchContext) -> None:
        cfg, enc = self.gw.config, self.gw.encoder
        self.gw.generator.start_query_description(ctx)  # runs beside encode → search → rerank
        if ctx.compose == "model":  # decided before the rerank plan, which depends on it
            ctx.model_composed = await self.gw.composer.loaded() is not None
            if not ctx.model_composed:
                ctx.compose = "weighted"
        if ctx.rerank is not False and ctx.rerank_fixed != 0:
            await self.gw.rerank.refresh()
        if ctx.mode in (LEXICAL, HYBRID):  # needs no vector: runs beside the encoder call
            ctx.lexical_task = asyncio.create_task(lexical_search(self.gw, ctx))
        if ctx.mode == LEXICAL:
            return False  # nothing to encode
        parts = []
        if ctx.text:

            async def embed_text():
                r = await with_retries(
                    lambda t: enc.embed_texts(cfg.text_model, [ctx.text], timeout=t),
                    ctx.deadline,
                    cfg.retries,
                )
                return r.vectors[0], r.version

            parts.append(self.gw.embed_cache.get(cfg.text_model, ctx.text, embed_text))
        if ctx.image:
            # A photo query that will be reranked needs its payload: from the same call.
            payload = wants_rerank(self.gw, ctx)
            parts.append(
                with_retries(
                    lambda t: enc.embed_images(
                        cfg.image_model, [ctx.image], timeout=t, include_payloads=payload
                    ),
                    ctx.deadline,
                    cfg.retries,
                )
            )
        results = await asyncio.gather(*parts)
        vectors = [results[0]] if ctx.text else []  # the text part: a vector (maybe cached)
        if ctx.image:
            vectors.append(results[-1].vectors[0])
            if results[-1].payloads:
                ctx.query_payload = results[-1].payloads[0]
        if len(vectors) == 2:
            query = None
            if ctx.compose == "model":  # the composition model, if loaded (else weighted)
                query = await self.gw.composer.compose(vectors[1], vectors[0], ctx)
            if query is None:  # weighted sum of the two unit vectors, renormalised
                ctx.compose = "weighted"
                query = ctx.text_weight * vectors[0] + ctx.image_weight * vectors[1]
        else:
            query = vectors[0]
        ctx.query = _normalise(np.asarray(query, dtype=np.float32))
        return None


def _wanted(gw, ctx: SearchContext) -> int:
    """The shortlist a reranked search asks for: the request's, else the model's, else the
    configured default (the deadline may shrink it: RerankPlanner.plan)."""
    return ctx.rerank_candidates or gw.rerank.target.candidates or gw.config.rerank_candidates


def _rerank_ceiling(gw, ctx: SearchContext) -> int:
    """The most candidates the rerank stage may ask for (before the deadline planning)."""
    if ctx.rerank_fixed is not None:
        return ctx.rerank_fixed
    if not wants_rerank(gw, ctx):
        return 0
    return min(_wanted(gw, ctx), gw.config.max_rerank_candidates)


async def lexical_search(gw, ctx: SearchContext):
    """The lexical index's best matches of the query text, deep enough for any plan."""
    cfg = gw.config
    ceiling = _rerank_ceiling(gw, ctx)
    depth = max(ctx.k, ceiling, cfg.hybrid_depth if ctx.mode == HYBRID else 0)
    ctx.lexical_depth = depth
    return await gw.index.search(
        cfg.collection,
        None,
        text_queries=[ctx.text],
        k=depth,
        filter=ctx.filter,
        include_attributes=True,
        include_payloads=ceiling > 0,
        timeout=ctx.remaining(),
        allow_partial=cfg.allow_partial,
        retries=cfg.retries,
    )


class SearchStage:
    name = "search"

    def __init__(self, gw):
        self.gw = gw

    async def run(self, ctx: SearchContext) -> None:
        cfg, planner = self.gw.config, self.gw.rerank
        if ctx.rerank and planner.target is None:
            ctx.degraded.append("rerank")  # asked for explicitly, but no reranker is loaded
        elif wants_rerank(self.gw, ctx):
            if ctx.rerank_fixed is not None:
                ctx.rerank_n = ctx.rerank_fixed
            else:
                ctx.rerank_n = planner.plan(_wanted(self.gw, ctx), ctx.deadline - time.monotonic())
                if ctx.rerank_n == 0:
                    ctx.degraded.append("rerank")  # no time left for it
        t0 = time.perf_counter()
        want = max(ctx.k, ctx.rerank_n)
        results = []
        if ctx.mode in (VECTOR, HYBRID):
            results.append(
                await self.gw.index.search(
                    cfg.collection,
                    ctx.query[None],
                    k=max(want, cfg.hybrid_depth) if ctx.mode == HYBRID else want,
                    filter=ctx.filter,
                    include_attributes=True,
                    # Candidates' payloads when the reranker will read them (text queries).
                    include_payloads=ctx.rerank_n > 0 and bool(ctx.text),
                    timeout=ctx.remaining(),
                    allow_partial=cfg.allow_partial,
                    retries=cfg.retries,
                )
            )
        if ctx.lexical_task is not None:
            results.append(await ctx.lexical_task)
        planner.observe_search(time.perf_counter() - t0)
        ctx.partial = ctx.partial or any(r.partial for r in results)
        if ctx.mode in (VECTOR, HYBRID) and results[0].hits[0]:
            ctx.top_similarity = max(h.score for h in results[0].hits[0])
        if ctx.mode == VECTOR:
            ctx.hits = results[0].hits[0]
            return
        lexical = results[-1].hits[0]
        vector, weight = [], 0.0
        if ctx.mode == HYBRID:
            vector = results[0].hits[0]
            low, high = cfg.hybrid_vector_weight_low, cfg.hybrid_vector_weight_high
            weight = adaptive_weight(ctx.text, lexical, low, high)
        fused = blend(vector, lexical, weight, ctx.lexical_depth, want)
        ctx.hits, ctx.lexical_scores = fused.hits, fused.bm25


class RerankStage:
    """Reorders the best ``ctx.rerank_n`` hits by the rerank model's scores.

    Candidates it cannot score (a product without a photo payload, or one stored by another image
    tower version) keep their place. If the reranker fails or runs out of time the hits stay in
    retrieval order and the response lists "rerank" among the degraded stages.
    """

    name = "rerank"

    def __init__(self, gw):
        self.gw = gw

    async def run(self, ctx: SearchContext) -> bool | None:
        n = min(ctx.rerank_n, len(ctx.hits))
        target = self.gw.rerank.target
        if n < 1 or target is None:
            if ctx.rerank_n and target is None:
                ctx.degraded.append("rerank")
            return False
        top = ctx.hits[:n]
        usable = [
            i
            for i, h in enumerate(top)
            if (not ctx.text or len(h.payload) == target.payload_bytes)
            and (not ctx.query_payload or str(h.attributes.get("title", "")).strip())
        ]
        if not usable:
            ctx.degraded.append("rerank")
            return None
        candidates = [
            Candidate(top[i].payload, str(top[i].attributes.get("title", "")), top[i].score)
            for i in usable
        ]
        t0 = time.perf_counter()
        try:
            res = await self.gw.encoder.rerank(
                target.model,
                candidates,
                query_text=ctx.text,
                query_payload=ctx.query_payload,
                text_weight=ctx.text_weight,
                image_weight=ctx.image_weight,
                version=target.version,
                timeout=max(0.001, ctx.remaining() - self.gw.config.rerank_margin_ms / 1000.0),
            )
        except VitrineError as exc:
            if isinstance(exc, NotFound):
                self.gw.rerank.forget()
            log.warning("rerank degraded", extra={"code": exc.code.name, "error": exc.message})
            ctx.degraded.append("rerank")
            self.gw.observe_degraded("rerank", exc.code.name)
            return None
        self.gw.rerank.observe_rerank(len(candidates), time.perf_counter() - t0)
        scores: list[float | None] = [None] * n
        for i, s in zip(usable, res.scores, strict=True):
            scores[i] = s
        order = reorder(scores)
        self.gw.observe_rerank_order(order)
        ctx.hits = [top[i] for i in order] + ctx.hits[n:]
        ctx.rerank_scores = [scores[i] for i in order] + [None] * (len(ctx.hits) - n)
        ctx.reranked = len(usable)
        return None
