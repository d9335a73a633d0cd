"""Client plumbing shared by the service clients: channels and typed errors.

Each service client comes in two flavours over the same stub: a blocking one (``grpc`` channel)
and an asyncio one (``grpc.aio`` channel). Both raise :mod:`vitrine.serving.errors` types.
``tls`` (a :class:`~vitrine.serving.tls.ClientTLS`) makes the channel TLS (mTLS with a client
certificate), else it is plaintext; ``api_key`` is sent with every call as
``authorization: Bearer <key>``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc

from vitrine.serving import tls as _tls
from vitrine.serving.errors import from_rpc_error
from vitrine.serving.tls import ClientTLS

DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024


def channel_options(max_message: int = DEFAULT_MAX_MESSAGE) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", max_message),
        ("grpc.max_send_message_length", max_message),
        ("grpc.keepalive_time_ms", 30_000),
        # A restarted or failed-over peer is reached again within ~2 s (gRPC's default backoff
        # grows to 120 s, which would keep a returning replica out of use for minutes).
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2_000),
        # A target that resolves to several addresses (a headless Kubernetes Service, a
        # "dns:///" name) gets a connection to each and round-robin calls over them, so replicas
        # an autoscaler adds take load (servers' max_connection_age makes clients re-resolve).
        ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
    ]


def _metadata(api_key: str | None) -> tuple[tuple[str, str], ...] | None:
    return (("authorization", f"Bearer {api_key}"),) if api_key else None


class SyncClientBase:
    """Owns a blocking channel and a stub; calls raise typed errors."""

    stub_class: Callable[[grpc.Channel], Any]

    def __init__(
        self,
        target: str,
        *,
        timeout: float | None = 30.0,
        channel=None,
        tls: ClientTLS | None = None,
        api_key: str | None = None,
    ):
        self.target = target
        self.timeout = timeout
        self.tls = tls
        self._metadata = _metadata(api_key)
        self._own = channel is None
        self.channel = channel or _tls.channel(target, tls, channel_options())
        self.stub = self.stub_class(self.channel)

    def _call(self, method: str, request, timeout: float | None = None):
        try:
            return getattr(self.stub, method)(
                request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=self._metadata,
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

    def __init__(
        self,
        target: str,
        *,
        timeout: float | None = 30.0,
        channel=None,
        tls: ClientTLS | None = None,
        api_key: str | None = None,
    ):
        self.target = target
        self.timeout = timeout
        self.tls = tls
        self._metadata = _metadata(api_key)
        self._own = channel is None
        self.channel = channel or _tls.aio_channel(target, tls, channel_options())
        self.stub = self.stub_class(self.channel)

    async def _call(self, method: str, request, timeout: float | None = None):
        try:
            return await getattr(self.stub, method)(
                request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=self._metadata,
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
