"""The ``vitrine`` command line."""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from vitrine.logs import configure_logging

app = typer.Typer(
    name="vitrine",
    help="Vitrine: multimodal product search. Train and export the towers, evaluate them, demo.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

CatalogOpt = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        help="Catalog directory (catalog.csv + images/). Default: the embedded demo catalog.",
    ),
]
ModelsOpt = Annotated[Path, typer.Option("--models", help="Model repository directory.")]
DEFAULT_MODELS = Path(os.environ.get("VITRINE_MODELS", "models"))
RepoOut = Annotated[Path, typer.Option("--out", help="Model repository to publish into.")]
PrefixOpt = Annotated[str, typer.Option(help="Model name prefix: <name>-text, <name>-image.")]
VersionOpt = Annotated[
    int | None, typer.Option(min=1, help="Version to publish (default: the next free one).")
]


def _echo_published(text, image) -> None:
    typer.echo(
        f"published {text.manifest.name}/{text.manifest.version} and "
        f"{image.manifest.name}/{image.manifest.version}"
    )


class Split(StrEnum):
    test = "test"
    val = "val"
    all = "all"


class Head(StrEnum):
    mlp = "mlp"
    linear = "linear"


class Loss(StrEnum):
    infonce = "infonce"
    triplet = "triplet"


def _device(device: str, unfreezing: bool) -> str:
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter("--device cuda but no CUDA device is available")
    if unfreezing and device == "cpu":
        typer.secho(
            "note: unfreezing backbone blocks on CPU is slow; a GPU is recommended",
            err=True,
            fg="yellow",
        )
    return device


@app.callback()
def _main(
    log_level: Annotated[
        str, typer.Option(envvar="VITRINE_LOG_LEVEL", help="Log level.")
    ] = "warning",
    log_format: Annotated[
        str, typer.Option(envvar="VITRINE_LOG_FORMAT", help="json or text.")
    ] = "json",
) -> None:
    configure_logging(log_level, log_format)


@app.command()
def train(
    catalog: CatalogOpt = None,
    out: RepoOut = DEFAULT_MODELS,
    epochs: Annotated[int, typer.Option(min=1)] = 40,
    batch_size: Annotated[int, typer.Option(min=2)] = 256,
    lr: Annotated[float, typer.Option(min=0.0)] = 1e-3,
    dim: Annotated[int, typer.Option(min=8, help="Embedding dimension.")] = 256,
    head: Annotated[Head, typer.Option(help="Projection head.")] = Head.mlp,
    loss: Annotated[Loss, typer.Option(help="Contrastive loss.")] = Loss.infonce,
    title_prob: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Share of titles among training texts (rest: attribute phrases)."
        ),
    ] = 0.7,
    multi_positive: Annotated[
        bool, typer.Option(help="Treat products sharing a title as positives.")
    ] = True,
    hard_batches: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of each batch drawn from one article type."),
    ] = 0.0,
    unfreeze_text: Annotated[
        int, typer.Option(min=0, max=6, help="Fine-tune the last N MiniLM layers.")
    ] = 0,
    unfreeze_image: Annotated[
        int, typer.Option(min=0, max=16, help="Fine-tune the last N EfficientNet blocks.")
    ] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: int = 0,
    probe: Annotated[
        bool, typer.Option(help="Also train and export the linear-probe baseline.")
    ] = True,
    test_size: Annotated[
        int | None, typer.Option(help="Test pool size (default 1000, at most 15% of the catalog).")
    ] = None,
    val_size: Annotated[
        int | None, typer.Option(help="Validation size (default 500, at most 10%).")
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after this many steps (smoke tests).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train the text and image towers (CLIP-style) and export them to the model repository."""
    from exporter.pipeline import run_training
    from exporter.towers import TowerSpec
    from exporter.train import TrainConfig
    from vitrine.catalog import load_catalog

    cfg = TrainConfig(
        spec=TowerSpec(
            dim=dim, head=head.value, text_tail=unfreeze_text, image_tail=unfreeze_image
        ),
        loss=loss.value,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        title_prob=title_prob,
        multi_positive=multi_positive,
        hard_batches=hard_batches,
        seed=seed,
        device=_device(device, bool(unfreeze_text or unfreeze_image)),
        max_steps=max_steps,
    )
    cat = load_catalog(catalog)
    for r in run_training(
        cat, out, cfg, with_probe=probe, test_size=test_size, val_size=val_size, quiet=quiet
    ):
        typer.echo(
            f"{r.name}: published {r.text.manifest.name}/{r.text.manifest.version} and "
            f"{r.image.manifest.name}/{r.image.manifest.version} in {out} "
            f"(validation: {json.dumps({k: round(v, 3) for k, v in r.val_metrics.items()})})"
        )


@app.command("eval")
def eval_(
    models: ModelsOpt = DEFAULT_MODELS,
    catalog: CatalogOpt = None,
    split: Annotated[
        Split, typer.Option(help="Pool: the held-out test split, validation, or the whole catalog.")
    ] = Split.test,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Evaluate every text/image pair in the repository (ONNX, onnxruntime) on a catalog pool."""
    from exporter.evaluate import evaluate
    from vitrine.catalog import load_catalog

    report = evaluate(models, load_catalog(catalog), split.value, quiet=quiet)
    if as_json:
        typer.echo(json.dumps(report))
    else:
        from vitrine.report import print_eval_report

        print_eval_report(report)


@app.command()
def export(
    checkpoint: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="Training checkpoint (.pt).")
    ],
    out: RepoOut = DEFAULT_MODELS,
    name: PrefixOpt = "vitrine",
    version: VersionOpt = None,
    catalog: CatalogOpt = None,
) -> None:
    """Export a training checkpoint to ONNX (parity-checked on the catalog's first products)."""
    from exporter.pipeline import export_checkpoint
    from vitrine.catalog import load_catalog

    _echo_published(
        *export_checkpoint(checkpoint, out, name, load_catalog(catalog), version=version)
    )


@app.command("export-clip")
def export_clip(
    checkpoint: Annotated[
        Path, typer.Option(exists=True, file_okay=False, help="Hugging Face CLIPModel directory.")
    ],
    out: RepoOut = DEFAULT_MODELS,
    name: PrefixOpt = "clip",
    version: VersionOpt = None,
) -> None:
    """Export a Hugging Face CLIPModel checkpoint's two towers into the repository."""
    from exporter.clip_export import export_clip_checkpoint

    _echo_published(*export_clip_checkpoint(checkpoint, out, name, version=version))


@app.command()
def demo(
    catalog: CatalogOpt = None,
    models: ModelsOpt = Path("runs/demo-models"),
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    retrain: Annotated[
        bool, typer.Option(help="Train even if the repository already has models.")
    ] = False,
) -> None:
    """Build the default towers on the catalog, evaluate them and show top results for a few queries."""
    from vitrine.demo import run_demo

    run_demo(catalog, models, epochs=epochs, retrain=retrain)


serve_app = typer.Typer(
    help="Run a Vitrine gRPC service (config: flags > VITRINE_* env > --config YAML > defaults).",
    no_args_is_help=True,
)
app.add_typer(serve_app, name="serve")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", exists=True, dir_okay=False, help="YAML file with settings."),
]
HostOpt = Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")]
PortOpt = Annotated[int | None, typer.Option(help="gRPC port; 0 picks a free one.")]
MetricsPortOpt = Annotated[
    int | None, typer.Option(help="Prometheus /metrics port; 0 picks a free one, -1 disables.")
]
ReadyFileOpt = Annotated[
    str | None,
    typer.Option(help="Write {port, metrics_port, pid} as JSON here once ready (for scripts)."),
]


@serve_app.command("encoder")
def serve_encoder(
    models: Annotated[Path | None, typer.Option("--models", help="Model repository.")] = None,
    model: Annotated[
        list[str] | None,
        typer.Option("--model", help="Load only this model (NAME or NAME:VERSION); repeatable."),
    ] = None,
    config: ConfigOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    metrics_port: MetricsPortOpt = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Items per execution.")] = None,
    max_queue_delay_us: Annotated[
        int | None, typer.Option(help="Longest wait for batch-mates, microseconds.")
    ] = None,
    max_queue_items: Annotated[
        int | None, typer.Option(help="Queued items per model before RESOURCE_EXHAUSTED.")
    ] = None,
    instances: Annotated[int | None, typer.Option(help="Concurrent executions per model.")] = None,
    providers: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    intra_op_threads: Annotated[
        int | None, typer.Option(help="onnxruntime threads per execution (0 = cores).")
    ] = None,
    poll_interval_s: Annotated[
        float | None, typer.Option(help="Watch the repository for new versions (0 = off).")
    ] = None,
    text_overflow: Annotated[
        str | None, typer.Option(help="truncate or reject texts longer than the window.")
    ] = None,
    ready_file: ReadyFileOpt = None,
) -> None:
    """Serve the ONNX towers of a model repository over gRPC (vitrine.v1.EncoderService)."""
    params = dict(locals())
    from encoder_service.config import EncoderConfig
    from encoder_service.server import main
    from vitrine.serving.config import ConfigError, load_config

    overrides = {k: v for k, v in params.items() if k not in ("config", "ready_file", "model")}
    overrides["models_dir"] = str(overrides.pop("models")) if models else None
    overrides["models"] = model or None
    try:
        cfg = load_config(EncoderConfig, config, overrides)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    main(cfg, ready_file)


@serve_app.command("index")
def serve_index(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where collections (WAL, snapshots) live.")
    ] = None,
    config: ConfigOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    metrics_port: MetricsPortOpt = None,
    fsync: Annotated[
        bool | None, typer.Option(help="fsync the WAL before acknowledging writes.")
    ] = None,
    snapshot_wal_mb: Annotated[
        int | None, typer.Option(help="Snapshot once the WAL grew this many MiB.")
    ] = None,
    exact_max: Annotated[
        int | None, typer.Option(help="Filtered searches over at most this many run exactly.")
    ] = None,
    search_threads: Annotated[
        int | None, typer.Option(help="Threads searching shards in parallel (0 = cores).")
    ] = None,
    search_batch_rows: Annotated[
        int | None,
        typer.Option(help="Concurrent queries coalesced into one faiss call (<= 1: off)."),
    ] = None,
    index_device: Annotated[
        str | None,
        typer.Option(help="Where shard indexes live: auto (GPUs when faiss sees them), cpu, gpu."),
    ] = None,
    ready_file: ReadyFileOpt = None,
) -> None:
    """Serve sharded, durable FAISS collections over gRPC (vitrine.v1.IndexService)."""
    params = dict(locals())
    from index_service.config import IndexConfig
    from index_service.server import main
    from vitrine.serving.config import ConfigError, load_config

    overrides = {k: v for k, v in params.items() if k not in ("config", "ready_file")}
    overrides["data_dir"] = str(data_dir) if data_dir else None
    try:
        cfg = load_config(IndexConfig, config, overrides)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    main(cfg, ready_file)


@serve_app.command("gateway")
def serve_gateway(
    encoder: Annotated[str | None, typer.Option(help="Encoder service address.")] = None,
    index: Annotated[
        list[str] | None,
        typer.Option("--index", help="Index service address; repeat for each process."),
    ] = None,
    collection: Annotated[str | None, typer.Option(help="Product collection name.")] = None,
    config: ConfigOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    metrics_port: MetricsPortOpt = None,
    allow_partial: Annotated[
        bool | None, typer.Option(help="Answer with partial results when a shard is down.")
    ] = None,
    ready_file: ReadyFileOpt = None,
) -> None:
    """Serve the public product-search API (vitrine.v1.SearchService)."""
    params = dict(locals())
    from gateway.config import GatewayConfig
    from gateway.server import main
    from vitrine.serving.config import ConfigError, load_config

    overrides = {k: v for k, v in params.items() if k not in ("config", "ready_file", "index")}
    overrides["index_endpoints"] = index or None
    try:
        cfg = load_config(GatewayConfig, config, overrides)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    main(cfg, ready_file)


GatewayOpt = Annotated[
    str, typer.Option("--gateway", envvar="VITRINE_GATEWAY", help="Gateway address.")
]


@app.command()
def up(
    models: ModelsOpt = DEFAULT_MODELS,
    data_dir: Annotated[Path, typer.Option(help="Index data (two processes: a/, b/).")] = Path(
        "data/index"
    ),
) -> None:
    """Start an encoder, two index processes (half the shards each) and a gateway; Ctrl-C stops all."""
    import signal as _signal
    import threading

    from vitrine.stack import LocalStack

    stack = LocalStack(models, data_dir)
    typer.echo("starting encoder, index-a, index-b, gateway ...")
    stack.start()
    for svc in stack.services:
        typer.echo(
            f"  {svc.name:8s} {svc.target}  metrics :{svc.info.get('metrics_port')}  pid {svc.info['pid']}"
        )
    typer.echo(
        f"ready: gateway at {stack.gateway}; logs in {stack.log_dir}. Ctrl-C stops everything."
    )
    done = threading.Event()
    for sig in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(sig, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            dead = [s.name for s in stack.services if s.proc.poll() is not None]
            if dead:
                typer.echo(f"stopped unexpectedly: {dead}", err=True)
                break
    finally:
        typer.echo("stopping ...")
        stack.stop()
        typer.echo("stopped")


@app.command()
def ingest(
    catalog: CatalogOpt = None,
    gateway: GatewayOpt = "127.0.0.1:50050",
    batch: Annotated[int, typer.Option(min=1, max=1000, help="Products per streamed batch.")] = 32,
) -> None:
    """Stream a catalog (titles, attributes, photos) into the search index through the gateway."""
    from rich.console import Console

    from gateway.client import SearchClient
    from vitrine.catalog import load_catalog
    from vitrine.shop import ingest_catalog, print_failures

    cat = load_catalog(catalog)
    with SearchClient(gateway, timeout=3600) as client:
        resp = ingest_catalog(client, cat, batch)
    console = Console()
    console.print(f"received {resp.received}, indexed {resp.succeeded}, failed {resp.failed}")
    print_failures(resp, console)
    if resp.failed:
        raise typer.Exit(1)


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="Query text (may be empty with --image).")] = "",
    image: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Query photo.")
    ] = None,
    filter_: Annotated[
        list[str] | None,
        typer.Option(
            "--filter", help="field=value, field!=value, field in a|b, field<n; repeatable (AND)."
        ),
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=1000)] = 10,
    text_weight: Annotated[float, typer.Option(min=0)] = 0.0,
    image_weight: Annotated[float, typer.Option(min=0)] = 0.0,
    gateway: GatewayOpt = "127.0.0.1:50050",
) -> None:
    """Search products by text, photo or both, with filters; prints a table."""
    from rich.console import Console

    from gateway.client import SearchClient
    from vitrine.shop import parse_filter, print_search

    try:
        flt = parse_filter(filter_ or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    with SearchClient(gateway) as client:
        resp = client.search(
            text=text,
            image=image.read_bytes() if image else b"",
            k=k,
            filter=flt,
            text_weight=text_weight,
            image_weight=image_weight,
        )
    what = " + ".join(
        x for x in (repr(text) if text else "", f"photo {image.name}" if image else "") if x
    )
    print_search(f"search: {what}", resp, Console())


if __name__ == "__main__":  # pragma: no cover
    app()
