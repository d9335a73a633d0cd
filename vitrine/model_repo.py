"""The model repository contract shared by the exporter (writer) and the encoder service (reader).

Layout (Triton-like)::

    <repo>/<model>/<version>/model.onnx
    <repo>/<model>/<version>/manifest.json
    <repo>/<model>/<version>/tokenizer.json      (text models only)

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
FORMAT_VERSION = 1
MODALITIES = ("text", "image")


@dataclass
class Manifest:
    """Everything a server needs to run one exported tower, and how it was made."""

    name: str
    version: int
    modality: str  # "text" | "image"
    embedding_dim: int
    inputs: dict[str, dict[str, Any]]  # input name -> {"dtype": ..., "shape": [...]}
    output: str = "embedding"
    normalized: bool = True  # outputs are L2-normalised (cosine == inner product)
    max_batch_size: int = 64
    opset: int = 17
    tokenizer: dict[str, Any] | None = None  # {"file": "tokenizer.json", "max_length": 64, ...}
    preprocessing: dict[str, Any] | None = None  # images: size, resize, crop, layout, mean/std
    training: dict[str, Any] = field(default_factory=dict)  # data hash, loss, seed, backbone...
    metrics: dict[str, Any] = field(default_factory=dict)  # evaluation results at export time
    pair: str | None = None  # the tower trained jointly with this one (same embedding space)
    format_version: int = FORMAT_VERSION

    def validate(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"invalid model name {self.name!r}")
        if self.version < 1:
            raise ValueError(f"model version must be >= 1, got {self.version}")
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        if self.embedding_dim < 1:
            raise ValueError("embedding_dim must be positive")
        if self.modality == "text" and not self.tokenizer:
            raise ValueError("a text model needs a tokenizer entry")
        if self.modality == "image" and not self.preprocessing:
            raise ValueError("an image model needs a preprocessing entry")

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
class ModelVersion:
    manifest: Manifest
    path: Path  # the version directory

    @property
    def onnx_path(self) -> Path:
        return self.path / MODEL_FILE

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
