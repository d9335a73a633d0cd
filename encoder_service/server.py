"""Assemble and run the encoder service: ``vitrine serve encoder``."""

from __future__ import annotations

from encoder_service.config import EncoderConfig
from encoder_service.core import Encoder
from encoder_service.servicer import EncoderServicer
from vitrine.serving.grpc_app import ServiceServer
from vitrine.v1 import encoder_pb2, encoder_pb2_grpc

SERVICE = encoder_pb2.DESCRIPTOR.services_by_name["EncoderService"].full_name


class EncoderServer(ServiceServer):
    service_name = "encoder"

    def __init__(self, config: EncoderConfig):
        super().__init__(config)
        self.encoder = Encoder(config, self.app.registry)

    def build(self) -> None:
        servicer = EncoderServicer(self.encoder, self.app.rpc_metrics)
        self.app.add_service(
            SERVICE, encoder_pb2_grpc.add_EncoderServiceServicer_to_server, servicer
        )

    async def on_start(self) -> None:
        await self.encoder.start()

    async def on_close(self) -> None:
        await self.encoder.close()


def main(config: EncoderConfig, ready_file: str | None = None) -> None:
    EncoderServer.main(config, ready_file)
