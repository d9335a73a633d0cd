"""Input preprocessing shared by the exporter (training, export parity) and the encoder service.

One definition for both sides:

* Images: :func:`decode_image` turns encoded bytes (JPEG/PNG/WebP) into a ``uint8`` array of
  shape ``(size, size, 3)`` (RGB, HWC): decode, EXIF-orient, convert to RGB, resize the shorter
  side to ``size`` (bicubic), centre-crop to ``size × size``. Normalisation (mean/std) is *not*
  done here: it lives inside the exported ONNX image graph, whose input is the raw ``uint8``
  NHWC batch. Limits guard against decompression bombs and oversized payloads.
* Texts: :class:`TextTokenizer` wraps a Hugging Face ``tokenizers`` ``tokenizer.json`` (the file
  that ships beside each exported text model), batch-encodes with dynamic padding and explicit
  truncation to the model's window.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_SIZE = 224
# ImageNet/EfficientNet-Lite normalisation, in the 0..1 pixel scale (baked into the ONNX graph).
IMAGE_MEAN = (0.498, 0.498, 0.498)
IMAGE_STD = (0.502, 0.502, 0.502)
ALLOWED_IMAGE_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
DEFAULT_MAX_IMAGE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000


class ImageDecodeError(ValueError):
    """The bytes are not an acceptable image (corrupt, unsupported format, too large)."""


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS


def decode_image(
    data: bytes, size: int = IMAGE_SIZE, limits: ImageLimits | None = None
) -> np.ndarray:
    """Decode ``data`` into a ``(size, size, 3)`` uint8 RGB array (resize shorter side, centre-crop).

    Raises :class:`ImageDecodeError` for empty, oversized, corrupt or unsupported input. The pixel
    count is checked from the header *before* the full decode (decompression-bomb guard).
    """
    limits = limits or ImageLimits()
    if not data:
        raise ImageDecodeError("empty image")
    if len(data) > limits.max_bytes:
        raise ImageDecodeError(f"image is {len(data)} bytes, limit {limits.max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in ALLOWED_IMAGE_FORMATS:
                raise ImageDecodeError(
                    f"unsupported image format {img.format!r} (allowed: JPEG, PNG, WEBP)"
                )
            w, h = img.size
            if w * h > limits.max_pixels:
                raise ImageDecodeError(f"image is {w}x{h} pixels, limit {limits.max_pixels}")
            if img.format == "JPEG" and min(w, h) >= 2 * size:
                # Let libjpeg decode at a reduced scale: much faster, same final size.
                img.draft(
                    "RGB", (max(size, w * size // min(w, h)), max(size, h * size // min(w, h)))
                )
            img = ImageOps.exif_transpose(img)
            img = img.convert("RGB")
    except ImageDecodeError:
        raise
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise ImageDecodeError(f"cannot decode image: {exc}") from exc
    return resize_center_crop(img, size)


MAX_ASPECT = 4  # longer side / shorter side kept before resizing (see resize_center_crop)


def resize_center_crop(img: Image.Image, size: int = IMAGE_SIZE) -> np.ndarray:
    """Resize the shorter side of an RGB image to ``size`` (bicubic) and centre-crop a square."""
    w, h = img.size
    if max(w, h) > MAX_ASPECT * min(w, h):
        # Only the centre square survives the crop below: cut the source to a 4:1 centre
        # strip first, so a 1x40000 sliver does not become a 224x8,960,000 intermediate.
        if w > h:
            keep = MAX_ASPECT * h
            img = img.crop(((w - keep) // 2, 0, (w - keep) // 2 + keep, h))
        else:
            keep = MAX_ASPECT * w
            img = img.crop((0, (h - keep) // 2, w, (h - keep) // 2 + keep))
        w, h = img.size
    if (w, h) != (size, size):
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.Resampling.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
    arr = np.asarray(img, dtype=np.uint8)
    if arr.shape != (size, size, 3):  # pragma: no cover - defensive, PIL guarantees RGB here
        raise ImageDecodeError(f"unexpected decoded shape {arr.shape}")
    return arr


def load_image_file(path: str | Path, size: int = IMAGE_SIZE) -> np.ndarray:
    """Read and decode an image file with :func:`decode_image`."""
    return decode_image(Path(path).read_bytes(), size=size)


def normalize_title(text: str) -> str:
    """Normalised product title used to group duplicates (case, whitespace, punctuation)."""
    kept = "".join(ch.lower() if ch.isalnum() else " " for ch in text)
    return " ".join(kept.split())


@dataclass
class TokenBatch:
    input_ids: np.ndarray  # int64 (batch, seq)
    attention_mask: np.ndarray  # int64 (batch, seq)
    token_counts: list[int]  # tokens per text after truncation (incl. special tokens)
    truncated: list[bool]  # whether the text lost tokens to the window


class TextTokenizer:
    """Batch tokenizer over a ``tokenizer.json`` with dynamic padding and explicit truncation.

    Truncation policy: texts longer than ``max_length`` tokens (special tokens included) keep
    their first ``max_length - 1`` word pieces and the final ``[SEP]``; ``truncated`` reports it.
    """

    def __init__(self, tokenizer_json: str | Path, max_length: int = 64):
        from tokenizers import Tokenizer

        self.path = Path(tokenizer_json)
        self.max_length = int(max_length)
        self._tok = Tokenizer.from_file(str(self.path))
        self._tok.no_padding()
        self._tok.enable_truncation(self.max_length)
        self.pad_id = self._tok.token_to_id("[PAD]") or 0

    def encode(self, texts: list[str]) -> TokenBatch:
        encs = self._tok.encode_batch(list(texts))
        seq = max((len(e.ids) for e in encs), default=1) or 1
        ids = np.full((len(encs), seq), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encs), seq), dtype=np.int64)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        return TokenBatch(
            input_ids=ids,
            attention_mask=mask,
            token_counts=[len(e.ids) for e in encs],
            truncated=[bool(e.overflowing) for e in encs],
        )
