"""Model commands: train, train-reranker, train-composer, eval, export, export-clip, demo."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from vitrine.cli.app import (
    DEFAULT_MODELS,
    CatalogOpt,
    ModelsOpt,
    PrefixOpt,
    RepoOut,
    VersionOpt,
    app,
)


def _echo_published(*versions) -> None:
    names = [f"{v.manifest.name}/{v.manifest.version}" for v in versions if v is not None]
    typer.echo("published " + ", ".join(names))


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
    rerank: Annotated[
        bool, typer.Option(help="Also train the reranker (and the image tower's payload).")
    ] = True,
    caption: Annotated[bool, typer.Option(help="Also train the captioner.")] = True,
    composer: Annotated[
        bool, typer.Option(help="Also train the query composer (photo + modifier text).")
    ] = True,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train every default model (towers, reranker, captioner, composer) and export them.

    The text and image towers are trained CLIP-style on the catalog, then the reranker on top of
    them and the captioner; all are published to the model repository with one version number.
    Last, the query composer is trained on the exported towers' embeddings.
    """
    from exporter.caption.train import CaptionConfig
    from exporter.compose.train import ComposeConfig
    from exporter.pipeline import run_training
    from exporter.rerank.train import RerankConfig
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
    rerank_cfg = RerankConfig(max_steps=max_steps) if rerank else None
    for r in run_training(
        cat,
        out,
        cfg,
        with_probe=probe,
        test_size=test_size,
        val_size=val_size,
        quiet=quiet,
        rerank=rerank_cfg,
        caption=CaptionConfig(max_steps=max_steps) if caption else None,
        compose=ComposeConfig(max_steps=max_steps) if composer else None,
    ):
        names = [
            f"{m.manifest.name}/{m.manifest.version}"
            for m in (r.text, r.image, r.rerank, r.caption, r.compose)
            if m
        ]
        typer.echo(
            f"{r.name}: published {', '.join(names)} in {out} "
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
    rerank: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also score the main pair with its reranker reordering each query's top N.",
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Evaluate every text/image pair in the repository (ONNX, onnxruntime) on a catalog pool."""
    from exporter.evaluate import evaluate
    from vitrine.catalog import load_catalog

    report = evaluate(models, load_catalog(catalog), split.value, quiet=quiet, rerank=rerank)
    if as_json:
        typer.echo(json.dumps(report))
    else:
        from vitrine.cli.report import print_eval_report

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
    rerank_checkpoint: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="Reranker checkpoint: export it with the towers."
        ),
    ] = None,
) -> None:
    """Export a training checkpoint to ONNX (parity-checked on the catalog's first products)."""
    from exporter.pipeline import export_checkpoint
    from vitrine.catalog import load_catalog

    _echo_published(
        *export_checkpoint(
            checkpoint,
            out,
            name,
            load_catalog(catalog),
            version=version,
            rerank_checkpoint=rerank_checkpoint,
        )
    )


@app.command("train-reranker")
def train_reranker_cmd(
    catalog: CatalogOpt = None,
    models: ModelsOpt = DEFAULT_MODELS,
    candidates: Annotated[
        int, typer.Option(min=2, help="Shortlist length the weights are fitted for.")
    ] = 50,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop each loop after this many steps (smoke tests).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train a reranker for the repository's trained towers; publish it with a new tower version.

    The image tower gains the payload output the reranker reads, so products must be ingested
    again for their payloads ('vitrine train' does all of this in one run).
    """
    from exporter.pipeline import retrain_reranker
    from exporter.rerank.train import RerankConfig
    from vitrine.catalog import load_catalog

    cfg = RerankConfig(candidates=candidates, max_steps=max_steps)
    _echo_published(*retrain_reranker(load_catalog(catalog), models, cfg, quiet=quiet))


@app.command("train-composer")
def train_composer_cmd(
    catalog: CatalogOpt = None,
    models: ModelsOpt = DEFAULT_MODELS,
    epochs: Annotated[int, typer.Option(min=1)] = 8,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after this many steps (smoke tests).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train the query composer (reference photo + modifier text → query) for the repository's
    latest towers and publish its next version.

    Uses the split recorded by the towers; the photo embeddings are cached under .cache/.
    """
    from exporter.compose.pipeline import train_composer
    from exporter.compose.train import ComposeConfig
    from vitrine.catalog import load_catalog

    cfg = ComposeConfig(epochs=epochs, max_steps=max_steps)
    _echo_published(train_composer(load_catalog(catalog), models, cfg, quiet=quiet))


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
    """Build the default models, evaluate them, and query them through the local stack.

    What `make demo` runs: a few text, photo and composite queries (rerank off and on), and the
    captioner describing two photos.
    """
    from vitrine.cli.demo import run_demo

    run_demo(catalog, models, epochs=epochs, retrain=retrain)
