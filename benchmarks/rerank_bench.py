"""The rerank stage: its cost per shortlist size, and what it adds to a search end to end.

    python benchmarks/rerank_bench.py --catalog ../shared/data/fashion-products --models models

Starts the local stack (encoder with the rerank model, two index processes, gateway — the
processes of ``vitrine up``), ingests the catalog (photos embedded with their rerank payloads)
and measures, in one run:

* the ``Rerank`` RPC alone for shortlists of N = 20, 50, 100 candidates (real text queries, their
  real top-N hits and stored payloads): p50/p99 and requests/s at concurrency 1 and 8, against
  the same pairs scored by onnxruntime in-process (the limit), as a ratio;
* search through the gateway with rerank off and on (N = 50), text and photo queries, at
  concurrency 1 and 8: p50/p99, the rerank stage's own p50, degraded answers;
* what the payloads cost: bytes per product, the index's payload store on disk, and the index's
  memory per product (payloads live in LMDB on disk, not in the FAISS shards' memory).

Prints tables and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.gateway_bench import queries_from  # noqa: E402
from benchmarks.loadgen import closed_loop  # noqa: E402
from encoder_service.client import AsyncEncoderClient, Candidate  # noqa: E402
from exporter.evaluate_rerank import OnnxReranker  # noqa: E402
from gateway.client import AsyncSearchClient, SearchClient  # noqa: E402
from index_service.client import IndexClient  # noqa: E402
from index_service.fanout import IndexFanout  # noqa: E402
from vitrine.catalog import Catalog, load_catalog  # noqa: E402
from vitrine.cli.shop import ingest_catalog  # noqa: E402
from vitrine.cli.stack import LocalStack  # noqa: E402
from vitrine.model_repo import ModelRepository  # noqa: E402

RERANK_MODEL = "vitrine-rerank"


async def shortlists(stack: LocalStack, queries: list[str], n: int) -> list[tuple[str, list]]:
    """Each query's top ``n`` hits with their payloads, as the gateway's search stage gets them."""
    enc = AsyncEncoderClient(stack.encoder, timeout=60)
    fan = IndexFanout(stack.index_targets, timeout=60)
    out = []
    for s in range(0, len(queries), 32):
        part = queries[s : s + 32]
        vecs = (await enc.embed_texts("vitrine-text", part)).vectors
        res = await fan.search(
            "products", vecs, k=n, include_attributes=True, include_payloads=True
        )
        for q, hits in zip(part, res.hits, strict=True):
            cands = [Candidate(h.payload, str(h.attributes["title"]), h.score) for h in hits]
            out.append((q, cands))
    await enc.close()
    await fan.close()
    return out


async def rerank_rpc(stack, lists, concurrencies, seconds) -> list[dict]:
    enc = AsyncEncoderClient(stack.encoder, timeout=60)

    async def one(item):
        q, cands = item
        await enc.rerank(RERANK_MODEL, cands, query_text=q)

    rows = []
    for c in concurrencies:
        r = await closed_loop(one, lists, c, seconds)
        rows.append(r.row())
    await enc.close()
    return rows


def in_process(reranker: OnnxReranker, lists, repeats: int) -> dict:
    """The limit: the same pairs scored by onnxruntime in this process, one request at a time."""
    pairs = [reranker.pairs(q, b"", cands) for q, cands in lists]
    for p in pairs[:10]:
        reranker.score([p])
    lat = []
    for i in range(repeats):
        t = time.perf_counter()
        reranker.score([pairs[i % len(pairs)]])
        lat.append(time.perf_counter() - t)
    ms = np.array(lat) * 1000
    return {
        "p50_ms": round(float(np.median(ms)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
    }


async def search_load(stack, payloads, concurrencies, seconds, rerank: bool, n: int, photo: bool):
    client = AsyncSearchClient(stack.gateway, timeout=60)
    stages: list[dict] = []
    degraded = 0

    async def one(p):
        nonlocal degraded
        kw = {"image": p} if photo else {"text": p}
        resp = await client.search(
            k=10, include_attributes=False, rerank=rerank, rerank_candidates=n, **kw
        )
        stages.append({t.stage: t.seconds for t in resp.timings})
        degraded += bool(resp.degraded_stages)

    rows = []
    for c in concurrencies:
        stages.clear()
        degraded = 0
        r = await closed_loop(one, payloads, c, seconds)
        rerank_ms = [s["rerank"] * 1000 for s in stages if "rerank" in s]
        rows.append(
            r.row()
            | {
                "query": "photo" if photo else "text",
                "rerank": rerank,
                "rerank_stage_p50_ms": round(float(np.median(rerank_ms)), 2) if rerank_ms else 0,
                "degraded": degraded,
            }
        )
    await client.close()
    return rows


def payload_costs(stack: LocalStack, repo: ModelRepository) -> dict:
    spec = repo.load(RERANK_MODEL).manifest.rerank
    width = int(spec["payload"]["width"])
    payloads = disk = vectors = memory = 0
    for t in stack.index_targets:
        with IndexClient(t) as c:
            st = c.stats("products")
        payloads += st.payloads
        disk += st.payload_disk_bytes
        vectors += st.total_vectors
        memory += st.total_memory_bytes
    return {
        "payload_width": width,
        "payload_bytes": 2 * width,
        "products": vectors,
        "products_with_payload": payloads,
        "payload_disk_bytes_per_product": round(disk / max(payloads, 1), 1),
        "index_memory_bytes_per_product": round(memory / max(vectors, 1), 1),
    }


def subset(catalog: Catalog, n: int) -> Catalog:
    return Catalog(root=catalog.root, products=catalog.products[:n]) if n else catalog


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--catalog", type=Path, default=None)
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--products", type=int, default=0, help="ingest only the first N (0: all)")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--sizes", default="20,50,100", help="shortlist sizes for the Rerank RPC")
    ap.add_argument("--candidates", type=int, default=50, help="N for the gateway runs")
    args = ap.parse_args()

    catalog = subset(load_catalog(args.catalog), args.products)
    repo = ModelRepository(args.models)
    reranker = OnnxReranker(repo.load(RERANK_MODEL))
    queries = queries_from(catalog, 400)
    photos = [p.image_path.read_bytes() for p in catalog.products[-200:]]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    out: dict = {"products": len(catalog.products)}
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
        with SearchClient(stack.gateway, timeout=3600) as client:
            resp = ingest_catalog(client, catalog, 32, quiet=True)
            out["ingest_failed"] = resp.failed
        out["payloads"] = payload_costs(stack, repo)
        out["rpc"] = []
        for n in sizes:
            lists = asyncio.run(shortlists(stack, queries, n))
            rows = asyncio.run(rerank_rpc(stack, lists, concurrencies, args.seconds))
            limit = in_process(reranker, lists, 200)
            for r in rows:
                r |= {
                    "candidates": n,
                    "in_process_p50_ms": limit["p50_ms"],
                    "vs_in_process": round(r["p50_ms"] / limit["p50_ms"], 2),
                    "us_per_candidate_in_process": round(1000 * limit["p50_ms"] / n, 1),
                }
            out["rpc"] += rows
        out["search"] = []
        for photo, items in ((False, queries), (True, photos)):
            for rerank in (False, True):
                out["search"] += asyncio.run(
                    search_load(
                        stack, items, concurrencies, args.seconds, rerank, args.candidates, photo
                    )
                )

    from rich.console import Console
    from rich.table import Table

    console = Console(width=130)
    t = Table(title="Rerank RPC alone (text queries, their real top-N with stored payloads)")
    for col in ("N", "concurrency", "req/s", "p50 ms", "p99 ms", "in-process p50 ms", "ratio"):
        t.add_column(col, justify="right")
    for r in out["rpc"]:
        t.add_row(
            str(r["candidates"]),
            str(r["concurrency"]),
            f"{r['rps']:.1f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['in_process_p50_ms']:.2f}",
            f"{r['vs_in_process']:.2f}x",
        )
    console.print(t)
    t = Table(title=f"Search through the gateway, k=10, rerank N={args.candidates}")
    for col in ("query", "rerank", "concurrency", "req/s", "p50 ms", "p99 ms", "rerank p50 ms"):
        t.add_column(col, justify="right")
    t.add_column("degraded", justify="right")
    for r in out["search"]:
        t.add_row(
            r["query"],
            "on" if r["rerank"] else "off",
            str(r["concurrency"]),
            f"{r['rps']:.1f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['rerank_stage_p50_ms']:.2f}",
            str(r["degraded"]),
        )
    console.print(t)
    p = out["payloads"]
    print(
        f"payload {p['payload_bytes']} B/product (float16 x {p['payload_width']}); "
        f"LMDB on disk {p['payload_disk_bytes_per_product']} B/product; "
        f"index memory {p['index_memory_bytes_per_product']} B/product"
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
