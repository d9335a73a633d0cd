"""Checkpoint and ONNX export of the captioner (two graphs, one repository version).

``model.onnx`` is the image encoder (uint8 pixels → ``memory`` [batch, M, d] and ``attributes``
[batch, Σ classes], softmax per attribute), with the frozen trunk and colour descriptors inside,
so the service only decodes and resizes the photo as for the image tower. ``decoder.onnx`` is one
decoding step (``memory`` rows, right-padded ``tokens``, ``lengths`` → ``logprobs`` of the next
word). Each step re-runs the prefix: titles are at most ``max_len`` (24) words and the decoder is
two narrow layers, so a key/value cache would save little and would double the graph's inputs;
benchmarks/caption_bench.py measures the step cost against the prefix length.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from exporter import backbones
from exporter.caption.model import CaptionEncoderGraph, CaptionModel, CaptionStepGraph
from exporter.caption.train import CaptionConfig, CaptionResult
from exporter.onnx_export import _export, check_parity, image_manifest_fields
from exporter.rerank.labels import Vocab
from vitrine.captioning import BOS, pad_prefixes
from vitrine.model_repo import MODEL_FILE, TOKENIZER_FILE, Manifest, ModelRepository, ModelVersion

log = logging.getLogger(__name__)

CAPTION_NAME = "vitrine-caption"
DECODER_FILE = "decoder.onnx"
DEFAULT_DECODING = {"beam": 1, "max_tokens": 20, "no_repeat_ngram": 2, "length_penalty": 0.6}


def save_checkpoint(path: Path, result: CaptionResult, training: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": {"args": result.model.args, "state": result.model.state_dict()},
            "tokenizer": result.tokenizer.to_str(),
            "classes": result.vocab.classes,
            "metrics": result.metrics,
            "config": result.config.to_dict(),
            "training": training,
        },
        path,
    )
    return path


def load_checkpoint(path: Path) -> tuple[CaptionResult, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=True)
    model = CaptionModel(**ck["model"]["args"])
    model.load_state_dict(ck["model"]["state"])
    result = CaptionResult(
        model.eval(),
        Tokenizer.from_str(ck["tokenizer"]),
        Vocab(ck["classes"]),
        ck["metrics"],
        CaptionConfig(**ck["config"]),
    )
    return result, ck["training"]


def attribute_layout(model: CaptionModel, vocab: Vocab, hierarchy: dict | None = None) -> dict:
    spans, start = {}, 0
    for a in model.attributes:
        n = len(vocab.classes[a])
        spans[a] = [start, start + n]
        start += n
    return {
        "spans": spans,
        "classes": {a: vocab.classes[a] for a in model.attributes},
        "hierarchy": hierarchy or {},
    }


def export_captioner(
    repo: ModelRepository,
    result: CaptionResult,
    sample_pixels: np.ndarray,
    training: dict,
    version: int | None = None,
    name: str = CAPTION_NAME,
    trunk: torch.nn.Module | None = None,
    hierarchy: dict | None = None,
) -> ModelVersion:
    """Publish the captioner as ``name`` (``version``: the towers' number, else the next).

    ``trunk``: what computes the map and mid-level descriptors from pixels (default: the frozen
    EfficientNet-Lite0 trunk the captioner was trained on; tests pass a tiny one).
    ``hierarchy``: articleType → its subCategory/masterCategory (decoding keeps them agreeing)."""
    model = result.model.eval()
    version, dest = repo.new_version_dir(name, version)
    trunk = trunk or backbones.ImageTrunk(backbones.load_efficientnet_lite0(), 0)
    encoder = CaptionEncoderGraph(model, trunk, backbones.ImageColour()).eval()
    path = dest / MODEL_FILE
    outs = ("memory", "attributes")
    _export(
        encoder,
        (torch.from_numpy(sample_pixels),),
        path,
        ["pixels"],
        {"pixels": {0: "batch"}, "memory": {0: "batch"}, "attributes": {0: "batch"}},
        outs,
    )
    diffs = check_parity(encoder, path, {"pixels": sample_pixels}, outs)
    with torch.no_grad():
        memory = encoder(torch.from_numpy(sample_pixels))[0].numpy()
    # Decoder step: ragged prefixes (lengths 1..4) so padding and the gather are exercised.
    prefixes = [[BOS, *range(5, 5 + i)] for i in range(len(memory))]
    tokens, lengths = pad_prefixes(prefixes)
    step = CaptionStepGraph(model).eval()
    dec_path = dest / DECODER_FILE
    feeds = {"memory": memory, "tokens": tokens, "lengths": lengths}
    _export(
        step,
        tuple(torch.from_numpy(v) for v in feeds.values()),
        dec_path,
        list(feeds),
        {
            "memory": {0: "rows"},
            "tokens": {0: "rows", 1: "prefix"},
            "lengths": {0: "rows"},
            "logprobs": {0: "rows"},
        },
        ("logprobs",),
    )
    diffs |= check_parity(step, dec_path, feeds, ("logprobs",))
    log.info("exported %s (parity %s)", name, diffs)
    (dest / TOKENIZER_FILE).write_text(result.tokenizer.to_str(), encoding="utf-8")
    fields = image_manifest_fields(0)
    fields["modality"] = "caption"
    m_tokens, d = int(memory.shape[1]), int(memory.shape[2])
    layout = attribute_layout(model, result.vocab, hierarchy)
    width = layout["spans"][model.attributes[-1]][1]
    manifest = Manifest(
        name=name,
        version=version,
        output="memory",
        outputs={
            "attributes": {"dtype": "float32", "shape": ["batch", width]},
            "logprobs": {
                "graph": DECODER_FILE,
                "dtype": "float32",
                "shape": ["rows", model.args["vocab_size"]],
                "inputs": {
                    "memory": {"dtype": "float32", "shape": ["rows", m_tokens, d]},
                    "tokens": {"dtype": "int64", "shape": ["rows", "prefix"]},
                    "lengths": {"dtype": "int64", "shape": ["rows"]},
                },
            },
        },
        normalized=False,
        max_batch_size=64,
        tokenizer={
            "file": TOKENIZER_FILE,
            "kind": "word-level (tokenizers WordLevel, whitespace split, case kept)",
            "max_length": model.args["max_len"],
        },
        caption={
            "decoder": DECODER_FILE,
            "memory": {"tokens": m_tokens, "dim": d},
            "attributes": layout,
            "decoding": {
                **DEFAULT_DECODING,
                "beam": result.config.beam,
                "max_tokens": model.args["max_len"] - 1,
            },
            "vocab_size": model.args["vocab_size"],
        },
        training=training,
        metrics={**result.metrics, "export_parity_max_abs_diff": max(diffs.values())},
        **{k: v for k, v in fields.items() if k not in ("embedding_dim",)},
        embedding_dim=0,
    )
    return repo.publish(manifest)
