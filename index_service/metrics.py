"""Index-specific Prometheus metrics (labelled by collection name, never by record id)."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from vitrine.serving.metrics import LATENCY_BUCKETS


class IndexMetrics:
    def __init__(self, registry: CollectorRegistry):
        self.search_time = Histogram(
            "vitrine_index_search_duration_seconds",
            "Search time inside the service (all shards, merge included).",
            ["collection", "mode"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.queries = Counter(
            "vitrine_index_queries_total",
            "Queries searched (vectors or lexical texts).",
            ["collection", "mode"],
            registry=registry,
        )
        self.search_batch = Histogram(
            "vitrine_index_search_batch_requests",
            "Search requests answered by one shared faiss call (cross-request coalescing).",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=registry,
        )
        self.upserted = Counter(
            "vitrine_index_upserted_records_total",
            "Records written (acknowledged after fsync).",
            ["collection"],
            registry=registry,
        )
        self.deleted = Counter(
            "vitrine_index_deleted_records_total",
            "Records deleted.",
            ["collection"],
            registry=registry,
        )
        self.commit_group = Histogram(
            "vitrine_index_wal_group_requests",
            "Write requests made durable by one WAL fsync (group commit).",
            ["collection"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=registry,
        )
        self.records = Gauge(
            "vitrine_index_records",
            "Live records in local shards.",
            ["collection"],
            registry=registry,
        )
        self.tombstones = Gauge(
            "vitrine_index_tombstones",
            "Deleted/replaced records awaiting compaction.",
            ["collection"],
            registry=registry,
        )
        self.memory = Gauge(
            "vitrine_index_memory_bytes",
            "Approximate memory of local shards (vectors, index, masks).",
            ["collection"],
            registry=registry,
        )
        self.recovery = Gauge(
            "vitrine_index_recovery_duration_seconds",
            "Start-up time spent loading the snapshot and replaying the WAL.",
            ["collection"],
            registry=registry,
        )
        self.lexical_documents = Gauge(
            "vitrine_index_lexical_documents",
            "Records of the local shards in the lexical (full-text) index.",
            ["collection"],
            registry=registry,
        )
        self.in_sync = Gauge(
            "vitrine_index_replica_in_sync",
            "1 when this replica serves reads of the collection (primary, or caught up).",
            ["collection"],
            registry=registry,
        )
        self.applied_seq = Gauge(
            "vitrine_index_replica_applied_seq",
            "Last log sequence number durable here (compare replicas for the lag).",
            ["collection"],
            registry=registry,
        )
        self.rebuilds = Gauge(
            "vitrine_index_rebuilds",
            "Background rebuilds (compaction/training) completed since start.",
            ["collection"],
            registry=registry,
        )

    def watch_replication(self, replication, registry: CollectorRegistry) -> None:
        """Role, term and per-collection progress, read at each scrape."""
        Gauge(
            "vitrine_index_replica_primary",
            "1 while this process is its replica group's primary (takes writes), else 0.",
            registry=registry,
        ).set_function(lambda: float(replication.role == 1))
        Gauge(
            "vitrine_index_replica_term",
            "Term of the replica group's current primary (grows at each failover).",
            registry=registry,
        ).set_function(lambda: float(replication.term))
        Gauge(
            "vitrine_index_replica_role_changes",
            "Role changes (primary/follower) since start.",
            registry=registry,
        ).set_function(lambda: float(replication.role_changes))
        self._replication = replication

    def observe_batch(self, requests: int, rows: int) -> None:
        self.search_batch.observe(requests)

    def refresh(self, collection) -> None:
        name = collection.meta.name
        shards = collection.shards.values()
        self.records.labels(name).set(collection.count())
        self.tombstones.labels(name).set(sum(s.state.tombstones for s in shards))
        self.memory.labels(name).set(sum(s.memory_bytes() for s in shards))
        self.recovery.labels(name).set(collection.recovery_seconds)
        self.rebuilds.labels(name).set(sum(s.compactions for s in shards))
        self.lexical_documents.labels(name).set(collection.lexical_count())
        self.in_sync.labels(name).set(float(collection.in_sync))
        self.applied_seq.labels(name).set(collection.replog.durable_seq)
        sizes, collection.group_sizes = collection.group_sizes, []
        for n in sizes:
            self.commit_group.labels(name).observe(n)

    def forget(self, name: str) -> None:
        gauges = (self.records, self.tombstones, self.memory, self.recovery, self.rebuilds)
        for metric in (*gauges, self.lexical_documents, self.in_sync, self.applied_seq):
            with contextlib.suppress(KeyError):
                metric.remove(name)
