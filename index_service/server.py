"""Assemble and run the index service: ``vitrine serve index``."""

from __future__ import annotations

import asyncio
import contextlib

from index_service.config import IndexConfig
from index_service.coordination import make_coordinator
from index_service.core import IndexStore
from index_service.metrics import IndexMetrics
from index_service.replication import Replication
from index_service.servicer import IndexServicer, ReplicationServicer
from vitrine.serving import tls
from vitrine.serving.client import channel_options
from vitrine.serving.grpc_app import ServiceServer
from vitrine.v1 import index_pb2, index_pb2_grpc, replication_pb2, replication_pb2_grpc

SERVICE = index_pb2.DESCRIPTOR.services_by_name["IndexService"].full_name
REPLICATION = replication_pb2.DESCRIPTOR.services_by_name["ReplicationService"].full_name


class IndexServer(ServiceServer):
    service_name = "index"

    def __init__(self, config: IndexConfig):
        super().__init__(config)
        self.store = IndexStore(config)
        self.index_metrics = IndexMetrics(self.app.registry)
        self.store.coalescer.on_batch = self.index_metrics.observe_batch
        self.replication: Replication | None = None
        self.coordinator = None
        self._coordination: asyncio.Task | None = None

    def build(self) -> None:
        # Built on the serving loop: the replication's channels and conditions bind to it.
        self.replication = Replication(self.store, self.config, self._channel)
        self.store.replication = self.replication
        servicer = IndexServicer(self.store, self.app.rpc_metrics, self.index_metrics)
        self.app.add_service(SERVICE, index_pb2_grpc.add_IndexServiceServicer_to_server, servicer)
        self.app.add_service(
            REPLICATION,
            replication_pb2_grpc.add_ReplicationServiceServicer_to_server,
            ReplicationServicer(self.replication, self.app.rpc_metrics),
        )

    def _channel(self, target: str):
        return tls.aio_channel(target, self.config.client_tls(), channel_options())

    async def on_start(self) -> None:
        await self.store.start()
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "::", "") else self.config.host
        self.replication.start(f"{host}:{self.port}")
        self.index_metrics.watch_replication(self.replication, self.app.registry)
        self.replication.on_applied = self.index_metrics.refresh
        for c in self.store.collections.values():
            self.index_metrics.refresh(c)
        self.coordinator = make_coordinator(self.replication, self.config)
        if self.coordinator is not None:
            self._coordination = asyncio.create_task(self.coordinator.run())

    async def on_close(self) -> None:
        if self._coordination is not None:
            self._coordination.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._coordination
        if self.coordinator is not None and hasattr(self.coordinator, "resign"):
            await self.coordinator.resign()
        await self.replication.close()
        await self.store.close()


def main(config: IndexConfig, ready_file: str | None = None) -> None:
    IndexServer.main(config, ready_file)
