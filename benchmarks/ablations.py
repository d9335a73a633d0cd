"""What each part of the training recipe buys: train variants on the cached features, score them.

    python benchmarks/ablations.py --catalog ../shared/data/fashion-products [--variants NAME ...]

Each variant is trained with the same data, split and seed as ``vitrine train`` and scored on the
1,000-product test pool from the cached trunk outputs (float16), which matches the exported ONNX
towers' evaluation to within ~0.005 on every metric. Prints a table and, last, one JSON line.

Besides single configurations, a variant may be an *ensemble* (several seeds; their embeddings
concatenated, i.e. the mean of the members' cosines) or a *two-stage* run (the default heads
trained on frozen features first, then the last backbone block(s) fine-tuned from there: "linear
probe, then fine-tune").
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from exporter.features import extract_features
from exporter.metrics import retrieval_metrics
from exporter.split import split_products
from exporter.towers import TowerSpec
from exporter.train import CachedData, TrainConfig, embed_cached, probe_config, train_towers
from vitrine.catalog import load_catalog

BASE = TrainConfig(
    spec=TowerSpec(head="mlp", colour=False, mid=False),
    title_prob=1.0,
    multi_positive=False,
    epochs=40,
)
COLOUR = TrainConfig(spec=TowerSpec(mid=False))


@dataclass(frozen=True)
class Variant:
    cfg: TrainConfig
    seeds: tuple[int, ...] = (0,)  # more than one: an ensemble of that many heads
    pretrain: TrainConfig | None = None  # stage 1 (frozen), then ``cfg`` starts from its weights


FINETUNE_IMAGE = TrainConfig(spec=TowerSpec(image_tail=1), epochs=4, lr=2e-4, warmup_steps=10)
VARIANTS: dict[str, TrainConfig | Variant] = {
    "linear probe": probe_config(BASE),
    "mlp+attention heads": BASE,
    "+ multi-positive": replace(BASE, multi_positive=True),
    "+ attribute text augmentation": replace(BASE, multi_positive=True, title_prob=0.7),
    "+ colour descriptors": COLOUR,
    "+ hard-negative batches": replace(COLOUR, hard_batches=0.5),
    "+ mid-level image descriptors (default)": TrainConfig(),
    "+ unfreeze 2 text layers": TrainConfig(spec=TowerSpec(text_tail=2, mid=False), epochs=25),
    # Tried on top of the default (2026-11-24); none is in the default recipe, see docs/quality.md.
    "default + attribute classification loss": TrainConfig(attr_loss=0.2),
    "default, batch 1024": TrainConfig(batch_size=1024, lr=2e-3),
    "default, then fine-tune last image block": Variant(FINETUNE_IMAGE, pretrain=TrainConfig()),
    "ensemble of 3 default heads (768-d)": Variant(TrainConfig(), seeds=(0, 1, 2)),
}


def score(embeddings: list[tuple], title_code) -> dict:
    import numpy as np

    t = np.concatenate([e[0] for e in embeddings], axis=1)
    v = np.concatenate([e[1] for e in embeddings], axis=1)
    s = t @ v.T
    strict = np.eye(len(t), dtype=bool)
    title = title_code[:, None] == title_code[None, :]
    t2i, i2t = retrieval_metrics(s, strict), retrieval_metrics(s.T, strict)
    return {
        "t2i_R@1": t2i["R@1"],
        "t2i_R@10": t2i["R@10"],
        "t2i_mAP@10": t2i["mAP@10"],
        "i2t_R@1": i2t["R@1"],
        "i2t_R@10": i2t["R@10"],
        "t2i_title_R@1": retrieval_metrics(s, title)["R@1"],
    }


def train_and_embed(catalog, split, var: Variant, seed: int) -> tuple:
    init = None
    if var.pretrain is not None:
        pre = replace(var.pretrain, seed=seed)
        feats = extract_features(catalog, pre.spec.text_tail, pre.spec.image_tail, quiet=True)
        init = train_towers(catalog, feats, split, pre, quiet=True).model.state_dict()
    cfg = replace(var.cfg, seed=seed)
    feats = extract_features(catalog, cfg.spec.text_tail, cfg.spec.image_tail, quiet=True)
    res = train_towers(catalog, feats, split, cfg, quiet=True, init=init)
    return embed_cached(res.model, CachedData(feats, catalog, split.test), "cpu")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--catalog", type=Path, default=None)
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), help="names from VARIANTS")
    args = ap.parse_args()
    catalog = load_catalog(args.catalog)
    split = split_products(catalog.products)
    title_code = CachedData(extract_features(catalog, quiet=True), catalog, split.test).title_code
    rows = []
    for name in args.variants:
        var = VARIANTS[name]
        var = var if isinstance(var, Variant) else Variant(var)
        t0 = time.perf_counter()
        embeddings = [train_and_embed(catalog, split, var, seed) for seed in var.seeds]
        m = score(embeddings, title_code)
        rows.append(
            {
                "variant": name,
                "train_s": round(time.perf_counter() - t0, 1),
                **{k: round(v, 4) for k, v in m.items()},
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    table = Table(title=f"Ablations: test pool of {len(split.test)} products, strict rule")
    cols = [
        "variant",
        "t2i_R@1",
        "t2i_R@10",
        "t2i_mAP@10",
        "i2t_R@1",
        "i2t_R@10",
        "t2i_title_R@1",
        "train_s",
    ]
    for c in cols:
        table.add_column(c, justify="left" if c == "variant" else "right")
    for r in rows:
        table.add_row(*(str(r[c]) for c in cols))
    Console().print(table)
    print(json.dumps({"pool_size": len(split.test), "results": rows}))


if __name__ == "__main__":
    main()
