"""Composer checkpoints and export: ONNX (a dynamic batch of queries), parity, manifest.

Graph ``vitrine-compose/<v>/model.onnx``:

* inputs ``image_embedding`` (float32 ``[batch, dim]``: the reference photo through the paired
  image tower) and ``text_embedding`` (float32 ``[batch, dim]``: the modifier text through the
  paired text tower);
* output ``embedding`` (float32 ``[batch, dim]``, L2-normalised): the query, to search the index
  of the image tower's embeddings with.

The manifest's ``compose`` entry (:class:`vitrine.model_repo.ComposeSpec`) names the two towers.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from exporter.compose.model import Combiner
from exporter.compose.phrases import CHANGES
from exporter.compose.train import ComposeConfig, ComposeResult
from exporter.onnx_export import OPSET, _export, check_parity
from vitrine.model_repo import MODEL_FILE, ComposeSpec, Manifest, ModelRepository, ModelVersion

log = logging.getLogger(__name__)
COMPOSE_NAME = "vitrine-compose"
INPUTS = ("image_embedding", "text_embedding")


def save_checkpoint(path: Path, result: ComposeResult, training: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": {"args": result.model.args, "state": result.model.state_dict()},
            "metrics": result.metrics,
            "history": result.history,
            "config": result.config.to_dict(),
            "training": training,
        },
        path,
    )
    return path


def load_checkpoint(path: Path) -> tuple[ComposeResult, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    model = Combiner(**ck["model"]["args"])
    model.load_state_dict(ck["model"]["state"])
    result = ComposeResult(
        model.eval(), ck["metrics"], ck["history"], ComposeConfig(**ck["config"])
    )
    return result, ck["training"]


def export_composer(
    repo: ModelRepository,
    result: ComposeResult,
    text_model: str,
    image_model: str,
    sample_image: np.ndarray,
    sample_text: np.ndarray,
    training: dict,
    version: int | None = None,
    name: str = COMPOSE_NAME,
) -> ModelVersion:
    """Publish ``result.model`` as ``name`` (next free version by default), paired with the
    towers ``text_model`` and ``image_model`` ("name/version"); parity is checked on the sample
    embeddings (real ones: photos and modifier phrases)."""
    model = result.model.eval()
    dim = int(model.args["dim"])
    version, dest = repo.new_version_dir(name, version)
    feeds = {
        "image_embedding": np.ascontiguousarray(sample_image, dtype=np.float32),
        "text_embedding": np.ascontiguousarray(sample_text, dtype=np.float32),
    }
    path = dest / MODEL_FILE
    _export(
        model,
        tuple(torch.from_numpy(feeds[k]) for k in INPUTS),
        path,
        list(INPUTS),
        {
            "image_embedding": {0: "batch"},
            "text_embedding": {0: "batch"},
            "embedding": {0: "batch"},
        },
    )
    diffs = check_parity(model, path, feeds)
    log.info("exported %s/%d (parity %s)", name, version, diffs)
    validation = result.metrics.get("composer", {})
    manifest = Manifest(
        name=name,
        version=version,
        modality="compose",
        embedding_dim=dim,
        inputs={k: {"dtype": "float32", "shape": ["batch", dim]} for k in INPUTS},
        output="embedding",
        normalized=True,
        max_batch_size=256,
        opset=OPSET,
        training=training,
        metrics={
            "validation": result.metrics,
            "validation_success@10": validation.get("mean", {}).get("success@10"),
            "export_parity_max_abs_diff": diffs["embedding"],
        },
        compose=asdict(
            ComposeSpec(
                text_model=text_model, image_model=image_model, dim=dim, attributes=list(CHANGES)
            )
        ),
    )
    return repo.publish(manifest)
