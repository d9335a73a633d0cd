"""Index service settings (flags, ``VITRINE_*`` env, YAML; see :mod:`vitrine.serving.config`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from index_service import devices
from vitrine.serving.config import ConfigError, ServerConfig


@dataclass
class IndexConfig(ServerConfig):
    port: int = 50052
    metrics_port: int = 9402
    data_dir: str = "data/index"
    fsync: bool = True  # fsync the WAL before acknowledging writes (turn off only for tests)
    snapshot_wal_mb: int = 256  # snapshot once the WAL has grown this much
    compact_ratio: float = 0.2  # rebuild a shard once this fraction of its labels are tombstones
    exact_max: int = 2_000  # filtered searches selecting at most this many records run exactly
    search_threads: int = 0  # threads searching shards in parallel; 0 = cores
    index_device: str = "auto"  # auto | cpu | gpu: where shard indexes live (index_service.devices)
    search_batch_rows: int = 64  # concurrent queries coalesced into one faiss call; <= 1 = off
    max_k: int = 1024
    max_queries: int = 1024
    max_records_per_request: int = 10_000
    max_payload_bytes: int = 64 * 1024  # largest Record.payload accepted
    # Replication (index_service.replication): the processes of a replica group hold the same
    # shards; one primary orders writes, the others follow. "" = a standalone process.
    replica_group: str = ""
    replicas: int = 1  # processes in the group: the default replication factor of collections
    advertise_address: str = ""  # how the group's members reach this one (default host:port)
    member_id: str = ""  # unique in the group (default: the advertised address)
    coordinator: str = ""  # etcd endpoints (http://host:2379[,...]); "" = none
    primary_address: str = ""  # without a coordinator: the group's fixed primary
    lease_ttl_s: int = 2  # etcd lease of members and the primary (failover takes about this)
    replication_timeout_s: float = 5.0  # a write waits this long for a follower's acknowledgement
    fetch_wait_ms: int = 500  # a follower's long-poll for new entries
    replication_log_mb: int = 64  # newest log entries kept in memory for followers (older: WAL)

    def validate(self) -> None:
        super().validate()
        if self.snapshot_wal_mb < 1:
            raise ConfigError("snapshot_wal_mb: must be >= 1")
        if not 0 < self.compact_ratio < 1:
            raise ConfigError("compact_ratio: must be between 0 and 1")
        if self.exact_max < 0 or self.search_threads < 0:
            raise ConfigError("exact_max/search_threads: must be >= 0")
        devices.resolve(self.index_device)  # unknown value, or "gpu" without one: ConfigError
        if self.max_k < 1 or self.max_queries < 1 or self.max_records_per_request < 1:
            raise ConfigError("max_k/max_queries/max_records_per_request: must be >= 1")
        if self.max_payload_bytes < 0:
            raise ConfigError("max_payload_bytes: must be >= 0")
        if not 1 <= self.replicas <= 16:
            raise ConfigError("replicas: must be in 1..16")
        if self.replicas > 1 and not self.replica_group:
            raise ConfigError("replica_group: required when replicas > 1")
        if self.coordinator and not self.coordinator.startswith(("http://", "https://")):
            raise ConfigError("coordinator: etcd endpoints as http(s)://host:port[,...]")
        if self.replication_log_mb < 0:
            raise ConfigError("replication_log_mb: must be >= 0")
        if self.lease_ttl_s < 1 or self.replication_timeout_s <= 0 or self.fetch_wait_ms < 0:
            raise ConfigError("lease_ttl_s/replication_timeout_s/fetch_wait_ms: out of range")

    @property
    def threads(self) -> int:
        return self.search_threads or (os.cpu_count() or 1)
