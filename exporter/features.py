"""Backbone feature extraction with an on-disk cache.

Training with frozen (or mostly frozen) backbones only needs each product's trunk output once:
the text trunk's token states for every text variant, and the image trunk's feature map plus the
photo's colour and mid-level descriptors. They are computed in batches (progress bars), stored under
``<cache>/text-<key>/`` and ``<cache>/image-<key>/`` and reused while the inputs stay the same: the
text key hashes the catalog's rows, the text split point and window; the image key the catalog's
rows and images and the image split point. Changing one tower's setting never recomputes the other.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from exporter import backbones
from exporter.texts import text_variants
from vitrine.catalog import Catalog
from vitrine.preprocess import TextTokenizer, load_image_file
from vitrine.progress import progress_bar

DEFAULT_CACHE = Path(os.environ.get("VITRINE_CACHE_DIR", ".cache")) / "features"
FORMAT = 4
TEXT_ARRAYS = ("text_states", "text_mask", "text_owner", "text_kind")
IMAGE_ARRAYS = ("image_maps", "image_colour", "image_mid")


@dataclass
class FeatureCache:
    ids: list[str]
    text_states: np.ndarray  # float16 (T, L, 384): trunk output per text variant
    text_mask: np.ndarray  # int8 (T, L)
    text_owner: np.ndarray  # int32 (T,): product row of each text variant
    text_kind: np.ndarray  # int8 (T,): 0 = title, 1.. = augmentation
    image_maps: np.ndarray  # float16 (N, C, 7, 7): trunk output per product image
    image_colour: np.ndarray  # float32 (N, K): colour descriptors per product image
    image_mid: np.ndarray  # float16 (N, M): mid-level descriptors per product image


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps([FORMAT, *parts]).encode()).hexdigest()[:16]


def _cached(
    path: Path | None, names: tuple[str, ...], compute, quiet: bool
) -> dict[str, np.ndarray]:
    if path is not None and (path / "done").is_file():
        return {n: np.load(path / f"{n}.npy") for n in names}
    arrays = compute(quiet)
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        for n in names:
            np.save(path / f"{n}.npy", arrays[n])
        (path / "done").write_text("ok\n")
    return arrays


@torch.inference_mode()
def _text_features(catalog: Catalog, text_tail: int, max_length: int, batch: int, quiet: bool):
    texts, owner, kind = [], [], []
    for row, p in enumerate(catalog.products):
        for k, t in enumerate(text_variants(p)):
            texts.append(t)
            owner.append(row)
            kind.append(k)
    tok = TextTokenizer(backbones.minilm_tokenizer_json(), max_length=max_length)
    trunk = backbones.TextTrunk(backbones.load_minilm(), text_tail).eval()
    states = np.zeros((len(texts), max_length, backbones.TEXT_WIDTH), dtype=np.float16)
    mask = np.zeros((len(texts), max_length), dtype=np.int8)
    with progress_bar(disable=quiet) as prog:
        task = prog.add_task("text features", total=len(texts), info="MiniLM")
        for s in range(0, len(texts), batch):
            b = tok.encode(texts[s : s + batch])
            h = trunk(torch.from_numpy(b.input_ids), torch.from_numpy(b.attention_mask))
            states[s : s + len(h), : h.shape[1]] = h.numpy().astype(np.float16)
            mask[s : s + len(h), : h.shape[1]] = b.attention_mask
            prog.advance(task, len(h))
    used = max(int(mask.sum(1).max()), 1)
    return {
        "text_states": states[:, :used].copy(),
        "text_mask": mask[:, :used].copy(),
        "text_owner": np.asarray(owner, dtype=np.int32),
        "text_kind": np.asarray(kind, dtype=np.int8),
    }


@torch.inference_mode()
def _image_features(catalog: Catalog, image_tail: int, batch: int, quiet: bool):
    trunk = backbones.ImageTrunk(backbones.load_efficientnet_lite0(), image_tail).eval()
    colour_fn = backbones.ImageColour().eval()
    n = len(catalog.products)
    maps: np.ndarray | None = None
    mid = np.zeros((n, backbones.mid_width(trunk.n_blocks)), dtype=np.float16)
    colour = np.zeros((n, backbones.COLOUR_WIDTH), dtype=np.float32)
    with progress_bar(disable=quiet) as prog:
        task = prog.add_task("image features", total=n, info="EfficientNet-Lite0")
        for s in range(0, n, batch):
            px = torch.from_numpy(
                np.stack([load_image_file(p.image_path) for p in catalog.products[s : s + batch]])
            )
            fm_t, mid_t = trunk.features(px)
            fm = fm_t.numpy().astype(np.float16)
            mid[s : s + len(fm)] = mid_t.numpy().astype(np.float16)
            if maps is None:
                maps = np.zeros((n, *fm.shape[1:]), dtype=np.float16)
            maps[s : s + len(fm)] = fm
            colour[s : s + len(fm)] = colour_fn(px).numpy()
            prog.advance(task, len(fm))
    return {"image_maps": maps, "image_colour": colour, "image_mid": mid}


def extract_features(
    catalog: Catalog,
    text_tail: int = 0,
    image_tail: int = 0,
    max_length: int = 64,
    cache_dir: str | Path | None = DEFAULT_CACHE,
    batch_size: int = 64,
    quiet: bool = False,
) -> FeatureCache:
    """Trunk outputs for every product of ``catalog`` (from the cache when it has them)."""
    root = Path(cache_dir) if cache_dir is not None else None
    rows = [(p.id, p.title, sorted(p.attributes.items())) for p in catalog.products]
    t_key = _key("text", rows, text_tail, max_length)
    i_key = _key("image", catalog.fingerprint(), image_tail)
    text = _cached(
        root / f"text-{t_key}" if root else None,
        TEXT_ARRAYS,
        lambda q: _text_features(catalog, text_tail, max_length, batch_size * 4, q),
        quiet,
    )
    image = _cached(
        root / f"image-{i_key}" if root else None,
        IMAGE_ARRAYS,
        lambda q: _image_features(catalog, image_tail, batch_size, q),
        quiet,
    )
    return FeatureCache(ids=[p.id for p in catalog.products], **text, **image)
