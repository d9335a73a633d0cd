"""The model repository contract shared by the exporter (writer) and the encoder service (reader).

Layout (Triton-like)::

    <repo>/<model>/<version>/model.onnx
    <repo>/<model>/<version>/manifest.json
    <repo>/<model>/<version>/tokenizer.json      (models that read text)

Model kinds (``modality``): ``text`` and ``image`` towers (one L2-normalised ``embedding``
output), ``rerank`` (an image-text matching model scoring query/candidate pairs; see
:class:`RerankSpec`) and ``caption`` (photo → attributes + title: an image-encoder graph in
``model.onnx`` and a decoder-step graph beside it; see :class:`CaptionSpec`) and ``compose``
(a query composer: a reference photo's image embedding + a modifier text's embedding → one
L2-normalised query ``embedding`` in the image tower's space; see :class:`ComposeSpec`).

``version`` is a positive integer directory name. A version directory counts as published only
once its ``manifest.json`` exists; the exporter writes the ONNX file and assets first and the
manifest last (temp file + rename), so a reader polling the repository never sees a half-written
version.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CHECKPOINTS = ".checkpoints"  # training checkpoints inside a repository (not served)
FORMAT_VERSION = 2
MODALITIES = ("text", "image", "rerank", "caption", "compose")
EMBEDDING_MODALITIES = ("text", "image")


@dataclass
class Manifest:
    """Everything a server needs to run one exported tower, and how it was made."""

    name: str
    version: int
    modality: str  # "text" | "image" (towers) | "rerank" | "caption" | "compose"
    embedding_dim: int  # towers: the embedding width; 0 for models that do not embed
    inputs: dict[str, dict[str, Any]]  # input name -> {"dtype": ..., "shape": [...]}
    output: str = "embedding"
    # Further outputs a caller may ask for, e.g. an image tower's "payload" for the reranker.
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    normalized: bool = True  # outputs are L2-normalised (cosine == inner product)
    max_batch_size: int = 64
    opset: int = 17
    tokenizer: dict[str, Any] | None = None  # {"file": "tokenizer.json", "max_length": 64, ...}
    preprocessing: dict[str, Any] | None = None  # images: size, resize, crop, layout, mean/std
    training: dict[str, Any] = field(default_factory=dict)  # data hash, loss, seed, backbone...
    metrics: dict[str, Any] = field(default_factory=dict)  # evaluation results at export time
    pair: str | None = None  # the tower trained jointly with this one (same embedding space)
    rerank: dict[str, Any] | None = None  # rerank models: see RerankSpec
    caption: dict[str, Any] | None = None  # caption models: see CaptionSpec
    compose: dict[str, Any] | None = None  # query composers: see ComposeSpec
    format_version: int = FORMAT_VERSION

    def validate(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"invalid model name {self.name!r}")
        if self.version < 1:
            raise ValueError(f"model version must be >= 1, got {self.version}")
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.modality in EMBEDDING_MODALITIES and self.embedding_dim < 1:
            raise ValueError("embedding_dim must be positive")
        if self.modality in ("text", "rerank") and not self.tokenizer:
            raise ValueError(f"a {self.modality} model needs a tokenizer entry")
        if self.modality in ("image", "caption") and not self.preprocessing:
            raise ValueError(f"a {self.modality} model needs a preprocessing entry")
        if self.modality == "caption":
            if not self.caption or not self.tokenizer:
                raise ValueError("a caption model needs caption and tokenizer entries")
            CaptionSpec.from_dict(self.caption)
        if self.modality == "rerank":
            if not self.rerank:
                raise ValueError("a rerank model needs a rerank entry")
            RerankSpec.from_dict(self.rerank)
        if self.modality == "compose":
            if not self.compose:
                raise ValueError("a compose model needs a compose entry")
            spec = ComposeSpec.from_dict(self.compose)
            if self.embedding_dim != spec.dim:
                raise ValueError(
                    f"compose.dim {spec.dim} is not the embedding_dim {self.embedding_dim}"
                )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown manifest fields {sorted(unknown)}")
        m = cls(**data)
        m.validate()
        return m


@dataclass(frozen=True)
class RerankSpec:
    """A rerank model's ``rerank`` manifest entry: what it pairs with and reads."""

    text_model: str  # "name/version" of the text tower whose retrieval scores it blends
    image_model: str  # "name/version" of the image tower whose ``payload`` output it reads
    payload: dict[str, Any]  # the payload layout (width, dtype float16, bytes, parts)
    directions: list[str]  # direction index -> "text_query" | "photo_query"
    features: list[str] = field(default_factory=list)
    weights: dict[str, Any] = field(default_factory=dict)  # per direction, fitted on validation
    candidates: int = 50  # the shortlist length it was fitted for (serving default)
    attributes: dict[str, Any] = field(default_factory=dict)  # attribute vocabularies

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RerankSpec:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"rerank: unknown fields {sorted(unknown)}")
        spec = cls(**data)
        for ref in (spec.text_model, spec.image_model):
            name, _, version = ref.partition("/")
            if not name or not version.isdigit():
                raise ValueError(f"rerank: {ref!r} is not name/version")
        if int(spec.payload.get("width", 0)) < 1:
            raise ValueError("rerank.payload.width must be positive")
        if spec.candidates < 1:
            raise ValueError("rerank.candidates must be positive")
        return spec

    @property
    def payload_bytes(self) -> int:
        return 2 * int(self.payload["width"])  # float16


@dataclass
class CaptionSpec:
    """A caption model's ``caption`` manifest entry."""

    decoder: str  # file of the decoder-step graph, beside model.onnx
    memory: dict[str, int]  # {"tokens": M, "dim": d}: the image encoder's ``memory`` output
    attributes: dict[str, Any]  # {"spans": {name: [start, end]}, "classes": {name: [values]}}
    decoding: dict[str, Any]  # defaults: beam, max_tokens, no_repeat_ngram, length_penalty
    vocab_size: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaptionSpec:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"caption: unknown fields {sorted(unknown)}")
        spec = cls(**data)
        if "/" in spec.decoder or not spec.decoder.endswith(".onnx"):
            raise ValueError(f"caption.decoder: {spec.decoder!r} is not a file name ending .onnx")
        if spec.vocab_size < 5 or int(spec.memory.get("dim", 0)) < 1:
            raise ValueError("caption: vocab_size and memory.dim must be positive")
        for name, (start, end) in spec.attributes.get("spans", {}).items():
            if end - start != len(spec.attributes["classes"][name]):
                raise ValueError(f"caption.attributes: span of {name} does not match its classes")
        return spec


@dataclass(frozen=True)
class ComposeSpec:
    """A query composer's ``compose`` manifest entry: the towers whose embeddings it reads.

    Its inputs are the ``image_embedding`` of the reference photo (from ``image_model``) and the
    ``text_embedding`` of the modifier text (from ``text_model``); its output is searched against
    the index of ``image_model``'s embeddings.
    """

    text_model: str  # "name/version" of the text tower that embeds the modifier
    image_model: str  # "name/version" of the image tower (reference photo and gallery)
    dim: int  # width of both inputs and of the output
    attributes: list[str] = field(default_factory=list)  # the changes it was trained on

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComposeSpec:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"compose: unknown fields {sorted(unknown)}")
        spec = cls(**data)
        for ref in (spec.text_model, spec.image_model):
            name, _, version = str(ref).partition("/")
            if not name or not version.isdigit():
                raise ValueError(f"compose: {ref!r} is not name/version")
        if int(spec.dim) < 1:
            raise ValueError("compose.dim must be positive")
        return spec


@dataclass(frozen=True)
class ModelVersion:
    manifest: Manifest
    path: Path  # the version directory

    @property
    def onnx_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def decoder_path(self) -> Path | None:
        """A caption model's decoder-step graph."""
        if not self.manifest.caption:
            return None
        return self.path / self.manifest.caption["decoder"]

    @property
    def tokenizer_path(self) -> Path | None:
        if not self.manifest.tokenizer:
            return None
        return self.path / self.manifest.tokenizer.get("file", TOKENIZER_FILE)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ModelRepository:
    """Read/write access to a model repository directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def model_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.versions(p.name))

    def versions(self, name: str) -> list[int]:
        d = self.root / name
        if not d.is_dir():
            return []
        return sorted(
            int(p.name)
            for p in d.iterdir()
            if p.is_dir() and p.name.isdigit() and int(p.name) > 0 and (p / MANIFEST).is_file()
        )

    def latest_version(self, name: str) -> int | None:
        vs = self.versions(name)
        return vs[-1] if vs else None

    def version_dir(self, name: str, version: int) -> Path:
        return self.root / name / str(version)

    def load(self, name: str, version: int | None = None) -> ModelVersion:
        """Load a published version (``None`` = latest); raises ``FileNotFoundError``."""
        if version is None:
            version = self.latest_version(name)
            if version is None:
                raise FileNotFoundError(f"no published version of model {name!r} in {self.root}")
        d = self.version_dir(name, version)
        mpath = d / MANIFEST
        if not mpath.is_file():
            raise FileNotFoundError(f"model {name!r} version {version} not found in {self.root}")
        manifest = Manifest.from_dict(json.loads(mpath.read_text(encoding="utf-8")))
        if manifest.name != name or manifest.version != version:
            raise ValueError(
                f"{mpath}: manifest says {manifest.name}/{manifest.version}, path says {name}/{version}"
            )
        if not (d / MODEL_FILE).is_file():
            raise FileNotFoundError(f"{d / MODEL_FILE} is missing")
        return ModelVersion(manifest, d)

    def all_latest(self) -> list[ModelVersion]:
        return [self.load(n) for n in self.model_names()]

    def next_version(self, name: str) -> int:
        d = self.root / name
        used = [int(p.name) for p in d.iterdir() if p.name.isdigit()] if d.is_dir() else []
        return max(used, default=0) + 1

    def new_version_dir(self, name: str, version: int | None = None) -> tuple[int, Path]:
        """Create (and return) the directory for a new version; publish it with :meth:`publish`."""
        version = version or self.next_version(name)
        d = self.version_dir(name, version)
        if (d / MANIFEST).exists():
            raise FileExistsError(f"model {name!r} version {version} already published")
        d.mkdir(parents=True, exist_ok=True)
        return version, d

    def publish(self, manifest: Manifest) -> ModelVersion:
        """Write the manifest last, atomically: from then on the version is visible."""
        manifest.validate()
        d = self.version_dir(manifest.name, manifest.version)
        if not (d / MODEL_FILE).is_file():
            raise FileNotFoundError(f"write {d / MODEL_FILE} before publishing")
        _atomic_write(d / MANIFEST, manifest.to_json())
        return ModelVersion(manifest, d)
