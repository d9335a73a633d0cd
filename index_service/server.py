"""Assemble and run the index service: ``vitrine serve index``."""

from __future__ import annotations

from index_service.config import IndexConfig
from index_service.core import IndexStore
from index_service.metrics import IndexMetrics
from index_service.servicer import IndexServicer
from vitrine.serving.grpc_app import ServiceServer
from vitrine.v1 import index_pb2, index_pb2_grpc

SERVICE = index_pb2.DESCRIPTOR.services_by_name["IndexService"].full_name


class IndexServer(ServiceServer):
    service_name = "index"

    def __init__(self, config: IndexConfig):
        super().__init__(config)
        self.store = IndexStore(config)
        self.index_metrics = IndexMetrics(self.app.registry)
        self.store.coalescer.on_batch = self.index_metrics.observe_batch

    def build(self) -> None:
        servicer = IndexServicer(self.store, self.app.rpc_metrics, self.index_metrics)
        self.app.add_service(SERVICE, index_pb2_grpc.add_IndexServiceServicer_to_server, servicer)

    async def on_start(self) -> None:
        await self.store.start()
        for c in self.store.collections.values():
            self.index_metrics.refresh(c)

    async def on_close(self) -> None:
        await self.store.close()


def main(config: IndexConfig, ready_file: str | None = None) -> None:
    IndexServer.main(config, ready_file)
