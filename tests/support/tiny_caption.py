"""A tiny caption model published through the real export path, for fast service tests.

The trunk is one strided conv (pixels → a 7×7 map), the decoder one narrow layer; the exporter,
the two ONNX graphs, the manifest and the tokenizer are the real ones. The model is untrained but
deterministic, and every title it writes is exactly ``max_tokens`` words long: its final norm
emits a constant vector whose product with the end token's embedding is very negative, so the
end token only comes when decoding forces it at the length limit. ``burn`` adds square matmuls to
every decoder step, to make a step as slow as a deadline test needs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from exporter.caption.export import export_captioner
from exporter.caption.model import CaptionModel
from exporter.caption.train import CAPTION_ATTRIBUTES, CaptionConfig, CaptionResult, build_tokenizer
from exporter.rerank.labels import Vocab
from vitrine.captioning import EOS
from vitrine.catalog import Product
from vitrine.model_repo import ModelRepository, ModelVersion

CHANNELS = 8
COLOUR_DIM = 704  # exporter.backbones.ImageColour


class TinyTrunk(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, CHANNELS, 32, stride=32)

    def features(self, pixels: torch.Tensor):
        x = pixels.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        return self.conv(x), x.mean(dim=(2, 3))


class SlowCaptionModel(CaptionModel):
    def __init__(self, *args, burn: int = 0, **kw):
        super().__init__(*args, **kw)
        self.burn = nn.ModuleList(nn.Linear(256, 256) for _ in range(burn))

    def hidden(self, memory, tokens, lengths):
        x = super().hidden(memory, tokens, lengths)
        if len(self.burn):
            h = memory[:, :1, :1].expand(-1, 64, 256)
            for layer in self.burn:
                h = torch.tanh(layer(h))
            x = x + 1e-6 * h.mean(dim=(1, 2))[:, None, None]
        return x


def tiny_result(products: list[Product], burn: int = 0, max_len: int = 12) -> CaptionResult:
    torch.manual_seed(0)
    tok = build_tokenizer([p.title for p in products], 1)
    vocab = Vocab.build(products, 1, CAPTION_ATTRIBUTES)
    model = SlowCaptionModel(
        CHANNELS,
        2 * CHANNELS + 3 + COLOUR_DIM,
        tok.get_vocab_size(),
        vocab.sizes(),
        d=32,
        layers=1,
        heads=2,
        ff=64,
        hidden=64,
        max_len=max_len,
        burn=burn,
    ).eval()
    with torch.no_grad():
        model.norm.weight.zero_()
        model.norm.bias.copy_(torch.randn(32))
        model.embed.weight[EOS] = -2.0 * model.norm.bias  # the end token never wins on merit
    return CaptionResult(model, tok, vocab, {}, CaptionConfig(max_len=max_len))


def publish_caption(
    repo_dir: Path, products: list[Product], version: int = 1, burn: int = 0, max_len: int = 12
) -> ModelVersion:
    result = tiny_result(products, burn, max_len)
    pixels = np.random.default_rng(0).integers(0, 255, (2, 224, 224, 3), dtype=np.uint8)
    return export_captioner(
        ModelRepository(repo_dir), result, pixels, {"test": True}, version, trunk=TinyTrunk()
    )
