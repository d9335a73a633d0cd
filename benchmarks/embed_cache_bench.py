"""The gateway's query-embedding cache under a head-heavy (Zipf) query mix.

    python benchmarks/embed_cache_bench.py --catalog ../shared/data/fashion-products --models models

Starts the local stack of ``vitrine up`` plus a second gateway on the same encoder and index
processes with the cache off (``--embed-cache-size 0``), ingests the catalog, and sends both the
same sequence of text queries drawn from a Zipf distribution (exponent ``--zipf``, default 1.1)
over ``--distinct`` real queries (titles and attribute phrases): p50/p99 and requests/s at
concurrency 1 and 8, rerank off (the cache saves the encode stage; rerank is measured by
benchmarks/rerank_bench.py). The gateways are measured alternately, cell by cell. Prints a table
and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.gateway_bench import queries_from  # noqa: E402
from benchmarks.loadgen import closed_loop  # noqa: E402
from gateway.client import AsyncSearchClient, SearchClient  # noqa: E402
from vitrine.catalog import Catalog, load_catalog  # noqa: E402
from vitrine.cli.shop import ingest_catalog  # noqa: E402
from vitrine.cli.stack import LocalStack, Service  # noqa: E402


def zipf_sequence(queries: list[str], n: int, s: float, seed: int = 0) -> list[str]:
    ranks = np.arange(1, len(queries) + 1, dtype=np.float64)
    p = ranks**-s
    p /= p.sum()
    idx = np.random.default_rng(seed).choice(len(queries), size=n, p=p)
    return [queries[i] for i in idx]


async def cell(target: str, seq: list[str], concurrency: int, seconds: float) -> dict:
    client = AsyncSearchClient(target, timeout=60)

    async def one(q):
        await client.search(text=q, k=10, include_attributes=False, rerank=False)

    r = await closed_loop(one, seq, concurrency, seconds, warmup_s=0.5)
    await client.close()
    return r.row()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--catalog", type=Path, default=None)
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--products", type=int, default=0, help="ingest only the first N (0: all)")
    ap.add_argument("--distinct", type=int, default=2000)
    ap.add_argument("--zipf", type=float, default=1.1)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", default="1,8")
    args = ap.parse_args()

    catalog = load_catalog(args.catalog)
    if args.products:
        catalog = Catalog(root=catalog.root, products=catalog.products[: args.products])
    queries = queries_from(catalog, args.distinct)
    seq = zipf_sequence(queries, 200_000, args.zipf)
    seen, hits = set(), 0
    for q in seq[:20_000]:
        key = " ".join(q.lower().split())
        hits += key in seen
        seen.add(key)
    out: dict = {"products": len(catalog.products), "distinct_queries": len(queries)}
    out["ideal_hit_ratio_first_20k"] = round(hits / 20_000, 3)
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalStack(  # plaintext, as the figures in docs/benchmarks.md were measured
            args.models,
            Path(tmp),
            ports=(0, 0, 0, 0),
            metrics_ports=(-1, -1, -1, -1),
            tls=False,
        ) as stack,
    ):
        plain = stack._start(
            Service(
                "gateway-nocache",
                [
                    "serve",
                    "gateway",
                    "--encoder",
                    stack.encoder,
                    *(x for t in stack.index_targets for x in ("--index", t)),
                    "--embed-cache-size",
                    "0",
                ],
                0,
                -1,
            )
        )
        with SearchClient(stack.gateway, timeout=3600) as client:
            ingest_catalog(client, catalog, 32, quiet=True)
        rows = []
        for c in (int(x) for x in args.concurrency.split(",")):
            for name, target in (("cache", stack.gateway), ("no cache", plain.target)):
                rows.append({"gateway": name, **asyncio.run(cell(target, seq, c, args.seconds))})
        out["cells"] = rows

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"Text search, Zipf({args.zipf}) over {len(queries)} queries, k=10, rerank off")
    for col in ("gateway", "concurrency", "req/s", "p50 ms", "p99 ms", "errors"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(
            r["gateway"],
            str(r["concurrency"]),
            f"{r['rps']:.1f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            str(r["errors"]),
        )
    Console(width=120).print(t)
    print(
        f"share of repeated queries in the first 20k of the sequence: {out['ideal_hit_ratio_first_20k']}"
    )
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
