"""Where a shard's faiss index lives: on a GPU when faiss sees one, otherwise in host memory.

``placement`` (config ``index_device``): ``auto`` puts shards on GPUs when the installed faiss
has GPU support and sees devices (shard ``s`` on GPU ``s % n``), ``cpu`` never does, ``gpu``
requires them (start-up fails with a clear error otherwise). Only index families faiss implements
on GPUs move (Flat, IVF-Flat, IVF-PQ, IVF-SQ); HNSW stays on the CPU.

The CPU index stays the source of truth for snapshots and rebuilds: a GPU index is a copy made
with ``index_cpu_to_gpu`` after building/loading and copied back with ``index_gpu_to_cpu`` to be
serialised. GPU indexes take no ``IDSelector``; the shard answers filtered and tombstoned
searches by its exact subset path instead (same results). The default wheel is ``faiss-cpu``;
installing ``faiss-gpu`` in its place (same ``faiss`` module) enables the GPU path.
"""

from __future__ import annotations

import threading

import faiss

from vitrine.serving.config import ConfigError

PLACEMENTS = ("auto", "cpu", "gpu")
_resources: dict[int, object] = {}
_lock = threading.Lock()


def gpu_count() -> int:
    """GPUs faiss can use (0 with the faiss-cpu wheel)."""
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None and hasattr(faiss, "index_cpu_to_gpu") else 0


def resolve(placement: str) -> int:
    """Number of GPUs shards are spread over for ``placement`` (validated)."""
    if placement not in PLACEMENTS:
        raise ConfigError(f"index_device: must be one of {PLACEMENTS}, got {placement!r}")
    n = gpu_count() if placement != "cpu" else 0
    if placement == "gpu" and n == 0:
        raise ConfigError("index_device: 'gpu' but faiss sees no GPU (faiss-cpu installed?)")
    return n


def gpu_capable(index: faiss.Index) -> bool:
    inner = faiss.downcast_index(index)
    return isinstance(inner, faiss.IndexFlat | faiss.IndexIVF)


def is_gpu(index: faiss.Index | None) -> bool:
    return index is not None and type(faiss.downcast_index(index)).__name__.startswith("GpuIndex")


def to_device(index: faiss.Index | None, device: int | None) -> faiss.Index | None:
    """A copy of ``index`` on GPU ``device`` (the index itself if it stays on the CPU)."""
    if index is None or device is None or not gpu_capable(index):
        return index
    with _lock:
        res = _resources.get(device)
        if res is None:
            res = _resources[device] = faiss.StandardGpuResources()
    opts = faiss.GpuClonerOptions()
    opts.useFloat16 = False  # same results as the CPU index
    return faiss.index_cpu_to_gpu(res, device, index, opts)


def to_cpu(index: faiss.Index) -> faiss.Index:
    return faiss.index_gpu_to_cpu(index) if is_gpu(index) else index
