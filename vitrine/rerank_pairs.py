"""The inputs of a rerank model: validate a request, build its (text, payload) pairs, combine.

One definition, used by the encoder service (``Rerank``) and by evaluation (``vitrine eval
--rerank``), as :mod:`vitrine.preprocess` is for the towers. A request becomes pairs for the
rerank graph (see :mod:`exporter.rerank.export`):

* a **text query** scores each candidate's payload against the query text (direction 0);
* a **photo query** scores each candidate's title against the photo's payload (direction 1);
* a **composite query** does both and mixes them with the request's text/image weights.

Every pair carries the candidate's retrieval score; the graph blends it in with the weights
fitted for that direction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vitrine.preprocess import TextTokenizer
from vitrine.serving.errors import InvalidArgument

TEXT_QUERY, PHOTO_QUERY = 0, 1


@dataclass
class Pairs:
    """One request's pairs: the graph's inputs, row-aligned (``n`` rows)."""

    ids: np.ndarray  # int64 [n, seq]
    mask: np.ndarray  # int64 [n, seq]
    payload: np.ndarray  # float16 [n, width]
    retrieval: np.ndarray  # float32 [n]
    direction: np.ndarray  # int64 [n]
    weights: tuple[float, float]  # of the text-query and photo-query parts
    candidates: int

    @property
    def n(self) -> int:
        return len(self.retrieval)


@dataclass
class Candidate:
    payload: bytes
    title: str
    retrieval_score: float


def _payload(data: bytes, width: int, field: str) -> np.ndarray:
    if len(data) != 2 * width:
        raise InvalidArgument(
            f"{field}: {len(data)} bytes, expected {2 * width} (float16 payload of {width} values)"
        )
    values = np.frombuffer(data, dtype="<f2")
    if not np.isfinite(values).all():
        raise InvalidArgument(f"{field}: contains NaN or Inf")
    return values


def build_pairs(
    tokenizer: TextTokenizer,
    width: int,
    query_text: str,
    query_payload: bytes,
    candidates: Sequence[Candidate],
    text_weight: float,
    image_weight: float,
    max_candidates: int,
    max_text_chars: int,
) -> Pairs:
    """Validate a request (INVALID_ARGUMENT naming the field) and build its pairs."""
    text = query_text.strip()
    if not text and not query_payload:
        raise InvalidArgument("query_text or query_payload: at least one is required")
    if len(text) > max_text_chars:
        raise InvalidArgument(f"query_text: {len(text)} characters, limit {max_text_chars}")
    if not candidates:
        raise InvalidArgument("candidates: empty")
    if len(candidates) > max_candidates:
        raise InvalidArgument(f"candidates: {len(candidates)}, at most {max_candidates} per call")
    for w, name in ((text_weight, "text_weight"), (image_weight, "image_weight")):
        if not math.isfinite(w) or w < 0:
            raise InvalidArgument(f"{name}: must be a finite number >= 0")
    retrieval = np.empty(len(candidates), dtype=np.float32)
    for i, c in enumerate(candidates):
        if not math.isfinite(c.retrieval_score):
            raise InvalidArgument(f"candidates[{i}].retrieval_score: must be finite")
        retrieval[i] = c.retrieval_score
    n = len(candidates)
    parts = []
    if text:
        payloads = []
        for i, c in enumerate(candidates):
            if not c.payload:
                raise InvalidArgument(f"candidates[{i}].payload: required for a text query")
            payloads.append(_payload(c.payload, width, f"candidates[{i}].payload"))
        batch = tokenizer.encode([text])
        parts.append(
            (
                np.repeat(batch.input_ids, n, axis=0),
                np.repeat(batch.attention_mask, n, axis=0),
                np.stack(payloads),
                TEXT_QUERY,
            )
        )
    if query_payload:
        photo = _payload(query_payload, width, "query_payload")
        for i, c in enumerate(candidates):
            if not c.title.strip():
                raise InvalidArgument(f"candidates[{i}].title: required for a photo query")
            if len(c.title) > max_text_chars:
                raise InvalidArgument(f"candidates[{i}].title: longer than {max_text_chars}")
        batch = tokenizer.encode([c.title for c in candidates])
        parts.append(
            (batch.input_ids, batch.attention_mask, np.repeat(photo[None], n, axis=0), PHOTO_QUERY)
        )
    if len(parts) == 1:
        weights = (1.0, 0.0) if text else (0.0, 1.0)
    else:
        if text_weight == 0 and image_weight == 0:
            text_weight = image_weight = 0.5
        total = text_weight + image_weight
        weights = (text_weight / total, image_weight / total)
    seq = max(p[0].shape[1] for p in parts)
    return Pairs(
        ids=np.concatenate([_pad(p[0], seq) for p in parts]),
        mask=np.concatenate([_pad(p[1], seq) for p in parts]),
        payload=np.concatenate([p[2] for p in parts]).astype(np.float16),
        retrieval=np.concatenate([retrieval] * len(parts)),
        direction=np.concatenate([np.full(n, p[3], dtype=np.int64) for p in parts]),
        weights=weights,
        candidates=n,
    )


def _pad(a: np.ndarray, seq: int) -> np.ndarray:
    if a.shape[1] == seq:
        return a
    out = np.zeros((a.shape[0], seq), dtype=a.dtype)
    out[:, : a.shape[1]] = a
    return out


def concat_pairs(parts: Sequence[Pairs]) -> dict[str, np.ndarray]:
    """Several requests' pairs as one execution's feeds (text padded to the longest)."""
    seq = max(p.ids.shape[1] for p in parts)
    return {
        "text_ids": np.concatenate([_pad(p.ids, seq) for p in parts]),
        "text_mask": np.concatenate([_pad(p.mask, seq) for p in parts]),
        "payload": np.concatenate([p.payload for p in parts]),
        "retrieval": np.concatenate([p.retrieval for p in parts]),
        "direction": np.concatenate([p.direction for p in parts]),
    }


def combine(pairs: Pairs, score: np.ndarray, match: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-candidate scores from the pair outputs (a composite query mixes its two parts)."""
    n = pairs.candidates
    if pairs.n == n:
        return score, match
    wt, wi = pairs.weights
    return wt * score[:n] + wi * score[n:], wt * match[:n] + wi * match[n:]
