"""Requests that do not decode end ``INVALID_ARGUMENT``, not ``UNKNOWN``.

grpc.aio decodes a request before any servicer code runs; a ``DecodeError`` there (corrupt wire
bytes, invalid UTF-8 in a string field, nesting deeper than protobuf's limit) is answered UNKNOWN
with the exception's class name and logged by grpc as an error. This interceptor swaps in a
deserializer that returns a marker instead of raising, and the wrapped behaviour aborts with
INVALID_ARGUMENT naming the request type when it meets one (for client streams: when that
message is read). Found by ``benchmarks/fuzz.py``.
"""

from __future__ import annotations

import grpc


class _Undecodable:
    __slots__ = ("error",)

    def __init__(self, error: Exception):
        self.error = error


def _lenient(deserialize):
    def decode(data: bytes):
        try:
            return deserialize(data)
        except Exception as exc:  # DecodeError, RecursionError
            return _Undecodable(exc)

    return decode


async def _refuse(context, method: str, bad: _Undecodable) -> None:
    await context.abort(
        grpc.StatusCode.INVALID_ARGUMENT,
        f"request: not a valid {method.rpartition('/')[2]} request ({bad.error})",
    )


class DecodeErrorInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = details.method
        kw = {
            "request_deserializer": _lenient(handler.request_deserializer),
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary:
            inner_uu = handler.unary_unary

            async def unary_unary(request, context):
                if isinstance(request, _Undecodable):
                    await _refuse(context, method, request)
                return await inner_uu(request, context)

            return grpc.unary_unary_rpc_method_handler(unary_unary, **kw)
        if handler.unary_stream:
            inner_us = handler.unary_stream

            async def unary_stream(request, context):
                if isinstance(request, _Undecodable):
                    await _refuse(context, method, request)
                async for response in inner_us(request, context):
                    yield response

            return grpc.unary_stream_rpc_method_handler(unary_stream, **kw)
        if handler.stream_unary:
            inner_su = handler.stream_unary

            async def stream_unary(request_iterator, context):
                async def checked():
                    async for message in request_iterator:
                        if isinstance(message, _Undecodable):
                            await _refuse(context, method, message)
                        yield message

                return await inner_su(checked(), context)

            return grpc.stream_unary_rpc_method_handler(stream_unary, **kw)
        return handler  # bidirectional streams: none in the Vitrine APIs
