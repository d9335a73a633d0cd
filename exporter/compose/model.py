"""The combiner (after CLIP4Cir's Combiner, Baldrati et al. 2022): reference photo embedding +
modifier text embedding → query embedding in the image tower's space.

Both unit inputs are projected (linear + ReLU), concatenated, and read by two MLPs: one gives a
scalar gate λ ∈ (0, 1) per query, the other a learned residual. The output is
``normalize(residual + λ · text + (1 − λ) · image)``: the gate decides how far the query moves
from the photo towards the text, the residual adds what neither input says alone (e.g. "red"
*and* "shirt-like"). The exported graph is this module as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Combiner(nn.Module):
    def __init__(self, dim: int = 256, proj: int = 512, hidden: int = 1024, dropout: float = 0.1):
        super().__init__()
        self.args = {"dim": dim, "proj": proj, "hidden": hidden, "dropout": dropout}
        self.text_proj = nn.Sequential(nn.Linear(dim, proj), nn.ReLU(), nn.Dropout(dropout))
        self.image_proj = nn.Sequential(nn.Linear(dim, proj), nn.ReLU(), nn.Dropout(dropout))
        self.residual = nn.Sequential(
            nn.Linear(2 * proj, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )
        self.gate = nn.Sequential(
            nn.Linear(2 * proj, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

    def mix(
        self, image_embedding: torch.Tensor, text_embedding: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The un-normalised query and the gate λ (the text's share)."""
        h = torch.cat([self.text_proj(text_embedding), self.image_proj(image_embedding)], dim=-1)
        lam = torch.sigmoid(self.gate(h))
        return self.residual(h) + lam * text_embedding + (1 - lam) * image_embedding, lam

    def forward(self, image_embedding: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mix(image_embedding, text_embedding)[0], dim=-1)
