"""``make demo``: train the models (if needed), evaluate them, then run the whole system.

The towers, the reranker, the captioner and the query composer are trained on the catalog and
evaluated (retrieval, then top-50 reranked; titles against the nearest-neighbour and template
baselines). The services start as local processes (encoder, two index processes, gateway), the
catalog is ingested through the gateway, and text, photo, brand, model-number, composed and
filtered queries are answered by the running services (side by side: rerank off and on, vector
and hybrid retrieval, the weighted sum and the composition model); the captioner describes two
photos. The playground page (the gateway's HTTP port) is printed at the start; in a terminal the
services stay up for it until Enter, otherwise everything shuts down.
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
    from exporter.compose.export import COMPOSE_NAME
    from exporter.compose.train import ComposeConfig
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
    wanted = {*DEFAULT_PAIR, RERANK_NAME, CAPTION_NAME, COMPOSE_NAME}
    if retrain or not wanted <= set(repo.model_names()):
        # Small catalog: smaller batches give the heads enough steps.
        run_training(
            catalog,
            models,
            TrainConfig(epochs=epochs, batch_size=64),
            rerank=RerankConfig(),
            caption=CaptionConfig(epochs=60, batch_size=32),
            compose=ComposeConfig(),
        )
    report = evaluate(models, catalog, "test", rerank=RERANK_CANDIDATES)
    print_eval_report(report, console)
    print_caption_report(evaluate_captions(models, catalog, "test"), console)

    run_services_demo(catalog, models, console)


def brand_query(catalog) -> str:
    """The catalog's most common brand, as a shopper types it ("puma shoes")."""
    from collections import Counter

    shoes = [p for p in catalog.products if p.attributes.get("masterCategory") == "Footwear"]
    brands = Counter(p.title.split()[0] for p in shoes or catalog.products if p.title.split())
    return f"{brands.most_common(1)[0][0].lower()} shoes"


def model_number_query(catalog) -> str:
    """A fragment of a model number from some title ("MTP-1191A"), or "" if none has one."""
    import re

    numbers = [
        tok.split("(")[0]
        for p in catalog.products
        for tok in p.title.split()
        if re.search(r"\d", tok) and re.search(r"[A-Za-z]", tok)
    ]
    longest = max(numbers, key=len, default="")
    return longest[:-3] if len(longest) >= 8 else ""


def composed_query(catalog):
    """A product and a colour it is not in, where the catalog has its type in that colour."""
    from collections import Counter

    have = Counter(
        (p.attributes.get("articleType"), p.attributes.get("baseColour")) for p in catalog.products
    )
    for p in catalog.products[len(catalog.products) // 3 :]:
        kind, own = p.attributes.get("articleType"), p.attributes.get("baseColour")
        for colour in ("Red", "Blue", "Black", "White", "Green"):
            if colour != own and have[(kind, colour)] >= 3:
                return p, colour
    return catalog.products[0], "Red"


def held_out_photos(catalog, models: Path, n: int):
    """``n`` products of the captioner's test split (photos it never saw in training)."""
    from exporter.evaluate import pool_rows

    training = ModelRepository(models).load("vitrine-caption").manifest.training
    rows = pool_rows(catalog, "test", training)
    return [catalog.products[rows[i * len(rows) // n]] for i in range(n)]


def keep_serving(url: str | None, console: Console) -> None:
    """In a terminal, keep the stack up for the playground until Enter or Ctrl-C."""
    import contextlib
    import sys

    if url is None or not sys.stdin.isatty():
        return
    console.rule(f"Playground: {url}")
    console.print("Open it in a browser; press Enter (or Ctrl-C) to stop the services.")
    with contextlib.suppress(EOFError, KeyboardInterrupt):
        input()


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
    stack = LocalStack(
        models,
        data,
        ports=(0, 0, 0, 0),
        metrics_ports=(0, 0, 0, 0),
        http_port=0,
        media_dir=catalog.root / "images",
    )
    with stack:
        for svc in stack.services:
            console.print(f"  {svc.name:8s} {svc.target}  (pid {svc.info['pid']})")
        console.print(f"  playground (search page with the product photos): {stack.playground_url}")
        tls = stack.client_tls()
        if tls is not None:
            console.print(
                f"  TLS on every listener, mTLS between the services; throwaway CA {tls.ca_file}"
            )
        with SearchClient(stack.gateway, timeout=600, tls=tls) as client:
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
            ref, colour = composed_query(catalog)
            ref_photo = ref.image_path.read_bytes()
            print_side_by_side(
                f"composed: photo of {ref.title!r} ({ref.id}) + 'in {colour.lower()}'",
                client.search(
                    text=f"in {colour.lower()}", image=ref_photo, k=5, compose="weighted"
                ),
                client.search(text=f"in {colour.lower()}", image=ref_photo, k=5),
                console,
                labels=("weighted sum (before)", "composition model"),
            )
            brand = brand_query(catalog)
            print_side_by_side(
                f"brand: {brand!r}",
                client.search(text=brand, k=5, retrieval_mode="vector"),
                client.search(text=brand, k=5),
                console,
                labels=("vector retrieval (before)", "hybrid retrieval (default)"),
            )
            number = model_number_query(catalog)
            if number:
                print_search(f"model number: {number!r}", client.search(text=number, k=3), console)
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
        keep_serving(stack.playground_url, console)
    console.print("services stopped")
