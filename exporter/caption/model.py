"""The captioner: photo → attribute probabilities + region memory → title, word by word.

* **Image side** (run once per photo): the frozen EfficientNet-Lite0 trunk's 7×7 map gives 49
  region tokens (projected to ``d``, plus a learned position each); the pooled photo
  ([mean, max of the map, mid-level and colour descriptors], standardised) goes through an MLP
  whose attribute heads predict gender, masterCategory, subCategory, articleType, baseColour,
  season and usage. The memory the decoder reads is ``[global token, one token per attribute
  (its predicted distribution times a learned value embedding), 49 region tokens]``, so the words
  it writes are conditioned on what the heads predicted.
* **Decoder** (run once per word): a pre-norm transformer decoder — causal self-attention over
  the words so far, cross-attention to the memory, feed-forward — and an output layer tied to the
  word embeddings. Attention is written out with matmul/softmax so the ONNX graph is plain.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

REGIONS = 49  # the 7×7 trunk map


class Attention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mem: torch.Tensor, bias: torch.Tensor | None):
        b, t, d = x.shape
        q = self.q(x).view(b, t, self.heads, self.dh).transpose(1, 2)
        k, v = self.kv(mem).view(b, mem.shape[1], 2, self.heads, self.dh).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.dh)
        if bias is not None:
            att = att + bias
        att = self.drop(torch.softmax(att, dim=-1))
        return self.out((att @ v).transpose(1, 2).reshape(b, t, d))


class DecoderBlock(nn.Module):
    def __init__(self, d: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.n1, self.n2, self.n3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_att = Attention(d, heads, dropout)
        self.cross_att = Attention(d, heads, dropout)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mem, self_bias):
        h = self.n1(x)
        x = x + self.drop(self.self_att(h, h, self_bias))
        x = x + self.drop(self.cross_att(self.n2(x), mem, None))
        return x + self.drop(self.ff(self.n3(x)))


class CaptionModel(nn.Module):
    def __init__(
        self,
        channels: int,
        pooled_dim: int,
        vocab_size: int,
        sizes: dict[str, int],
        d: int = 256,
        layers: int = 3,
        heads: int = 4,
        ff: int = 1024,
        hidden: int = 1024,
        max_len: int = 24,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.args = {
            "channels": channels,
            "pooled_dim": pooled_dim,
            "vocab_size": vocab_size,
            "sizes": dict(sizes),
            "d": d,
            "layers": layers,
            "heads": heads,
            "ff": ff,
            "hidden": hidden,
            "max_len": max_len,
            "dropout": dropout,
        }
        self.attributes = list(sizes)
        self.register_buffer("mean", torch.zeros(pooled_dim))
        self.register_buffer("inv_std", torch.ones(pooled_dim))
        self.region = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, d))
        self.region_pos = nn.Parameter(torch.zeros(REGIONS, d))
        self.mlp = nn.Sequential(
            nn.Dropout(0.5), nn.Linear(pooled_dim, hidden), nn.GELU(), nn.Dropout(0.3)
        )
        self.attr = nn.ModuleDict({a: nn.Linear(hidden, n) for a, n in sizes.items()})
        self.attr_value = nn.ModuleDict({a: nn.Linear(n, d, bias=False) for a, n in sizes.items()})
        self.attr_pos = nn.Parameter(torch.zeros(len(sizes), d))
        self.global_tok = nn.Linear(hidden, d)
        self.embed = nn.Embedding(vocab_size, d)
        self.pos = nn.Parameter(torch.zeros(max_len, d))
        self.blocks = nn.ModuleList(DecoderBlock(d, heads, ff, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.mem_norm = nn.LayerNorm(d)
        nn.init.normal_(self.region_pos, std=0.02)
        nn.init.normal_(self.attr_pos, std=0.02)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.embed.weight, std=0.02)

    # -- image side -------------------------------------------------------------------------------
    def attribute_logits(
        self, pooled: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        h = self.mlp((pooled - self.mean) * self.inv_std)
        return {a: head(h) for a, head in self.attr.items()}, h

    def encode(self, fmap: torch.Tensor, pooled: torch.Tensor):
        """(B, C, 7, 7) map + pooled features → memory (B, M, d), attribute logits by name."""
        logits, h = self.attribute_logits(pooled)
        regions = self.region(fmap.flatten(2).transpose(1, 2)) + self.region_pos
        attrs = torch.stack(
            [self.attr_value[a](torch.softmax(logits[a], -1)) for a in self.attributes], dim=1
        )
        memory = torch.cat([self.global_tok(h)[:, None], attrs + self.attr_pos, regions], dim=1)
        return self.mem_norm(memory), logits

    # -- decoder ----------------------------------------------------------------------------------
    def decode(self, memory: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor):
        """Logits (B, T, V) for every prefix of right-padded ``tokens`` (B, T)."""
        return self.vocabulary(self.hidden(memory, tokens, lengths))

    def vocabulary(self, h: torch.Tensor) -> torch.Tensor:
        """Word logits of hidden states (the output layer is tied to the word embeddings)."""
        return self.norm(h) @ self.embed.weight.T

    def hidden(self, memory: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor):
        """Decoder states (B, T, d) of right-padded ``tokens`` (B, T)."""
        t = tokens.shape[1]
        x = self.embed(tokens) + self.pos[:t]
        pos = torch.arange(t, device=tokens.device)
        causal = pos[None, :] > pos[:, None]  # (T, T): a word sees itself and earlier words
        padded = pos[None, :] >= lengths[:, None]  # (B, T)
        blocked = causal[None] | padded[:, None, :]  # (B, T, T)
        bias = torch.zeros(blocked.shape, dtype=x.dtype, device=x.device)
        bias = bias.masked_fill(blocked, -1e4)[:, None]  # (B, 1, T, T)
        for block in self.blocks:
            x = block(x, memory, bias)
        return x


class CaptionEncoderGraph(nn.Module):
    """Exported graph 1: uint8 pixels → ``memory`` and ``attributes`` (softmax, concatenated)."""

    def __init__(self, model: CaptionModel, trunk: nn.Module, colour: nn.Module):
        super().__init__()
        self.model, self.trunk, self.colour = model, trunk, colour

    def forward(self, pixels: torch.Tensor):
        from exporter.rerank.image_heads import pooled_features

        fmap, mid = self.trunk.features(pixels)
        memory, logits = self.model.encode(fmap, pooled_features(fmap, mid, self.colour(pixels)))
        probs = torch.cat([torch.softmax(logits[a], -1) for a in self.model.attributes], dim=1)
        return memory, probs


class CaptionStepGraph(nn.Module):
    """Exported graph 2: memory rows, prefixes, lengths → log-probabilities of the next word."""

    def __init__(self, model: CaptionModel):
        super().__init__()
        self.model = model

    def forward(self, memory: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor):
        h = self.model.hidden(memory, tokens, lengths)
        idx = (lengths - 1).clamp_min(0)[:, None, None].expand(-1, 1, h.shape[-1])
        last = torch.gather(h, 1, idx)[:, 0]  # each row's last real position, then the vocabulary
        return F.log_softmax(self.model.vocabulary(last), dim=-1)
