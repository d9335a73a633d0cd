"""Composed queries ("this photo, but in red"): photo only vs weighted sum vs text-only phrase vs
the trained composer.

    python benchmarks/compose_eval.py --catalog ../shared/data/fashion-products --models models

Queries are built from a held-out pool exactly as the composer's training triplets are from the
training split (:mod:`exporter.compose.triplets`): every pool product with a type and gender is
a reference, once per other value of its colour, gender, usage or season that a product of the
pool carries (same articleType, and same gender unless the gender is what changes); the modifier
is one phrasing drawn with a seeded generator ("in navy blue", "for women", "for formal wear",
"for summer"). The gallery is the pool's photo embeddings (exported image tower); the reference
itself is left out of the results. Systems:

* **photo only**: the reference photo's embedding;
* **weighted sum 0.5/0.5**: the renormalised sum of the photo and modifier embeddings (what the
  gateway does for a composite query today);
* **text-only phrase**: the target written out from the catalog attributes ("Women Red Sweaters",
  "Formal Men Black Shirts", "Summer Men Black Shirts") through the text tower — it is told the
  reference's type, gender and colour, which the photo-based systems must see for themselves;
* **composer**: the ``vitrine-compose`` ONNX model on (photo embedding, modifier embedding).

success@10 = top-10 hits of the right articleType, gender (the new one when gender changes) and
the requested value, over min(10, such products in the pool); queries with none are not built.
"Style kept" = mean cosine of the top-10 photos to the reference photo. Reported on the
validation pool (where the composer's epoch was chosen) and the test pool. Prints the tables
and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from exporter.compose.embeddings import image_embeddings  # noqa: E402
from exporter.compose.export import COMPOSE_NAME  # noqa: E402
from exporter.compose.metrics import composed_metrics, metrics_of_scores  # noqa: E402
from exporter.compose.phrases import CHANGES  # noqa: E402
from exporter.compose.train import weighted_sum  # noqa: E402
from exporter.compose.triplets import build_triplets, query_phrases  # noqa: E402
from exporter.evaluate import OnnxTower, pool_rows  # noqa: E402
from exporter.onnx_export import onnx_run  # noqa: E402
from vitrine.catalog import load_catalog  # noqa: E402
from vitrine.model_repo import ModelRepository  # noqa: E402
from vitrine.preprocess import load_image_file  # noqa: E402

SYSTEMS = ("photo only", "weighted sum 0.5/0.5", "text-only phrase", "composer")
GOAL_COLOUR = 0.80


def _load(repo: ModelRepository, ref: str):
    name, _, version = ref.partition("/")
    return repo.load(name, int(version))


def embed_unique(tower: OnnxTower, texts: list[str]) -> np.ndarray:
    unique = sorted(set(texts))
    vecs = tower.embed_texts(unique)
    pos = {t: i for i, t in enumerate(unique)}
    return vecs[[pos[t] for t in texts]]


def rerank_rows(
    reranker, composed, gallery, photo_payloads, titles, triplets, phrases, n, text_only
) -> np.ndarray:
    """The served pipeline after the composer: each query's top ``n`` reordered by the rerank
    model, as the gateway's rerank stage does for a photo + text query (the modifier text against
    the candidates' payloads and the reference photo's payload against their titles, blended
    0.5/0.5; ``text_only``: the modifier text alone). Returns query vectors' stand-in: a score
    matrix (queries × gallery) whose ranking is the reranked one."""
    from exporter.evaluate_rerank import reranked_scores

    scores = composed @ gallery.T
    scores[np.arange(len(scores)), triplets.ref] = -np.inf
    return reranked_scores(
        reranker,
        np.nan_to_num(scores, neginf=-1e9),
        n,
        texts=phrases,
        query_payloads=None if text_only else [photo_payloads[r] for r in triplets.ref],
        candidate_payloads=photo_payloads,
        candidate_titles=titles,
    )


def evaluate_pool(
    catalog, rows, image, text_tower, composer, seed: int, reranker=None, rerank_n=0, cap=0
) -> dict:
    triplets = build_triplets(catalog.products, rows)
    gallery = image[triplets.rows]
    photo = gallery[triplets.ref]
    phrasings = query_phrases(triplets, seed)
    modifier = embed_unique(text_tower, phrasings)
    composed = np.concatenate(
        [
            onnx_run(
                composer.onnx_path,
                {"image_embedding": photo[s : s + 1024], "text_embedding": modifier[s : s + 1024]},
                ("embedding",),
            )[0]
            for s in range(0, len(photo), 1024)
        ]
    )
    queries = {
        "photo only": photo,
        "weighted sum 0.5/0.5": weighted_sum(photo, modifier, 0.5),
        "text-only phrase": embed_unique(text_tower, triplets.written),
        "composer": composed,
    }
    systems = {s: composed_metrics(q, gallery, triplets) for s, q in queries.items()}
    if reranker is not None:
        pick = np.random.default_rng(seed).permutation(len(triplets))[: cap or len(triplets)]
        sub = triplets.subset(np.sort(pick))
        pixels = np.stack([load_image_file(catalog.products[r].image_path) for r in triplets.rows])
        payloads = reranker.image_tower.payloads(pixels)
        titles = [catalog.products[r].title for r in triplets.rows]
        phrases = [phrasings[i] for i in np.sort(pick)]
        for name, text_only in (
            ("composer + rerank", False),
            ("composer + rerank (text only)", True),
        ):
            scores = rerank_rows(
                reranker,
                composed[np.sort(pick)],
                gallery,
                payloads,
                titles,
                sub,
                phrases,
                rerank_n,
                text_only,
            )
            systems[name] = metrics_of_scores(scores, gallery, sub)
        systems["composer (same queries)"] = composed_metrics(composed[np.sort(pick)], gallery, sub)
    return {"pool": len(rows), "queries": triplets.counts(), "systems": systems}


def goals(result: dict) -> dict:
    s = result["systems"]
    comp, text = s["composer"], s["text-only phrase"]
    labels = [label for label in CHANGES.values() if label in comp]
    return {
        f"colour success@10 >= {GOAL_COLOUR}": comp["colour"]["success@10"] >= GOAL_COLOUR,
        "success@10 above the text-only phrase on every attribute": all(
            comp[a]["success@10"] > text[a]["success@10"] for a in labels
        ),
        "style kept above the text-only phrase on every attribute": all(
            comp[a]["style_kept"] > text[a]["style_kept"] for a in labels
        ),
    }


def table(title: str, result: dict):
    from rich.table import Table

    t = Table(title=title)
    t.add_column("changed attribute")
    t.add_column("queries", justify="right")
    systems = result["systems"]
    names = [*SYSTEMS, *(s for s in systems if s not in SYSTEMS)]
    for s in names:
        t.add_column(s, justify="right")
    for label in [*CHANGES.values(), "mean"]:
        if label not in systems["composer"]:
            continue
        t.add_row(
            label,
            str(systems["composer"][label]["queries"]),
            *(
                f"{systems[s][label]['success@10']:.3f} / {systems[s][label]['style_kept']:.3f}"
                if label in systems[s]
                else ""
                for s in names
            ),
        )
    return t


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--catalog", type=Path, required=True)
    ap.add_argument("--models", type=Path, default=Path("models"))
    ap.add_argument("--version", type=int, default=None, help="vitrine-compose version (latest)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the modifier phrasings")
    ap.add_argument(
        "--rerank", type=int, default=50, help="also rerank the composer's top N (0: skip)"
    )
    ap.add_argument(
        "--rerank-queries", type=int, default=1500, help="queries per pool sampled for reranking"
    )
    args = ap.parse_args()

    catalog = load_catalog(args.catalog)
    repo = ModelRepository(args.models)
    composer = repo.load(COMPOSE_NAME, args.version)
    spec = composer.manifest.compose
    text_model, image_model = _load(repo, spec["text_model"]), _load(repo, spec["image_model"])
    text_tower = OnnxTower(text_model)
    image = image_embeddings(catalog, image_model)
    training = text_model.manifest.training
    reranker = None
    if args.rerank:
        from exporter.evaluate_rerank import OnnxReranker, find_reranker

        found = find_reranker(repo, image_model)
        if found is not None:
            reranker = OnnxReranker(found)
            reranker.image_tower = OnnxTower(image_model)
    results = {
        split: evaluate_pool(
            catalog,
            pool_rows(catalog, split, training),
            image,
            text_tower,
            composer,
            args.seed,
            reranker,
            args.rerank,
            args.rerank_queries,
        )
        for split in ("val", "test")
    }

    from rich.console import Console

    console = Console(width=170)
    ref = f"{composer.manifest.name}/{composer.manifest.version}"
    for split, name in (("val", "validation"), ("test", "test")):
        r = results[split]
        console.print(
            table(
                f"Composed queries, {name} pool ({r['pool']} products), {ref}: "
                "success@10 / style kept",
                r,
            )
        )
    checks = goals(results["test"])
    for goal, ok in checks.items():
        console.print(f"{'met' if ok else 'NOT met'}: {goal} (test pool)")
    print(
        json.dumps(
            {
                "config": {
                    "catalog": str(args.catalog),
                    "models": str(args.models),
                    "composer": ref,
                    "text_model": spec["text_model"],
                    "image_model": spec["image_model"],
                    "seed": args.seed,
                },
                "validation": results["val"],
                "test": results["test"],
                "goals_test": checks,
            }
        )
    )


if __name__ == "__main__":
    main()
