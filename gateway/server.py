"""Assemble and run the gateway: ``vitrine serve gateway``."""

from __future__ import annotations

import logging

from gateway.auth import KeyStore
from gateway.auth_interceptor import AuthInterceptor
from gateway.config import GatewayConfig
from gateway.core import Gateway
from gateway.metrics import GatewayMetrics
from gateway.servicer import GatewayServicer
from vitrine.serving.grpc_app import ServiceServer
from vitrine.serving.metrics import HttpMetrics
from vitrine.serving.tls import is_loopback
from vitrine.v1 import gateway_pb2, gateway_pb2_grpc

log = logging.getLogger("vitrine.gateway")
SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name


class GatewayServer(ServiceServer):
    service_name = "gateway"

    def __init__(self, config: GatewayConfig):
        super().__init__(config)
        self.gw_metrics = GatewayMetrics(self.app.registry)
        self.gateway: Gateway | None = None
        self.servicer: GatewayServicer | None = None
        self.http = None  # the HTTP/JSON API (gateway.http_app.HttpApi) when http_port >= 0
        self.keys: KeyStore | None = None
        if config.api_keys_file:
            self.keys = KeyStore.load(
                config.api_keys_file, config.api_key_rate_per_s, config.api_key_burst
            )
        elif not is_loopback(config.host):
            log.warning(
                "API keys are off (api_keys_file is empty) on a non-loopback host: any caller "
                "can search, write and delete",
                extra={"host": config.host},
            )
        # Auth (when on) and the audit log of writes (always), on every call before the servicer.
        self.app.interceptors.append(AuthInterceptor(self.keys, self.gw_metrics, config.collection))

    def build(self) -> None:
        # grpc.aio channels bind to the running loop: the clients are created here, on it.
        self.gateway = Gateway(self.config, self.gw_metrics)
        servicer = GatewayServicer(self.gateway, self.app.rpc_metrics, self.gw_metrics)
        self.servicer = servicer
        self.app.add_service(
            SERVICE, gateway_pb2_grpc.add_SearchServiceServicer_to_server, servicer
        )

    @property
    def http_port(self) -> int | None:
        return self.http.port if self.http is not None else None

    async def on_start(self) -> None:
        if self.config.http_port >= 0:
            # The same Gateway and servicer as gRPC, in this process (docs/http-api.md). Started
            # before the encoder wait, so /healthz answers and /readyz says NOT_SERVING meanwhile.
            from gateway.http_app import HttpApi

            self.http = HttpApi(
                self.servicer,
                self.config,
                self.keys,
                self.gw_metrics,
                HttpMetrics(self.app.registry, "gateway"),
                self.app.health,
            )
            self.app.ready_info["http_port"] = await self.http.start()
        await self.gateway.encoder.wait_ready(30)

    async def on_close(self) -> None:
        if self.http is not None:
            await self.http.stop()
        await self.gateway.close()


def main(config: GatewayConfig, ready_file: str | None = None) -> None:
    GatewayServer.main(config, ready_file)
