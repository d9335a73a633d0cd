"""Assemble and run the index service: ``vitrine serve index``."""

from __future__ import annotations

import asyncio

from index_service.config import IndexConfig
from index_service.core import IndexStore
from index_service.metrics import IndexMetrics
from index_service.servicer import IndexServicer
from vitrine.logs import configure_logging
from vitrine.serving.grpc_app import GrpcApp, serve_forever
from vitrine.v1 import index_pb2, index_pb2_grpc

SERVICE = index_pb2.DESCRIPTOR.services_by_name["IndexService"].full_name


class IndexServer:
    """The index service in one object: tests start it in-process on port 0."""

    def __init__(self, config: IndexConfig):
        self.config = config
        self.app = GrpcApp(config, "index")
        self.store = IndexStore(config)
        self.index_metrics = IndexMetrics(self.app.registry)
        self.servicer = IndexServicer(self.store, self.app.rpc_metrics, self.index_metrics)
        self.app.add_service(
            SERVICE, index_pb2_grpc.add_IndexServiceServicer_to_server, self.servicer
        )

    @property
    def port(self) -> int | None:
        return self.app.port

    @property
    def metrics_port(self) -> int | None:
        return self.app.metrics_port

    async def _start_store(self) -> None:
        await self.store.start()
        for c in self.store.collections.values():
            self.index_metrics.refresh(c)

    async def start(self) -> None:
        await self.app.start()
        await self._start_store()
        await self.app.set_ready(True)

    async def stop(self, grace_s: float | None = None) -> None:
        await self.app.stop(grace_s)
        await self.store.close()

    async def run(self, ready_file: str | None = None) -> None:
        await serve_forever(self.app, self._start_store, self.store.close, ready_file)


def main(config: IndexConfig, ready_file: str | None = None) -> None:
    configure_logging(config.log_level, config.log_format)
    asyncio.run(IndexServer(config).run(ready_file))
