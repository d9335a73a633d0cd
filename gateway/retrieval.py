"""Vector, lexical and hybrid retrieval: the modes, a product's lexical text, and the fusion.

Hybrid retrieval asks the index for two lists at once — the query vector's nearest products and
the lexical (BM25) index's best matches of the query text — and fuses them with a score blend,

    fused = a · cosine + (1 − a) · BM25 / max BM25 (over the lexical list),

with a per query (:func:`adaptive_weight`): ``hybrid_vector_weight_low`` (0.1) when the best
lexical hits contain every word of the query — a brand, a model number, a title: BM25 is right
and the cosine only orders within what it found — rising to ``hybrid_vector_weight_high`` (0.7)
as fewer of the query's words are the catalog's ("dark blue running trainers for gents": the
embedding knows more than the words). Both were chosen on the validation pool by
benchmarks/hybrid_eval.py, which runs these same functions; a fixed a and reciprocal-rank fusion,
also measured, each lose to it on some class (docs/quality.md).

A product only one list found lacks the other list's score. Its cosine is at most the vector
list's lowest (it was not among the nearest), so that is used; its BM25 is 0 when the lexical
list holds every match (shorter than asked), else at most the list's lowest, which is used.
Lexical-only mode is the same blend with ``a`` = 0 (scores are BM25 / max BM25, in 0..1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from index_service.client import SearchHit
from index_service.lexical import words

VECTOR, LEXICAL, HYBRID = "vector", "lexical", "hybrid"
MODES = (VECTOR, LEXICAL, HYBRID)


def lexical_text(title: str, attributes: Mapping[str, object], skip: str = "") -> str:
    """What the lexical index holds of a product: its title and its text attribute values
    (but not attribute ``skip``: the image URL)."""
    parts = [title]
    for name, value in attributes.items():
        if name == skip:
            continue
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list | tuple):
            parts += [v for v in value if isinstance(v, str)]
    return " ".join(p for p in parts if p)


@dataclass
class Fused:
    hits: list[SearchHit]  # best first, score = the fused score
    cosine: dict[str, float]  # per id: the vector score (or its bound)
    bm25: dict[str, float]  # per id: the BM25 score (0 where the lexical index did not find it)


def coverage(query: str, lexical: Sequence[SearchHit], top: int = 5) -> float:
    """How much of the query the catalog's own words cover: the largest share of the query's
    words that one of the ``top`` lexical hits contains as whole words (0..1)."""
    want = set(words(query))
    if not want:
        return 0.0
    best = 0.0
    for h in lexical[:top]:
        attrs = h.attributes or {}
        have = set(words(lexical_text(str(attrs.get("title", "")), attrs)))
        best = max(best, len(want & have) / len(want))
    return best


def adaptive_weight(query: str, lexical: Sequence[SearchHit], low: float, high: float) -> float:
    """The cosine's share for this query: ``low`` when the query's words are the catalog's
    (brands, model numbers, titles: trust BM25), rising to ``high`` as fewer of them are
    ("dark blue trainers for gents": trust the embedding)."""
    return low + (high - low) * (1.0 - coverage(query, lexical))


def blend(
    vector: Sequence[SearchHit],
    lexical: Sequence[SearchHit],
    vector_weight: float,
    lexical_depth: int,
    k: int,
) -> Fused:
    """Fuse a vector and a lexical hit list (each best first) into the top ``k``.

    ``lexical_depth``: how many hits the lexical list was asked for (a shorter list holds every
    match).
    """
    by_id: dict[str, SearchHit] = {}
    for h in (*lexical, *vector):
        by_id.setdefault(h.id, h)
    cos = {h.id: h.score for h in vector}
    bm25 = {h.id: h.score for h in lexical}
    cos_floor = min(cos.values(), default=0.0)
    top_bm25 = max(bm25.values(), default=0.0)
    bm25_floor = min(bm25.values()) if len(lexical) >= lexical_depth and bm25 else 0.0
    fused = {}
    for rid in by_id:
        c = cos.get(rid, cos_floor)
        b = bm25.get(rid, bm25_floor)
        fused[rid] = vector_weight * c + (1 - vector_weight) * (b / top_bm25 if top_bm25 else 0.0)
    order = sorted(fused, key=lambda rid: (-fused[rid], rid))[:k]
    hits = [SearchHit(rid, fused[rid], by_id[rid].attributes, by_id[rid].payload) for rid in order]
    return Fused(
        hits,
        {rid: cos.get(rid, cos_floor) for rid in order},
        {rid: bm25.get(rid, 0.0) for rid in order},
    )
