"""``vitrine train`` / ``vitrine export``: features -> split -> train -> checkpoint -> ONNX repo."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from exporter import backbones
from exporter.features import DEFAULT_CACHE, extract_features
from exporter.onnx_export import publish_pair
from exporter.split import default_sizes, split_products
from exporter.towers import TowerSpec, TrainableTowers, build_towers
from exporter.train import TrainConfig, probe_config, train_towers
from vitrine.catalog import Catalog, load_catalog
from vitrine.model_repo import ModelRepository, ModelVersion
from vitrine.preprocess import load_image_file

log = logging.getLogger(__name__)
CHECKPOINTS = ".checkpoints"
PAIRS = {"vitrine": ("vitrine-text", "vitrine-image"), "probe": ("probe-text", "probe-image")}


@dataclass
class Trained:
    name: str
    checkpoint: Path
    text: ModelVersion
    image: ModelVersion
    val_metrics: dict


def save_checkpoint(path: Path, model: TrainableTowers, cfg: TrainConfig, training: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"spec": cfg.spec.to_dict(), "state": model.state_dict(), "training": training}, path
    )
    return path


def load_checkpoint(path: Path) -> tuple[TrainableTowers, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    model = TrainableTowers(TowerSpec(**ck["spec"]))
    model.load_state_dict(ck["state"])
    return model.eval(), ck["training"]


def export_checkpoint(
    checkpoint: Path,
    models: Path,
    prefix: str,
    sample_catalog: Catalog | None = None,
    version: int | None = None,
) -> tuple[ModelVersion, ModelVersion]:
    """Export a training checkpoint as a new version of ``<prefix>-text`` and ``<prefix>-image``.

    Parity is checked on real inputs: the first 8 titles and photos of ``sample_catalog``
    (default: the embedded demo catalog).
    """
    model, training = load_checkpoint(checkpoint)
    text_tower, image_tower = build_towers(model)
    sample = (sample_catalog or load_catalog()).products[:8]
    pixels = np.stack([load_image_file(p.image_path) for p in sample])
    text_name, image_name = PAIRS.get(prefix, (f"{prefix}-text", f"{prefix}-image"))
    return publish_pair(
        ModelRepository(models),
        text_name,
        image_name,
        text_tower,
        image_tower,
        backbones.minilm_tokenizer_json(),
        model.spec.max_length,
        model.spec.dim,
        [p.title for p in sample],
        pixels,
        training,
        metrics={"validation": training.get("val_metrics", {})},
        version=version,
    )


def run_training(
    catalog: Catalog,
    models: Path,
    cfg: TrainConfig,
    with_probe: bool = True,
    test_size: int | None = None,
    val_size: int | None = None,
    split_seed: int = 0,
    cache_dir: Path | None = DEFAULT_CACHE,
    quiet: bool = False,
) -> list[Trained]:
    d_test, d_val = default_sizes(len(catalog.products))
    split_info = {
        "seed": split_seed,
        "test_size": test_size if test_size is not None else d_test,
        "val_size": val_size if val_size is not None else d_val,
    }
    split = split_products(
        catalog.products, split_info["test_size"], split_info["val_size"], split_seed
    )
    runs = [("vitrine", cfg)] + ([("probe", probe_config(cfg))] if with_probe else [])
    out: list[Trained] = []
    data_hash = catalog.fingerprint()
    for prefix, run_cfg in runs:
        spec = run_cfg.spec
        feats = extract_features(
            catalog, spec.text_tail, spec.image_tail, spec.max_length, cache_dir, quiet=quiet
        )
        res = train_towers(catalog, feats, split, run_cfg, quiet=quiet, label=f"train {prefix}")
        training = {
            "data_hash": data_hash,
            "catalog": str(catalog.root),
            "products": len(catalog.products),
            "split": {
                **split_info,
                "sizes": {k: len(split.part(k)) for k in ("train", "val", "test")},
            },
            "config": run_cfg.to_dict(),
            "backbones": {"text": backbones.TEXT_BACKBONE, "image": backbones.IMAGE_BACKBONE},
            "temperature": res.temperature,
            "steps": res.steps,
            "val_metrics": res.val_metrics,
        }
        ckpt = save_checkpoint(
            Path(models) / CHECKPOINTS / f"{prefix}.pt", res.model, run_cfg, training
        )
        t, i = export_checkpoint(ckpt, Path(models), prefix, catalog)
        log.info(
            "published %s/%d and %s/%d",
            t.manifest.name,
            t.manifest.version,
            i.manifest.name,
            i.manifest.version,
        )
        out.append(Trained(prefix, ckpt, t, i, res.val_metrics))
    return out
