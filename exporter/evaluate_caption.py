"""``vitrine eval-captions``: the exported captioner against two baselines, on a catalog pool.

Everything runs through onnxruntime on the exported graphs and decodes with
:mod:`vitrine.captioning` (what the encoder service runs). On the pool (the test split recorded
in the manifests, or ``all``):

* **BLEU-4** (sacrebleu's corpus BLEU, its default 13a tokenisation, one reference: the catalog
  title) and **CIDEr-D** (the COCO caption evaluation code, ``pycocoevalcap``'s ``Cider``, which
  implements CIDEr-D; titles lower-cased and split on whitespace, IDF over the pool's references);
* **attribute accuracy of the heads** per attribute, and of the **attribute words in the generated
  titles**: for gender, baseColour and articleType, the share of titles that name the true value
  (whole words, case-insensitive), and **brand accuracy**: the title's first word equals the
  catalog title's;
* baselines in the same run: **nearest neighbour** (the title of the most similar *training*
  product by the image tower, cosine) and an **attribute template** ("Men Navy Blue Shirts" from
  the heads' predicted gender, baseColour, articleType).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from exporter.evaluate import OnnxTower, pool_rows
from exporter.rerank.labels import brand_of, mentions
from vitrine.captioning import (
    Attributes,
    BeamState,
    ConsistencyMask,
    DecodeOptions,
    decode,
    detokenize,
    read_attributes,
    reconcile,
    vocabulary,
)
from vitrine.catalog import Catalog
from vitrine.model_repo import ModelRepository, ModelVersion
from vitrine.preprocess import load_image_file, normalize_title
from vitrine.progress import progress_bar

CAPTION_MODEL = "vitrine-caption"
IMAGE_MODEL = "vitrine-image"
WORD_ATTRIBUTES = ("gender", "baseColour", "articleType")


class OnnxCaptioner:
    """In-process runner of an exported captioner (the encoder service batches across calls)."""

    def __init__(self, version: ModelVersion):
        import onnxruntime as ort

        self.version = version
        spec = version.manifest.caption
        self.layout = spec["attributes"]
        self.defaults = spec["decoding"]
        self.encoder = ort.InferenceSession(
            str(version.onnx_path), providers=["CPUExecutionProvider"]
        )
        self.decoder = ort.InferenceSession(
            str(version.decoder_path), providers=["CPUExecutionProvider"]
        )
        self.words = vocabulary(version.tokenizer_path)
        self.mask = ConsistencyMask(self.words, self.layout["classes"])

    def encode(self, pixels: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
        mem, att = [], []
        for s in range(0, len(pixels), batch):
            m, a = self.encoder.run(["memory", "attributes"], {"pixels": pixels[s : s + batch]})
            mem.append(m)
            att.append(a)
        return np.concatenate(mem), np.concatenate(att)

    def step(self, memory: np.ndarray, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        feeds = {"memory": memory, "tokens": tokens, "lengths": lengths}
        return self.decoder.run(["logprobs"], feeds)[0]

    def describe(
        self, memory: np.ndarray, probs: np.ndarray, options: DecodeOptions, batch: int = 64
    ) -> list[tuple[str, Attributes]]:
        out = []
        for s in range(0, len(memory), batch):
            attrs = [read_attributes(p, self.layout) for p in probs[s : s + batch]]
            states = [BeamState(i, options, self.mask.banned(a)) for i, a in enumerate(attrs)]
            best = decode(self.step, memory[s : s + batch], states)
            for h, a, row in zip(best, attrs, probs[s : s + batch], strict=True):
                title = detokenize(h.tokens, self.words)
                out.append((title, reconcile(title, a, row, self.layout)))
        return out


def cider_d(candidates: list[str], references: list[str]) -> float:
    from pycocoevalcap.cider.cider import Cider

    def norm(t: str) -> list[str]:
        return [" ".join(normalize_title(t).split()) or "empty"]

    refs = {i: norm(r) for i, r in enumerate(references)}
    cands = {i: norm(c) for i, c in enumerate(candidates)}
    return float(Cider().compute_score(refs, cands)[0])


def bleu4(candidates: list[str], references: list[str]) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(candidates, [references]).score) / 100.0


def title_scores(candidates: list[str], products) -> dict:
    refs = [p.title for p in products]
    words = {
        a: float(
            np.mean(
                [
                    mentions(c, a, p.attributes.get(a, ""))
                    for c, p in zip(candidates, products, strict=True)
                    if p.attributes.get(a)
                ]
            )
        )
        for a in WORD_ATTRIBUTES
    }
    brand = float(
        np.mean(
            [
                bool(c.split()) and normalize_title(c).split()[0] == brand_of(p)
                for c, p in zip(candidates, products, strict=True)
            ]
        )
    )
    return {
        "BLEU-4": round(bleu4(candidates, refs), 4),
        "CIDEr-D": round(cider_d(candidates, refs), 4),
        "attribute_words": {a: round(v, 4) for a, v in words.items()},
        "brand": round(brand, 4),
    }


def accuracy(attrs: list[Attributes], products) -> dict[str, float | None]:
    out = {}
    for name in attrs[0].values if attrs else ():
        known = [
            (a.values[name][0], p.attributes[name])
            for a, p in zip(attrs, products, strict=True)
            if p.attributes.get(name)
        ]
        out[name] = round(float(np.mean([g == t for g, t in known])), 4) if known else None
    return out


def template_title(a: Attributes) -> str:
    return " ".join(a.values[k][0] for k in WORD_ATTRIBUTES if k in a.values)


def evaluate_captions(
    models: str | Path,
    catalog: Catalog,
    split: str = "test",
    beam: int = 0,
    quiet: bool = False,
    examples: int = 5,
) -> dict:
    repo = ModelRepository(models)
    cap = repo.load(CAPTION_MODEL)
    training = cap.manifest.training
    rows = pool_rows(catalog, split, training)
    train_rows = pool_rows(catalog, "train", training) if split != "all" else []
    products = [catalog.products[r] for r in rows]
    captioner = OnnxCaptioner(cap)
    opts = DecodeOptions(
        beam=beam or captioner.defaults["beam"],
        max_tokens=captioner.defaults["max_tokens"],
        no_repeat_ngram=captioner.defaults["no_repeat_ngram"],
        length_penalty=captioner.defaults["length_penalty"],
    )
    with progress_bar(disable=quiet) as prog:

        def pixels_of(rs, label):
            px = np.zeros((len(rs), 224, 224, 3), dtype=np.uint8)
            task = prog.add_task(label, total=len(rs), info="")
            for i, r in enumerate(rs):
                px[i] = load_image_file(catalog.products[r].image_path)
                prog.advance(task)
            return px

        pixels = pixels_of(rows, "decode pool photos")
        memory, probs = captioner.encode(pixels)
        task = prog.add_task("caption the pool", total=1, info=f"beam {opts.beam}")
        described = captioner.describe(memory, probs, opts)
        prog.advance(task)
        titles = [t for t, _ in described]
        attrs = [a for _, a in described]
        report_rows = {"captioner": title_scores(titles, products)}
        report_rows["attribute_template"] = title_scores(
            [template_title(a) for a in attrs], products
        )
        if train_rows and IMAGE_MODEL in repo.model_names():
            tower = OnnxTower(repo.load(IMAGE_MODEL))
            gallery = tower.embed_pixels(pixels_of(train_rows, "decode training photos"))
            nn = np.argmax(tower.embed_pixels(pixels) @ gallery.T, axis=1)
            nn_titles = [catalog.products[train_rows[j]].title for j in nn]
            report_rows["nearest_neighbour"] = title_scores(nn_titles, products)
    raw = [read_attributes(row, captioner.layout) for row in probs]
    heads, described = accuracy(raw, products), accuracy(attrs, products)
    c, nnb = report_rows["captioner"], report_rows.get("nearest_neighbour")
    return {
        "model": f"{cap.manifest.name}/{cap.manifest.version}",
        "split": split,
        "pool_size": len(products),
        "catalog": str(catalog.root),
        "decoding": opts.__dict__,
        "titles": report_rows,
        "head_accuracy": heads,  # the attribute heads alone
        "described_accuracy": described,  # after reconciling the type with the title
        "goals": {
            "CIDEr-D>nearest_neighbour": bool(nnb) and c["CIDEr-D"] > nnb["CIDEr-D"],
            "articleType>=0.90": (heads.get("articleType") or 0) >= 0.90,
            "gender>=0.92": (heads.get("gender") or 0) >= 0.92,
            "baseColour>=0.75": (heads.get("baseColour") or 0) >= 0.75,
        },
        "examples": [
            {"truth": p.title, "generated": t, "nearest_neighbour": n}
            for p, t, n in zip(
                products[:examples],
                titles[:examples],
                (nn_titles if nnb else [""] * examples)[:examples],
                strict=False,
            )
        ],
    }
