"""Assemble and run the gateway: ``vitrine serve gateway``."""

from __future__ import annotations

import asyncio

from gateway.config import GatewayConfig
from gateway.core import Gateway
from gateway.metrics import GatewayMetrics
from gateway.servicer import GatewayServicer
from vitrine.logs import configure_logging
from vitrine.serving.grpc_app import GrpcApp, serve_forever
from vitrine.v1 import gateway_pb2, gateway_pb2_grpc

SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name


class GatewayServer:
    def __init__(self, config: GatewayConfig):
        self.config = config
        self.app = GrpcApp(config, "gateway")
        self.gw_metrics = GatewayMetrics(self.app.registry)
        self.gateway: Gateway | None = None

    @property
    def port(self) -> int | None:
        return self.app.port

    @property
    def metrics_port(self) -> int | None:
        return self.app.metrics_port

    def _build(self) -> None:
        # grpc.aio channels bind to the running loop: create the clients on it.
        self.gateway = Gateway(self.config, self.gw_metrics.observe_stage)
        servicer = GatewayServicer(self.gateway, self.app.rpc_metrics, self.gw_metrics)
        self.app.add_service(
            SERVICE, gateway_pb2_grpc.add_SearchServiceServicer_to_server, servicer
        )

    async def _ready(self) -> None:
        await self.gateway.encoder.wait_ready(30)

    async def start(self) -> None:
        self._build()
        await self.app.start()
        await self._ready()
        await self.app.set_ready(True)

    async def stop(self, grace_s: float | None = None) -> None:
        await self.app.stop(grace_s)
        if self.gateway:
            await self.gateway.close()

    async def run(self, ready_file: str | None = None) -> None:
        self._build()

        async def close():
            await self.gateway.close()

        await serve_forever(self.app, self._ready, close, ready_file)


def main(config: GatewayConfig, ready_file: str | None = None) -> None:
    configure_logging(config.log_level, config.log_format)
    asyncio.run(GatewayServer(config).run(ready_file))
