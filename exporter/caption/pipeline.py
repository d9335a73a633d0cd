"""Captioner: train from the feature cache → checkpoint → export (part of ``vitrine train``, or
``vitrine train-captioner`` on its own)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from exporter import backbones
from exporter.caption import export as caption_export
from exporter.caption.train import CaptionConfig, train_captioner, type_hierarchy
from exporter.features import DEFAULT_CACHE, extract_features
from exporter.records import training_record
from exporter.split import Split, default_sizes, recorded_split
from vitrine.catalog import Catalog, load_catalog
from vitrine.model_repo import CHECKPOINTS, ModelRepository, ModelVersion
from vitrine.preprocess import load_image_file

log = logging.getLogger(__name__)
CAPTION_CHECKPOINT = "caption.pt"


def train_caption_checkpoint(
    catalog: Catalog,
    models: Path,
    split: Split,
    split_info: dict,
    cfg: CaptionConfig,
    cache_dir: Path | None = DEFAULT_CACHE,
    quiet: bool = False,
) -> Path:
    """Train the captioner on the frozen backbone's cached features; save its checkpoint."""
    feats = extract_features(catalog, 0, 0, 64, cache_dir, quiet=quiet)
    result = train_captioner(catalog, feats, split, cfg, quiet=quiet)
    training = training_record(
        catalog, split_info, cfg.to_dict(), {"image": backbones.IMAGE_BACKBONE}
    )
    path = Path(models) / CHECKPOINTS / CAPTION_CHECKPOINT
    caption_export.save_checkpoint(path, result, training)
    log.info("captioner trained", extra={"metrics": result.metrics})
    return path


def export_caption_checkpoint(
    checkpoint: Path,
    models: Path,
    sample_catalog: Catalog | None = None,
    version: int | None = None,
) -> ModelVersion:
    """Export a captioner checkpoint (parity on the first 8 photos of ``sample_catalog``)."""
    result, training = caption_export.load_checkpoint(checkpoint)
    catalog = sample_catalog or load_catalog()
    pixels = np.stack([load_image_file(p.image_path) for p in catalog.products[:8]])
    hierarchy = None
    if catalog.fingerprint() == training.get("data_hash"):  # the catalog it was trained on
        split = recorded_split(catalog.products, training["split"])
        hierarchy = type_hierarchy([catalog.products[r] for r in split.train])
    return caption_export.export_captioner(
        ModelRepository(models), result, pixels, training, version, hierarchy=hierarchy
    )


def retrain_captioner(
    catalog: Catalog,
    models: Path,
    cfg: CaptionConfig,
    cache_dir: Path | None = DEFAULT_CACHE,
    quiet: bool = False,
) -> ModelVersion:
    """``vitrine train-captioner``: the split of the repository's towers (if any), else the
    default split of ``catalog``; published as the next version of the captioner."""
    repo = ModelRepository(models)
    towers = repo.load("vitrine-image") if "vitrine-image" in repo.model_names() else None
    if towers is not None and "split" in towers.manifest.training:
        info = towers.manifest.training["split"]
    else:
        t, v = default_sizes(len(catalog.products))
        info = {"seed": 0, "test_size": t, "val_size": v}
    split = recorded_split(catalog.products, info)
    ckpt = train_caption_checkpoint(catalog, models, split, info, cfg, cache_dir, quiet)
    return export_caption_checkpoint(ckpt, models, catalog)
