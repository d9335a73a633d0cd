"""The per-item work shared by the peer servers (Triton via PyTriton, MLServer).

Runs in the peers' venv (``.venv-peers``: onnxruntime, tokenizers, Pillow, numpy). It does what
the encoder service does for one batch, with the project's own preprocessing:

* text: ``vitrine/preprocess.py`` ``TextTokenizer(tokenizer.json, max_length).encode(batch)``
  (dynamic padding, right truncation), then one onnxruntime run on the whole batch;
* image: ``decode_image(bytes, size)`` per item (spread over ``decode_workers`` threads, as the
  service does), stacked into a uint8 NHWC batch, then one onnxruntime run.

onnxruntime: CPU execution provider, graph optimisation ALL, sequential execution, intra-op
threads = cores (``os.cpu_count()``), inter-op 1, no spinning: the encoder service's settings.

``vitrine/preprocess.py`` is loaded from the repository by file path (it imports only numpy,
Pillow and tokenizers), so the vitrine package is neither installed nor imported here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

REPO_ROOT = Path(__file__).resolve().parents[2]
TEXT_MODEL = "vitrine-text"
IMAGE_MODEL = "vitrine-image"
TEXT_INPUT = "text"
IMAGE_INPUT = "image"
OUTPUT = "embedding"


def _load_preprocess() -> Any:
    name = "vitrine_preprocess"
    if name in sys.modules:
        return sys.modules[name]
    path = REPO_ROOT / "vitrine" / "preprocess.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look the module up while the class is built
    spec.loader.exec_module(module)
    return module


preprocess = _load_preprocess()


def default_threads() -> int:
    return os.cpu_count() or 1


def latest_version(models_dir: str | Path, name: str) -> Path:
    """The highest published version directory (one with ``manifest.json``) of model ``name``."""
    root = Path(models_dir) / name
    versions = (
        [
            int(p.name)
            for p in root.iterdir()
            if p.is_dir()
            and p.name.isdigit()
            and int(p.name) > 0
            and (p / "manifest.json").exists()
        ]
        if root.is_dir()
        else []
    )
    if not versions:
        raise FileNotFoundError(f"no published version of {name} under {models_dir}")
    return root / str(max(versions))


def make_session(model_path: str | Path, threads: int | None = None) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        str(model_path), sess_options=opts, providers=["CPUExecutionProvider"]
    )


class _Encoder:
    def __init__(self, version_dir: Path, threads: int | None):
        self.version_dir = Path(version_dir)
        self.manifest = json.loads((self.version_dir / "manifest.json").read_text())
        self.name = self.manifest["name"]
        self.version = int(self.manifest["version"])
        self.dim = int(self.manifest["embedding_dim"])
        self.output = self.manifest.get("output", OUTPUT)
        self.session = make_session(self.version_dir / "model.onnx", threads)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        (emb,) = self.session.run([self.output], feeds)
        return np.ascontiguousarray(emb, dtype=np.float32)


class TextEncoder(_Encoder):
    """UTF-8 titles -> embeddings, tokenised as one batch with the project's TextTokenizer."""

    def __init__(self, version_dir: Path, threads: int | None = None):
        super().__init__(version_dir, threads)
        tok = self.manifest.get("tokenizer") or {}
        self.tokenizer = preprocess.TextTokenizer(
            self.version_dir / tok.get("file", "tokenizer.json"), int(tok.get("max_length", 64))
        )

    def features(self, texts: list[str]) -> dict[str, np.ndarray]:
        batch = self.tokenizer.encode(texts)
        feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(batch.input_ids)
        return {k: v for k, v in feeds.items() if k in self.input_names}

    def __call__(self, texts: list[str]) -> np.ndarray:
        return self.run(self.features(texts))


class ImageEncoder(_Encoder):
    """Encoded images -> embeddings: decode_image per item, one run on the uint8 NHWC batch."""

    def __init__(
        self, version_dir: Path, threads: int | None = None, decode_workers: int | None = None
    ):
        super().__init__(version_dir, threads)
        pre = self.manifest.get("preprocessing") or {}
        self.size = int(pre.get("size", preprocess.IMAGE_SIZE))
        inputs = list((self.manifest.get("inputs") or {}).keys()) or self.input_names
        self.input_name = inputs[0]
        workers = decode_workers if decode_workers is not None else default_threads()
        self._pool = ThreadPoolExecutor(workers, "decode") if workers > 1 else None

    def features(self, images: list[bytes]) -> dict[str, np.ndarray]:
        def one(data: bytes) -> np.ndarray:
            return preprocess.decode_image(data, size=self.size)

        if self._pool is not None and len(images) > 1:
            arrays = list(self._pool.map(one, images))
        else:
            arrays = [one(b) for b in images]
        return {self.input_name: np.stack(arrays).astype(np.uint8, copy=False)}

    def __call__(self, images: list[bytes]) -> np.ndarray:
        return self.run(self.features(images))


def as_bytes_list(values: Any) -> list[bytes]:
    """Flatten a BYTES tensor (numpy object array or list; bytes or str items) to bytes."""
    flat = values.ravel().tolist() if isinstance(values, np.ndarray) else list(values)
    out = []
    for v in flat:
        if isinstance(v, (bytes, bytearray, memoryview)):
            out.append(bytes(v))
        elif isinstance(v, str):
            out.append(v.encode("utf-8"))
        elif isinstance(v, list) and len(v) == 1:  # [[b"..."], ...] nesting
            out.extend(as_bytes_list(v))
        else:
            raise TypeError(f"BYTES element of type {type(v).__name__}")
    return out
