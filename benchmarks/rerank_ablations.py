"""What each feature of the reranker buys, on the 1,000-product test pool.

    python benchmarks/rerank_ablations.py --catalog ../shared/data/fashion-products --models models

Reads the towers and the reranker that ``vitrine train`` left in ``MODELS/.checkpoints`` and the
cached backbone features, builds the towers' top-N lists of the validation and test pools once,
then for each feature subset re-fits the combination weights on the validation lists (as
training does) and scores the test lists: strict R@1/R@10 of text→image (a title finds its
photo) and image→text (a photo finds its title). Features outside the subset are zeroed.
Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exporter import backbones  # noqa: E402
from exporter.features import DEFAULT_CACHE, extract_features  # noqa: E402
from exporter.pipeline import CHECKPOINTS, RERANK_CHECKPOINT, load_checkpoint  # noqa: E402
from exporter.rerank.export import load_checkpoint as load_rerank  # noqa: E402
from exporter.rerank.labels import ATTRIBUTES  # noqa: E402
from exporter.rerank.model import FEATURES  # noqa: E402
from exporter.rerank.train import (  # noqa: E402
    TEXT_MAX_LENGTH,
    PairLists,
    fit_weights,
    image_inputs,
    list_metrics,
    pool_lists,
)
from exporter.split import recorded_split  # noqa: E402
from vitrine.catalog import load_catalog  # noqa: E402
from vitrine.preprocess import TextTokenizer  # noqa: E402

ATTRS = tuple(f"attr_{a}" for a in ATTRIBUTES)
SUBSETS: dict[str, tuple[str, ...]] = {
    "towers alone (retrieval order)": ("retrieval",),
    "+ attribute agreement": ("retrieval", *ATTRS),
    "+ attributes, no brand": ("retrieval", *(a for a in ATTRS if a != "attr_brand")),
    "+ attributes + tagger": ("retrieval", *ATTRS, "tags"),
    "+ attributes + catalog memory": ("retrieval", *ATTRS, "memory_text", "memory_photo"),
    "all features (default)": FEATURES,
}


def masked(lists: dict[str, PairLists], keep: tuple[str, ...]) -> dict[str, PairLists]:
    cols = torch.tensor([f in keep for f in FEATURES], dtype=torch.float32)
    return {d: replace(pl, features=pl.features * cols) for d, pl in lists.items()}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--catalog", type=Path, required=True)
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--candidates", type=int, default=0, help="list length (0: as trained)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    catalog = load_catalog(args.catalog)
    towers, training = load_checkpoint(args.models / CHECKPOINTS / "vitrine.pt")
    rerank, _ = load_rerank(args.models / CHECKPOINTS / RERANK_CHECKPOINT)
    split = recorded_split(catalog.products, training["split"])
    spec = towers.spec
    feats = extract_features(
        catalog, spec.text_tail, 0, spec.max_length, args.cache_dir, quiet=True
    )
    n = args.candidates or rerank.config.candidates
    tok = TextTokenizer(backbones.minilm_tokenizer_json(), TEXT_MAX_LENGTH)
    title_batch = tok.encode([p.title for p in catalog.products])
    x_all, mid_all = image_inputs(feats, np.arange(len(catalog.products)))
    with torch.no_grad():
        payloads = rerank.image_heads(torch.from_numpy(x_all), torch.from_numpy(mid_all))
    payloads = payloads.numpy().astype(np.float16)
    model = rerank.model
    lists = {
        name: pool_lists(model, towers, feats, catalog, np.asarray(rows), title_batch, payloads, n)
        for name, rows in (("val", split.val), ("test", split.test))
    }
    rows = []
    for name, keep in SUBSETS.items():
        with torch.no_grad():
            model.weights.zero_()
            model.weights[:, 0] = 20.0
        fit_weights(model, masked(lists["val"], keep), rerank.config)
        m = list_metrics(model, masked(lists["test"], keep))
        rows.append(
            {
                "features": name,
                "t2i_R@1": m["text_query_reranked"]["R@1"],
                "t2i_R@10": m["text_query_reranked"]["R@10"],
                "i2t_R@1": m["photo_query_reranked"]["R@1"],
                "i2t_R@10": m["photo_query_reranked"]["R@10"],
            }
        )

    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"Reranker features, test pool ({len(split.test)} products, top-{n} lists)")
    for col in ("features", "t2i R@1", "t2i R@10", "i2t R@1", "i2t R@10"):
        t.add_column(col, justify="right" if col != "features" else "left")
    for r in rows:
        t.add_row(
            r["features"],
            *(f"{r[k]:.3f}" for k in ("t2i_R@1", "t2i_R@10", "i2t_R@1", "i2t_R@10")),
        )
    Console(width=120).print(t)
    print(
        json.dumps(
            {
                "config": {
                    "catalog": str(args.catalog),
                    "models": str(args.models),
                    "candidates": n,
                },
                "seconds": round(time.perf_counter() - t0, 1),
                "rows": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
