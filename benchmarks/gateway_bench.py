"""End-to-end search through the gateway: latency per stage, gateway overhead, ingest throughput.

    python benchmarks/gateway_bench.py --catalog ../shared/data/fashion-products --models models

Starts the local stack (encoder, two index processes with two shards each, gateway — the
processes of ``vitrine up``), ingests the catalog through the gateway and measures, in one run:

* ingest throughput (products/s, photos embedded + indexed) against the encoder's image
  throughput alone (the same photos sent straight to ``EmbedImages`` in batches of 32, with the
  same number of batches in flight) — goal ≥ 0.8×;
* text queries (real titles and attribute phrases such as "Men Navy Blue Shirts") at concurrency
  1, 8 and 32, with vector and with hybrid retrieval: requests/s, p50/p99, and the per-stage
  split the gateway reports;
* the gateway's own overhead: the same queries made by calling the encoder and the index
  processes directly from the client (for hybrid: the lexical search beside the encoder, the
  fusion in the client) — goal ≤ 1 ms at the median.

Rerank is off in these searches (benchmarks/rerank_bench.py measures it) and so is the gateway's
query-embedding cache (benchmarks/embed_cache_bench.py measures it): every query is encoded.
Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.loadgen import closed_loop  # noqa: E402
from encoder_service.client import AsyncEncoderClient  # noqa: E402
from gateway.client import AsyncSearchClient, SearchClient  # noqa: E402
from gateway.config import GatewayConfig  # noqa: E402
from gateway.retrieval import adaptive_weight, blend  # noqa: E402
from index_service.fanout import IndexFanout  # noqa: E402
from vitrine.catalog import load_catalog  # noqa: E402
from vitrine.cli.shop import ingest_catalog  # noqa: E402
from vitrine.cli.stack import LocalStack  # noqa: E402


def queries_from(catalog, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    products = [catalog.products[i] for i in rng.permutation(len(catalog.products))[:n]]
    titles = [p.title for p in products[: n // 2]]
    phrases = [
        " ".join(
            x
            for x in (
                p.attributes.get("gender"),
                p.attributes.get("baseColour"),
                p.attributes.get("articleType"),
            )
            if x
        )
        for p in products[n // 2 :]
    ]
    return [q for q in titles + phrases if q.strip()]  # a few products lack the attributes


async def encoder_alone(target: str, photos: list[bytes], inflight: int, batch: int = 32) -> float:
    enc = AsyncEncoderClient(target, timeout=600)
    sem = asyncio.Semaphore(inflight)

    async def one(part):
        async with sem:
            await enc.embed_images("vitrine-image", part)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(photos[s : s + batch]) for s in range(0, len(photos), batch)))
    rate = len(photos) / (time.perf_counter() - t0)
    await enc.close()
    return rate


async def query_load(stack: LocalStack, queries: list[str], concurrencies, seconds) -> list[dict]:
    client = AsyncSearchClient(stack.gateway, timeout=60)
    rows = []
    for mode in ("vector", "hybrid"):
        for c in concurrencies:
            stage_times: list[dict] = []

            async def one(q, mode=mode, st=stage_times):
                resp = await client.search(
                    text=q, k=10, include_attributes=False, rerank=False, retrieval_mode=mode
                )
                st.append({t.stage: t.seconds for t in resp.timings})

            r = await closed_loop(one, queries, c, seconds)
            rows.append(
                {
                    "mode": mode,
                    "concurrency": c,
                    **r.row(),
                    "stage_p50_ms": {
                        s: round(float(np.median([x[s] for x in stage_times])) * 1000, 2)
                        for s in stage_times[0]
                    },
                }
            )
    await client.close()
    return rows


async def overhead(stack: LocalStack, queries: list[str], n: int) -> dict:
    """Median latency through the gateway vs the same downstream calls made directly, alternating:
    vector retrieval (encode, then search the index processes) and hybrid retrieval (encode and
    the lexical search together, then the vector search; the two lists fused as the gateway
    fuses them)."""
    enc = AsyncEncoderClient(stack.encoder)
    fan = IndexFanout(stack.index_targets)
    gw = AsyncSearchClient(stack.gateway)
    cfg = GatewayConfig()
    depth = cfg.hybrid_depth
    low, high = cfg.hybrid_vector_weight_low, cfg.hybrid_vector_weight_high

    async def direct_vector(q):
        v = (await enc.embed_texts("vitrine-text", [q])).vectors[0]
        await fan.search("products", v[None], k=10, include_attributes=True)

    async def direct_hybrid(q):
        async def vector():
            v = (await enc.embed_texts("vitrine-text", [q])).vectors[0]
            return await fan.search("products", v[None], k=depth, include_attributes=True)

        vec, lex = await asyncio.gather(
            vector(),
            fan.search("products", None, k=depth, include_attributes=True, text_queries=[q]),
        )
        blend(vec.hits[0], lex.hits[0], adaptive_weight(q, lex.hits[0], low, high), depth, 10)

    pairs = {
        "vector": (
            direct_vector,
            lambda q: gw.search(text=q, k=10, rerank=False, retrieval_mode="vector"),
        ),
        "hybrid": (
            direct_hybrid,
            lambda q: gw.search(text=q, k=10, rerank=False, retrieval_mode="hybrid"),
        ),
    }
    out = {}
    for mode, (direct, via) in pairs.items():
        for q in queries[-20:]:  # warm both paths (other queries: the measured ones are all
            await direct(q)  # query-embedding cache misses, the gateway's work is all there)
            await via(q)
        a, b = [], []
        for q in queries[:n]:
            t = time.perf_counter()
            await direct(q)
            a.append(time.perf_counter() - t)
            t = time.perf_counter()
            await via(q)
            b.append(time.perf_counter() - t)
        direct_ms, gateway_ms = float(np.median(a)) * 1000, float(np.median(b)) * 1000
        out[mode] = {
            "direct_p50_ms": round(direct_ms, 3),
            "gateway_p50_ms": round(gateway_ms, 3),
            "overhead_p50_ms": round(gateway_ms - direct_ms, 3),
        }
    await enc.close()
    await fan.close()
    await gw.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--catalog", type=Path, default=None)
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument(
        "--encoder-photos", type=int, default=2000, help="photos for the encoder-alone figure"
    )
    ap.add_argument("--batch", type=int, default=32, help="products per ingest batch")
    args = ap.parse_args()

    catalog = load_catalog(args.catalog)
    queries = queries_from(catalog, 1000)
    os.environ["VITRINE_EMBED_CACHE_SIZE"] = "0"  # read by the gateway process at start
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
        enc_t = stack.encoder
        photos = [p.image_path.read_bytes() for p in catalog.products[: args.encoder_photos]]
        out["encoder_images_per_s"] = asyncio.run(encoder_alone(enc_t, photos, 4))
        with SearchClient(stack.gateway, timeout=3600) as client:
            t0 = time.perf_counter()
            resp = ingest_catalog(client, catalog, args.batch, quiet=True)
            out["ingest_products_per_s"] = resp.succeeded / (time.perf_counter() - t0)
            out["ingest_failed"] = resp.failed
        out["ingest_vs_encoder"] = round(
            out["ingest_products_per_s"] / out["encoder_images_per_s"], 3
        )
        concurrencies = [int(c) for c in args.concurrency.split(",")]
        out["search"] = asyncio.run(query_load(stack, queries, concurrencies, args.seconds))
        out["overhead"] = asyncio.run(overhead(stack, queries, 300))

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"Gateway: text queries over {len(catalog.products)} products (k=10)")
    for col in (
        "retrieval",
        "concurrency",
        "req/s",
        "p50 ms",
        "p99 ms",
        "encode p50 ms",
        "search p50 ms",
        "errors",
    ):
        t.add_column(col, justify="right")
    for r in out["search"]:
        t.add_row(
            r["mode"],
            str(r["concurrency"]),
            f"{r['rps']:.1f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['stage_p50_ms'].get('encode', float('nan')):.2f}",
            f"{r['stage_p50_ms'].get('search', float('nan')):.2f}",
            str(r["errors"]),
        )
    Console(width=120).print(t)
    print(
        f"ingest {out['ingest_products_per_s']:.1f} products/s vs encoder alone "
        f"{out['encoder_images_per_s']:.1f} images/s = {out['ingest_vs_encoder']}x (goal >= 0.8)"
    )
    for mode, o in out["overhead"].items():
        print(
            f"gateway overhead at the median, {mode} retrieval: {o['overhead_p50_ms']:.3f} ms "
            f"(gateway {o['gateway_p50_ms']:.3f} ms, direct {o['direct_p50_ms']:.3f} ms; "
            "goal <= 1 ms)"
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
