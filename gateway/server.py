"""Assemble and run the gateway: ``vitrine serve gateway``."""

from __future__ import annotations

from gateway.config import GatewayConfig
from gateway.core import Gateway
from gateway.metrics import GatewayMetrics
from gateway.servicer import GatewayServicer
from vitrine.serving.grpc_app import ServiceServer
from vitrine.v1 import gateway_pb2, gateway_pb2_grpc

SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name


class GatewayServer(ServiceServer):
    service_name = "gateway"

    def __init__(self, config: GatewayConfig):
        super().__init__(config)
        self.gw_metrics = GatewayMetrics(self.app.registry)
        self.gateway: Gateway | None = None

    def build(self) -> None:
        # grpc.aio channels bind to the running loop: the clients are created here, on it.
        self.gateway = Gateway(self.config, self.gw_metrics)
        servicer = GatewayServicer(self.gateway, self.app.rpc_metrics, self.gw_metrics)
        self.app.add_service(
            SERVICE, gateway_pb2_grpc.add_SearchServiceServicer_to_server, servicer
        )

    async def on_start(self) -> None:
        await self.gateway.encoder.wait_ready(30)

    async def on_close(self) -> None:
        await self.gateway.close()


def main(config: GatewayConfig, ready_file: str | None = None) -> None:
    GatewayServer.main(config, ready_file)
