"""Export a user's Hugging Face ``CLIPModel`` checkpoint (e.g. a fine-tuned clip-vit-base-patch32)
into the same model-repository layout as our own towers.

Text: ``get_text_features`` + L2 normalisation over ``input_ids``/``attention_mask``; the checkpoint's
``tokenizer.json`` ships beside the model (a checkpoint without one is rejected: serving needs no
Python model code). Image: uint8 NHWC pixels -> CLIP normalisation in the graph ->
``get_image_features`` + L2 normalisation. Loaded strictly from disk (no hub access).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from exporter.backbones import ImageNormalize
from exporter.onnx_export import image_manifest_fields, publish_pair
from vitrine.model_repo import ModelRepository, ModelVersion

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SAMPLE_TEXTS = [
    "navy blue men's casual shirt",
    "a red dress",
    "black leather handbag",
    "white sneakers",
]


class ClipText(nn.Module):
    def __init__(self, clip: nn.Module):
        super().__init__()
        self.clip = clip

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.clip.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
        out = getattr(out, "pooler_output", out)
        return F.normalize(out, dim=-1)


class ClipImage(nn.Module):
    def __init__(self, clip: nn.Module, mean: tuple, std: tuple):
        super().__init__()
        self.clip = clip
        self.normalize = ImageNormalize(mean, std)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.clip.get_image_features(pixel_values=self.normalize(pixels))
        out = getattr(out, "pooler_output", out)
        return F.normalize(out, dim=-1)


def _preprocessor_stats(checkpoint: Path) -> tuple[tuple, tuple]:
    import json

    cfg = checkpoint / "preprocessor_config.json"
    if cfg.is_file():
        d = json.loads(cfg.read_text())
        return tuple(d.get("image_mean", CLIP_MEAN)), tuple(d.get("image_std", CLIP_STD))
    return CLIP_MEAN, CLIP_STD


def export_clip_checkpoint(
    checkpoint: str | Path,
    models: str | Path,
    name: str = "clip",
    version: int | None = None,
    sample_pixels: np.ndarray | None = None,
) -> tuple[ModelVersion, ModelVersion]:
    from transformers import CLIPModel

    checkpoint = Path(checkpoint)
    tokenizer_json = checkpoint / "tokenizer.json"
    if not tokenizer_json.is_file():
        raise FileNotFoundError(
            f"{tokenizer_json} is missing: save the checkpoint with its fast tokenizer "
            "(CLIPTokenizerFast.save_pretrained) so serving needs no Python tokenizer code"
        )
    clip = CLIPModel.from_pretrained(str(checkpoint), local_files_only=True).eval()
    size = int(clip.config.vision_config.image_size)
    max_length = int(clip.config.text_config.max_position_embeddings)
    mean, std = _preprocessor_stats(checkpoint)
    if sample_pixels is None:
        from vitrine.catalog import load_catalog
        from vitrine.preprocess import load_image_file

        sample_pixels = np.stack(
            [load_image_file(p.image_path, size) for p in load_catalog().products[:4]]
        )
    dim = int(clip.config.projection_dim)
    return publish_pair(
        ModelRepository(models),
        f"{name}-text",
        f"{name}-image",
        ClipText(clip).eval(),
        ClipImage(clip, mean, std).eval(),
        tokenizer_json,
        max_length,
        dim,
        SAMPLE_TEXTS,
        sample_pixels,
        training={"source": "huggingface CLIPModel", "checkpoint": str(checkpoint.resolve())},
        version=version,
        image_fields=image_manifest_fields(dim, size, mean, std),
    )
