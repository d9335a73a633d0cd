"""The HTTP/JSON API against gRPC: the same text searches through the same gateway, in one run.

    python benchmarks/http_bench.py --catalog ../shared/data/fashion-products --models models

Starts the local stack of ``vitrine up`` (plaintext, the gateway with ``http_port`` 0), ingests
``--products`` products of the catalog, then runs the same text queries (k=10, vector
retrieval, rerank off, query-embedding cache off: every query is encoded) closed loop at
concurrency 1 and 8, over gRPC (``AsyncSearchClient``) and over HTTP (``POST /v1/search``, a
minimal asyncio HTTP/1.1 keep-alive client, one connection per worker; the JSON answer is parsed,
as the gRPC client parses its protobuf). The HTTP layer's overhead is the difference of the
medians.

The closed-loop medians include the whole search (~10 ms of encoding on 2 cores) and drift
between the runs, so the overhead is also measured **paired** (``--pairs``): the same query
over gRPC and over HTTP back to back, the order alternating, one request at a time; the overhead
is the median of the per-pair differences, with and without ``include_attributes`` (which
makes the answer ~3x larger). Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.gateway_bench import queries_from  # noqa: E402
from benchmarks.loadgen import closed_loop  # noqa: E402
from gateway.client import AsyncSearchClient, SearchClient  # noqa: E402
from vitrine.catalog import load_catalog  # noqa: E402
from vitrine.cli.shop import ingest_catalog  # noqa: E402
from vitrine.cli.stack import LocalStack  # noqa: E402


class HttpConnection:
    """One keep-alive HTTP/1.1 connection: POST JSON, read a Content-Length answer."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: dict) -> tuple[int, dict]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        payload = json.loads(await self.reader.readexactly(length))
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {payload}")
        return status, payload

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def run_load(
    gateway: str, http_port: int, queries: list[str], concurrencies, seconds
) -> list[dict]:
    grpc_client = AsyncSearchClient(gateway, timeout=60)
    rows = []
    for c in concurrencies:
        conns = asyncio.Queue()
        for _ in range(c):
            conns.put_nowait(HttpConnection("127.0.0.1", http_port))

        async def over_grpc(q):
            await grpc_client.search(
                text=q, k=10, include_attributes=False, rerank=False, retrieval_mode="vector"
            )

        async def over_http(q, conns=conns):
            conn = await conns.get()
            try:
                await conn.post(
                    "/v1/search",
                    {"text": q, "k": 10, "rerank": "RERANK_MODE_OFF", "retrieval_mode": 1},
                )
            except BaseException:
                await conn.close()  # a half-read answer: a fresh connection next time
                raise
            finally:
                conns.put_nowait(conn)

        # Alternate, so that drift (page cache, CPU boost) does not favour one protocol.
        for api, call in (("grpc", over_grpc), ("http", over_http)):
            r = await closed_loop(call, queries, c, seconds)
            rows.append({"api": api, **r.row()})
        while not conns.empty():
            await conns.get_nowait().close()
    await grpc_client.close()
    return rows


async def run_pairs(gateway: str, http_port: int, queries: list[str], pairs: int) -> dict:
    """Median (and quartiles) of HTTP minus gRPC latency for the same query back to back."""
    import statistics
    import time

    grpc_client = AsyncSearchClient(gateway, timeout=60)
    conn = HttpConnection("127.0.0.1", http_port)
    out = {}
    for attrs in (False, True):
        body = {"text": "", "k": 10, "rerank": "RERANK_MODE_OFF", "retrieval_mode": 1}
        body["include_attributes"] = attrs

        async def grpc_once(q, attrs=attrs):
            t = time.perf_counter()
            await grpc_client.search(
                text=q, k=10, include_attributes=attrs, rerank=False, retrieval_mode="vector"
            )
            return time.perf_counter() - t

        async def http_once(q, body=body):
            t = time.perf_counter()
            await conn.post("/v1/search", {**body, "text": q})
            return time.perf_counter() - t

        for q in queries[:20]:  # warm both paths (connections, caches of the runtime)
            await grpc_once(q)
            await http_once(q)
        diffs, g, h = [], [], []
        for i in range(pairs):
            q = queries[i % len(queries)]
            if i % 2:
                a = await grpc_once(q)
                b = await http_once(q)
            else:
                b = await http_once(q)
                a = await grpc_once(q)
            g.append(a)
            h.append(b)
            diffs.append(b - a)
        qs = statistics.quantiles(diffs, n=4)
        out["with_attributes" if attrs else "ids_only"] = {
            "pairs": pairs,
            "grpc_p50_ms": round(statistics.median(g) * 1e3, 3),
            "http_p50_ms": round(statistics.median(h) * 1e3, 3),
            "overhead_p50_ms": round(statistics.median(diffs) * 1e3, 3),
            "overhead_q1_ms": round(qs[0] * 1e3, 3),
            "overhead_q3_ms": round(qs[2] * 1e3, 3),
        }
    await conn.close()
    await grpc_client.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--catalog", type=Path, default=None)
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--products", type=int, default=2000, help="products to ingest")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", default="1,8", help="closed-loop runs ('': none)")
    ap.add_argument("--pairs", type=int, default=1000, help="paired requests (0: skip)")
    args = ap.parse_args()

    catalog = load_catalog(args.catalog)
    catalog.products = catalog.products[: args.products]
    queries = queries_from(catalog, 1000)
    # read by the gateway process at start
    os.environ["VITRINE_EMBED_CACHE_SIZE"] = "0"
    os.environ["VITRINE_HTTP_PORT"] = "0"
    out: dict = {"products": len(catalog.products)}
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalStack(
            args.models,
            Path(tmp),
            ports=(0, 0, 0, 0),
            metrics_ports=(-1, -1, -1, -1),
            tls=False,
        ) as stack,
    ):
        gw = next(s for s in stack.services if s.name == "gateway")
        http_port = gw.info["http_port"]
        with SearchClient(stack.gateway, timeout=3600) as client:
            resp = ingest_catalog(client, catalog, 32, quiet=True)
            out["ingest_failed"] = resp.failed
        concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
        out["search"] = asyncio.run(
            run_load(stack.gateway, http_port, queries, concurrencies, args.seconds)
        )
        if args.pairs:
            out["paired"] = asyncio.run(run_pairs(stack.gateway, http_port, queries, args.pairs))
    by = {(r["api"], r["concurrency"]): r for r in out["search"]}
    out["http_overhead_p50_ms"] = {
        str(c): round(by["http", c]["p50_ms"] - by["grpc", c]["p50_ms"], 3) for c in concurrencies
    }

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"Text search over {len(catalog.products)} products (k=10): HTTP vs gRPC")
    for col in ("api", "concurrency", "req/s", "p50 ms", "p99 ms", "errors"):
        t.add_column(col, justify="right")
    for r in out["search"]:
        t.add_row(
            r["api"],
            str(r["concurrency"]),
            f"{r['rps']:.1f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            str(r["errors"]),
        )
    Console(width=120).print(t)
    for c, ms in out["http_overhead_p50_ms"].items():
        print(f"HTTP layer overhead at the median, concurrency {c}: {ms:.3f} ms")
    if "paired" in out:
        t = Table(title=f"Paired: the same query over both, back to back ({args.pairs} pairs)")
        for col in ("answer", "gRPC p50 ms", "HTTP p50 ms", "overhead p50 ms", "IQR ms"):
            t.add_column(col, justify="right")
        for name, r in out["paired"].items():
            t.add_row(
                name,
                f"{r['grpc_p50_ms']:.2f}",
                f"{r['http_p50_ms']:.2f}",
                f"{r['overhead_p50_ms']:.3f}",
                f"{r['overhead_q1_ms']:.2f} .. {r['overhead_q3_ms']:.2f}",
            )
        Console(width=120).print(t)
    print(
        json.dumps(
            {
                "config": vars(args) | {"catalog": str(args.catalog), "models": str(args.models)},
                **out,
            }
        )
    )


if __name__ == "__main__":
    main()
