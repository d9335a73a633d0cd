"""MLServer peer runtimes: the vitrine text and image encoders as custom ``MLModel``s.

Loaded by ``mlserver start`` from the model-settings that ``mlserver_server.py`` writes
(``implementation: mlserver_runtime.VitrineTextRuntime`` / ``...VitrineImageRuntime``; this
directory is put on ``PYTHONPATH``). Same contract as the Triton peer:

* ``vitrine-text``: input ``text`` BYTES ``[n, 1]`` (UTF-8 titles) -> ``embedding`` FP32 ``[n, dim]``
* ``vitrine-image``: input ``image`` BYTES ``[n, 1]`` (encoded images) -> ``embedding`` FP32

MLServer's adaptive batcher merges requests (``max_batch_size`` requests, ``max_batch_time``
seconds) into one ``predict`` call, which tokenises the whole batch / decodes every image and
runs onnxruntime once (``peer_models.py``). The blocking part runs on a dedicated thread pool
(``instances`` threads, default 1, each with its own onnxruntime session) so that the asyncio
loop keeps receiving and batching requests meanwhile.

``parameters.extra``: ``version_dir`` (required), ``threads`` (ort intra-op; 0 = cores),
``decode_workers`` (0 = cores), ``instances`` (default 1).
"""

from __future__ import annotations

import asyncio
import queue
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_models as pm


class _VitrineRuntime(MLModel):
    input_name: str = ""

    def _build(self, version_dir: Path, threads: int, decode_workers: int):
        raise NotImplementedError

    def _encode(self, encoder, items: list[bytes]) -> np.ndarray:
        raise NotImplementedError

    async def load(self) -> bool:
        extra = (self.settings.parameters.extra if self.settings.parameters else None) or {}
        version_dir = Path(extra["version_dir"])
        threads = int(extra.get("threads") or 0) or pm.default_threads()
        decode_workers = int(extra.get("decode_workers") or 0) or pm.default_threads()
        instances = max(1, int(extra.get("instances") or 1))
        self._encoders: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(instances):
            self._encoders.put(self._build(version_dir, threads, decode_workers))
        self._executor = ThreadPoolExecutor(instances, thread_name_prefix=self.name)
        self.ready = True
        return self.ready

    def _run(self, items: list[bytes]) -> np.ndarray:
        encoder = self._encoders.get()
        try:
            return self._encode(encoder, items)
        finally:
            self._encoders.put(encoder)

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inp = next((i for i in payload.inputs if i.name == self.input_name), None)
        if inp is None:
            raise InferenceError(f"{self.name}: missing input {self.input_name!r}")
        if inp.datatype != "BYTES":
            raise InferenceError(f"{self.name}: input {self.input_name!r} must be BYTES")
        items = pm.as_bytes_list(inp.data.root if hasattr(inp.data, "root") else inp.data)
        loop = asyncio.get_running_loop()
        emb = await loop.run_in_executor(self._executor, self._run, items)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output(name=pm.OUTPUT, payload=emb)],
        )

    async def unload(self) -> bool:
        executor = getattr(self, "_executor", None)  # absent if load() failed
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        return True


class VitrineTextRuntime(_VitrineRuntime):
    input_name = pm.TEXT_INPUT

    def _build(self, version_dir: Path, threads: int, decode_workers: int):
        return pm.TextEncoder(version_dir, threads)

    def _encode(self, encoder, items: list[bytes]) -> np.ndarray:
        return encoder([b.decode("utf-8") for b in items])


class VitrineImageRuntime(_VitrineRuntime):
    input_name = pm.IMAGE_INPUT

    def _build(self, version_dir: Path, threads: int, decode_workers: int):
        return pm.ImageEncoder(version_dir, threads, decode_workers)

    def _encode(self, encoder, items: list[bytes]) -> np.ndarray:
        return encoder(items)
