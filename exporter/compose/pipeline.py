"""Composer: exported towers → embeddings → triplets → train → checkpoint → export (the last
step of ``vitrine train``, or ``vitrine train-composer`` on its own)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from exporter.compose import export as compose_export
from exporter.compose.embeddings import image_embeddings, text_embeddings
from exporter.compose.train import ComposeConfig, train_combiner
from exporter.compose.triplets import build_triplets, query_phrases
from exporter.features import DEFAULT_CACHE
from exporter.records import training_record
from exporter.split import default_sizes, recorded_split
from vitrine.catalog import Catalog
from vitrine.model_repo import CHECKPOINTS, ModelRepository, ModelVersion

log = logging.getLogger(__name__)
COMPOSE_CHECKPOINT = "compose.pt"
TEXT_NAME, IMAGE_NAME = "vitrine-text", "vitrine-image"


def _ref(v: ModelVersion) -> str:
    return f"{v.manifest.name}/{v.manifest.version}"


def _towers(
    repo: ModelRepository, text_model: ModelVersion | None, image_model: ModelVersion | None
) -> tuple[ModelVersion, ModelVersion]:
    """The given towers, else the repository's latest text tower and the image tower it names
    as its pair (same version)."""
    text_model = text_model or repo.load(TEXT_NAME)
    if image_model is None:
        pair = text_model.manifest.pair or IMAGE_NAME
        image_model = repo.load(pair, text_model.manifest.version)
    if text_model.manifest.embedding_dim != image_model.manifest.embedding_dim:
        raise ValueError(f"{_ref(text_model)} and {_ref(image_model)} differ in width")
    return text_model, image_model


def train_composer(
    catalog: Catalog,
    models: str | Path,
    cfg: ComposeConfig | None = None,
    text_model: ModelVersion | None = None,
    image_model: ModelVersion | None = None,
    cache_dir: str | Path | None = DEFAULT_CACHE,
    quiet: bool = False,
    version: int | None = None,
) -> ModelVersion:
    """Train the query composer for a pair of exported towers and publish it as
    ``vitrine-compose`` (``version``: default the next free one).

    Triplets come from the training split the towers recorded (their manifest's ``split``;
    the default split of ``catalog`` if none), the epoch is chosen on its validation split.
    """
    cfg = cfg or ComposeConfig()
    repo = ModelRepository(models)
    text_model, image_model = _towers(repo, text_model, image_model)
    info = text_model.manifest.training.get("split")
    if info is None:
        t, v = default_sizes(len(catalog.products))
        info = {"seed": 0, "test_size": t, "val_size": v}
    split = recorded_split(catalog.products, info)
    image = image_embeddings(catalog, image_model, cache_dir, quiet=quiet)
    train = build_triplets(catalog.products, split.train)
    val = build_triplets(catalog.products, split.val)
    if not len(train):
        raise ValueError("no composed-query triplets in the training split")
    result = train_combiner(
        image, lambda texts: text_embeddings(text_model, texts), train, val, cfg, quiet=quiet
    )
    training = training_record(
        catalog,
        info,
        cfg.to_dict(),
        {"text": _ref(text_model), "image": _ref(image_model)},
    )
    training["triplets"] = {"train": train.counts(), "validation": val.counts()}
    training["history"] = [
        {
            "step": h["step"],
            "loss": h["loss"],
            "validation_success@10": h.get("validation", {}).get("mean", {}).get("success@10"),
        }
        for h in result.history
    ]
    ckpt = Path(models) / CHECKPOINTS / COMPOSE_CHECKPOINT
    compose_export.save_checkpoint(ckpt, result, training)
    log.info("composer trained", extra={"metrics": result.metrics.get("composer")})
    # Parity on real inputs: the first queries of the validation split (else training).
    sample = val if len(val) else train
    n = min(8, len(sample))
    phrases = query_phrases(sample.subset(np.arange(n)), cfg.seed)
    return compose_export.export_composer(
        repo,
        result,
        _ref(text_model),
        _ref(image_model),
        image[sample.rows[sample.ref[:n]]],
        text_embeddings(text_model, phrases),
        training,
        version=version,
    )
