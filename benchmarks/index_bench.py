"""Index service: build, memory, latency, throughput and recall against in-process faiss and Milvus Lite.

    python benchmarks/index_bench.py --sizes 10000,100000,1000000 --dim 256

Data: clustered synthetic vectors (a Gaussian mixture, L2-normalised: real embeddings are
clustered, uniform random vectors are not) and, with ``--catalog``, the real catalog's image
embeddings (queries: the titles' text embeddings) from the default towers in ``--models``.
For every size and index type (``Flat``, ``HNSW32``, ``IVF<n/256>,PQ32``), in the same run:

* **vitrine**: ``vitrine serve index`` in its own process, fed by ``Upsert`` batches (WAL fsync
  on), searched over gRPC by the Python client;
* **faiss**: the same index built and searched in this process (the limit for our overhead);
* **milvus**: Milvus Lite (``benchmarks/peers/milvus_peer.py`` in ``.venv-peers``), same data,
  index parameters and queries.

Reports build time, memory per vector, single-query QPS and p50/p99 at concurrency 1 and 8,
batched throughput, recall@10 against exact search, filtered search (10% and 0.1% selectivity)
latency, and upsert throughput. HNSW's efSearch is the smallest of 16…512 that reaches
recall@10 ≥ 0.95 in process, then used everywhere. Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.loadgen import closed_loop  # noqa: E402
from index_service.client import IndexClient, _records  # noqa: E402
from index_service.shard import index_bytes  # noqa: E402
from vitrine.filters import eq  # noqa: E402

PEER_PY = ROOT / ".venv-peers" / "bin" / "python"
EF_CHOICES = (16, 32, 64, 128, 256, 512)


def clustered(n: int, dim: int, seed: int, centres: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Cluster centre + a point on a low-dimensional (32-d) manifold + a little isotropic noise."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):
        m = min(n, s + 100_000) - s
        x = centres[rng.integers(0, len(centres), m)]
        x = x + 0.3 * rng.standard_normal((m, basis.shape[0])).astype(np.float32) @ basis
        x = x + 0.02 * rng.standard_normal((m, dim)).astype(np.float32)
        out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def synthetic(n: int, dim: int, queries: int):
    rng = np.random.default_rng(42)
    centres = rng.standard_normal((1000, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis = rng.standard_normal((32, dim)).astype(np.float32) / np.sqrt(32)
    return clustered(n, dim, 1, centres, basis), clustered(queries, dim, 2, centres, basis)


def catalog_embeddings(models: Path, catalog: Path, cache: Path):
    if cache.exists():
        z = np.load(cache)
        return z["base"], z["queries"]
    import onnxruntime as ort

    from vitrine.catalog import load_catalog
    from vitrine.model_repo import ModelRepository
    from vitrine.preprocess import TextTokenizer, decode_image

    repo = ModelRepository(models)
    cat = load_catalog(catalog)
    img = repo.load("vitrine-image")
    txt = repo.load("vitrine-text")
    si = ort.InferenceSession(str(img.onnx_path), providers=["CPUExecutionProvider"])
    st = ort.InferenceSession(str(txt.onnx_path), providers=["CPUExecutionProvider"])
    tok = TextTokenizer(txt.tokenizer_path, 64)
    base, queries = [], []
    products = cat.products
    for s in range(0, len(products), 64):
        part = products[s : s + 64]
        px = np.stack([decode_image(p.image_path.read_bytes()) for p in part])
        base.append(si.run(None, {next(iter(img.manifest.inputs)): px})[0])
        b = tok.encode([p.title for p in part])
        queries.append(
            st.run(None, {"input_ids": b.input_ids, "attention_mask": b.attention_mask})[0]
        )
    base, queries = np.concatenate(base), np.concatenate(queries)[:1000]
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, base=base, queries=queries)
    return base, queries


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f[:k]) & set(t)) / k for f, t in zip(found, truth, strict=True)]))


def spec_for(kind: str, n: int) -> str:
    if kind == "IVFPQ":
        return f"IVF{max(16, min(4096, n // 256))},PQ32"
    return kind


# -- in-process faiss -----------------------------------------------------------------------------------
def inprocess(spec: str, base, queries, truth, seconds: float, cats, sel_cat) -> dict:
    t0 = time.perf_counter()
    index = faiss.index_factory(base.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(base[: min(len(base), 100_000)])
    index.add(base)
    build = time.perf_counter() - t0
    params = {}
    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexHNSW):
        for ef in EF_CHOICES:
            inner.hnsw.efSearch = ef
            _, i = index.search(queries, 10)
            if recall(i, truth) >= 0.95:
                break
        params["ef_search"] = ef
    if isinstance(inner, faiss.IndexIVF):
        for nprobe in (1, 4, 8, 16, 32, 64, 128):
            inner.nprobe = nprobe
            _, i = index.search(queries, 10)
            if recall(i, truth) >= 0.95:
                break
        params["nprobe"] = nprobe
    _, found = index.search(queries, 10)
    out = {
        "build_s": build,
        "bytes_per_vector": index_bytes(index) / len(base),
        "recall@10": recall(found, truth),
        "params": params,
    }
    faiss.omp_set_num_threads(1)  # concurrency comes from the callers, as in the service
    for c in (1, 8):
        out[f"c{c}"] = _threads_loop(lambda q: index.search(q[None], 10), queries, c, seconds)
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    t0, done = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        index.search(queries[:256], 10)
        done += 256
    out["batched_qps"] = done / (time.perf_counter() - t0)
    return out, index


def _threads_loop(fn, queries, concurrency: int, seconds: float) -> dict:
    lat: list[float] = []
    stop = time.perf_counter() + seconds
    lock = threading.Lock()

    def worker(w):
        i, mine = w, []
        while time.perf_counter() < stop:
            t = time.perf_counter()
            fn(queries[i % len(queries)])
            mine.append(time.perf_counter() - t)
            i += concurrency
        with lock:
            lat.extend(mine)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, range(concurrency)))
    el = time.perf_counter() - t0
    a = np.array(lat) * 1000
    return {
        "qps": len(lat) / el,
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
    }


# -- the service ------------------------------------------------------------------------------------------
def start_service(data_dir: Path, tmp: Path):
    ready = tmp / f"index-ready-{time.monotonic_ns()}.json"
    proc = subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "vitrine"),
            "serve",
            "index",
            "--data-dir",
            str(data_dir),
            "--port",
            "0",
            "--metrics-port",
            "-1",
            "--ready-file",
            str(ready),
        ],
        cwd=ROOT,
        env={**os.environ, "VITRINE_LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("index service did not start")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())["port"]


def service(
    spec, base, queries, truth, seconds, cats, sel_cat, params, tmp: Path, shards: int
) -> dict:
    proc, port = start_service(tmp / f"data-{time.monotonic_ns()}", tmp)
    target = f"127.0.0.1:{port}"
    out = {}
    try:
        with IndexClient(target, timeout=3600) as c:
            c.create_collection("bench", base.shape[1], "ip", spec, shards)
            ids = [str(i) for i in range(len(base))]
            attrs = [{"cat": f"c{x}"} for x in cats]
            t0 = time.perf_counter()
            batch = 5000
            for s in range(0, len(base), batch):
                recs = _records(ids[s : s + batch], base[s : s + batch], attrs[s : s + batch])
                c.upsert_records("bench", recs)
            out["upsert_vectors_per_s"] = len(base) / (time.perf_counter() - t0)
            deadline = time.monotonic() + 3600
            while not all(s.trained for s in c.stats("bench").shards):
                if time.monotonic() > deadline:
                    raise RuntimeError("index never trained")
                time.sleep(0.2)
            out["build_s"] = time.perf_counter() - t0  # ingest + (background) training
            stats = c.stats("bench")
            out["bytes_per_vector"] = stats.total_memory_bytes / len(base)
            ef, nprobe = params.get("ef_search", 0), params.get("nprobe", 0)
            hits = c.search("bench", queries, k=10, ef_search=ef, nprobe=nprobe)
            found = np.array([[int(h.id) for h in r] + [-1] * (10 - len(r)) for r in hits])
            out["recall@10"] = recall(found, truth)
            hits = c.search(
                "bench", queries, k=10, filter=eq("cat", "c3"), ef_search=ef, nprobe=nprobe
            )
            found = np.array([[int(h.id) for h in r] + [-1] * (10 - len(r)) for r in hits])
            out["filtered_recall@10"] = recall(found, filtered_truth(base, queries, cats, 3))

        async def run():
            from index_service.client import AsyncIndexClient

            ac = AsyncIndexClient(target, timeout=60)
            res = {}

            async def one(q, flt=None):
                return await ac.search(
                    "bench", q[None], 10, filter=flt, ef_search=ef, nprobe=nprobe
                )

            for conc in (1, 8):
                r = await closed_loop(one, list(queries), conc, seconds)
                res[f"c{conc}"] = {
                    "qps": r.rps,
                    "p50_ms": r.p50_ms,
                    "p99_ms": r.p99_ms,
                    "errors": r.errors,
                }
            for label, cat in (("filter_10pct", "c3"), ("filter_0.1pct", sel_cat)):
                flt = eq("cat", cat)
                r = await closed_loop(lambda q, flt=flt: one(q, flt), list(queries), 1, seconds / 2)
                res[label] = {"qps": r.rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms}
            t0, done = time.perf_counter(), 0
            while time.perf_counter() - t0 < seconds:
                await ac.search("bench", queries[:256], 10, ef_search=ef, nprobe=nprobe)
                done += 256
            res["batched_qps"] = done / (time.perf_counter() - t0)
            await ac.close()
            return res

        out.update(asyncio.run(run()))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(600)
        except subprocess.TimeoutExpired:
            proc.kill()
    return out


def filtered_truth(base, queries, cats, cat_value):
    mask = cats == cat_value
    labels = np.flatnonzero(mask)
    _d, i = faiss.knn(queries, base[labels], 10, metric=faiss.METRIC_INNER_PRODUCT)
    return labels[i]


def milvus(spec_kind, base, queries, truth, cats, params, seconds, tmp: Path, nq: int) -> dict:
    if not PEER_PY.exists() or not (ROOT / "benchmarks/peers/milvus_peer.py").exists():
        return {"skipped": "run benchmarks/peers/setup.sh (milvus-lite)"}
    d = tmp / f"milvus-{time.monotonic_ns()}"
    d.mkdir()
    np.save(d / "base.npy", base)
    # Milvus Lite scans in Python: its recall passes get the first ``nq`` queries only.
    np.save(d / "queries.npy", queries[:nq])
    np.save(d / "gt.npy", truth[:nq].astype(np.int64))
    np.save(d / "attrs.npy", cats.astype(np.int64))
    np.save(d / "gt_filtered.npy", filtered_truth(base, queries[:nq], cats, 3).astype(np.int64))
    index = {"Flat": "FLAT", "HNSW32": "HNSW"}.get(spec_kind, "IVF_PQ")
    args = [
        str(PEER_PY),
        str(ROOT / "benchmarks/peers/milvus_peer.py"),
        "--data",
        str(d),
        "--index",
        index,
        "--metric",
        "IP",
        "--k",
        "10",
        "--seconds",
        str(seconds),
        "--concurrency",
        "1,8",
        "--out",
        str(d / "result.json"),
        "--filter-field",
        "cat",
        "--filter-value",
        "3",
        "--pq-fallback",  # Milvus Lite 3.x has no IVF_PQ: IVF_SQ8 with the same nlist/nprobe
        "IVF_SQ8",
    ]
    if index == "HNSW":
        args += [
            "--hnsw-m",
            "32",
            "--ef-construction",
            "40",
            "--ef-search",
            str(params.get("ef_search", 64)),
        ]
    if index == "IVF_PQ":
        args += [
            "--nlist",
            str(max(16, min(4096, len(base) // 256))),
            "--pq-m",
            "32",
            "--nprobe",
            str(params.get("nprobe", 16)),
        ]
    r = subprocess.run(args, capture_output=True, text=True, timeout=7200)
    if r.returncode != 0 or not (d / "result.json").exists():
        return {"error": r.stderr[-2000:]}
    return _from_milvus(json.loads((d / "result.json").read_text()), len(base))


def _from_milvus(res: dict, n: int) -> dict:
    """Milvus peer's JSON in this script's shape."""
    if res.get("status") != "ok":
        return {"error": str(res.get("error"))[:2000]}
    out = {
        "build_s": res["insert"]["seconds"] + (res.get("build", {}).get("seconds") or 0),
        "upsert_vectors_per_s": res["insert"]["vectors_per_s"],
        "bytes_per_vector": res["server"]["rss_mib_after_load"] * 2**20 / n,
        "recall@10": res["recall"]["single"],
        "filtered_recall@10": res["recall"].get("filtered"),
        "raw": {k: res[k] for k in ("versions", "index", "server") if k in res},
    }
    for run in res["search"]:
        row = {"qps": run["qps"], "p50_ms": run["p50_ms"], "p99_ms": run["p99_ms"]}
        if run["mode"] == "single":
            out[f"c{run['concurrency']}"] = row
        elif run["mode"] == "batched":
            out["batched_qps"] = run["qps"]
        elif run["mode"] == "filtered" and run["concurrency"] == 1:
            out["filter_10pct"] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--specs", default="Flat,HNSW32,IVFPQ")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--milvus-queries", type=int, default=200, help="queries in its recall passes")
    ap.add_argument("--skip", default="", help="e.g. 'HNSW32@1000000,milvus'")
    ap.add_argument(
        "--catalog", type=Path, default=None, help="also run on the real catalog's embeddings"
    )
    ap.add_argument("--models", type=Path, default=Path("models"))
    args = ap.parse_args()

    skip = set(filter(None, args.skip.split(",")))
    datasets = []
    for n in [int(s) for s in args.sizes.split(",")]:
        datasets.append((f"synthetic-{n}", lambda n=n: synthetic(n, args.dim, args.queries)))
    if args.catalog:
        cache = ROOT / ".cache" / "bench" / "catalog_embeddings.npz"
        datasets.append(("catalog", lambda: catalog_embeddings(args.models, args.catalog, cache)))
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for name, make in datasets:
            base, queries = make()
            n = len(base)
            rng = np.random.default_rng(7)
            cats = rng.integers(0, 10, n)  # "c0".."c9": 10% each
            cats[rng.choice(n, max(10, n // 1000), replace=False)] = 10  # "c10": 0.1%
            truth = faiss.knn(queries, base, 10, metric=faiss.METRIC_INNER_PRODUCT)[1]
            for kind in args.specs.split(","):
                if f"{kind}@{n}" in skip:
                    continue
                spec = spec_for(kind, n)
                print(f"== {name} {spec}", flush=True)
                limit, _ = inprocess(spec, base, queries, truth, args.seconds, cats, "c10")
                print("  faiss  ", json.dumps(limit), flush=True)
                ours = service(
                    spec,
                    base,
                    queries,
                    truth,
                    args.seconds,
                    cats,
                    "c10",
                    limit["params"],
                    tmp,
                    args.shards,
                )
                print("  vitrine", json.dumps(ours), flush=True)
                peer = (
                    {"skipped": "--skip milvus"}
                    if "milvus" in skip
                    else milvus(
                        kind,
                        base,
                        queries,
                        truth,
                        cats,
                        limit["params"],
                        args.seconds,
                        tmp,
                        args.milvus_queries,
                    )
                )
                print("  milvus ", json.dumps(peer)[:2000], flush=True)
                rows.append(
                    {
                        "data": name,
                        "n": n,
                        "spec": spec,
                        "faiss": limit,
                        "vitrine": ours,
                        "milvus": peer,
                    }
                )
    summary = summarise(rows)
    print_table(rows)
    print(
        json.dumps(
            {
                "config": vars(args) | {"catalog": str(args.catalog), "models": str(args.models)},
                "rows": rows,
                "summary": summary,
            }
        )
    )


def _get(d, *path, default=float("nan")):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return default
        d = d[p]
    return d


def summarise(rows) -> list[dict]:
    out = []
    for r in rows:
        ours_c8 = _get(r, "vitrine", "c8", "qps")
        s = {
            "data": r["data"],
            "spec": r["spec"],
            "recall_vitrine": round(_get(r, "vitrine", "recall@10"), 3),
            "filtered_recall_vitrine": round(_get(r, "vitrine", "filtered_recall@10"), 3),
            "vs_faiss_c8": round(ours_c8 / _get(r, "faiss", "c8", "qps"), 3),
            "vs_milvus_c8": round(ours_c8 / _get(r, "milvus", "c8", "qps"), 2),
            "filter10_over_unfiltered_p50": round(
                _get(r, "vitrine", "filter_10pct", "p50_ms") / _get(r, "vitrine", "c1", "p50_ms"), 2
            ),
            "upsert_vectors_per_s": round(_get(r, "vitrine", "upsert_vectors_per_s")),
        }
        out.append(s)
    return out


def print_table(rows) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="Index: single-query search (k=10), one request per query")
    for col in (
        "data",
        "index",
        "who",
        "build s",
        "B/vector",
        "recall@10",
        "c1 qps",
        "c1 p50/p99 ms",
        "c8 qps",
        "c8 p50/p99 ms",
        "batched qps",
        "filter 10% / 0.1% p50 ms",
    ):
        t.add_column(col)
    for r in rows:
        for who in ("vitrine", "faiss", "milvus"):
            m = r[who]
            if "skipped" in m or "error" in m:
                t.add_row(r["data"], r["spec"], who, m.get("skipped", "error"), *[""] * 8)
                continue
            f = lambda *p, m=m: _get(m, *p)  # noqa: E731
            t.add_row(
                r["data"],
                r["spec"],
                who,
                f"{f('build_s'):.1f}",
                f"{f('bytes_per_vector'):.0f}",
                f"{f('recall@10'):.3f}",
                f"{f('c1', 'qps'):.0f}",
                f"{f('c1', 'p50_ms'):.2f}/{f('c1', 'p99_ms'):.2f}",
                f"{f('c8', 'qps'):.0f}",
                f"{f('c8', 'p50_ms'):.2f}/{f('c8', 'p99_ms'):.2f}",
                f"{f('batched_qps'):.0f}",
                f"{f('filter_10pct', 'p50_ms'):.2f} / {f('filter_0.1pct', 'p50_ms'):.2f}",
            )
    Console(width=200).print(t)


if __name__ == "__main__":
    main()
