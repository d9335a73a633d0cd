"""Gateway metrics: per-stage latency, ingest outcomes, API-key checks."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from vitrine.serving.metrics import LATENCY_BUCKETS


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

    def observe_cache(self, hit: bool) -> None:
        self.embed_cache.labels("hit" if hit else "miss").inc()

    def observe_stage(self, stage: str, seconds: float) -> None:
        self.stage_time.labels(stage).observe(seconds)
