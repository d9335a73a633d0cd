"""The gateway's HTTP/JSON API: the same SearchService, over HTTP, in the gateway process.

Why in the same process (and not a proxy or a second service): one :class:`gateway.core.Gateway`
object serves both protocols, so HTTP callers share its encoder and index clients, its
query-embedding cache, its rerank cost estimates and its metrics; and the HTTP handlers call the
gRPC servicer's own methods (:class:`gateway.servicer.GatewayServicer`, unwrapped from the
``@rpc`` decorator), so request → Gateway call → response conversion is written once. There is
no second implementation of search, upsert, delete or describe.

**One source of truth for the JSON.** Bodies are the protobuf messages of
``protos/vitrine/v1/gateway.proto`` in their canonical JSON mapping with the proto's own field
names (``google.protobuf.json_format``, ``preserving_proto_field_name``): ``bytes`` as base64,
enums by name, every field of a response present. The OpenAPI schema of ``/openapi.json`` is
derived from the same message descriptors (:func:`message_schemas`).

**Same rules as gRPC.** API keys (``Authorization: Bearer <key>`` or ``X-Api-Key``), scopes and
rate limits go through :func:`gateway.auth_interceptor.admit`; writes get the same audit line;
TLS uses the same ``tls_cert_file``/``tls_key_file`` (and with ``tls_client_auth`` the same CA).
Errors: :data:`HTTP_STATUS` maps gRPC codes to HTTP statuses; the body is
``{"error": {"code": "INVALID_ARGUMENT", "message": "..."}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from grpc_health.v1 import health_pb2
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import playground
from gateway.auth import PRINCIPAL, SEARCH, WRITE, KeyStore
from gateway.auth_interceptor import _failed, _records, admit, audit, bearer_key
from gateway.servicer import GatewayServicer
from vitrine.serving.errors import InvalidArgument, VitrineError
from vitrine.v1 import gateway_pb2

log = logging.getLogger("vitrine.gateway.http")

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status of a gRPC code (500 for INTERNAL, UNKNOWN, DATA_LOSS and the rest)."""
    return HTTP_STATUS.get(code, 500)


# --- the JSON schema of the proto messages -------------------------------------------------------

_INT32 = {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},  # base64
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number"},
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
    # The JSON mapping writes 64-bit integers as strings (and reads both).
    FieldDescriptor.TYPE_INT64: {"type": "string", "pattern": "^-?[0-9]{1,19}$"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "pattern": "^-?[0-9]{1,19}$"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "pattern": "^-?[0-9]{1,19}$"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "pattern": "^[0-9]{1,20}$"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "pattern": "^[0-9]{1,20}$"},
}
_PREFIX = "vitrine.v1."


def schema_name(desc: Descriptor) -> str:
    """The component name of a message (``Filter.Equals`` for ``vitrine.v1.Filter.Equals``)."""
    return desc.full_name.removeprefix(_PREFIX)


def _ref(desc: Descriptor) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{schema_name(desc)}"}


def _value_schema(fd: FieldDescriptor, out: dict[str, dict]) -> dict[str, Any]:
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        _collect(fd.message_type, out)
        return _ref(fd.message_type)
    if fd.type == FieldDescriptor.TYPE_ENUM:
        return {"type": "string", "enum": [v.name for v in fd.enum_type.values]}
    return dict(_SCALARS[fd.type])


def _is_map(fd: FieldDescriptor) -> bool:
    mt = fd.message_type
    return mt is not None and mt.GetOptions().map_entry


def _field_schema(fd: FieldDescriptor, out: dict[str, dict]) -> dict[str, Any]:
    if _is_map(fd):
        value = fd.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _value_schema(value, out)}
    if fd.is_repeated:
        return {"type": "array", "items": _value_schema(fd, out)}
    return _value_schema(fd, out)


def _collect(desc: Descriptor, out: dict[str, dict]) -> None:
    name = schema_name(desc)
    if name in out:
        return
    out[name] = {}  # placeholder: recursive messages (Filter) stop here
    props = {fd.name: _field_schema(fd, out) for fd in desc.fields}
    out[name] = {
        "type": "object",
        "description": f"protobuf message {desc.full_name} (JSON mapping, proto field names)",
        "properties": props,
        "additionalProperties": False,
    }


def message_schemas(*descs: Descriptor) -> dict[str, dict]:
    """JSON schemas of the messages and of every message they use, by :func:`schema_name`."""
    out: dict[str, dict] = {}
    for d in descs:
        _collect(d, out)
    return out


def to_json(message) -> dict[str, Any]:
    """A response message as JSON: proto field names, every field present, enums by name."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def from_json(data: Any, message):
    """Fill ``message`` from parsed JSON; :class:`InvalidArgument` naming the field if it fails."""
    if not isinstance(data, dict):
        raise InvalidArgument(f"request body: expected a JSON object, got {type(data).__name__}")
    try:
        json_format.ParseDict(data, message, max_recursion_depth=32)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise InvalidArgument(f"request body: {exc}") from exc
    return message


# --- routes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str  # metrics label, operationId
    method: str
    path: str
    scope: str
    request: type
    response: type
    rpc: str  # the GatewayServicer method (and the audit log's method name)
    summary: str


ROUTES = (
    Route(
        "search",
        "POST",
        "/v1/search",
        SEARCH,
        gateway_pb2.SearchRequest,
        gateway_pb2.SearchResponse,
        "Search",
        "Search products by text, photo, or both (SearchService.Search).",
    ),
    Route(
        "upsert_products",
        "POST",
        "/v1/products",
        WRITE,
        gateway_pb2.UpsertProductsRequest,
        gateway_pb2.UpsertProductsResponse,
        "UpsertProducts",
        "Insert or replace products; one status per product (SearchService.UpsertProducts).",
    ),
    Route(
        "delete_products",
        "DELETE",
        "/v1/products",
        WRITE,
        gateway_pb2.DeleteProductsRequest,
        gateway_pb2.DeleteProductsResponse,
        "DeleteProducts",
        "Delete products by id; one status per id (SearchService.DeleteProducts).",
    ),
    Route(
        "facets",
        "POST",
        "/v1/facets",
        SEARCH,
        gateway_pb2.GetFacetsRequest,
        gateway_pb2.GetFacetsResponse,
        "GetFacets",
        "Attribute values with their counts, e.g. to offer filters (SearchService.GetFacets).",
    ),
    Route(
        "describe",
        "POST",
        "/v1/describe",
        SEARCH,
        gateway_pb2.DescribeRequest,
        gateway_pb2.DescribeResponse,
        "Describe",
        "Suggest a title and attributes for a product photo (SearchService.Describe).",
    ),
)
_ROUTE_NAMES = {(r.method, r.path): r.name for r in ROUTES} | {
    ("GET", "/healthz"): "healthz",
    ("GET", "/readyz"): "readyz",
    ("GET", "/openapi.json"): "openapi",
}
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "gRPC status code name"},
                "message": {"type": "string"},
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}
HEALTH_SCHEMA = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["SERVING", "NOT_SERVING"]}},
    "required": ["status"],
}


class _Context:
    """What the servicer's methods read of a gRPC context: the time left."""

    __slots__ = ("_deadline",)

    def __init__(self, timeout_s: float | None):
        self._deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else max(0.0, self._deadline - time.monotonic())


def error_response(code: grpc.StatusCode, message: str, status: int | None = None, headers=None):
    return JSONResponse(
        {"error": {"code": code.name, "message": message}},
        status_code=status or http_status(code),
        headers=headers,
    )


def _error_of(exc: VitrineError) -> JSONResponse:
    headers = {}
    if exc.code == grpc.StatusCode.UNAUTHENTICATED:
        headers["WWW-Authenticate"] = "Bearer"
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    return error_response(exc.code, exc.message, headers=headers)


def _timeout(request: Request) -> float | None:
    """``X-Request-Timeout: <seconds>`` (like a gRPC deadline); absent: the gateway default."""
    raw = request.headers.get("x-request-timeout")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 3600):
        raise InvalidArgument("X-Request-Timeout: seconds, a number in (0, 3600]")
    return value


class HttpApi:
    """The FastAPI app over a :class:`GatewayServicer`, and the uvicorn server that runs it."""

    def __init__(
        self,
        servicer: GatewayServicer,
        config,
        keys: KeyStore | None,
        gw_metrics=None,
        http_metrics=None,
        health=None,
    ):
        """``config``: a :class:`gateway.config.GatewayConfig`; ``health``: the gRPC
        ``HealthServicer`` (readiness); ``http_metrics``: a :class:`vitrine.serving.metrics.HttpMetrics`."""
        self.servicer = servicer
        self.config = config
        self.keys = keys
        self.gw_metrics = gw_metrics
        self.http_metrics = http_metrics
        self.health = health
        self.max_body = config.max_message_mb * 1024 * 1024
        messages = message_schemas(*(m.DESCRIPTOR for r in ROUTES for m in (r.request, r.response)))
        self.schemas = {**messages, "Error": ERROR_SCHEMA, "Health": HEALTH_SCHEMA}
        self.app = self._build()
        self.server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None
        self.port: int | None = None

    # -- the app -------------------------------------------------------------------------------
    def _build(self) -> FastAPI:
        app = FastAPI(
            title="Vitrine gateway HTTP API",
            version="v1",
            description="SearchService over HTTP/JSON (see docs/http-api.md).",
            docs_url=None,
            redoc_url=None,
        )
        for r in ROUTES:
            app.add_api_route(
                r.path,
                self._endpoint(r),
                methods=[r.method],
                name=r.name,
                operation_id=r.name,
                summary=r.summary,
                openapi_extra={"requestBody": self._request_body(r)},
                responses=self._responses(r),
            )
        app.add_api_route(
            "/healthz",
            self._healthz,
            methods=["GET"],
            name="healthz",
            operation_id="healthz",
            summary="Liveness: the process answers.",
            responses={200: _json_ref("Health")},
        )
        app.add_api_route(
            "/readyz",
            self._readyz,
            methods=["GET"],
            name="readyz",
            operation_id="readyz",
            summary="Readiness: the gRPC health state of the gateway (SERVING once started).",
            responses={200: _json_ref("Health"), 503: _json_ref("Health")},
        )

        async def http_error(request: Request, exc: StarletteHTTPException):
            code = {
                404: grpc.StatusCode.NOT_FOUND,
                405: grpc.StatusCode.UNIMPLEMENTED,
            }.get(exc.status_code, grpc.StatusCode.INVALID_ARGUMENT)
            if exc.status_code >= 500:
                code = grpc.StatusCode.INTERNAL
            return error_response(code, str(exc.detail), status=exc.status_code)

        async def validation_error(request: Request, exc: RequestValidationError):
            parts = []
            for e in exc.errors():
                where = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
                parts.append(f"{where or 'body'}: {e.get('msg', 'invalid')}")
            return error_response(grpc.StatusCode.INVALID_ARGUMENT, "; ".join(parts))

        gw = getattr(self.servicer, "gateway", None)  # None: an HttpApi alone (tests)
        playground.mount(app, self.config, gw.capabilities if gw is not None else None)
        app.add_exception_handler(StarletteHTTPException, http_error)
        app.add_exception_handler(RequestValidationError, validation_error)

        def openapi() -> dict[str, Any]:
            if app.openapi_schema is None:
                schema = get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
                schema.setdefault("components", {}).setdefault("schemas", {}).update(self.schemas)
                schema["components"]["securitySchemes"] = {
                    "bearer": {"type": "http", "scheme": "bearer"}
                }
                for r in ROUTES:
                    op = schema["paths"][r.path][r.method.lower()]
                    op["security"] = [{"bearer": []}]
                app.openapi_schema = schema
            return app.openapi_schema

        app.openapi = openapi
        return app

    @staticmethod
    def _request_body(r: Route) -> dict[str, Any]:
        content: dict[str, Any] = {"application/json": {"schema": _ref(r.request.DESCRIPTOR)}}
        if r.name in ("search", "describe"):
            content["multipart/form-data"] = {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "request": {
                            "type": "string",
                            "description": f"the rest of the {schema_name(r.request.DESCRIPTOR)}"
                            " as JSON (optional)",
                        },
                    },
                },
                "encoding": {"request": {"contentType": "application/json"}},
            }
        return {"required": True, "content": content}

    @staticmethod
    def _responses(r: Route) -> dict[int, Any]:
        out: dict[int, Any] = {200: _json_ref(schema_name(r.response.DESCRIPTOR))}
        for status, what in (
            (400, "invalid request (the message names the field)"),
            (401, "missing or invalid API key"),
            (403, "the API key lacks the scope"),
            (404, "not found"),
            (412, "failed precondition (e.g. no caption model loaded)"),
            (413, "request body larger than max_message_mb"),
            (429, "rate limit of the API key (Retry-After says when to retry)"),
            (503, "a downstream service is unavailable"),
            (504, "deadline exceeded"),
        ):
            out[status] = {**_json_ref("Error"), "description": what}
        return out

    async def _healthz(self) -> JSONResponse:
        return JSONResponse({"status": "SERVING"})

    async def _readyz(self) -> JSONResponse:
        serving = False
        if self.health is not None:
            with contextlib.suppress(Exception):
                resp = await self.health.Check(health_pb2.HealthCheckRequest(service=""), None)
                serving = resp.status == health_pb2.HealthCheckResponse.SERVING
        status = "SERVING" if serving else "NOT_SERVING"
        return JSONResponse({"status": status}, status_code=200 if serving else 503)

    def _endpoint(self, r: Route) -> Callable[[Request], Awaitable[JSONResponse]]:
        behavior = getattr(GatewayServicer, r.rpc).__wrapped__  # the servicer's, without @rpc
        audited = r.scope != SEARCH

        async def endpoint(request: Request) -> JSONResponse:
            return await self._handle(r, behavior, audited, request)

        endpoint.__name__ = r.name
        return endpoint

    async def _parse(self, r: Route, request: Request):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.max_body:
            raise _TooLarge()
        if ctype == "multipart/form-data" and r.name in ("search", "describe"):
            return await self._parse_form(r, request)
        if ctype not in ("application/json", ""):
            raise InvalidArgument(
                f"Content-Type: {ctype!r} is not application/json"
                + (" or multipart/form-data" if r.name in ("search", "describe") else "")
            )
        body = await request.body()
        if len(body) > self.max_body:
            raise _TooLarge()
        try:
            data = json.loads(body) if body.strip() else {}
        except (ValueError, RecursionError) as exc:
            raise InvalidArgument(f"request body: not valid JSON: {exc}") from exc
        return from_json(data, r.request())

    async def _parse_form(self, r: Route, request: Request):
        try:
            form = await request.form(max_files=1, max_fields=4, max_part_size=self.max_body)
        except Exception as exc:  # malformed multipart: the parser's message, as a 400
            raise InvalidArgument(f"multipart body: {exc}") from exc
        rest = form.get("request")
        data: Any = {}
        if rest is not None:
            if not isinstance(rest, str):
                rest = (await rest.read()).decode("utf-8", "replace")
            try:
                data = json.loads(rest) if rest.strip() else {}
            except (ValueError, RecursionError) as exc:
                raise InvalidArgument(f"request (form field): not valid JSON: {exc}") from exc
        message = from_json(data, r.request())
        image = form.get("image")
        if image is not None:
            blob = image.encode() if isinstance(image, str) else await image.read()
            if len(blob) > self.max_body:
                raise _TooLarge()
            message.image = blob
        return message

    async def _handle(self, r: Route, behavior, audited: bool, request: Request) -> JSONResponse:
        started = time.perf_counter()
        peer = f"{request.client.host}:{request.client.port}" if request.client else ""
        key_id, records, outcome, response = "anonymous", 0, "UNKNOWN", None
        try:
            key = bearer_key(
                [
                    ("authorization", request.headers.get("authorization", "")),
                    ("x-api-key", request.headers.get("x-api-key", "")),
                ]
            )
            principal = admit(self.keys, key, r.scope, self.gw_metrics)
            key_id = principal.key_id
            message = await self._parse(r, request)
            records = _records(message)
            timeout = _timeout(request)
            token = PRINCIPAL.set(principal)
            try:
                response = await behavior(self.servicer, message, _Context(timeout))
            finally:
                PRINCIPAL.reset(token)
            outcome = "OK"
            return JSONResponse(to_json(response))
        except _TooLarge:
            outcome = "INVALID_ARGUMENT"
            msg = f"request body: larger than max_message_mb ({self.config.max_message_mb} MiB)"
            return error_response(grpc.StatusCode.INVALID_ARGUMENT, msg, status=413)
        except VitrineError as exc:
            outcome = exc.code.name
            key_id = getattr(exc, "key_id", key_id)
            return _error_of(exc)
        except asyncio.CancelledError:
            outcome = "CANCELLED"
            raise
        except Exception:
            outcome = "INTERNAL"
            log.exception("unhandled error in %s", r.name)
            return error_response(grpc.StatusCode.INTERNAL, f"internal error in {r.name}")
        finally:
            if audited:
                failed = _failed(response)
                audit(
                    r.rpc,
                    r.scope,
                    key_id,
                    self.config.collection,
                    records,
                    failed,
                    outcome,
                    peer,
                    started,
                )

    # -- serving -------------------------------------------------------------------------------
    def asgi(self):
        """The app with the request metrics around it (every path, unknown ones as ``other``)."""
        app, metrics = self.app, self.http_metrics
        if metrics is None:
            return app

        async def measured(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            started = time.perf_counter()
            status = [500]

            async def send_status(message):
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                path = scope["path"]
                route = (
                    _ROUTE_NAMES.get((scope["method"], path))
                    or playground.route_name(path)
                    or "other"
                )
                metrics.observe(route, status[0], time.perf_counter() - started)

        return measured

    async def start(self) -> int:
        """Bind ``http_host:http_port`` (0: a free port) and serve; returns the bound port."""
        cfg = self.config
        kw: dict[str, Any] = {}
        if cfg.tls_cert_file and cfg.http_tls:
            kw = {"ssl_certfile": cfg.tls_cert_file, "ssl_keyfile": cfg.tls_key_file}
            if cfg.tls_ca_file:
                kw["ssl_ca_certs"] = cfg.tls_ca_file
            if cfg.tls_client_auth:
                kw["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        uv_config = uvicorn.Config(
            self.asgi(),
            host=cfg.http_host,
            port=cfg.http_port,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=max(1, math.ceil(cfg.grace_s)),
            **kw,
        )
        family = socket.AF_INET6 if ":" in cfg.http_host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((cfg.http_host, cfg.http_port))
        sock.listen(2048)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self.server = _Server(uv_config)
        self._task = asyncio.create_task(self.server.serve(sockets=[sock]))
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises the start-up error
                raise OSError(f"HTTP API did not start on {cfg.http_host}:{cfg.http_port}")
            await asyncio.sleep(0.01)
        log.info(
            "http listening",
            extra={"address": f"{cfg.http_host}:{self.port}", "tls": bool(kw)},
        )
        return self.port

    async def stop(self) -> None:
        """Stop taking connections, let requests in flight finish (up to ``grace_s``)."""
        if self.server is None or self._task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.server = self._task = None


class _TooLarge(Exception):
    pass


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the gRPC app owns SIGTERM/SIGINT and stops this
    server from its shutdown path."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def _json_ref(name: str) -> dict[str, Any]:
    return {
        "description": name,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
    }
