"""Retrieval quality of the default towers against the linear-probe baseline, in one run.

    python benchmarks/quality.py --catalog ../shared/data/fashion-products --models models [--train]

``--train`` (or an empty repository) first runs ``vitrine train`` with the default recipe, which
trains and exports both the default towers and the linear probe. Then every pair is evaluated
through onnxruntime on the held-out test pool. Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from exporter.evaluate import DEFAULT_PAIR, evaluate
from vitrine.catalog import load_catalog
from vitrine.cli.report import print_eval_report
from vitrine.model_repo import ModelRepository


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--catalog", type=Path, default=None, help="catalog dir (default: embedded demo)"
    )
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--train", action="store_true", help="train and export before evaluating")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--split", default="test", choices=["test", "val", "all"])
    args = ap.parse_args()

    catalog = load_catalog(args.catalog)
    timings = {}
    if args.train or not set(DEFAULT_PAIR) <= set(ModelRepository(args.models).model_names()):
        from exporter.pipeline import run_training
        from exporter.train import TrainConfig

        t0 = time.perf_counter()
        run_training(catalog, args.models, TrainConfig(epochs=args.epochs))
        timings["train_and_export_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    report = evaluate(args.models, catalog, args.split)
    timings["eval_s"] = round(time.perf_counter() - t0, 1)
    print_eval_report(report)
    report["timings"] = timings
    print(json.dumps(report))


if __name__ == "__main__":
    main()
