"""What shoppers type, per query class: vector vs lexical (BM25) vs hybrid retrieval.

    python benchmarks/hybrid_eval.py --catalog ../shared/data/fashion-products --models models

The measurement behind issue #12's hybrid retrieval, run in-process before the lexical index
exists in the index service. The gallery is the 1,000-product test pool (the towers never saw
it), indexed three ways:

* **vector**: the exported image tower's photo embeddings, queried with the text tower (what the
  service does today);
* **lexical**: BM25 (``bm25s``) over each product's title and attribute values, words only, and
  words + character trigrams (a classic way to survive typos and model-number fragments);
* **hybrid**: reciprocal-rank fusion (k = 60) of the vector and the words+trigrams lists, the
  lexical list weighted 1, 2, 4 or 8 against the vector one; and a score blend,
  ``a · cosine + (1 − a) · BM25 / max BM25`` with a ∈ {0.1, 0.2, 0.3, 0.5}. Each hybrid's weight
  is chosen on the validation pool (mean nDCG@10 over the classes) and reported on the test pool.

Queries are generated from the pool with relevance judged by attributes and ids: brand only
("Puma"), brand + type ("Puma Sports Shoes"), model-number fragments (a title token with letters
and digits, "MW631"), attribute phrases ("Men Navy Blue Shirts"), full titles, titles with one
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
from vitrine.catalog import load_catalog  # noqa: E402
from vitrine.model_repo import ModelRepository  # noqa: E402
from vitrine.preprocess import load_image_file, normalize_title  # noqa: E402

K = 10
RRF_K = 60
ATTRS = ("gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "usage")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def trigrams(text: str) -> list[str]:
    out = []
    for w in words(text):
        padded = f"#{w}#"
        out += [padded[i : i + 3] for i in range(len(padded) - 2)]
    return out


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


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--catalog", type=Path, required=True)
    ap.add_argument("--models", type=Path, default=Path("models"))
    args = ap.parse_args()

    import bm25s

    catalog = load_catalog(args.catalog)
    repo = ModelRepository(args.models)
    text_tower = OnnxTower(repo.load("vitrine-text"))
    image_tower = OnnxTower(repo.load("vitrine-image"))
    training = text_tower.version.manifest.training

    def evaluate_pool(split: str) -> tuple[int, dict]:
        products = [catalog.products[r] for r in pool_rows(catalog, split, training)]
        pixels = np.stack([load_image_file(p.image_path) for p in products])
        gallery = image_tower.embed_pixels(pixels)
        docs = [" ".join([p.title, *(p.attributes.get(a, "") for a in ATTRS)]) for p in products]
        lexical = {}
        for name, grams in (("lexical (words)", False), ("lexical (words + trigrams)", True)):
            corpus = [words(d) + (trigrams(d) if grams else []) for d in docs]
            index = bm25s.BM25()
            index.index(corpus, show_progress=False)
            lexical[name] = (index, grams)
        queries = query_set(products, np.random.default_rng(0))
        hybrids = [f"hybrid RRF, lexical x{w:g}" for w in WEIGHTS]
        blends = [f"hybrid blend, vector {a:g}" for a in ALPHAS]
        systems = ["vector", *lexical, *hybrids, *blends]
        results: dict[str, dict] = {}
        for cls, qs in queries.items():
            vec = text_tower.embed_texts([q for q, _ in qs]) @ gallery.T
            per: dict[str, list] = {s: [] for s in systems}
            for qi, (q, rel) in enumerate(qs):
                ranked = {"vector": np.argsort(-vec[qi], kind="stable")}
                bm25 = np.zeros(len(products), dtype=np.float32)
                for name, (index, grams) in lexical.items():
                    toks = words(q) + (trigrams(q) if grams else [])
                    docs_i, scores = index.retrieve([toks], k=len(products), show_progress=False)
                    ranked[name] = docs_i[0][scores[0] > 0]
                    if grams:
                        bm25[docs_i[0]] = scores[0] / max(float(scores[0].max()), 1e-9)
                for w, h in zip(WEIGHTS, hybrids, strict=True):
                    ranked[h] = rrf(ranked["vector"], ranked["lexical (words + trigrams)"], w)
                for a, h in zip(ALPHAS, blends, strict=True):
                    ranked[h] = np.argsort(-(a * vec[qi] + (1 - a) * bm25), kind="stable")
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
        return max(names, key=lambda h: np.mean([r[h]["nDCG@10"] for r in val.values()]))

    tuned = chosen([f"hybrid RRF, lexical x{w:g}" for w in WEIGHTS])
    blend = chosen([f"hybrid blend, vector {a:g}" for a in ALPHAS])
    pool, results = evaluate_pool("test")
    systems = ["vector", "lexical (words)", "lexical (words + trigrams)", tuned, blend]

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
                "config": {"catalog": str(args.catalog), "models": str(args.models)},
                "pool": pool,
                "hybrids_chosen_on_validation": [tuned, blend],
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
