"""Text → what it says: attribute distributions, tag columns and a lexical vector.

A light model inside the reranker graph (a query is one text, a photo query's candidates are 50
titles: both must be cheap): the MiniLM tokenizer's wordpiece ids are mapped to the columns of
the training vocabulary (wordpieces of training texts; others are dropped), averaged as a bag of
learned embeddings and fed to one hidden layer with a softmax classifier per attribute (the
image classes plus ``NONE``: "the text does not say").

The lexical vector is a TF-IDF bag of the same wordpieces, projected to ``lex_dim`` with a fixed
random (Johnson-Lindenstrauss) matrix so that text-to-text similarity against the training titles
is one small matrix product.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from exporter.rerank.labels import ATTRIBUTES


class WordpieceVocab:
    """Columns of the training wordpieces (0 = not in the vocabulary) and the tagger's words."""

    def __init__(
        self,
        tokenizer_size: int,
        special_ids: set[int],
        text_ids: list[list[int]],
        title_ids: list[list[int]],
        min_df: int = 2,
        tag_min_titles: int = 5,
    ):
        df = Counter(t for ids in text_ids for t in set(ids) if t not in special_ids)
        kept = sorted(t for t, c in df.items() if c >= min_df)
        self.columns = np.zeros(tokenizer_size, dtype=np.int64)
        self.columns[kept] = np.arange(1, len(kept) + 1)
        self.n_columns = len(kept) + 1
        title_df = Counter(t for ids in title_ids for t in set(ids) if t not in special_ids)
        n = len(title_ids)
        self.idf = np.zeros(self.n_columns, dtype=np.float32)
        for t in kept:
            self.idf[self.columns[t]] = math.log((1 + n) / (1 + title_df.get(t, 0))) + 1.0
        tags = sorted(t for t, c in title_df.items() if c >= tag_min_titles)
        self.n_tags = len(tags)
        self.tag_of = np.full(tokenizer_size, self.n_tags, dtype=np.int64)  # n_tags = not a tag
        self.tag_of[tags] = np.arange(self.n_tags)

    def tag_targets(self, title_ids: list[list[int]]) -> np.ndarray:
        """Multi-hot tagger targets of titles, [n, n_tags]."""
        y = np.zeros((len(title_ids), self.n_tags + 1), dtype=np.float32)
        for i, ids in enumerate(title_ids):
            y[i, self.tag_of[ids]] = 1.0
        return y[:, : self.n_tags]


class TextHeads(nn.Module):
    def __init__(
        self,
        vocab: WordpieceVocab | None,
        sizes: dict[str, int],
        dim: int = 256,
        hidden: int = 512,
        lex_dim: int = 256,
        seed: int = 0,
        shape: dict[str, int] | None = None,
    ):
        """From a vocabulary, or (``vocab=None``) empty with the ``shape`` of a saved one
        (:attr:`shape`; a checkpoint's state dict then fills it)."""
        super().__init__()
        if vocab is None:
            n_ids, n_cols, n_tags = shape["tokenizer_size"], shape["n_columns"], shape["n_tags"]
            columns, tag_of = np.zeros(n_ids, np.int64), np.zeros(n_ids, np.int64)
            idf = np.zeros(n_cols, np.float32)
        else:
            columns, tag_of, idf = vocab.columns, vocab.tag_of, vocab.idf
            n_cols, n_tags = vocab.n_columns, vocab.n_tags
        self.register_buffer("col_of", torch.from_numpy(columns))
        self.register_buffer("tag_of", torch.from_numpy(tag_of))
        self.register_buffer("idf", torch.from_numpy(idf))
        rng = np.random.default_rng(seed)
        jl = rng.standard_normal((n_cols, lex_dim)).astype(np.float32) / math.sqrt(lex_dim)
        jl[0] = 0.0
        self.register_buffer("jl", torch.from_numpy(jl))
        self.n_tags = n_tags
        self.args = {"sizes": dict(sizes), "dim": dim, "hidden": hidden, "lex_dim": lex_dim}
        self.shape = {"tokenizer_size": len(columns), "n_columns": n_cols, "n_tags": n_tags}
        self.emb = nn.Embedding(n_cols, dim, padding_idx=0)
        self.mlp = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.2)
        )
        self.heads = nn.ModuleDict({a: nn.Linear(hidden, sizes[a] + 1) for a in ATTRIBUTES})

    def _columns(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.col_of[ids] * (mask > 0).to(ids.dtype)

    def attributes(self, ids: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Log-probabilities per attribute, the last class being NONE."""
        cols = self._columns(ids, mask)
        keep = (cols > 0).to(torch.float32).unsqueeze(-1)
        bag = (self.emb(cols) * keep).sum(1) / keep.sum(1).clamp_min(1.0)
        h = self.mlp(bag)
        return {a: F.log_softmax(head(h), dim=-1) for a, head in self.heads.items()}

    def lexical(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Unit TF-IDF vector of the wordpieces, randomly projected."""
        cols = self._columns(ids, mask)
        w = self.idf[cols].unsqueeze(-1)
        return F.normalize((self.jl[cols] * w).sum(1), dim=-1)

    def tag_columns(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The tagger column of every token (``n_tags`` for tokens that are not tags)."""
        tags = self.tag_of[ids]
        return torch.where(mask > 0, tags, torch.full_like(tags, self.n_tags))
