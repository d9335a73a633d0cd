"""Retrieval + rerank on an evaluation pool, through the exported ONNX models.

For every query the towers' top ``n`` candidates are rescored by the rerank model exactly as the
encoder service does it (pairs built by :mod:`vitrine.rerank_pairs`, the image tower's ``payload``
output as the photo side); candidates outside the shortlist keep their retrieval order below it.
"""

from __future__ import annotations

import numpy as np

from vitrine.model_repo import ModelRepository, ModelVersion, RerankSpec
from vitrine.preprocess import TextTokenizer
from vitrine.rerank_pairs import Candidate, Pairs, build_pairs, combine, concat_pairs

SHORTLIST_OFFSET = 1e4  # reranked scores are lifted above every retrieval score (cosine <= 1)


class OnnxReranker:
    """In-process runner of an exported rerank model."""

    def __init__(self, version: ModelVersion):
        import onnxruntime as ort

        self.version = version
        self.spec = RerankSpec.from_dict(version.manifest.rerank)
        self.width = int(self.spec.payload["width"])
        self.session = ort.InferenceSession(
            str(version.onnx_path), providers=["CPUExecutionProvider"]
        )
        self.tokenizer = TextTokenizer(
            version.tokenizer_path, version.manifest.tokenizer["max_length"]
        )

    def score(self, requests: list[Pairs]) -> list[np.ndarray]:
        """Final scores per request (one execution for all of them, as the service batches)."""
        feeds = concat_pairs(requests)
        score, match = self.session.run(["score", "match"], feeds)
        out, start = [], 0
        for p in requests:
            out.append(combine(p, score[start : start + p.n], match[start : start + p.n])[0])
            start += p.n
        return out

    def pairs(self, text: str, payload: bytes, candidates: list[Candidate]) -> Pairs:
        return build_pairs(
            self.tokenizer, self.width, text, payload, candidates, 0.0, 0.0, 10**6, 10**6
        )


def find_reranker(repo: ModelRepository, image: ModelVersion) -> ModelVersion | None:
    """The newest rerank model in ``repo`` that reads this image tower's payload."""
    ref = f"{image.manifest.name}/{image.manifest.version}"
    found = []
    for name in repo.model_names():
        for v in repo.versions(name):
            mv = repo.load(name, v)
            if mv.manifest.modality == "rerank" and mv.manifest.rerank["image_model"] == ref:
                found.append(mv)
    return max(found, key=lambda m: m.manifest.version) if found else None


def reranked_scores(
    reranker: OnnxReranker,
    scores: np.ndarray,
    n: int,
    texts: list[str] | None = None,
    query_payloads: list[bytes] | None = None,
    candidate_payloads: list[bytes] | None = None,
    candidate_titles: list[str] | None = None,
    chunk: int = 16,
) -> np.ndarray:
    """``scores`` (queries × gallery) with each row's top ``n`` replaced by reranked scores.

    Text queries (``texts``) score the gallery's payloads; photo queries (``query_payloads``)
    score the gallery's titles.
    """
    out = scores.astype(np.float64).copy()
    tops = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    for s in range(0, len(scores), chunk):
        requests = []
        for q in range(s, min(s + chunk, len(scores))):
            cands = [
                Candidate(
                    candidate_payloads[c] if candidate_payloads else b"",
                    candidate_titles[c] if candidate_titles else "",
                    float(scores[q, c]),
                )
                for c in tops[q]
            ]
            text = texts[q] if texts else ""
            payload = query_payloads[q] if query_payloads else b""
            requests.append(reranker.pairs(text, payload, cands))
        for q, new in zip(range(s, s + len(requests)), reranker.score(requests), strict=True):
            out[q, tops[q]] = SHORTLIST_OFFSET + new
    return out
