"""Scores of composed queries over a pool's photo gallery (validation during training, and
``benchmarks/compose_eval.py``).

* success@k: the top-k photos (the reference itself excluded) that are targets of the query —
  same articleType, gender (the new one when gender changes) and the requested value — over
  ``min(k, targets)``;
* style kept: the mean cosine between the reference photo's embedding and the top-k photos'
  embeddings (how much of the look the results keep).

Reported per changed attribute (``colour``, ``gender``, ``usage``, ``season``).
"""

from __future__ import annotations

import numpy as np

from exporter.compose.phrases import CHANGES
from exporter.compose.triplets import Triplets

K = 10


def top_k(queries: np.ndarray, gallery: np.ndarray, exclude: np.ndarray, k: int = K) -> np.ndarray:
    """int [Q, k]: each query's k best gallery positions by inner product, best first, with
    ``exclude[q]`` (the reference) left out."""
    out = np.zeros((len(queries), min(k, len(gallery) - 1)), dtype=np.int64)
    for s in range(0, len(queries), 2048):
        scores = queries[s : s + 2048] @ gallery.T
        scores[np.arange(len(scores)), exclude[s : s + 2048]] = -np.inf
        kk = out.shape[1]
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
        out[s : s + 2048] = np.take_along_axis(part, order, 1)
    return out


def composed_metrics(
    queries: np.ndarray, gallery: np.ndarray, triplets: Triplets, k: int = K
) -> dict[str, dict]:
    """Per changed attribute: success@k, style kept and the number of queries; ``mean``: the
    unweighted mean over the attributes present."""
    top = top_k(queries.astype(np.float32), gallery.astype(np.float32), triplets.ref, k)
    return metrics_of_top(top, gallery, triplets, k)


def metrics_of_scores(
    scores: np.ndarray, gallery: np.ndarray, triplets: Triplets, k: int = K
) -> dict[str, dict]:
    """:func:`composed_metrics` of a ranking given as scores (queries × gallery), e.g. reranked;
    the reference must already score lowest."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return metrics_of_top(top, gallery, triplets, k)


def metrics_of_top(
    top: np.ndarray, gallery: np.ndarray, triplets: Triplets, k: int = K
) -> dict[str, dict]:
    """Per changed attribute, from each query's top-k gallery positions."""
    success = np.zeros(len(triplets))
    for q, t in enumerate(triplets.targets):
        success[q] = np.isin(top[q], t).sum() / min(k, len(t))
    style = np.einsum("qkd,qd->qk", gallery[top], gallery[triplets.ref]).mean(1)
    attrs = triplets.attributes
    out: dict[str, dict] = {}
    for attr, label in CHANGES.items():
        m = attrs == attr
        if m.any():
            out[label] = {
                f"success@{k}": round(float(success[m].mean()), 4),
                "style_kept": round(float(style[m].mean()), 4),
                "queries": int(m.sum()),
            }
    if out:
        out["mean"] = {
            f"success@{k}": round(float(np.mean([v[f"success@{k}"] for v in out.values()])), 4),
            "style_kept": round(float(np.mean([v["style_kept"] for v in out.values()])), 4),
            "queries": len(triplets),
        }
    return out
