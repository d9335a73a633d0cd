"""Retrieval metrics over a similarity matrix (pure NumPy, unit-tested against hand computations).

Conventions: ``scores`` is ``(queries, gallery)``; ``relevant`` a boolean matrix of the same shape.
Ranking is by descending score, ties broken by gallery order (stable sort). Gains are binary.

* Recall@K: the fraction of queries with at least one relevant item in the top K.
* AP@K: ``sum_{k<=K} P@k * rel_k / min(#relevant, K)``; mAP@K is its mean over queries.
* nDCG@K: ``DCG = sum_{k<=K} rel_k / log2(k + 1)``, divided by the ideal DCG of
  ``min(#relevant, K)`` relevant items at the top.
* Precision@K: the mean fraction of relevant items among the top K.

Queries with no relevant item in the gallery are skipped (counted in ``queries_without_relevant``).
"""

from __future__ import annotations

import numpy as np


def rank(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the top ``k`` gallery items per query, best first (stable on ties)."""
    k = min(k, scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def retrieval_metrics(
    scores: np.ndarray, relevant: np.ndarray, ks: tuple[int, ...] = (1, 5, 10), cutoff: int = 10
) -> dict[str, float]:
    scores = np.asarray(scores, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=bool)
    if scores.shape != relevant.shape:
        raise ValueError(f"scores {scores.shape} and relevant {relevant.shape} differ")
    has_rel = relevant.any(axis=1)
    scores, relevant = scores[has_rel], relevant[has_rel]
    out: dict[str, float] = {
        "queries": int(has_rel.sum()),
        "queries_without_relevant": int((~has_rel).sum()),
    }
    if not len(scores):
        return out
    top = rank(scores, max(*ks, cutoff))
    hits = np.take_along_axis(relevant, top, axis=1).astype(np.float64)  # (Q, K)
    for k in ks:
        out[f"R@{k}"] = float(hits[:, :k].max(axis=1).mean())
    h = hits[:, :cutoff]
    n_rel = relevant.sum(axis=1)
    denom = np.minimum(n_rel, cutoff)
    positions = np.arange(1, h.shape[1] + 1)
    prec_at = np.cumsum(h, axis=1) / positions
    out[f"mAP@{cutoff}"] = float(((prec_at * h).sum(axis=1) / denom).mean())
    discounts = 1.0 / np.log2(positions + 1)
    dcg = (h * discounts).sum(axis=1)
    idcg = np.array([discounts[:d].sum() for d in denom])
    out[f"nDCG@{cutoff}"] = float((dcg / idcg).mean())
    return out


def precision_at_k(
    scores: np.ndarray, relevant: np.ndarray, k: int = 10, capped: bool = False
) -> float:
    """Mean over queries of the fraction of the top ``k`` that is relevant.

    ``capped``: divide by ``min(k, #relevant)`` instead of ``k`` (1.0 reachable when fewer than
    ``k`` items are relevant); queries without any relevant item count as 0 either way.
    """
    relevant = np.asarray(relevant, bool)
    top = rank(np.asarray(scores, dtype=np.float64), k)
    hits = np.take_along_axis(relevant, top, axis=1).sum(axis=1).astype(np.float64)
    denom = (
        np.maximum(np.minimum(relevant.sum(axis=1), top.shape[1]), 1) if capped else top.shape[1]
    )
    return float((hits / denom).mean())
