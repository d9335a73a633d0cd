"""Encoder-specific Prometheus metrics (per model name; versions are not labels)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from encoder_service.batcher import BatchStats
from vitrine.serving.metrics import LATENCY_BUCKETS

BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 256)


class EncoderMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.queue_time = Histogram(
            "vitrine_encoder_queue_duration_seconds",
            "Time a request waited in the batching queue before its batch started.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.compute_time = Histogram(
            "vitrine_encoder_compute_duration_seconds",
            "Inference time of one batch execution.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.preprocess_time = Histogram(
            "vitrine_encoder_preprocess_duration_seconds",
            "Per-request preprocessing time (tokenisation or image decode/resize).",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "vitrine_encoder_batch_size_items",
            "Items per inference execution (requests merged by dynamic batching).",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.items = Counter(
            "vitrine_encoder_items_inferred_total",
            "Items run through a model.",
            ["model"],
            registry=registry,
        )
        self.executions = Counter(
            "vitrine_encoder_executions_total",
            "Inference executions (batches) run.",
            ["model"],
            registry=registry,
        )
        self.dropped = Counter(
            "vitrine_encoder_dropped_items_total",
            "Items dropped before inference: queue_full, deadline, cancelled.",
            ["model", "reason"],
            registry=registry,
        )
        self.load_failures = Counter(
            "vitrine_encoder_model_load_failures_total",
            "Model versions that failed to load (LoadModel, start-up or repository polling).",
            ["model"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "vitrine_encoder_queue_items",
            "Items waiting in the batching queue.",
            ["model"],
            registry=registry,
        )
        self.step_rows = Histogram(
            "vitrine_encoder_decode_step_rows",
            "Hypotheses per caption decoder-step execution (all requests in flight share it).",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.step_time = Histogram(
            "vitrine_encoder_decode_step_duration_seconds",
            "Time of one caption decoder-step execution.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.loaded = Gauge(
            "vitrine_encoder_loaded_versions",
            "Loaded versions per model.",
            ["model"],
            registry=registry,
        )

    def stats_for(self, model: str) -> BatchStats:
        batch = self.batch_size.labels(model)
        compute = self.compute_time.labels(model)
        items = self.items.labels(model)
        executions = self.executions.labels(model)
        queue = self.queue_time.labels(model)
        depth = self.queue_depth.labels(model)
        step_rows, step_time = self.step_rows.labels(model), self.step_time.labels(model)

        def on_batch(n: int, seconds: float) -> None:
            batch.observe(n)
            compute.observe(seconds)
            items.inc(n)
            executions.inc()

        return BatchStats(
            on_batch=on_batch,
            on_queue_time=queue.observe,
            on_dropped=lambda reason, n: self.dropped.labels(model, reason).inc(n),
            on_queue_depth=depth.set,
            on_step=lambda rows, seconds: (step_rows.observe(rows), step_time.observe(seconds)),
        )
