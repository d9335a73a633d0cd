"""Contrastive losses for the two towers.

* :class:`InfoNCE` (default): CLIP's symmetric cross-entropy over the batch similarity matrix with
  a learnable temperature, generalised to several positives per row (products sharing a normalised
  title are all correct matches: the target distribution is uniform over them).
* :class:`TripletLoss`: hardest-negative-in-batch triplet loss with a margin, in both directions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("infonce", "triplet")


class InfoNCE(nn.Module):
    def __init__(self, init_temperature: float = 0.07, max_scale: float = 100.0):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
        self.max_log = math.log(max_scale)

    @property
    def temperature(self) -> float:
        return float(1.0 / self.logit_scale.detach().clamp(max=self.max_log).exp())

    def forward(self, t: torch.Tensor, v: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        """``t``, ``v``: (B, D) unit vectors; ``positives``: (B, B) bool, diagonal true."""
        scale = self.logit_scale.clamp(max=self.max_log).exp()
        logits = scale * t @ v.T
        target = positives.float() / positives.float().sum(1, keepdim=True)
        target_t = positives.T.float() / positives.T.float().sum(1, keepdim=True)
        l_t2v = -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
        l_v2t = -(target_t * F.log_softmax(logits.T, dim=1)).sum(1).mean()
        return 0.5 * (l_t2v + l_v2t)


class TripletLoss(nn.Module):
    def __init__(self, margin: float = 0.2):
        super().__init__()
        self.margin = margin

    @property
    def temperature(self) -> float:
        return float("nan")

    def forward(self, t: torch.Tensor, v: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        sim = t @ v.T
        pos = sim.diagonal()
        neg = sim.masked_fill(positives, -2.0)
        l_t = F.relu(self.margin - pos + neg.max(dim=1).values)
        l_v = F.relu(self.margin - pos + neg.max(dim=0).values)
        return 0.5 * (l_t.mean() + l_v.mean())


def make_loss(name: str) -> nn.Module:
    if name == "infonce":
        return InfoNCE()
    if name == "triplet":
        return TripletLoss()
    raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")
