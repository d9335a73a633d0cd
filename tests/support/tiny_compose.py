"""A tiny query composer published through the real export path, for fast tests.

The combiner is the real one (:class:`exporter.compose.model.Combiner`) at a small width with
seeded random weights; the exporter, the ONNX graph (``image_embedding`` and ``text_embedding``
float32 [batch, dim] → ``embedding``), the parity check and the manifest (``modality: compose``
with its ``compose`` entry) are the real ones. Untrained but deterministic: its output is a
unit vector between the two inputs, bent by a random residual.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from exporter.compose.export import export_composer
from exporter.compose.model import Combiner
from exporter.compose.train import ComposeConfig, ComposeResult
from vitrine.model_repo import ModelRepository, ModelVersion


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def tiny_result(dim: int = 16, seed: int = 0) -> ComposeResult:
    torch.manual_seed(seed)
    model = Combiner(dim, proj=2 * dim, hidden=2 * dim, dropout=0.0).eval()
    cfg = ComposeConfig(proj=2 * dim, hidden=2 * dim, dropout=0.0, seed=seed)
    return ComposeResult(model, {}, [], cfg)


def publish_compose(
    repo_dir: Path,
    dim: int = 16,
    version: int | None = None,
    text_model: str = "tiny-text/1",
    image_model: str = "tiny-image/1",
    seed: int = 0,
) -> ModelVersion:
    """Publish a tiny ``vitrine-compose`` reading ``dim``-wide embeddings of the two towers."""
    return export_composer(
        ModelRepository(repo_dir),
        tiny_result(dim, seed),
        text_model,
        image_model,
        unit_rows(4, dim, seed + 1),
        unit_rows(4, dim, seed + 2),
        {"note": "tiny random test model"},
        version=version,
    )
