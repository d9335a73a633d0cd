"""Client plumbing shared by the service clients: channels and typed errors.

Each service client comes in two flavours over the same stub: a blocking one (``grpc`` channel)
and an asyncio one (``grpc.aio`` channel). Both raise :mod:`vitrine.serving.errors` types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from vitrine.serving.errors import from_rpc_error

DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024


def channel_options(max_message: int = DEFAULT_MAX_MESSAGE) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", max_message),
        ("grpc.max_send_message_length", max_message),
        ("grpc.keepalive_time_ms", 30_000),
    ]


class SyncClientBase:
    """Owns a blocking channel and a stub; calls raise typed errors."""

    stub_class: Callable[[grpc.Channel], Any]

    def __init__(self, target: str, *, timeout: float | None = 30.0, channel=None):
        self.target = target
        self.timeout = timeout
        self._own = channel is None
        self.channel = channel or grpc.insecure_channel(target, options=channel_options())
        self.stub = self.stub_class(self.channel)

    def _call(self, method: str, request, timeout: float | None = None):
        try:
            return getattr(self.stub, method)(
                request, timeout=self.timeout if timeout is None else timeout
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def wait_ready(self, timeout: float = 30.0) -> None:
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def close(self) -> None:
        if self._own:
            self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncClientBase:
    """Owns a ``grpc.aio`` channel and a stub; calls raise typed errors."""

    stub_class: Callable[[grpc.aio.Channel], Any]

    def __init__(self, target: str, *, timeout: float | None = 30.0, channel=None):
        self.target = target
        self.timeout = timeout
        self._own = channel is None
        self.channel = channel or grpc.aio.insecure_channel(target, options=channel_options())
        self.stub = self.stub_class(self.channel)

    async def _call(self, method: str, request, timeout: float | None = None):
        try:
            return await getattr(self.stub, method)(
                request, timeout=self.timeout if timeout is None else timeout
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    async def wait_ready(self, timeout: float = 30.0) -> None:
        import asyncio

        await asyncio.wait_for(self.channel.channel_ready(), timeout)

    async def close(self) -> None:
        if self._own:
            await self.channel.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
