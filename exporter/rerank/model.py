"""The pair scorer: (text, payload of a photo, retrieval score, direction) → score.

Features of a pair (text ``t``, photo ``p``):

* ``retrieval``: the towers' cosine, as the search stage found it;
* ``memory_text``: ``t`` → its nearest training titles (lexical) → their photos → similarity of
  those photos to ``p`` (visual descriptor);
* ``memory_photo``: ``p`` → its nearest training photos → their titles → similarity to ``t``;
* ``tags``: mean log-probability, under ``p``'s tagger, of the wordpieces ``t`` contains;
* ``attr_<a>``: agreement of what ``t`` says about attribute ``a`` with what ``p`` shows,
  ``log(P_t(NONE) + Σ_v P_t(v)·P_p(v))`` — 0 when the text does not name it.

The score is a weighted sum of the features with one weight vector per direction (0: a text
query over photos; 1: a photo query over titles), fitted on the validation split. ``match`` is
the same sum without the retrieval term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from exporter.rerank.image_heads import Layout
from exporter.rerank.labels import ATTRIBUTES
from exporter.rerank.text_heads import TextHeads

FEATURES = (
    "retrieval",
    "memory_text",
    "memory_photo",
    "tags",
    *(f"attr_{a}" for a in ATTRIBUTES),
)
DIRECTIONS = ("text_query", "photo_query")


class RerankModel(nn.Module):
    def __init__(
        self,
        text: TextHeads,
        layout: Layout,
        memory_lexical: torch.Tensor,  # (M, lex_dim) unit lexical vectors of training titles
        memory_visual: torch.Tensor,  # (M, visual_dim) unit visual descriptors of their photos
        knn: int = 5,
        knn_temperature: float = 0.05,
    ):
        super().__init__()
        self.text = text
        self.layout = layout
        self.register_buffer("memory_lexical", memory_lexical.float())
        self.register_buffer("memory_visual", memory_visual.float())
        self.knn = min(knn, len(memory_lexical))
        self.knn_temperature = knn_temperature
        w = torch.zeros(len(DIRECTIONS), len(FEATURES))
        w[:, 0] = 20.0  # start from the retrieval order
        self.weights = nn.Parameter(w)

    def _part(self, payload: torch.Tensor, span: tuple[int, int]) -> torch.Tensor:
        return payload[:, span[0] : span[1]]

    def _memory(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, other):
        """Softmax-weighted similarity of ``other`` to the values of ``query``'s nearest keys."""
        sims = query @ keys.T  # (P, M)
        top, idx = torch.topk(sims, self.knn, dim=1)
        w = torch.softmax(top / self.knn_temperature, dim=1)  # (P, knn)
        neighbours = values[idx]  # (P, knn, D)
        return (w * torch.einsum("pkd,pd->pk", neighbours, other)).sum(1)

    def features(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        payload: torch.Tensor,
        retrieval: torch.Tensor,
    ) -> torch.Tensor:
        payload = payload.float()
        lex = self.text.lexical(ids, mask)
        vis = self._part(payload, self.layout.visual)
        mem_t = self._memory(lex, self.memory_lexical, self.memory_visual, vis)
        mem_p = self._memory(vis, self.memory_visual, self.memory_lexical, lex)
        tag_logits = self._part(payload, self.layout.tags)
        log_p = -F.softplus(-tag_logits)
        log_p = torch.cat([log_p, torch.zeros_like(log_p[:, :1])], dim=1)  # the "not a tag" column
        cols = self.text.tag_columns(ids, mask)
        is_tag = (cols < self.text.n_tags).to(torch.float32)
        tags = (torch.gather(log_p, 1, cols) * is_tag).sum(1) / is_tag.sum(1).clamp_min(1.0)
        said = self.text.attributes(ids, mask)
        agree = []
        for a in ATTRIBUTES:
            shown = self._part(payload, self.layout.attributes[a])
            t = said[a]
            n = shown.shape[1]
            agree.append(torch.logsumexp(torch.cat([t[:, :n] + shown, t[:, n:]], dim=1), dim=1))
        return torch.stack([retrieval.float(), mem_t, mem_p, tags, *agree], dim=1)

    def forward(
        self,
        text_ids: torch.Tensor,
        text_mask: torch.Tensor,
        payload: torch.Tensor,
        retrieval: torch.Tensor,
        direction: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(text_ids, text_mask, payload, retrieval)
        w = self.weights[direction]  # (P, F)
        score = (f * w).sum(1)
        match = score - f[:, 0] * w[:, 0]
        return score, match
