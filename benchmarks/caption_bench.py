"""Generate: latency and batching of the captioner behind the encoder service.

    python benchmarks/caption_bench.py --catalog ../shared/data/fashion-products --models models

Starts ``vitrine serve encoder`` with only the caption model and measures, in one run, with real
catalog photos:

* ``Generate`` of one photo per request, greedy and beam 3, at concurrency 1 and 16: p50/p99 and
  photos/s; the batching gain is photos/s at 16 over photos/s at 1 (goal ≥ 3× for greedy, p50 at
  concurrency 1 ≤ 40 ms);
* the in-process limit: the same photos described one at a time by onnxruntime in this process
  (``exporter.evaluate_caption.OnnxCaptioner``: image encoder + the same decoding loop);
* the decoder step alone at prefix lengths 1, 6, 12, 20 for 1 and 16 rows: how much re-running
  the prefix costs as a title grows (the question a key/value cache would answer), and the image
  encoder alone per photo at batch 1 and 16 (what batching can and cannot buy on this machine).

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

from benchmarks.encoder_bench import start_encoder  # noqa: E402
from benchmarks.loadgen import closed_loop  # noqa: E402
from encoder_service.client import AsyncEncoderClient  # noqa: E402
from exporter.evaluate_caption import CAPTION_MODEL, OnnxCaptioner  # noqa: E402
from vitrine.captioning import BOS, DecodeOptions, pad_prefixes  # noqa: E402
from vitrine.catalog import load_catalog  # noqa: E402
from vitrine.model_repo import ModelRepository  # noqa: E402
from vitrine.preprocess import decode_image  # noqa: E402


async def service(port: int, photos, beams, concurrencies, seconds) -> list[dict]:
    client = AsyncEncoderClient(f"127.0.0.1:{port}", timeout=60)
    rows = []
    for beam in beams:

        async def one(photo, beam=beam):
            await client.generate(CAPTION_MODEL, [photo], beam=beam)

        for c in concurrencies:
            r = await closed_loop(one, photos, c, seconds)
            rows.append({"beam": beam, **r.row()})
    await client.close()
    return rows


def in_process(cap: OnnxCaptioner, photos, beams, n: int) -> dict:
    out = {}
    for beam in beams:
        opts = DecodeOptions(beam=beam, max_tokens=cap.defaults["max_tokens"])
        lat = []
        for i in range(n + 5):
            t = time.perf_counter()
            pixels = decode_image(photos[i % len(photos)])[None]
            memory, probs = cap.encode(pixels)
            cap.describe(memory, probs, opts)
            if i >= 5:
                lat.append(time.perf_counter() - t)
        ms = np.array(lat) * 1000
        out[beam] = {
            "p50_ms": round(float(np.median(ms)), 2),
            "photos_per_s": round(1000 / float(ms.mean()), 1),
        }
    return out


def image_side(cap: OnnxCaptioner, photos) -> dict:
    """The image encoder alone (the EfficientNet trunk inside it), per photo, batch 1 vs 16."""
    pixels = np.stack([decode_image(p) for p in photos[:16]])
    out = {}
    for b in (1, 16):
        for _ in range(3):
            cap.encode(pixels[:b], batch=b)
        t = time.perf_counter()
        for _ in range(10):
            cap.encode(pixels[:b], batch=b)
        out[f"batch_{b}_ms_per_photo"] = round((time.perf_counter() - t) / 10 / b * 1000, 2)
    return out


def step_costs(cap: OnnxCaptioner, photos) -> list[dict]:
    memory, _ = cap.encode(np.stack([decode_image(p) for p in photos[:16]]))
    rows = []
    for r in (1, 16):
        for length in (1, 6, 12, 20):
            tokens, lengths = pad_prefixes([[BOS] + [5] * (length - 1)] * r)
            mem = memory[np.arange(r) % len(memory)]
            for _ in range(5):
                cap.step(mem, tokens, lengths)
            t = time.perf_counter()
            for _ in range(50):
                cap.step(mem, tokens, lengths)
            rows.append(
                {"rows": r, "prefix": length, "ms": round((time.perf_counter() - t) / 50 * 1000, 3)}
            )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--catalog", type=Path, default=None)
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", default="1,16")
    ap.add_argument("--beams", default="1,3")
    ap.add_argument("--photos", type=int, default=200)
    args = ap.parse_args()

    catalog = load_catalog(args.catalog)
    photos = [p.image_path.read_bytes() for p in catalog.products[-args.photos :]]
    cap = OnnxCaptioner(ModelRepository(args.models).load(CAPTION_MODEL))
    beams = [int(b) for b in args.beams.split(",")]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    out: dict = {"model": f"{cap.version.manifest.name}/{cap.version.manifest.version}"}
    out["in_process"] = in_process(cap, photos, beams, 60)
    out["decoder_step"] = step_costs(cap, photos)
    out["image_encoder"] = image_side(cap, photos)
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_encoder(args.models, [CAPTION_MODEL], Path(tmp))
        try:
            out["service"] = asyncio.run(
                service(proc.port, photos, beams, concurrencies, args.seconds)
            )
        finally:
            proc.stop()
    for beam in beams:
        rs = {r["concurrency"]: r for r in out["service"] if r["beam"] == beam}
        lo, hi = min(rs), max(rs)
        out.setdefault("batching_gain", {})[beam] = round(rs[hi]["rps"] / rs[lo]["rps"], 2)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    t = Table(title=f"Generate, one photo per request ({out['model']})")
    for col in ("beam", "concurrency", "photos/s", "p50 ms", "p99 ms", "in-process p50 ms"):
        t.add_column(col, justify="right")
    for r in out["service"]:
        t.add_row(
            str(r["beam"]),
            str(r["concurrency"]),
            f"{r['rps']:.1f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{out['in_process'][r['beam']]['p50_ms']:.2f}",
        )
    console.print(t)
    console.print(f"batching gain (photos/s at {hi} over {lo}): {out['batching_gain']}")
    console.print(f"image encoder alone, ms per photo: {out['image_encoder']}")
    t = Table(title="Decoder step alone (re-running the prefix)")
    for col in ("rows", "prefix length", "ms per step"):
        t.add_column(col, justify="right")
    for r in out["decoder_step"]:
        t.add_row(str(r["rows"]), str(r["prefix"]), f"{r['ms']:.3f}")
    console.print(t)
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
