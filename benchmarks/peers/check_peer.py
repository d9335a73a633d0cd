"""Parity check and smoke load for a running peer (Triton or MLServer), from the project venv.

    .venv/bin/python benchmarks/peers/check_peer.py --target 127.0.0.1:8001 --models models \
        [--catalog ../shared/data/fashion-products] [--n 8] [--seconds 10] [--concurrency 8]

1. Parity: ``--n`` real titles and photos from the catalog go through :class:`KServeClient`; the
   embeddings are compared with onnxruntime run in this process on the same preprocessed inputs
   (``vitrine.preprocess``). Fails (exit 1) if the max abs diff exceeds ``--tol`` (1e-5).
2. Smoke load: closed loop, ``--concurrency`` workers, one item per request, ``--seconds`` per
   model; prints requests/s and latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO_ROOT))

from kserve import KServeClient  # noqa: E402

from vitrine.preprocess import TextTokenizer, decode_image  # noqa: E402


def latest(models: Path, name: str) -> Path:
    versions = [
        int(p.name)
        for p in (models / name).iterdir()
        if p.name.isdigit() and (p / "manifest.json").exists()
    ]
    return models / name / str(max(versions))


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def load_samples(catalog: Path, n: int) -> tuple[list[str], list[bytes]]:
    titles, images = [], []
    with open(catalog / "catalog.csv", newline="") as f:
        for row in csv.DictReader(f):
            img = catalog / "images" / f"{row['id']}.jpg"
            if row.get("title") and img.exists():
                titles.append(row["title"])
                images.append(img.read_bytes())
            if len(titles) >= n:
                break
    return titles, images


def reference(models: Path, titles: list[str], images: list[bytes]) -> tuple[np.ndarray, ...]:
    tdir, idir = latest(models, "vitrine-text"), latest(models, "vitrine-image")
    tman = json.loads((tdir / "manifest.json").read_text())
    iman = json.loads((idir / "manifest.json").read_text())
    tok = TextTokenizer(tdir / tman["tokenizer"]["file"], tman["tokenizer"]["max_length"])
    batch = tok.encode(titles)
    (t_ref,) = session(tdir / "model.onnx").run(
        ["embedding"], {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
    )
    size = int((iman.get("preprocessing") or {}).get("size", 224))
    pixels = np.stack([decode_image(b, size=size) for b in images])
    (i_ref,) = session(idir / "model.onnx").run(["embedding"], {next(iter(iman["inputs"])): pixels})
    return t_ref, i_ref


async def smoke(
    client: KServeClient, model: str, items: list, kind: str, seconds: float, concurrency: int
) -> dict:
    call = client.embed_texts if kind == "text" else client.embed_images
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal errors
        i = w
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            try:
                await call(model, [items[i % len(items)]])
                latencies.append(time.perf_counter() - t)
            except Exception:
                errors += 1
            i += concurrency

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - t0
    lat = np.array(latencies) * 1000 if latencies else np.zeros(1)
    return {
        "model": model,
        "rps": round(len(latencies) / elapsed, 1),
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
    }


async def main_async(args: argparse.Namespace) -> int:
    models = Path(args.models)
    titles, images = load_samples(Path(args.catalog), args.n)
    t_ref, i_ref = reference(models, titles, images)
    client = KServeClient(args.target)
    try:
        await client.wait_ready(args.ready_timeout)
        t_got = await client.embed_texts("vitrine-text", titles)
        i_got = await client.embed_images("vitrine-image", images)
        # The same items as concurrent one-item requests: exercises the server's batch
        # merge/split (each answer must land with its own request).
        t_single = np.concatenate(
            await asyncio.gather(*(client.embed_texts("vitrine-text", [t]) for t in titles))
        )
        i_single = np.concatenate(
            await asyncio.gather(*(client.embed_images("vitrine-image", [b]) for b in images))
        )
        diffs = {
            "text_batch": float(np.abs(t_got - t_ref).max()),
            "image_batch": float(np.abs(i_got - i_ref).max()),
            "text_concurrent_singles": float(np.abs(t_single - t_ref).max()),
            "image_concurrent_singles": float(np.abs(i_single - i_ref).max()),
        }
        ok = t_got.shape == t_ref.shape == t_single.shape
        ok = ok and i_got.shape == i_ref.shape == i_single.shape
        ok = ok and max(diffs.values()) <= args.tol
        shapes = {"text": list(t_got.shape), "image": list(i_got.shape)}
        print(
            json.dumps({"parity": {"max_abs_diff": diffs, "shapes": shapes, "ok": ok}}), flush=True
        )
        if args.seconds > 0:
            pool_titles, pool_images = load_samples(Path(args.catalog), 256)
            for model, items, kind in (
                ("vitrine-text", pool_titles, "text"),
                ("vitrine-image", pool_images, "image"),
            ):
                res = await smoke(client, model, items, kind, args.seconds, args.concurrency)
                print(json.dumps({"smoke": res, "concurrency": args.concurrency}), flush=True)
        return 0 if ok else 1
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", required=True, help="host:port of the peer's gRPC endpoint")
    p.add_argument("--models", default=str(REPO_ROOT / "models"))
    p.add_argument("--catalog", default=str(REPO_ROOT.parent / "shared/data/fashion-products"))
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--tol", type=float, default=1e-5)
    p.add_argument("--seconds", type=float, default=10.0, help="smoke load per model; 0 = skip")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--ready-timeout", type=float, default=120.0)
    return asyncio.run(main_async(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
