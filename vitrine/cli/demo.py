"""``make demo``: train the models (if needed), evaluate them, then run the whole system.

The towers, the reranker and the captioner are trained on the catalog and evaluated (retrieval,
then top-50 reranked; titles against the nearest-neighbour and template baselines). The services
start as local processes (encoder, two index processes, gateway), the catalog is ingested through
the gateway, and text, photo, composite and filtered queries are answered by the running services
(text and photo queries with rerank off and on, side by side); the captioner describes two
photos, and everything shuts down.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from vitrine.catalog import load_catalog
from vitrine.cli.report import print_caption_report, print_eval_report
from vitrine.model_repo import ModelRepository

TEXT_QUERIES = (
    "navy blue men's casual shirt",
    "women black handbag",
    "red sports shoes",
    "analog watch for men",
)
RERANK_CANDIDATES = 50


def run_demo(
    catalog_dir: Path | None, models: Path, epochs: int = 30, retrain: bool = False
) -> None:
    from exporter.caption.export import CAPTION_NAME
    from exporter.caption.train import CaptionConfig
    from exporter.evaluate import DEFAULT_PAIR, evaluate
    from exporter.evaluate_caption import evaluate_captions
    from exporter.pipeline import run_training
    from exporter.rerank.export import RERANK_NAME
    from exporter.rerank.train import RerankConfig
    from exporter.train import TrainConfig

    console = Console()
    catalog = load_catalog(catalog_dir)
    repo = ModelRepository(models)
    console.rule(f"Vitrine demo — {len(catalog)} products from {catalog.root}")
    if retrain or not {*DEFAULT_PAIR, RERANK_NAME, CAPTION_NAME} <= set(repo.model_names()):
        # Small catalog: smaller batches give the heads enough steps.
        run_training(
            catalog,
            models,
            TrainConfig(epochs=epochs, batch_size=64),
            rerank=RerankConfig(),
            caption=CaptionConfig(epochs=60, batch_size=32),
        )
    report = evaluate(models, catalog, "test", rerank=RERANK_CANDIDATES)
    print_eval_report(report, console)
    print_caption_report(evaluate_captions(models, catalog, "test"), console)

    run_services_demo(catalog, models, console)


def held_out_photos(catalog, models: Path, n: int):
    """``n`` products of the captioner's test split (photos it never saw in training)."""
    from exporter.evaluate import pool_rows

    training = ModelRepository(models).load("vitrine-caption").manifest.training
    rows = pool_rows(catalog, "test", training)
    return [catalog.products[rows[i * len(rows) // n]] for i in range(n)]


def run_services_demo(catalog, models: Path, console: Console) -> None:
    """Start the services, ingest the catalog through the gateway, run four kinds of query."""
    import tempfile

    from gateway.client import SearchClient
    from vitrine.cli.shop import (
        ingest_catalog,
        parse_filter,
        print_description,
        print_failures,
        print_search,
        print_side_by_side,
    )
    from vitrine.cli.stack import LocalStack

    data = Path(tempfile.mkdtemp(prefix="vitrine-demo-index-"))
    console.rule("Services: encoder, two index processes (2 shards each), gateway")
    with LocalStack(models, data, ports=(0, 0, 0, 0), metrics_ports=(0, 0, 0, 0)) as stack:
        for svc in stack.services:
            console.print(f"  {svc.name:8s} {svc.target}  (pid {svc.info['pid']})")
        with SearchClient(stack.gateway, timeout=600) as client:
            resp = ingest_catalog(client, catalog)
            console.print(f"ingested {resp.succeeded} of {resp.received} products")
            print_failures(resp, console)
            for q in TEXT_QUERIES:
                print_side_by_side(
                    f"text: {q!r}",
                    client.search(text=q, k=5, rerank=False),
                    client.search(text=q, k=5, rerank_candidates=RERANK_CANDIDATES),
                    console,
                )
            probe = catalog.products[len(catalog.products) // 3]
            photo = probe.image_path.read_bytes()
            print_side_by_side(
                f"image: photo of product {probe.id} ({probe.title})",
                client.search(image=photo, k=5, rerank=False),
                client.search(image=photo, k=5),
                console,
            )
            print_search(
                "composite: that photo + 'but in red' (text 0.3, image 0.7)",
                client.search(text="red", image=photo, k=5, text_weight=0.3, image_weight=0.7),
                console,
            )
            flt = ["gender=Women", "masterCategory=Footwear"]
            print_search(
                f"filtered: 'casual shoes' where {' and '.join(flt)}",
                client.search(text="casual shoes", k=5, filter=parse_filter(flt)),
                console,
            )
            for p in held_out_photos(catalog, models, 2):
                print_description(
                    f"describe: unseen photo of product {p.id} (catalog title {p.title!r})",
                    client.describe(p.image_path.read_bytes()),
                    console,
                )
    console.print("services stopped")
