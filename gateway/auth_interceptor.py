"""The gateway's gRPC server interceptor: API keys, scopes, rate limits, the audit log.

Every RPC of ``vitrine.v1.SearchService`` needs a scope (:data:`METHOD_SCOPES`; one missing
from the table needs ``admin``, so a new RPC is closed until someone decides); health and
reflection are never gated. The key comes as metadata ``authorization: Bearer <key>`` (or
``x-api-key: <key>``). A call without a valid key ends ``UNAUTHENTICATED``, one whose key lacks
the scope ``PERMISSION_DENIED``, one over the key's rate ``RESOURCE_EXHAUSTED`` with
``grpc-retry-pushback-ms`` in the trailing metadata — all before the handler runs, so a refused
write never reads its request stream and never reaches the index.

The handler runs with :func:`gateway.auth.current_principal` set (a ContextVar: each grpc.aio
call is its own task, and tasks the handler starts copy it).

Every write (scope ``write`` or ``admin``) — refused ones included, and also with auth off —
writes one line to the ``vitrine.audit`` logger: who (key id, or ``anonymous``), the method, the
collection, how many records the request carried and how many failed, the outcome (status code
name) and the peer. Never the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import grpc

from gateway.auth import (
    ADMIN,
    ANONYMOUS,
    PRINCIPAL,
    SEARCH,
    WRITE,
    KeyStore,
    Principal,
    expand_scopes,
)
from vitrine.serving.errors import (
    RETRY_PUSHBACK_KEY,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    VitrineError,
)

audit_log = logging.getLogger("vitrine.audit")
log = logging.getLogger("vitrine.auth")

GATED_SERVICE = "vitrine.v1.SearchService"
METHOD_SCOPES = {
    "Search": SEARCH,
    "Describe": SEARCH,
    "GetFacets": SEARCH,
    "UpsertProducts": WRITE,
    "IngestProducts": WRITE,
    "DeleteProducts": WRITE,
}
UNGATED_SERVICES = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)
OUTCOMES = {
    Unauthenticated: "unauthenticated",
    PermissionDenied: "permission_denied",
    ResourceExhausted: "rate_limited",
}
ANONYMOUS_PRINCIPAL = Principal(ANONYMOUS, expand_scopes([ADMIN]))  # auth off: everything


def scope_of(full_method: str) -> str | None:
    """The scope ``/package.Service/Method`` needs; None: not gated."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    if service in UNGATED_SERVICES:
        return None
    if service == GATED_SERVICE:
        return METHOD_SCOPES.get(method, ADMIN)
    return ADMIN


def bearer_key(metadata) -> str | None:
    """The API key in ``authorization: Bearer <key>`` or ``x-api-key: <key>`` metadata."""
    api_key = None
    for key, value in metadata or ():
        if isinstance(value, bytes):
            continue
        if key == "authorization":
            scheme, _, token = value.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif key == "x-api-key" and value.strip():
            api_key = value.strip()
    return api_key


def _records(message) -> int:
    """How many products (or ids) one write request carries."""
    for name in ("products", "ids"):
        items = getattr(message, name, None)
        if items is not None:
            return len(items)
    return 0


def _failed(response) -> int:
    if response is None:
        return 0
    if hasattr(response, "failed"):
        return int(response.failed)
    return sum(1 for s in getattr(response, "statuses", ()) if s.code != 0)


def admit(store: KeyStore | None, key: str | None, scope: str, metrics=None) -> Principal:
    """Authenticate ``key``, authorize ``scope``, take a rate-limit token: the caller's principal,
    or the typed refusal (Unauthenticated, PermissionDenied, ResourceExhausted with
    ``retry_after_s``; its ``key_id`` attribute names the key, or ``anonymous``). ``store`` None:
    auth off, everyone is admitted. One definition for the gRPC interceptor and the HTTP API."""
    if store is None:
        return ANONYMOUS_PRINCIPAL
    principal = None
    try:
        principal = store.authenticate(key)
        store.authorize(principal, scope)
        store.limit(principal)
    except (Unauthenticated, PermissionDenied, ResourceExhausted) as exc:
        _count(metrics, scope, OUTCOMES[type(exc)])
        exc.key_id = principal.key_id if principal else ANONYMOUS
        raise
    _count(metrics, scope, "ok")
    return principal


def _count(metrics, scope: str, outcome: str) -> None:
    if metrics is not None:
        metrics.auth.labels(scope, outcome).inc()


def audit(method, scope, key_id, collection, records, failed, outcome, peer, started) -> None:
    """One line of the audit log of writes (``started``: a ``time.perf_counter()`` value)."""
    audit_log.info(
        "write",
        extra={
            "key_id": key_id,
            "method": method,
            "scope": scope,
            "collection": collection,
            "records": records,
            "failed": failed,
            "outcome": outcome,
            "peer": peer,
            "duration_s": round(time.perf_counter() - started, 6),
        },
    )


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """``store`` None: auth off (calls pass; writes are still audited, as ``anonymous``)."""

    def __init__(self, store: KeyStore | None, metrics=None, collection: str = ""):
        """``metrics``: a :class:`gateway.metrics.GatewayMetrics` (optional)."""
        self.store = store
        self.metrics = metrics
        self.collection = collection

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        full = handler_call_details.method
        scope = scope_of(full)
        if handler is None or scope is None:
            return handler
        audited = scope in (WRITE, ADMIN)
        if self.store is None and not audited:
            return handler
        method = full.rpartition("/")[2]
        md = handler_call_details.invocation_metadata
        return self._wrap(handler, method, scope, md, audited)

    def _admit(self, metadata, scope: str) -> Principal:
        """Authenticate, authorize, rate-limit; raises the typed error of the refusal."""
        return admit(self.store, bearer_key(metadata), scope, self.metrics)

    def _audit(self, context, method, scope, key_id, records, failed, outcome, started) -> None:
        peer = context.peer()
        audit(method, scope, key_id, self.collection, records, failed, outcome, peer, started)

    async def _enter(self, context, metadata, method, scope, audited, started) -> Principal:
        """Admit the call or abort it (with the audit line of a refused write)."""
        try:
            return self._admit(metadata, scope)
        except VitrineError as exc:
            if audited:
                who = getattr(exc, "key_id", ANONYMOUS)
                self._audit(context, method, scope, who, 0, 0, exc.code.name, started)
            trailing = ()
            if exc.retry_after_s is not None:
                ms = max(1, round(exc.retry_after_s * 1000))
                trailing = ((RETRY_PUSHBACK_KEY, str(ms)),)
            await context.abort(exc.code, exc.message, trailing_metadata=trailing)
            raise  # pragma: no cover - abort raises

    def _guard(self, behavior: Callable, method: str, scope: str, metadata, audited: bool):
        """A unary-response behaviour with admission before it and the audit line after it."""

        async def guarded(request, context: grpc.aio.ServicerContext):
            started = time.perf_counter()
            counted = [0]
            if hasattr(request, "__aiter__"):  # a request stream: count products as read
                request = _counting(request, counted)
            else:
                counted[0] = _records(request)
            principal = await self._enter(context, metadata, method, scope, audited, started)
            token = PRINCIPAL.set(principal)
            outcome, response = "UNKNOWN", None
            try:
                response = await behavior(request, context)
                outcome = "OK"
                return response
            except grpc.aio.AbortError:
                outcome = context.code().name if context.code() else "UNKNOWN"
                raise
            except asyncio.CancelledError:
                outcome = "CANCELLED"
                raise
            except BaseException:
                outcome = "INTERNAL"
                raise
            finally:
                PRINCIPAL.reset(token)
                if audited:
                    failed = _failed(response)
                    self._audit(
                        context,
                        method,
                        scope,
                        principal.key_id,
                        counted[0],
                        failed,
                        outcome,
                        started,
                    )

        return guarded

    def _guard_stream(self, behavior: Callable, method: str, scope: str, metadata, audited):
        """A response-streaming behaviour (none in the API yet): admit, then pass it through."""

        async def guarded(request, context: grpc.aio.ServicerContext):
            started = time.perf_counter()
            principal = await self._enter(context, metadata, method, scope, audited, started)
            token = PRINCIPAL.set(principal)
            outcome = "UNKNOWN"
            try:
                result = behavior(request, context)
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        yield item
                else:
                    await result  # a coroutine writing with context.write()
                outcome = "OK"
            except grpc.aio.AbortError:
                outcome = context.code().name if context.code() else "UNKNOWN"
                raise
            except BaseException:
                outcome = "INTERNAL"
                raise
            finally:
                with contextlib.suppress(ValueError):  # closed from another context
                    PRINCIPAL.reset(token)
                if audited:
                    self._audit(context, method, scope, principal.key_id, 0, 0, outcome, started)

        return guarded

    def _wrap(self, handler, method: str, scope: str, metadata, audited: bool):
        """The same handler with its behaviour guarded (the four call shapes)."""
        kw = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        args = (method, scope, metadata, audited)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._guard(handler.unary_unary, *args), **kw
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._guard(handler.stream_unary, *args), **kw
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._guard_stream(handler.unary_stream, *args), **kw
            )
        return grpc.stream_stream_rpc_method_handler(
            self._guard_stream(handler.stream_stream, *args), **kw
        )


async def _counting(stream: AsyncIterator, counted: list[int]) -> AsyncIterator:
    async for message in stream:
        counted[0] += _records(message)
        yield message
