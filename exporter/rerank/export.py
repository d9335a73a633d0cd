"""Reranker checkpoints and export: ONNX (a dynamic batch of pairs), parity, manifest.

Graph ``vitrine-rerank/<v>/model.onnx``:

* inputs ``text_ids``, ``text_mask`` (int64 ``[pairs, sequence]``, MiniLM wordpieces; the
  tokenizer ships beside the model), ``payload`` (float16 ``[pairs, width]``: the photo's payload
  from the paired image tower), ``retrieval`` (float32 ``[pairs]``), ``direction`` (int64
  ``[pairs]``: 0 = a text query scored against a product photo, 1 = a photo query scored against
  a product title);
* outputs ``score`` (float32 ``[pairs]``: the blend of match features and retrieval score,
  higher is better) and ``match`` (the same without the retrieval term).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import torch

from exporter.onnx_export import OPSET, _export, check_parity
from exporter.rerank.image_heads import ImageHeads, Layout
from exporter.rerank.labels import Vocab
from exporter.rerank.model import DIRECTIONS, FEATURES, RerankModel
from exporter.rerank.text_heads import TextHeads
from exporter.rerank.train import TEXT_MAX_LENGTH, RerankConfig, RerankResult
from vitrine.model_repo import TOKENIZER_FILE, Manifest, ModelRepository, ModelVersion
from vitrine.preprocess import TextTokenizer

log = logging.getLogger(__name__)
RERANK_NAME = "vitrine-rerank"
INPUTS = ("text_ids", "text_mask", "payload", "retrieval", "direction")
OUTPUTS = ("score", "match")


RERANK_PARITY_ATOL = 1e-3


def save_checkpoint(path: Path, result: RerankResult, training: dict) -> Path:
    m = result.model
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "config": result.config.to_dict(),
            "vocab": result.vocab.to_dict(),
            "image_heads": {
                "args": result.image_heads.args,
                "state": result.image_heads.state_dict(),
            },
            "text_heads": {
                "args": m.text.args,
                "shape": m.text.shape,
                "state": m.text.state_dict(),
            },
            "model": {
                "memory": [*m.memory_lexical.shape, m.memory_visual.shape[1]],
                "knn": m.knn,
                "knn_temperature": m.knn_temperature,
                "state": m.state_dict(),
            },
            "metrics": result.metrics,
            "training": training,
        },
        path,
    )
    return path


def load_checkpoint(path: Path) -> tuple[RerankResult, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    heads = ImageHeads(**ck["image_heads"]["args"])
    heads.load_state_dict(ck["image_heads"]["state"])
    t = ck["text_heads"]
    text = TextHeads(None, shape=t["shape"], **t["args"])
    text.load_state_dict(t["state"])
    n, lex_dim, vis_dim = ck["model"]["memory"]
    model = RerankModel(
        text,
        heads.layout,
        torch.zeros(n, lex_dim),
        torch.zeros(n, vis_dim),
        ck["model"]["knn"],
        ck["model"]["knn_temperature"],
    )
    model.load_state_dict(ck["model"]["state"])
    vocab = Vocab(ck["vocab"]["classes"])
    result = RerankResult(
        model.eval(), heads.eval(), vocab, ck["metrics"], RerankConfig(**ck["config"])
    )
    return result, ck["training"]


def sample_pairs(
    model: RerankModel, tokenizer: TextTokenizer, texts: list[str], payloads: np.ndarray
) -> dict[str, np.ndarray]:
    """Parity inputs: every text against every payload, both directions, varied scores."""
    n_t, n_p = len(texts), len(payloads)
    ti = np.repeat(np.arange(n_t), n_p)
    pi = np.tile(np.arange(n_p), n_t)
    batch = tokenizer.encode([texts[i] for i in ti])
    rng = np.random.default_rng(0)
    return {
        "text_ids": batch.input_ids,
        "text_mask": batch.attention_mask,
        "payload": payloads[pi].astype(np.float16),
        "retrieval": rng.uniform(-0.2, 0.9, len(ti)).astype(np.float32),
        "direction": (np.arange(len(ti)) % 2).astype(np.int64),
    }


def export_reranker(
    repo: ModelRepository,
    result: RerankResult,
    tokenizer_json: Path,
    text_model: ModelVersion,
    image_model: ModelVersion,
    sample_texts: list[str],
    sample_payloads: np.ndarray,
    training: dict,
    name: str = RERANK_NAME,
) -> ModelVersion:
    """Publish the reranker as ``name`` with the version number of the towers it pairs with."""
    layout = image_model.manifest.outputs.get("payload", {}).get("layout")
    if layout is None:
        raise ValueError(f"{image_model.manifest.name} has no payload output to pair with")
    if Layout.from_dict(layout) != result.model.layout:
        raise ValueError("the image tower's payload layout is not the reranker's")
    version = image_model.manifest.version
    _, dest = repo.new_version_dir(name, version)
    shutil.copyfile(tokenizer_json, dest / TOKENIZER_FILE)
    tok = TextTokenizer(dest / TOKENIZER_FILE, TEXT_MAX_LENGTH)
    feeds = sample_pairs(result.model, tok, sample_texts, sample_payloads)
    path = dest / "model.onnx"
    _export(
        result.model,
        tuple(torch.from_numpy(feeds[k]) for k in INPUTS),
        path,
        list(INPUTS),
        {
            "text_ids": {0: "pairs", 1: "sequence"},
            "text_mask": {0: "pairs", 1: "sequence"},
            "payload": {0: "pairs"},
            "retrieval": {0: "pairs"},
            "direction": {0: "pairs"},
            "score": {0: "pairs"},
            "match": {0: "pairs"},
        },
        OUTPUTS,
    )
    # Scores are weighted sums of ~10 features (weights up to ~15, log-probabilities down to
    # ~-10): float32 summation order alone moves them by ~1e-5..1e-4, hence a wider bound.
    diffs = check_parity(result.model, path, feeds, OUTPUTS, atol=RERANK_PARITY_ATOL)
    log.info("exported %s/%d (parity %s)", name, version, diffs)
    width = result.model.layout.width
    manifest = Manifest(
        name=name,
        version=version,
        modality="rerank",
        embedding_dim=0,
        inputs={
            "text_ids": {"dtype": "int64", "shape": ["pairs", "sequence"]},
            "text_mask": {"dtype": "int64", "shape": ["pairs", "sequence"]},
            "payload": {"dtype": "float16", "shape": ["pairs", width]},
            "retrieval": {"dtype": "float32", "shape": ["pairs"]},
            "direction": {"dtype": "int64", "shape": ["pairs"]},
        },
        output="score",
        outputs={"match": {"dtype": "float32", "shape": ["pairs"]}},
        normalized=False,
        max_batch_size=256,
        opset=OPSET,
        tokenizer={
            "file": TOKENIZER_FILE,
            "max_length": TEXT_MAX_LENGTH,
            "truncation": "right",
            "padding": "dynamic (longest in batch)",
            "lowercase": True,
        },
        rerank={
            "text_model": f"{text_model.manifest.name}/{text_model.manifest.version}",
            "image_model": f"{image_model.manifest.name}/{image_model.manifest.version}",
            "payload": layout,
            "directions": list(DIRECTIONS),
            "features": list(FEATURES),
            "weights": result.metrics.get("weights", {}),
            "candidates": result.config.candidates,
            "attributes": result.vocab.to_dict(),
        },
        training=training,
        metrics={
            **{k: v for k, v in result.metrics.items() if k != "weights"},
            "export_parity_max_abs_diff": max(diffs.values()),
        },
    )
    return repo.publish(manifest)
