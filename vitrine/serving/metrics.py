"""Prometheus metrics: a registry per server, the RPC metrics every service has, the HTTP endpoint.

Names follow Prometheus conventions (base units, ``_total`` on counters); labels carry bounded sets
only (method, status code, model name), never request or product ids.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

# The ``*_created`` series double the exposition size and no dashboard here uses them.
disable_created_metrics()

# Latency buckets from 100 µs to 10 s.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class RpcMetrics:
    """Requests by method and status code, and their latency."""

    def __init__(self, registry: CollectorRegistry, service: str):
        self.service = service
        self.requests = Counter(
            "vitrine_grpc_requests_total",
            "gRPC requests handled, by method and status code.",
            ["service", "method", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "vitrine_grpc_request_duration_seconds",
            "gRPC request latency from handler start to response, by method.",
            ["service", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, method: str, code: str, seconds: float) -> None:
        self.requests.labels(self.service, method, code).inc()
        self.latency.labels(self.service, method).observe(seconds)


class HttpMetrics:
    """Requests of an HTTP API (the gateway's, gateway.http_app), like :class:`RpcMetrics` for
    gRPC: by route name (``search``, ``upsert_products``, ...; ``other`` for unknown paths) and
    HTTP status code, and their latency."""

    def __init__(self, registry: CollectorRegistry, service: str):
        self.service = service
        self.requests = Counter(
            "vitrine_http_requests_total",
            "HTTP API requests handled, by route and HTTP status code.",
            ["service", "route", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "vitrine_http_request_duration_seconds",
            "HTTP API request latency from the request's arrival to its response, by route.",
            ["service", "route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, route: str, code: int, seconds: float) -> None:
        self.requests.labels(self.service, route, str(code)).inc()
        self.latency.labels(self.service, route).observe(seconds)


def start_metrics_http(registry: CollectorRegistry, host: str, port: int):
    """Serve ``/metrics`` on ``host:port`` (0 = a free port); returns ``(server, bound_port)``."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server, server.server_port
