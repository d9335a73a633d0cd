"""The serving image's pinned requirements for one variant, from pyproject.toml's dependencies.

    python deploy/image_requirements.py cpu > requirements.txt   # the dependencies as they are
    python deploy/image_requirements.py gpu > requirements.txt   # the GPU wheels in their place

The GPU variant swaps the two packages whose GPU builds are separate wheels that provide the same
module: ``onnxruntime`` -> ``onnxruntime-gpu`` (with its CUDA and cuDNN runtime wheels, so the
image needs no CUDA base) and ``faiss-cpu`` -> ``faiss-gpu``. Installing both of a pair would
leave whichever came last owning the module, so the swap happens before pip resolves anything.
deploy/Dockerfile runs this in its build stage (standard library only: Python 3.11 ``tomllib``).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# onnxruntime-gpu has no 1.32.0 wheel (the CPU pin); 1.31.1 is the newest, and runs the same
# opset-18 models. Its `cuda`/`cudnn` extras bring CUDA 13 runtime wheels; faiss-gpu's bring
# CUDA 12's: both load side by side (different sonames) on a driver for CUDA 13.
GPU_SWAPS = {
    "onnxruntime": "onnxruntime-gpu[cuda,cudnn]==1.31.1",
    "faiss-cpu": "faiss-gpu==1.15.1",
}
VARIANTS = ("cpu", "gpu")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def requirements(variant: str, pyproject: Path = PYPROJECT) -> list[str]:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    out = []
    for dep in deps:
        spec = dep.split("#", 1)[0].strip()
        name = _NAME.match(spec).group(1).lower()
        out.append(GPU_SWAPS[name] if variant == "gpu" and name in GPU_SWAPS else spec)
    if variant == "gpu":
        missing = set(GPU_SWAPS) - {_NAME.match(d).group(1).lower() for d in deps}
        if missing:  # pyproject renamed one: fail the build instead of shipping a CPU package
            raise ValueError(f"pyproject.toml no longer depends on {sorted(missing)}")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in VARIANTS:
        print(f"usage: image_requirements.py {{{','.join(VARIANTS)}}}", file=sys.stderr)
        return 2
    print("\n".join(requirements(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
