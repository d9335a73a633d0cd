"""Caption commands: train-captioner, eval-captions."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vitrine.cli.app import DEFAULT_MODELS, CatalogOpt, ModelsOpt, app
from vitrine.cli.models_cmd import Split, _echo_published


@app.command("train-captioner")
def train_captioner_cmd(
    catalog: CatalogOpt = None,
    models: ModelsOpt = DEFAULT_MODELS,
    epochs: Annotated[int, typer.Option(min=1)] = 20,
    beam: Annotated[int, typer.Option(min=1, max=8, help="Default beam width it ships with.")] = 1,
    max_steps: Annotated[
        int | None, typer.Option(help="Stop after this many steps (smoke tests).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train the captioner (photo → title + attributes) and publish its next version.

    Uses the split recorded by the repository's towers, so its test pool is theirs.
    """
    from exporter.caption.pipeline import retrain_captioner
    from exporter.caption.train import CaptionConfig
    from vitrine.catalog import load_catalog

    cfg = CaptionConfig(epochs=epochs, beam=beam, max_steps=max_steps)
    _echo_published(retrain_captioner(load_catalog(catalog), models, cfg, quiet=quiet))


@app.command("eval-captions")
def eval_captions(
    models: ModelsOpt = DEFAULT_MODELS,
    catalog: CatalogOpt = None,
    split: Annotated[
        Split, typer.Option(help="Pool: the held-out test split, or all.")
    ] = Split.test,
    beam: Annotated[int, typer.Option(min=0, max=8, help="Beam width (0 = model default).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Score the captioner's titles and attributes against two baselines.

    BLEU-4, CIDEr-D, attribute-word and brand accuracy of the titles, head accuracy per
    attribute; baselines: nearest training neighbour's title, attribute template.
    """
    from exporter.evaluate_caption import evaluate_captions
    from vitrine.catalog import load_catalog

    report = evaluate_captions(models, load_catalog(catalog), split.value, beam, quiet=quiet)
    if as_json:
        typer.echo(json.dumps(report))
    else:
        from vitrine.cli.report import print_caption_report

        print_caption_report(report)
