"""Evaluate exported tower pairs from a model repository, through onnxruntime, on a catalog pool.

The pool is the held-out test split recorded in the models' manifests (``--split test``) or the
whole catalog (``--split all``). Queries are product titles (text→image) and product photos
(image→text) under two relevance rules:

* ``strict``: only the paired product is relevant;
* ``title``: every product with the same normalised title is relevant.

Attribute precision@10: one query per (gender, baseColour, articleType) combination with at least
10 products in the pool (3 in pools under 500 products), phrased like "Men Navy Blue Shirts"; a hit
must match all three; precision is hits in the top 10 over ``min(10, matching products)``.

With ``rerank=N`` the main pair is also scored after its rerank model reorders each query's top N
(:mod:`exporter.evaluate_rerank`), on the same pool, side by side with retrieval alone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exporter.evaluate_rerank import OnnxReranker, find_reranker, reranked_scores
from exporter.metrics import precision_at_k, retrieval_metrics
from exporter.split import recorded_split
from exporter.texts import attribute_phrase
from vitrine.catalog import Catalog
from vitrine.model_repo import ModelRepository, ModelVersion
from vitrine.preprocess import TextTokenizer, load_image_file, normalize_title
from vitrine.progress import progress_bar

DEFAULT_PAIR = ("vitrine-text", "vitrine-image")
BASELINE_PAIR = ("probe-text", "probe-image")
GOAL_T2I_R10 = 0.90
GOAL_R1_MARGIN = 0.10


@dataclass
class OnnxTower:
    """Minimal in-process runner of an exported tower (the encoder service has the real one)."""

    version: ModelVersion

    def __post_init__(self):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(self.version.onnx_path), opts, providers=["CPUExecutionProvider"]
        )
        m = self.version.manifest
        self.tokenizer = (
            TextTokenizer(self.version.tokenizer_path, m.tokenizer["max_length"])
            if m.modality == "text"
            else None
        )

    def embed_texts(self, texts: list[str], batch: int = 256) -> np.ndarray:
        out = []
        for s in range(0, len(texts), batch):
            b = self.tokenizer.encode(texts[s : s + batch])
            out.append(
                self.session.run(
                    ["embedding"], {"input_ids": b.input_ids, "attention_mask": b.attention_mask}
                )[0]
            )
        return (
            np.concatenate(out)
            if out
            else np.zeros((0, self.version.manifest.embedding_dim), np.float32)
        )

    def embed_pixels(self, pixels: np.ndarray, batch: int = 32) -> np.ndarray:
        out = [
            self.session.run(["embedding"], {"pixels": pixels[s : s + batch]})[0]
            for s in range(0, len(pixels), batch)
        ]
        return np.concatenate(out)

    def payloads(self, pixels: np.ndarray, batch: int = 32) -> list[bytes]:
        """The ``payload`` output (raw float16 bytes per photo) of an image tower that has one."""
        out = []
        for s in range(0, len(pixels), batch):
            rows = self.session.run(["payload"], {"pixels": pixels[s : s + batch]})[0]
            out += [r.astype("<f2").tobytes() for r in rows]
        return out


def find_pairs(repo: ModelRepository) -> list[tuple[ModelVersion, ModelVersion]]:
    """(text, image) latest versions for every text model whose manifest names an image pair."""
    pairs = []
    for name in repo.model_names():
        t = repo.load(name)
        if t.manifest.modality == "text" and t.manifest.pair in repo.model_names():
            pairs.append((t, repo.load(t.manifest.pair, t.manifest.version)))
    return pairs


def pool_rows(catalog: Catalog, split: str, training: dict) -> list[int]:
    if split == "all":
        return list(range(len(catalog.products)))
    return recorded_split(catalog.products, training.get("split", {})).part(split)


def attribute_queries(products) -> tuple[list[str], np.ndarray]:
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, p in enumerate(products):
        a = p.attributes
        key = (a.get("gender"), a.get("baseColour"), a.get("articleType"))
        if all(key):
            groups[key].append(i)
    min_matches = 10 if len(products) >= 500 else 3
    keys = sorted(k for k, rows in groups.items() if len(rows) >= min_matches)
    rel = np.zeros((len(keys), len(products)), dtype=bool)
    for q, k in enumerate(keys):
        rel[q, groups[k]] = True
    texts = [attribute_phrase(dict(gender=k[0], baseColour=k[1], articleType=k[2])) for k in keys]
    return texts, rel


def _round(d: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def _metrics(s_t2i, s_i2t, strict, title_rel) -> dict:
    return {
        "text_to_image": {
            "strict": _round(retrieval_metrics(s_t2i, strict)),
            "title": _round(retrieval_metrics(s_t2i, title_rel)),
        },
        "image_to_text": {
            "strict": _round(retrieval_metrics(s_i2t, strict)),
            "title": _round(retrieval_metrics(s_i2t, title_rel.T)),
        },
    }


def evaluate_pair(
    text: OnnxTower,
    image: OnnxTower,
    products,
    pixels: np.ndarray,
    reranker: OnnxReranker | None = None,
    rerank_n: int = 0,
) -> dict:
    titles = [p.title for p in products]
    t = text.embed_texts(titles)
    v = image.embed_pixels(pixels)
    s = t @ v.T
    strict = np.eye(len(products), dtype=bool)
    codes = np.asarray([hash(normalize_title(x)) for x in titles])
    title_rel = codes[:, None] == codes[None, :]
    out = _metrics(s, s.T, strict, title_rel)
    q_texts, q_rel = attribute_queries(products)
    qa = text.embed_texts(q_texts) if q_texts else None
    out["attribute_precision@10"] = (
        round(precision_at_k(qa @ v.T, q_rel, 10, capped=True), 4) if q_texts else None
    )
    out["attribute_queries"] = len(q_texts)
    if reranker is not None and rerank_n > 0:
        payloads = image.payloads(pixels)
        r_t2i = reranked_scores(reranker, s, rerank_n, texts=titles, candidate_payloads=payloads)
        r_i2t = reranked_scores(
            reranker, s.T, rerank_n, query_payloads=payloads, candidate_titles=titles
        )
        rr = _metrics(r_t2i, r_i2t, strict, title_rel)
        rr["attribute_precision@10"] = None
        if q_texts:
            r_attr = reranked_scores(
                reranker, qa @ v.T, rerank_n, texts=q_texts, candidate_payloads=payloads
            )
            rr["attribute_precision@10"] = round(precision_at_k(r_attr, q_rel, 10, capped=True), 4)
        out["reranked"] = {
            "rerank_model": f"{reranker.version.manifest.name}/{reranker.version.manifest.version}",
            "candidates": rerank_n,
            "payload_bytes": reranker.spec.payload_bytes,
            **rr,
        }
    return out


def evaluate(
    models: str | Path,
    catalog: Catalog,
    split: str = "test",
    quiet: bool = False,
    rerank: int = 0,
) -> dict:
    """Evaluate every tower pair; with ``rerank`` > 0 also the main pair with its reranker
    reordering the top ``rerank`` candidates of every query."""
    repo = ModelRepository(models)
    pairs = find_pairs(repo)
    if not pairs:
        raise FileNotFoundError(f"no text/image model pair in {models}")
    # The split recorded by our own training runs (a CLIP export has none: defaults apply).
    recorded = [t.manifest.training for t, _ in pairs if "split" in t.manifest.training]
    rows = pool_rows(catalog, split, recorded[0] if recorded else {})
    products = [catalog.products[r] for r in rows]
    pixels = np.zeros((len(products), 224, 224, 3), dtype=np.uint8)
    with progress_bar(disable=quiet) as prog:
        task = prog.add_task("decode pool images", total=len(products), info="")
        for i, p in enumerate(products):
            pixels[i] = load_image_file(p.image_path)
            prog.advance(task)
        results = {}
        e_task = prog.add_task("evaluate model pairs", total=len(pairs), info="")
        for t, v in pairs:
            key = t.manifest.name.removesuffix("-text")
            prog.update(e_task, info=key)
            rr = find_reranker(repo, v) if rerank and t.manifest.name == DEFAULT_PAIR[0] else None
            if rerank and t.manifest.name == DEFAULT_PAIR[0] and rr is None:
                raise FileNotFoundError(f"no rerank model in {models} reads {v.manifest.name}")
            results[key] = {
                "text_model": f"{t.manifest.name}/{t.manifest.version}",
                "image_model": f"{v.manifest.name}/{v.manifest.version}",
                **evaluate_pair(
                    OnnxTower(t),
                    OnnxTower(v),
                    products,
                    pixels,
                    OnnxReranker(rr) if rr else None,
                    rerank,
                ),
            }
            prog.advance(e_task)
    report = {
        "split": split,
        "pool_size": len(products),
        "catalog": str(catalog.root),
        "models": results,
    }
    main, base = DEFAULT_PAIR[0].removesuffix("-text"), BASELINE_PAIR[0].removesuffix("-text")
    if main in results and base in results:
        m = results[main]["text_to_image"]["strict"]
        b = results[base]["text_to_image"]["strict"]
        report["vs_baseline"] = {
            "baseline": base,
            "t2i_strict_R@1_delta": round(m["R@1"] - b["R@1"], 4),
            "t2i_strict_R@10_delta": round(m["R@10"] - b["R@10"], 4),
            "goal_t2i_strict_R@10>=0.90": m["R@10"] >= GOAL_T2I_R10,
            "goal_t2i_strict_R@1>=baseline+0.10": m["R@1"] >= b["R@1"] + GOAL_R1_MARGIN,
        }
    return report
