"""Gateway metrics: per-stage latency, ingest outcomes, API-key checks, retrieval quality.

The retrieval-quality metrics (docs/operations.md) carry only bounded labels: the query kind
(``text``, ``image``, ``composite``) and the filter's shape (:func:`filter_shape`), never
field names, values or product ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from vitrine.serving.metrics import LATENCY_BUCKETS

FILTER_SHAPES = ("none", "equals", "in", "range", "not", "compound")
QUERY_KINDS = ("text", "image", "composite")
SIMILARITY_BUCKETS = (0.1, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9, 1.0)
DISAGREEMENT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)


def filter_shape(f) -> str:
    """The shape of a ``vitrine.v1.Filter``, one of :data:`FILTER_SHAPES`.

    An ``all_of``/``any_of`` of one sub-filter has that sub-filter's shape (the CLI wraps every
    filter in ``all_of``); an empty ``all_of`` matches everything: ``none``.
    """
    while f is not None:
        kind = f.WhichOneof("expr")
        if kind is None:
            return "none"
        if kind in ("all_of", "any_of"):
            subs = getattr(f, kind).filters
            if len(subs) == 0:
                return "none" if kind == "all_of" else "compound"
            if len(subs) > 1:
                return "compound"
            f = subs[0]
        elif kind == "negation":
            inner = filter_shape(f.negation.filter)
            return "not" if inner in ("equals", "in", "range") else "compound"
        else:
            return {"equals": "equals", "is_in": "in", "range": "range"}[kind]
    return "none"


def query_kind(text: str, image: bytes) -> str:
    return "composite" if text and image else "text" if text else "image"


def spearman(order: Sequence[int]) -> float:
    """Spearman's rank correlation between positions ``0..n-1`` (the retrieval order) and
    ``order`` (``order[j]`` = the retrieval position of the j-th reranked result); 1: unchanged,
    -1: reversed."""
    n = len(order)
    d = np.asarray(order, dtype=np.float64) - np.arange(n)
    return 1.0 - 6.0 * float(d @ d) / (n * (n * n - 1))


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.stage_time = Histogram(
            "vitrine_gateway_stage_duration_seconds",
            "Time spent in one search pipeline stage.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.partial = Counter(
            "vitrine_gateway_partial_results_total",
            "Searches answered with partial results (an index endpoint failed).",
            registry=registry,
        )
        self.reranked = Histogram(
            "vitrine_gateway_reranked_candidates",
            "Candidates the rerank stage reordered per search.",
            buckets=(1, 5, 10, 20, 30, 50, 75, 100, 150, 200),
            registry=registry,
        )
        self.degraded = Counter(
            "vitrine_gateway_degraded_stages_total",
            "Stages skipped in a search (the answer fell back), by stage and reason.",
            ["stage", "reason"],
            registry=registry,
        )
        self.embed_cache = Counter(
            "vitrine_gateway_embedding_cache_lookups_total",
            "Query-embedding cache lookups of text queries, by result (hit, miss).",
            ["result"],
            registry=registry,
        )
        self.ingested = Counter(
            "vitrine_gateway_ingested_products_total",
            "Products processed by upsert/ingest, by outcome code.",
            ["code"],
            registry=registry,
        )

        self.auth = Counter(
            "vitrine_gateway_auth_requests_total",
            "Gated calls by the scope they need and the outcome of the API-key check (ok, "
            "unauthenticated, permission_denied, rate_limited); never by key.",
            ["scope", "outcome"],
            registry=registry,
        )

        # -- retrieval quality (first pages of searches; docs/operations.md) ----------------------
        self.searches = Counter(
            "vitrine_gateway_searches_total",
            "Searches answered (first pages), by query kind and filter shape.",
            ["query", "filter_shape"],
            registry=registry,
        )
        self.empty = Counter(
            "vitrine_gateway_empty_results_total",
            "Searches answered (first pages) with no result at all, by query kind and filter shape.",
            ["query", "filter_shape"],
            registry=registry,
        )
        self.top_similarity = Histogram(
            "vitrine_gateway_search_top_similarity",
            "Cosine similarity of the best vector-search hit to the query, per search with a "
            "vector search and at least one hit.",
            ["query"],
            buckets=SIMILARITY_BUCKETS,
            registry=registry,
        )
        self.low_similarity = Counter(
            "vitrine_gateway_low_similarity_searches_total",
            "Searches whose best vector-search hit is less similar to the query than "
            "low_similarity_threshold (no good answer in the catalog).",
            ["query"],
            registry=registry,
        )
        self.rerank_top_changed = Counter(
            "vitrine_gateway_rerank_top1_changed_total",
            "Reranked searches whose first result is not retrieval's first.",
            registry=registry,
        )
        # (1 - Spearman's rho) / 2 rather than rho: a histogram of negative values has no _sum,
        # and the mean is what the dashboard shows.
        self.rerank_disagreement = Histogram(
            "vitrine_gateway_rerank_disagreement_ratio",
            "How much the rerank stage reordered its candidates: (1 - Spearman correlation of the "
            "retrieval and reranked orders) / 2; 0 kept, 0.5 unrelated, 1 reversed.",
            buckets=DISAGREEMENT_BUCKETS,
            registry=registry,
        )

    def observe_search(
        self,
        query: str,
        shape: str,
        hits: int,
        top_similarity: float | None,
        threshold: float,
    ) -> None:
        """One answered search (first page): ``hits`` found, the best vector hit's cosine."""
        self.searches.labels(query, shape).inc()
        if hits == 0:
            self.empty.labels(query, shape).inc()
        if top_similarity is not None:
            self.top_similarity.labels(query).observe(top_similarity)
            if top_similarity < threshold:
                self.low_similarity.labels(query).inc()

    def observe_rerank_order(self, order: Sequence[int]) -> None:
        """``order[j]``: the retrieval position of the j-th result after reranking."""
        if len(order) == 0:
            return
        if order[0] != 0:
            self.rerank_top_changed.inc()
        if len(order) > 1:
            self.rerank_disagreement.observe(max(0.0, (1.0 - spearman(order)) / 2))

    def observe_cache(self, hit: bool) -> None:
        self.embed_cache.labels("hit" if hit else "miss").inc()

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_time.labels(stage).observe(seconds)
