"""Exportable towers: frozen trunk + (optionally trainable) tail + projection head, one graph each.

``TextTower(input_ids int64 (B,S), attention_mask int64 (B,S)) -> embedding float32 (B,D)``
``ImageTower(pixels uint8 (B,224,224,3) RGB) -> embedding float32 (B,D)``
  (and ``payload float16 (B,P)``, the reranker's per-photo payload, when built with its heads)

``TrainableTowers`` holds only the parts that learn (tails + heads) and works on cached trunk
outputs; :func:`build_towers` combines it with fresh trunks into the two exportable modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from exporter import backbones
from exporter.heads import ImageHead, TextHead


@dataclass(frozen=True)
class TowerSpec:
    dim: int = 256
    head: str = "mlp"
    text_tail: int = 0  # MiniLM layers to fine-tune (0 = frozen backbone)
    image_tail: int = 0  # EfficientNet blocks to fine-tune (0 = frozen backbone)
    hidden: int = 1024
    dropout: float = 0.1
    max_length: int = 64
    colour: bool = True  # feed the photo's colour descriptors to the image head
    mid: bool = True  # feed the image trunk's mid-level descriptors to the image head

    def extra_image_width(self) -> int:
        n_blocks = backbones.LITE0_BLOCKS - self.image_tail
        return (backbones.COLOUR_WIDTH if self.colour else 0) + (
            backbones.mid_width(n_blocks) if self.mid else 0
        )

    def to_dict(self) -> dict:
        return asdict(self)


class TrainableTowers(nn.Module):
    def __init__(
        self, spec: TowerSpec, bert: nn.Module | None = None, net: nn.Module | None = None
    ):
        super().__init__()
        self.spec = spec
        if spec.text_tail:
            bert = bert if bert is not None else backbones.load_minilm()
        if spec.image_tail:
            net = net if net is not None else backbones.load_efficientnet_lite0()
        self.text_tail = backbones.TextTail(bert, spec.text_tail)
        self.image_tail = backbones.ImageTail(net, spec.image_tail)
        self.text_head = TextHead(
            backbones.TEXT_WIDTH, spec.dim, spec.head, spec.hidden, spec.dropout
        )
        self.image_head = ImageHead(
            backbones.IMAGE_WIDTH,
            spec.dim,
            spec.head,
            spec.hidden,
            spec.dropout,
            extra_width=spec.extra_image_width(),
        )

    def encode_text_states(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.text_head(self.text_tail(states, mask), mask)

    def encode_image_maps(
        self, maps: torch.Tensor, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.image_head(self.image_tail(maps), extra)

    def train(self, mode: bool = True):
        super().train(mode)
        # Fine-tuned backbone blocks keep their ImageNet/pretraining batch-norm statistics.
        for m in self.image_tail.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self


class TextTower(nn.Module):
    def __init__(self, trainable: TrainableTowers, bert: nn.Module):
        super().__init__()
        self.trunk = backbones.TextTrunk(bert, trainable.spec.text_tail)
        self.tail = trainable.text_tail
        self.head = trainable.text_head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.head(
            self.tail(self.trunk(input_ids, attention_mask), attention_mask), attention_mask
        )


class ImageTower(nn.Module):
    """Trunk + tail + head; with ``payload_heads`` (the reranker's) also the photo's payload.

    The payload heads read the *frozen* backbone's outputs (what the reranker was trained on):
    shared with the embedding path when no image block is fine-tuned, else from a frozen copy.
    """

    def __init__(
        self, trainable: TrainableTowers, net: nn.Module, payload_heads: nn.Module | None = None
    ):
        super().__init__()
        self.trunk = backbones.ImageTrunk(net, trainable.spec.image_tail)
        self.colour = backbones.ImageColour() if trainable.spec.colour else None
        self.mid = trainable.spec.mid
        self.tail = trainable.image_tail
        self.head = trainable.image_head
        self.payload_heads = payload_heads
        self.payload_trunk = None
        self.payload_colour = None
        if payload_heads is not None:
            if trainable.spec.image_tail:
                self.payload_trunk = backbones.ImageTrunk(backbones.load_efficientnet_lite0(), 0)
            if self.colour is None:
                self.payload_colour = backbones.ImageColour()

    def forward(self, pixels: torch.Tensor):
        fmap, mid = self.trunk.features(pixels)
        colour = self.colour(pixels) if self.colour is not None else None
        extra = []
        if colour is not None:
            extra.append(colour)
        if self.mid:
            extra.append(mid)
        embedding = self.head(self.tail(fmap), torch.cat(extra, dim=1) if extra else None)
        if self.payload_heads is None:
            return embedding
        from exporter.rerank.image_heads import pooled_features

        if self.payload_trunk is not None:
            fmap, mid = self.payload_trunk.features(pixels)
        if colour is None:
            colour = self.payload_colour(pixels)
        payload = self.payload_heads(pooled_features(fmap, mid, colour), mid)
        return embedding, payload.to(torch.float16)


def build_towers(
    trainable: TrainableTowers, payload_heads: nn.Module | None = None
) -> tuple[TextTower, ImageTower]:
    """Exportable towers in eval mode (the image tower with the reranker's payload heads, if any).

    When a tail is fine-tuned it already holds the trained copies of the last backbone blocks; the
    trunk then comes from a freshly loaded backbone and only runs the frozen earlier blocks.
    """
    text = TextTower(trainable, backbones.load_minilm()).eval()
    image = ImageTower(trainable, backbones.load_efficientnet_lite0(), payload_heads).eval()
    return text, image
