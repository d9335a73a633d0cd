"""What shoppers type, per query class: vector vs lexical (BM25) vs hybrid retrieval.

    python benchmarks/hybrid_eval.py --catalog ../shared/data/fashion-products --models models

The measurement behind issue #12's hybrid retrieval, run in-process with the service's own code:
the index service's lexical index (:class:`index_service.lexical.LexicalIndex`, tantivy, one per
shard, hits merged by score as the service merges them) over the gateway's lexical text of each
product (:func:`gateway.retrieval.lexical_text`), and the gateway's fusion
(:func:`gateway.retrieval.blend`) of two lists of ``--depth`` hits. The gallery is the
1,000-product test pool (the towers never saw it):

* **vector**: the exported image tower's photo embeddings, queried with the text tower;
* **lexical**: BM25 over words (boosted) and character trigrams (typos, fragments);
* **hybrid**: reciprocal-rank fusion (k = 60) of the two lists, the lexical list weighted 1, 2, 4
  or 8 against the vector one; the gateway's score blend,
  ``a · cosine + (1 − a) · BM25 / max BM25`` with a fixed a ∈ {0.1, 0.2, 0.3, 0.5}; and the same
  blend with a query-adaptive a (:func:`gateway.retrieval.adaptive_weight`: from ``low`` when the
  best lexical hits contain every word of the query up to ``high`` when they contain none). Each
  hybrid's weights are chosen on the validation pool — the largest worst-class margin over the
  better single system, then the best mean nDCG@10 — and reported on the test pool.

Queries are generated from the pool with relevance judged by attributes and ids: brand only
("Puma"), brand + type ("Puma Sports Shoes"), model numbers (a title token with letters and
digits, "MW631") and their fragments (the token less its last two characters), attribute phrases ("Men Navy Blue Shirts"), full titles, titles with one
typo (a character dropped or two swapped in one word), and paraphrases — an attribute phrase in
everyday words ("dark blue running trainers for gents" for Men / Navy Blue / Sports Shoes). P@10 = relevant hits in the top 10 over
min(10, relevant products); nDCG@10 with binary gains. Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exporter.evaluate import OnnxTower, pool_rows  # noqa: E402
from exporter.rerank.labels import brand_of  # noqa: E402
from gateway.config import GatewayConfig  # noqa: E402
from gateway.retrieval import adaptive_weight, blend, lexical_text  # noqa: E402
from index_service.client import SearchHit  # noqa: E402
from index_service.collection import shard_of  # noqa: E402
from index_service.core import merge_topk  # noqa: E402
from index_service.lexical import LexicalIndex  # noqa: E402
from vitrine.catalog import load_catalog  # noqa: E402
from vitrine.model_repo import ModelRepository  # noqa: E402
from vitrine.preprocess import load_image_file, normalize_title  # noqa: E402

K = 10
RRF_K = 60
ATTRS = ("gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "usage")


def typo(text: str, rng: np.random.Generator) -> str:
    ws = text.split()
    long = [i for i, w in enumerate(ws) if len(w) >= 5 and w.isalpha()]
    if not long:
        return text
    i = int(rng.choice(long))
    w = ws[i]
    j = int(rng.integers(1, len(w) - 1))
    ws[i] = w[:j] + w[j + 1 :] if rng.random() < 0.5 else w[: j - 1] + w[j] + w[j - 1] + w[j + 1 :]
    return " ".join(ws)


# Everyday words for catalog vocabulary (paraphrase queries: the words differ from the catalog's).
GENDER_WORDS = {"Men": "gents", "Women": "ladies", "Boys": "boy's", "Girls": "girl's"}
TYPE_WORDS = {
    "Tshirts": "tee",
    "Shirts": "button-down",
    "Sports Shoes": "running trainers",
    "Casual Shoes": "sneakers",
    "Formal Shoes": "office shoes",
    "Handbags": "purse",
    "Watches": "wristwatch",
    "Jeans": "denims",
    "Track Pants": "joggers",
    "Sunglasses": "shades",
    "Flip Flops": "slippers",
    "Sandals": "open footwear",
    "Heels": "high heeled footwear",
    "Kurtas": "ethnic tunic",
    "Tops": "blouse",
    "Backpacks": "rucksack",
    "Wallets": "billfold",
    "Belts": "waist belt",
    "Socks": "hosiery",
    "Briefs": "underpants",
    "Sweatshirts": "hoodie",
    "Caps": "baseball hat",
    "Dresses": "frock",
    "Shorts": "half pants",
}
COLOUR_WORDS = {"Navy Blue": "dark blue", "Grey": "gray", "Maroon": "burgundy", "Beige": "cream"}


def query_set(products, rng) -> dict[str, list[tuple[str, set[int]]]]:
    by: dict[str, dict[tuple, set[int]]] = defaultdict(lambda: defaultdict(set))
    for i, p in enumerate(products):
        a = p.attributes
        brand = brand_of(p)
        by["brand"][(brand,)].add(i)
        by["brand + type"][(brand, a.get("articleType", ""))].add(i)
        by["attribute phrase"][(a.get("gender"), a.get("baseColour"), a.get("articleType"))].add(i)
        by["title"][(normalize_title(p.title),)].add(i)
        for tok in p.title.split():
            if re.search(r"\d", tok) and re.search(r"[A-Za-z]", tok) and len(tok) >= 3:
                by["model number"][(tok.lower(),)].add(i)
    first_title = {normalize_title(p.title): p.title for p in products}
    out: dict[str, list] = {}
    out["brand"] = [
        (products[next(iter(rel))].title.split()[0], rel)
        for (b,), rel in by["brand"].items()
        if b and len(rel) >= 3
    ]
    out["brand + type"] = [
        (f"{products[next(iter(rel))].title.split()[0]} {t}", rel)
        for (b, t), rel in by["brand + type"].items()
        if b and t and len(rel) >= 2
    ]
    out["model number"] = [
        (tok, rel) for (tok,), rel in by["model number"].items() if len(rel) <= 3
    ]
    out["model-number fragment"] = [
        (tok[:-2], rel) for tok, rel in out["model number"] if len(tok) >= 6
    ]
    out["attribute phrase"] = [
        (" ".join(k), rel) for k, rel in by["attribute phrase"].items() if all(k) and len(rel) >= 3
    ]
    titles = list(by["title"].items())
    pick = rng.permutation(len(titles))[:300]
    out["title"] = [(first_title[titles[i][0][0]], titles[i][1]) for i in pick]
    out["title with a typo"] = [(typo(q, rng), rel) for q, rel in out["title"]]
    out["paraphrase"] = []
    for (g, c, t), rel in by["attribute phrase"].items():
        if g in GENDER_WORDS and t in TYPE_WORDS and len(rel) >= 3:
            colour = COLOUR_WORDS.get(c, c.lower() if c else "")
            out["paraphrase"].append((f"{colour} {TYPE_WORDS[t]} for {GENDER_WORDS[g]}", rel))
    return out


def metrics(ranked: np.ndarray, rel: set[int]) -> tuple[float, float]:
    top = ranked[:K]
    gains = np.array([1.0 if int(i) in rel else 0.0 for i in top])
    p = gains.sum() / min(K, len(rel))
    dcg = float((gains / np.log2(np.arange(2, len(top) + 2))).sum())
    ideal = float((1 / np.log2(np.arange(2, min(K, len(rel)) + 2))).sum())
    return float(p), dcg / ideal


def rrf(vector: np.ndarray, lexical: np.ndarray, lexical_weight: float, depth: int = 100):
    """Reciprocal-rank fusion, the lexical list weighted ``lexical_weight`` against 1."""
    score: dict[int, float] = defaultdict(float)
    for r, w in ((vector, 1.0), (lexical, lexical_weight)):
        for pos, i in enumerate(r[:depth]):
            score[int(i)] += w / (RRF_K + pos + 1)
    return np.array(sorted(score, key=lambda i: -score[i]))


WEIGHTS = (1.0, 2.0, 4.0, 8.0)
ALPHAS = (0.1, 0.2, 0.3, 0.5)  # score blend: the vector cosine's share
RANGES = [(lo, hi) for lo in (0.01, 0.02, 0.05, 0.1) for hi in (0.5, 0.7, 0.9)]  # adaptive


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--catalog", type=Path, required=True)
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--shards", type=int, default=4, help="lexical shards (as the index service)")
    ap.add_argument(
        "--depth",
        type=int,
        default=GatewayConfig().hybrid_depth,
        help="hits per list (default: the gateway's hybrid_depth)",
    )
    args = ap.parse_args()

    catalog = load_catalog(args.catalog)
    repo = ModelRepository(args.models)
    text_tower = OnnxTower(repo.load("vitrine-text"))
    image_tower = OnnxTower(repo.load("vitrine-image"))
    training = text_tower.version.manifest.training

    def evaluate_pool(split: str) -> tuple[int, dict]:
        products = [catalog.products[r] for r in pool_rows(catalog, split, training)]
        pixels = np.stack([load_image_file(p.image_path) for p in products])
        gallery = image_tower.embed_pixels(pixels)
        # The service's lexical index: one tantivy index per shard, the gateway's lexical text.
        shards = [LexicalIndex() for _ in range(args.shards)]
        for i, p in enumerate(products):
            text = lexical_text(p.title, p.attributes)
            shards[shard_of(str(i), args.shards)].apply([("put", str(i), text)])
        attrs = [{**p.attributes, "title": p.title} for p in products]
        queries = query_set(products, np.random.default_rng(0))
        hybrids = [f"hybrid RRF, lexical x{w:g}" for w in WEIGHTS]
        blends = [f"hybrid blend, vector {a:g}" for a in ALPHAS]
        adaptive = [f"hybrid adaptive blend, vector {lo:g}..{hi:g}" for lo, hi in RANGES]
        systems = ["vector", "lexical", *hybrids, *blends, *adaptive]
        results: dict[str, dict] = {}
        for cls, qs in queries.items():
            vec = text_tower.embed_texts([q for q, _ in qs]) @ gallery.T
            per: dict[str, list] = {s: [] for s in systems}
            for qi, (q, rel) in enumerate(qs):
                order = np.argsort(-vec[qi], kind="stable")
                ranked = {"vector": order}
                # What the index service answers: each shard's top hits, merged by score.
                merged = merge_topk([s.search(q, args.depth) for s in shards], args.depth, True)
                ranked["lexical"] = np.array([int(rid) for _, rid in merged], dtype=int)
                for w, h in zip(WEIGHTS, hybrids, strict=True):
                    ranked[h] = rrf(ranked["vector"], ranked["lexical"], w)
                vector_hits = [SearchHit(str(i), float(vec[qi, i])) for i in order[: args.depth]]
                lexical_hits = [SearchHit(rid, score, attrs[int(rid)]) for score, rid in merged]
                for a, h in zip(ALPHAS, blends, strict=True):
                    fused = blend(vector_hits, lexical_hits, a, args.depth, args.depth)
                    ranked[h] = np.array([int(x.id) for x in fused.hits], dtype=int)
                for (lo, hi), h in zip(RANGES, adaptive, strict=True):
                    a = adaptive_weight(q, lexical_hits, lo, hi)
                    fused = blend(vector_hits, lexical_hits, a, args.depth, args.depth)
                    ranked[h] = np.array([int(x.id) for x in fused.hits], dtype=int)
                for s in systems:
                    per[s].append(metrics(ranked[s], rel))
            results[cls] = {
                s: {
                    "P@10": round(float(np.mean([m[0] for m in per[s]])), 3),
                    "nDCG@10": round(float(np.mean([m[1] for m in per[s]])), 3),
                }
                for s in systems
            }
            results[cls]["queries"] = len(qs)
        return len(products), results

    _, val = evaluate_pool("val")

    def chosen(names: list[str]) -> str:
        """The weight whose worst class margin over the better single system is largest (the
        goal: no class worse than vector or lexical alone), then the best mean nDCG@10."""

        def key(h: str) -> tuple[float, float]:
            margins = [
                r[h]["nDCG@10"] - max(r["vector"]["nDCG@10"], r["lexical"]["nDCG@10"])
                for r in val.values()
            ]
            return round(min(margins), 3), float(np.mean([r[h]["nDCG@10"] for r in val.values()]))

        return max(names, key=key)

    tuned = chosen([f"hybrid RRF, lexical x{w:g}" for w in WEIGHTS])
    chosen_blend = chosen([f"hybrid blend, vector {a:g}" for a in ALPHAS])
    chosen_adaptive = chosen([f"hybrid adaptive blend, vector {lo:g}..{hi:g}" for lo, hi in RANGES])
    pool, results = evaluate_pool("test")
    systems = ["vector", "lexical", tuned, chosen_blend, chosen_adaptive]

    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"Typed queries over the test pool ({pool} products): P@10 / nDCG@10 "
        f"(hybrids' weights chosen on the validation pool)"
    )
    t.add_column("query class")
    t.add_column("queries", justify="right")
    for s in systems:
        t.add_column(s, justify="right")
    for cls, r in results.items():
        t.add_row(
            cls,
            str(r["queries"]),
            *(f"{r[s]['P@10']:.3f} / {r[s]['nDCG@10']:.3f}" for s in systems),
        )
    Console(width=170).print(t)
    print(
        json.dumps(
            {
                "config": {
                    "catalog": str(args.catalog),
                    "models": str(args.models),
                    "shards": args.shards,
                    "depth": args.depth,
                },
                "pool": pool,
                "hybrids_chosen_on_validation": [tuned, chosen_blend, chosen_adaptive],
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
