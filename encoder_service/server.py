"""Assemble and run the encoder service: ``vitrine serve encoder``."""

from __future__ import annotations

import asyncio

from encoder_service.config import EncoderConfig
from encoder_service.core import Encoder
from encoder_service.servicer import EncoderServicer
from vitrine.logs import configure_logging
from vitrine.serving.grpc_app import GrpcApp, serve_forever
from vitrine.v1 import encoder_pb2, encoder_pb2_grpc

SERVICE = encoder_pb2.DESCRIPTOR.services_by_name["EncoderService"].full_name


class EncoderServer:
    """The encoder service in one object: tests start it in-process on port 0."""

    def __init__(self, config: EncoderConfig):
        self.config = config
        self.app = GrpcApp(config, "encoder")
        self.encoder = Encoder(config, self.app.registry)
        self.servicer = EncoderServicer(self.encoder, self.app.rpc_metrics)
        self.app.add_service(
            SERVICE, encoder_pb2_grpc.add_EncoderServiceServicer_to_server, self.servicer
        )

    @property
    def port(self) -> int | None:
        return self.app.port

    @property
    def metrics_port(self) -> int | None:
        return self.app.metrics_port

    async def start(self) -> None:
        """Bind, load the models, report ready."""
        await self.app.start()
        await self.encoder.start()
        await self.app.set_ready(True)

    async def stop(self, grace_s: float | None = None) -> None:
        await self.app.stop(grace_s)
        await self.encoder.close()

    async def run(self, ready_file: str | None = None) -> None:
        await serve_forever(self.app, self.encoder.start, self.encoder.close, ready_file)


def main(config: EncoderConfig, ready_file: str | None = None) -> None:
    configure_logging(config.log_level, config.log_format)
    asyncio.run(EncoderServer(config).run(ready_file))
