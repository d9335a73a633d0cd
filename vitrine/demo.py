"""``make demo`` for the towers: train (if needed), evaluate, and show top results.

Searches here run in-process over the ONNX towers (brute-force inner product); the services of
later milestones replace this with the encoder, index and gateway.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console

from vitrine.catalog import load_catalog
from vitrine.model_repo import ModelRepository
from vitrine.report import print_eval_report, print_results

TEXT_QUERIES = (
    "navy blue men's casual shirt",
    "women black handbag",
    "red sports shoes",
    "analog watch for men",
)


def run_demo(
    catalog_dir: Path | None, models: Path, epochs: int = 30, retrain: bool = False
) -> None:
    from exporter.evaluate import DEFAULT_PAIR, OnnxTower, evaluate
    from exporter.pipeline import run_training
    from exporter.train import TrainConfig
    from vitrine.preprocess import load_image_file

    console = Console()
    catalog = load_catalog(catalog_dir)
    repo = ModelRepository(models)
    console.rule(f"Vitrine demo — {len(catalog)} products from {catalog.root}")
    if retrain or not set(DEFAULT_PAIR) <= set(repo.model_names()):
        # Small catalog: smaller batches give the heads enough steps.
        run_training(catalog, models, TrainConfig(epochs=epochs, batch_size=64))
    report = evaluate(models, catalog, "test")
    print_eval_report(report, console)

    text = OnnxTower(repo.load(DEFAULT_PAIR[0]))
    image = OnnxTower(repo.load(DEFAULT_PAIR[1]))
    products = catalog.products
    pixels = np.stack([load_image_file(p.image_path) for p in products])
    gallery = image.embed_pixels(pixels)

    def show(title: str, q: np.ndarray, k: int = 5) -> None:
        scores = gallery @ q
        top = np.argsort(-scores, kind="stable")[:k]
        print_results(
            title,
            [
                {
                    "score": float(scores[i]),
                    "id": products[i].id,
                    "title": products[i].title,
                    "attributes": products[i].attributes,
                }
                for i in top
            ],
            console,
        )

    for q in TEXT_QUERIES:
        show(f"text: {q!r}", text.embed_texts([q])[0])
    probe = products[len(products) // 3]
    show(f"image: photo of product {probe.id} ({probe.title})", gallery[products.index(probe)])
