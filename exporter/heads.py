"""Projection heads that map backbone outputs into the shared embedding space.

``linear``: masked mean pooling (text) / global average pooling (image) + one linear layer: the
linear-probe baseline. ``mlp`` (default): mean pooling plus learned attention pooling, then a
two-layer MLP with a linear skip. Every head ends in L2 normalisation, so inner product == cosine.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HEAD_KINDS = ("linear", "mlp")


class AttentionPool(nn.Module):
    """Softmax attention over positions with a learned query (masked positions get no weight)."""

    def __init__(self, width: int):
        super().__init__()
        self.score = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.score(x).squeeze(-1)  # (B, L)
        if mask is not None:
            logits = logits.masked_fill(mask == 0, torch.finfo(logits.dtype).min)
        w = torch.softmax(logits, dim=-1)
        return torch.einsum("bl,bld->bd", w, x)


class _Projection(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, kind: str, hidden: int, dropout: float):
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"head kind must be one of {HEAD_KINDS}, got {kind!r}")
        self.kind = kind
        if kind == "linear":
            self.proj = nn.Linear(in_dim, out_dim)
        else:
            self.norm = nn.LayerNorm(in_dim)
            self.mlp = nn.Sequential(
                nn.Linear(in_dim, hidden),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, out_dim),
            )
            self.skip = nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "linear":
            y = self.proj(x)
        else:
            x = self.norm(x)
            y = self.mlp(x) + self.skip(x)
        return F.normalize(y, dim=-1)


class TextHead(nn.Module):
    """(B, L, W) token states + (B, L) mask -> (B, D) unit vectors."""

    def __init__(
        self, width: int, out_dim: int, kind: str = "mlp", hidden: int = 1024, dropout: float = 0.1
    ):
        super().__init__()
        self.kind = kind
        self.attn = AttentionPool(width) if kind == "mlp" else None
        in_dim = width * (2 if self.attn is not None else 1)
        self.proj = _Projection(in_dim, out_dim, kind, hidden, dropout)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.to(states.dtype).unsqueeze(-1)
        mean = (states * m).sum(1) / m.sum(1).clamp_min(1.0)
        feats = mean if self.attn is None else torch.cat([mean, self.attn(states, mask)], dim=-1)
        return self.proj(feats)


class ImageHead(nn.Module):
    """(B, C, H, W) feature map [+ (B, K) extra descriptors] -> (B, D) unit vectors."""

    def __init__(
        self,
        width: int,
        out_dim: int,
        kind: str = "mlp",
        hidden: int = 1024,
        dropout: float = 0.1,
        extra_width: int = 0,
    ):
        super().__init__()
        self.kind = kind
        self.extra_width = extra_width
        self.attn = AttentionPool(width) if kind == "mlp" else None
        in_dim = width * (2 if self.attn is not None else 1) + extra_width
        self.proj = _Projection(in_dim, out_dim, kind, hidden, dropout)

    def forward(self, fmap: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        feats = [fmap.mean(dim=(2, 3))]
        if self.attn is not None:
            feats.append(self.attn(fmap.flatten(2).transpose(1, 2)))  # (B, HW, C) positions
        if self.extra_width:
            feats.append(extra)
        return self.proj(torch.cat(feats, dim=-1) if len(feats) > 1 else feats[0])
