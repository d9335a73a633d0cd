"""``vitrine train`` / ``vitrine export``: features -> split -> train -> checkpoint -> ONNX repo.

``vitrine train`` builds every default model in one run: the towers (and the linear-probe
baseline), then the reranker on top of the trained towers, then exports them — the image tower
with the reranker's payload output, so the three share one version number — and last the query
composer, trained on the exported towers' embeddings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from exporter import backbones
from exporter.caption.pipeline import export_caption_checkpoint, train_caption_checkpoint
from exporter.caption.train import CaptionConfig
from exporter.compose.export import COMPOSE_NAME
from exporter.compose.pipeline import train_composer
from exporter.compose.train import ComposeConfig
from exporter.features import DEFAULT_CACHE, extract_features
from exporter.onnx_export import publish_pair
from exporter.records import training_record
from exporter.rerank import export as rerank_export
from exporter.rerank.train import RerankConfig, train_reranker
from exporter.split import Split, default_sizes, recorded_split, split_products
from exporter.towers import TowerSpec, TrainableTowers, build_towers
from exporter.train import TrainConfig, probe_config, train_towers
from vitrine.catalog import Catalog, load_catalog
from vitrine.model_repo import CHECKPOINTS, ModelRepository, ModelVersion
from vitrine.preprocess import load_image_file

log = logging.getLogger(__name__)
PAIRS = {"vitrine": ("vitrine-text", "vitrine-image"), "probe": ("probe-text", "probe-image")}


RERANK_CHECKPOINT = "rerank.pt"


@dataclass
class Trained:
    name: str
    checkpoint: Path
    text: ModelVersion
    image: ModelVersion
    val_metrics: dict
    rerank: ModelVersion | None = None
    caption: ModelVersion | None = None
    compose: ModelVersion | None = None


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
    rerank_checkpoint: Path | None = None,
) -> tuple[ModelVersion, ModelVersion, ModelVersion | None]:
    """Export a training checkpoint as a new version of ``<prefix>-text`` and ``<prefix>-image``
    (and, with ``rerank_checkpoint``, the image tower's payload output and the reranker).

    Parity is checked on real inputs: the first 8 titles and photos of ``sample_catalog``
    (default: the embedded demo catalog).
    """
    model, training = load_checkpoint(checkpoint)
    rerank = rerank_training = None
    if rerank_checkpoint is not None:
        rerank, rerank_training = rerank_export.load_checkpoint(rerank_checkpoint)
    text_tower, image_tower = build_towers(model, rerank.image_heads if rerank else None)
    sample = (sample_catalog or load_catalog()).products[:8]
    pixels = np.stack([load_image_file(p.image_path) for p in sample])
    text_name, image_name = PAIRS.get(prefix, (f"{prefix}-text", f"{prefix}-image"))
    repo = ModelRepository(models)
    titles = [p.title for p in sample]
    text_v, image_v = publish_pair(
        repo,
        text_name,
        image_name,
        text_tower,
        image_tower,
        backbones.minilm_tokenizer_json(),
        model.spec.max_length,
        model.spec.dim,
        titles,
        pixels,
        training,
        metrics={"validation": training.get("val_metrics", {})},
        version=version,
        payload_layout=rerank.model.layout.to_dict() if rerank else None,
    )
    if rerank is None:
        return text_v, image_v, None
    with torch.no_grad():
        payloads = image_tower(torch.from_numpy(pixels))[1].numpy()
    rerank_v = rerank_export.export_reranker(
        repo,
        rerank,
        backbones.minilm_tokenizer_json(),
        text_v,
        image_v,
        [*titles[:4], "navy blue men's casual shirt", "red sports shoes"],
        payloads[:4],
        rerank_training,
    )
    return text_v, image_v, rerank_v


def train_rerank_checkpoint(
    catalog: Catalog,
    models: Path,
    towers: TrainableTowers,
    spec: TowerSpec,
    split: Split,
    split_info: dict,
    cfg: RerankConfig,
    cache_dir: Path | None = DEFAULT_CACHE,
    quiet: bool = False,
) -> Path:
    """Train the reranker for ``towers`` and save its checkpoint (export comes with the towers).

    Its image heads read the frozen backbone (the features of a fully frozen trunk).
    """
    feats = extract_features(catalog, spec.text_tail, 0, spec.max_length, cache_dir, quiet=quiet)
    result = train_reranker(
        catalog, feats, split, towers, backbones.minilm_tokenizer_json(), cfg, quiet=quiet
    )
    training = training_record(
        catalog,
        split_info,
        cfg.to_dict(),
        {"image": backbones.IMAGE_BACKBONE, "text": "MiniLM wordpieces"},
    )
    path = Path(models) / CHECKPOINTS / RERANK_CHECKPOINT
    rerank_export.save_checkpoint(path, result, training)
    log.info("reranker trained", extra={"metrics": result.metrics})
    return path


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
    rerank: RerankConfig | None = None,
    caption: CaptionConfig | None = None,
    compose: ComposeConfig | None = None,
) -> list[Trained]:
    """Train the towers (+ probe), with ``rerank`` the reranker and with ``caption`` the
    captioner; export them all (one version number for the main towers and their models); with
    ``compose`` then the query composer on the exported main towers."""
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
    checkpoints: list[tuple[str, Path, dict]] = []
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
        checkpoints.append((prefix, ckpt, res.val_metrics))
        if prefix == "vitrine" and rerank is not None:
            rerank_ckpt = train_rerank_checkpoint(
                catalog, models, res.model, spec, split, training["split"], rerank, cache_dir, quiet
            )
        if prefix == "vitrine" and caption is not None:
            caption_ckpt = train_caption_checkpoint(
                catalog, models, split, training["split"], caption, cache_dir, quiet
            )
    out: list[Trained] = []
    for prefix, ckpt, val_metrics in checkpoints:
        with_rerank = rerank is not None and prefix == "vitrine"
        t, i, r = export_checkpoint(
            ckpt,
            Path(models),
            prefix,
            catalog,
            rerank_checkpoint=rerank_ckpt if with_rerank else None,
        )
        c = None
        if caption is not None and prefix == "vitrine":
            c = export_caption_checkpoint(caption_ckpt, Path(models), catalog, t.manifest.version)
        q = None
        if compose is not None and prefix == "vitrine":
            q = train_composer(
                catalog, models, compose, t, i, cache_dir, quiet, _free_version(models, t)
            )
        log.info("published", extra={"models": [m.manifest.name for m in (t, i, r, c, q) if m]})
        out.append(Trained(prefix, ckpt, t, i, val_metrics, r, c, q))
    return out


def _free_version(models: Path, towers: ModelVersion) -> int | None:
    """The towers' version number for their composer, unless a composer already has it."""
    v = towers.manifest.version
    return None if v in ModelRepository(models).versions(COMPOSE_NAME) else v


def retrain_reranker(
    catalog: Catalog,
    models: Path,
    cfg: RerankConfig,
    cache_dir: Path | None = DEFAULT_CACHE,
    quiet: bool = False,
) -> tuple[ModelVersion, ModelVersion, ModelVersion | None]:
    """``vitrine train-reranker``: a reranker for the towers of ``models/.checkpoints/vitrine.pt``,
    published with a new version of the towers (the same embeddings, plus the payload output)."""
    ckpt = Path(models) / CHECKPOINTS / "vitrine.pt"
    towers, training = load_checkpoint(ckpt)
    info = training["split"]
    split = recorded_split(catalog.products, info)
    rerank_ckpt = train_rerank_checkpoint(
        catalog, models, towers, towers.spec, split, info, cfg, cache_dir, quiet
    )
    return export_checkpoint(ckpt, Path(models), "vitrine", catalog, rerank_checkpoint=rerank_ckpt)
