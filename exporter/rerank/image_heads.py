"""Photo → payload: what the reranker stores per product, computed inside the image tower graph.

The heads read the same frozen trunk outputs as the image tower's own head: the 7×7 feature map
(mean- and max-pooled), the mid-level descriptors and the colour descriptors. One shared hidden
layer feeds

* one softmax classifier per attribute (:data:`~exporter.rerank.labels.ATTRIBUTES`),
* a multi-label **tagger** over the wordpieces of training titles ("does the title of this photo
  contain 'polo'? 'dial'? 'nike'?"),

and the mid-level descriptor is projected (PCA, fitted on the training photos) to a unit vector
for photo-to-photo similarity. The payload is their concatenation, stored as float16:
``[log-probabilities per attribute | tagger logits | visual descriptor]`` (:class:`Layout`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from exporter.rerank.labels import ATTRIBUTES


@dataclass(frozen=True)
class Layout:
    """Where each part sits in the payload vector (start, end) and its total width."""

    attributes: dict[str, tuple[int, int]]
    tags: tuple[int, int]
    visual: tuple[int, int]
    width: int

    @classmethod
    def build(cls, sizes: dict[str, int], n_tags: int, visual_dim: int) -> Layout:
        spans, pos = {}, 0
        for a in ATTRIBUTES:
            spans[a] = (pos, pos + sizes[a])
            pos += sizes[a]
        tags = (pos, pos + n_tags)
        visual = (tags[1], tags[1] + visual_dim)
        return cls(spans, tags, visual, visual[1])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["attributes"] = {a: list(s) for a, s in self.attributes.items()}
        d["tags"], d["visual"] = list(self.tags), list(self.visual)
        d["dtype"] = "float16"
        d["bytes"] = 2 * self.width
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Layout:
        return cls(
            {a: tuple(s) for a, s in d["attributes"].items()},
            tuple(d["tags"]),
            tuple(d["visual"]),
            int(d["width"]),
        )


def pooled_features(fmap: torch.Tensor, mid: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) map + descriptors → one vector per photo: [mean, max, mid, colour]."""
    return torch.cat([fmap.mean(dim=(2, 3)), fmap.amax(dim=(2, 3)), mid, colour], dim=1)


class ImageHeads(nn.Module):
    def __init__(
        self,
        in_dim: int,
        mid_dim: int,
        sizes: dict[str, int],
        n_tags: int,
        visual_dim: int = 128,
        hidden: int = 1024,
        dropout: float = 0.5,
    ):
        super().__init__()
        self.args = {
            "in_dim": in_dim,
            "mid_dim": mid_dim,
            "sizes": dict(sizes),
            "n_tags": n_tags,
            "visual_dim": visual_dim,
            "hidden": hidden,
        }
        self.layout = Layout.build(sizes, n_tags, visual_dim)
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("inv_std", torch.ones(in_dim))
        self.register_buffer("mid_mean", torch.zeros(mid_dim))
        self.register_buffer("mid_inv_std", torch.ones(mid_dim))
        self.register_buffer("pca", torch.zeros(mid_dim, visual_dim))
        self.trunk = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(0.3)
        )
        self.attr = nn.ModuleDict({a: nn.Linear(hidden, sizes[a]) for a in ATTRIBUTES})
        self.tags = nn.Linear(hidden, n_tags)

    def fit_normalisation(self, x: np.ndarray, mid: np.ndarray) -> None:
        """Feature standardisation and the visual PCA, from training photos."""
        self.mean.copy_(torch.from_numpy(x.mean(0)))
        self.inv_std.copy_(torch.from_numpy(1.0 / (x.std(0) + 1e-4)))
        mu, sd = mid.mean(0), mid.std(0) + 1e-4
        z = (mid - mu) / sd
        _, _, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
        self.mid_mean.copy_(torch.from_numpy(mu))
        self.mid_inv_std.copy_(torch.from_numpy(1.0 / sd))
        self.pca.copy_(torch.from_numpy(vt[: self.pca.shape[1]].T.copy()))

    def logits(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Attribute logits and tagger logits of standardised-on-the-fly features ``x``."""
        h = self.trunk((x - self.mean) * self.inv_std)
        return {a: head(h) for a, head in self.attr.items()}, self.tags(h)

    def visual(self, mid: torch.Tensor) -> torch.Tensor:
        v = ((mid - self.mid_mean) * self.mid_inv_std) @ self.pca
        return F.normalize(v, dim=-1)

    def forward(self, x: torch.Tensor, mid: torch.Tensor) -> torch.Tensor:
        """The payload (float32 here; the exported graph casts it to float16)."""
        attrs, tags = self.logits(x)
        parts = [F.log_softmax(attrs[a], dim=-1) for a in ATTRIBUTES]
        return torch.cat([*parts, tags, self.visual(mid)], dim=-1)
