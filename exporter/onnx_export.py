"""Export the towers to single-file ONNX models and check them against PyTorch.

Text: inputs ``input_ids`` and ``attention_mask`` (int64, dynamic batch and sequence axes).
Image: input ``pixels`` (uint8 NHWC 224×224 RGB, dynamic batch); normalisation is in the graph.
Output ``embedding`` (float32, L2-normalised). Every export is run in onnxruntime on real inputs
and compared with the PyTorch module (max abs diff ≤ ``PARITY_ATOL``) before it is published.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vitrine.model_repo import MODEL_FILE, TOKENIZER_FILE, Manifest, ModelRepository, ModelVersion
from vitrine.preprocess import IMAGE_MEAN, IMAGE_SIZE, IMAGE_STD

log = logging.getLogger(__name__)
OPSET = 18
PARITY_ATOL = 1e-4
# float16 outputs (the reranker payload) round float32 values that already differ by ~1e-6:
# one float16 step (2^-10 relative) is the expected worst case.
FLOAT16_RTOL = 2.0**-9


class ExportParityError(RuntimeError):
    """The ONNX model's outputs differ from PyTorch's by more than the tolerance."""


def _export(
    module: nn.Module,
    args: tuple,
    path: Path,
    input_names: list[str],
    dynamic: dict,
    output_names: tuple[str, ...] = ("embedding",),
) -> None:
    module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=input_names,
            output_names=list(output_names),
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)


def onnx_run(path: Path, feeds: dict[str, np.ndarray], names: tuple[str, ...]) -> list:
    """The named outputs of the model at ``path`` on ``feeds`` (onnxruntime, CPU)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(list(names), feeds)


def onnx_outputs(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """A tower's ``embedding`` on ``feeds``."""
    return onnx_run(path, feeds, ("embedding",))[0]


def check_parity(
    module: nn.Module,
    path: Path,
    feeds: dict[str, np.ndarray],
    names: tuple[str, ...] = ("embedding",),
    atol: float = PARITY_ATOL,
) -> dict[str, float]:
    """Max abs difference per output between PyTorch and onnxruntime on ``feeds``; raises past
    the tolerance (``atol``; float16 outputs: one float16 step of the value)."""
    with torch.no_grad():
        ref = module(*(torch.from_numpy(v) for v in feeds.values()))
    refs = ref if isinstance(ref, tuple) else (ref,)
    diffs = {}
    for name, r, got in zip(names, refs, onnx_run(path, feeds, names), strict=True):
        r = r.numpy()
        err = np.abs(r.astype(np.float64) - got.astype(np.float64))
        if r.dtype == np.float16:
            bound = np.maximum(atol, FLOAT16_RTOL * np.abs(r.astype(np.float64)))
            ok = bool((err <= bound).all())
        else:
            ok = bool(err.max() <= atol) if err.size else True
        diff = float(err.max()) if err.size else 0.0
        if not np.isfinite(diff) or not ok:
            raise ExportParityError(f"{path}: output {name}: max abs diff {diff:.3g}")
        diffs[name] = diff
    return diffs


def export_text_tower(
    tower: nn.Module, dest: Path, sample_ids: np.ndarray, sample_mask: np.ndarray
) -> float:
    """Export to ``dest/model.onnx``; returns the parity diff on the sample batch."""
    path = dest / MODEL_FILE
    _export(
        tower,
        (torch.from_numpy(sample_ids), torch.from_numpy(sample_mask)),
        path,
        ["input_ids", "attention_mask"],
        {
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "embedding": {0: "batch"},
        },
    )
    feeds = {"input_ids": sample_ids, "attention_mask": sample_mask}
    return check_parity(tower, path, feeds)["embedding"]


def export_image_tower(tower: nn.Module, dest: Path, sample_pixels: np.ndarray) -> dict[str, float]:
    """Export to ``dest/model.onnx`` (outputs ``embedding`` and, with payload heads,
    ``payload``); returns the parity diff of each output on the sample batch."""
    path = dest / MODEL_FILE
    names = ("embedding", "payload") if getattr(tower, "payload_heads", None) else ("embedding",)
    _export(
        tower,
        (torch.from_numpy(sample_pixels),),
        path,
        ["pixels"],
        {"pixels": {0: "batch"}, **{n: {0: "batch"} for n in names}},
        names,
    )
    return check_parity(tower, path, {"pixels": sample_pixels}, names)


def text_manifest_fields(dim: int, max_length: int) -> dict:
    return dict(
        modality="text",
        embedding_dim=dim,
        inputs={
            "input_ids": {"dtype": "int64", "shape": ["batch", "sequence"]},
            "attention_mask": {"dtype": "int64", "shape": ["batch", "sequence"]},
        },
        tokenizer={
            "file": TOKENIZER_FILE,
            "max_length": max_length,
            "truncation": "right",
            "padding": "dynamic (longest in batch)",
            "lowercase": True,
        },
        opset=OPSET,
    )


def image_manifest_fields(
    dim: int, size: int = IMAGE_SIZE, mean: tuple = IMAGE_MEAN, std: tuple = IMAGE_STD
) -> dict:
    return dict(
        modality="image",
        embedding_dim=dim,
        inputs={"pixels": {"dtype": "uint8", "shape": ["batch", size, size, 3]}},
        preprocessing={
            "function": "vitrine.preprocess.decode_image",
            "size": size,
            "resize": "shorter side to size, bicubic",
            "crop": "centre",
            "layout": "NHWC uint8 RGB",
            "in_graph_normalization": {"mean": list(mean), "std": list(std), "scale": 255},
        },
        opset=OPSET,
    )


def publish_pair(
    repo: ModelRepository,
    text_name: str,
    image_name: str,
    text_tower: nn.Module,
    image_tower: nn.Module,
    tokenizer_json: Path,
    max_length: int,
    dim: int,
    sample_texts: list[str],
    sample_pixels: np.ndarray,
    training: dict,
    metrics: dict | None = None,
    version: int | None = None,
    image_fields: dict | None = None,
    payload_layout: dict | None = None,
) -> tuple[ModelVersion, ModelVersion]:
    """Export both towers as one new version each, check parity, then publish the manifests.

    ``payload_layout``: the image tower carries the reranker's payload heads; its manifest then
    declares the ``payload`` output (float16 ``[batch, width]``) and its layout.
    """
    from vitrine.preprocess import TextTokenizer

    v = version or max(repo.next_version(text_name), repo.next_version(image_name))
    _, tdir = repo.new_version_dir(text_name, v)
    _, idir = repo.new_version_dir(image_name, v)
    shutil.copyfile(tokenizer_json, tdir / TOKENIZER_FILE)
    batch = TextTokenizer(tdir / TOKENIZER_FILE, max_length=max_length).encode(sample_texts)
    t_diff = export_text_tower(text_tower, tdir, batch.input_ids, batch.attention_mask)
    i_diffs = export_image_tower(image_tower, idir, sample_pixels)
    i_diff = i_diffs["embedding"]
    log.info(
        "exported %s/%s (parity %.2e) and %s/%s (parity %s)",
        text_name,
        v,
        t_diff,
        image_name,
        v,
        i_diffs,
    )
    metrics = metrics or {}
    tm = Manifest(
        name=text_name,
        version=v,
        pair=image_name,
        training=training,
        metrics={**metrics, "export_parity_max_abs_diff": t_diff},
        **text_manifest_fields(dim, max_length),
    )
    image_metrics = {**metrics, "export_parity_max_abs_diff": i_diff}
    outputs = {}
    if payload_layout is not None:
        image_metrics["export_parity_payload_max_abs_diff"] = i_diffs["payload"]
        outputs["payload"] = {
            "dtype": "float16",
            "shape": ["batch", payload_layout["width"]],
            "layout": payload_layout,
        }
    im = Manifest(
        name=image_name,
        version=v,
        pair=text_name,
        training=training,
        metrics=image_metrics,
        outputs=outputs,
        **(image_fields or image_manifest_fields(dim)),
    )
    return repo.publish(tm), repo.publish(im)
