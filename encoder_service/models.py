"""Loaded model versions: per-kind preprocessing and batch execution, and the registry.

A :class:`LoadedModel` pairs one published version from the model repository with its
onnxruntime session and its :class:`~encoder_service.batcher.DynamicBatcher`. Preprocessing is the
shared definition in :mod:`vitrine.preprocess` (the exporter uses the same functions):
``TextTokenizer`` for texts, ``decode_image`` for images. Kinds: text and image towers (an image
tower may also output the reranker's ``payload``), and rerank models, whose batches are
(query, candidate) pairs of any number of requests (:mod:`vitrine.rerank_pairs`), and caption
models: their image encoder batches photos like an image tower, their decoder steps run in a
:class:`~encoder_service.generation.StepLoop` shared by every request in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from encoder_service.batcher import BatchStats, DynamicBatcher
from encoder_service.config import EncoderConfig
from encoder_service.generation import StepLoop
from encoder_service.runtime import OnnxRunner, choose_providers
from vitrine.captioning import ConsistencyMask, vocabulary
from vitrine.model_repo import CaptionSpec, ModelRepository, ModelVersion, RerankSpec
from vitrine.preprocess import (
    IMAGE_SIZE,
    ImageDecodeError,
    ImageLimits,
    TextTokenizer,
    TokenBatch,
    decode_image,
)
from vitrine.rerank_pairs import concat_pairs
from vitrine.serving.errors import InvalidArgument, NotFound

log = logging.getLogger("vitrine.encoder.models")
BUCKET_MIN_BATCH = 16  # text batches at least this large may be split by length...
BUCKET_MIN_WASTE = 0.3  # ...when at least this fraction of the padded tokens is padding


@dataclass
class TextPrepared:
    batch: TokenBatch


def _concat_tokens(parts: Sequence[TextPrepared], pad_id: int) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        b = parts[0].batch
        return {"input_ids": b.input_ids, "attention_mask": b.attention_mask}
    seq = max(p.batch.input_ids.shape[1] for p in parts)
    n = sum(p.batch.input_ids.shape[0] for p in parts)
    ids = np.full((n, seq), pad_id, dtype=np.int64)
    mask = np.zeros((n, seq), dtype=np.int64)
    row = 0
    for p in parts:
        k, s = p.batch.input_ids.shape
        ids[row : row + k, :s] = p.batch.input_ids
        mask[row : row + k, :s] = p.batch.attention_mask
        row += k
    return {"input_ids": ids, "attention_mask": mask}


class LoadedModel:
    """One model version, ready to serve."""

    def __init__(
        self, version: ModelVersion, config: EncoderConfig, decode_pool: ThreadPoolExecutor
    ):
        self.version = version
        self.manifest = version.manifest
        self.config = config
        self.name = self.manifest.name
        self.number = self.manifest.version
        self.modality = self.manifest.modality
        self.dim = self.manifest.embedding_dim
        self.rerank: RerankSpec | None = None
        outputs = (self.manifest.output,)
        if self.modality == "rerank":
            self.rerank = RerankSpec.from_dict(self.manifest.rerank)
            self.max_batch = config.rerank_batch_pairs
            outputs += ("match",)
        else:
            self.max_batch = min(config.max_batch_size, self.manifest.max_batch_size or 10**9)
        self.caption: CaptionSpec | None = None
        self.decoder: OnnxRunner | None = None
        self.steps: StepLoop | None = None
        if self.modality == "caption":
            self.caption = CaptionSpec.from_dict(self.manifest.caption)
            outputs += ("attributes",)
            self.decoder = OnnxRunner(
                str(version.decoder_path),
                choose_providers(config.providers, config.device_id),
                config.threads,
                output="logprobs",
            )
            self.words = vocabulary(version.tokenizer_path)
            self.consistency = ConsistencyMask(self.words, self.caption.attributes["classes"])
        self.payload_width = 0
        if self.modality == "image" and "payload" in self.manifest.outputs:
            self.payload_width = int(self.manifest.outputs["payload"]["shape"][-1])
            outputs += ("payload",)
        self.runner = OnnxRunner(
            str(version.onnx_path),
            choose_providers(config.providers, config.device_id),
            config.threads,
            output=outputs,
        )
        self._decode_pool = decode_pool
        self.tokenizer: TextTokenizer | None = None
        self.image_size = IMAGE_SIZE
        self.image_input = next(iter(self.manifest.inputs))
        if self.modality in ("text", "rerank"):
            tok = self.manifest.tokenizer or {}
            self.tokenizer = TextTokenizer(version.tokenizer_path, int(tok.get("max_length", 64)))
        else:
            pre = self.manifest.preprocessing or {}
            self.image_size = int(pre.get("size", IMAGE_SIZE))
        self._exec_pool = ThreadPoolExecutor(
            max_workers=config.instances, thread_name_prefix=f"ort-{self.name}-{self.number}"
        )
        self.batcher: DynamicBatcher | None = None
        self.limits = ImageLimits(config.max_image_bytes, config.max_image_pixels)

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.number)

    def start(self, stats: BatchStats) -> None:
        self.batcher = DynamicBatcher(
            f"{self.name}/{self.number}",
            self.run_batch,
            self._exec_pool,
            max_batch=self.max_batch,
            max_queue_delay_s=(
                self.config.rerank_queue_delay_us
                if self.modality == "rerank"
                else self.config.max_queue_delay_us
            )
            / 1e6,
            max_queue_items=self.config.max_queue_items,
            instances=self.config.instances,
            stats=stats,
        )
        self.batcher.start()
        if self.decoder is not None:
            self.steps = StepLoop(
                f"{self.name}/{self.number}",
                lambda memory, tokens, lengths: self.decoder.run(
                    {"memory": memory, "tokens": tokens, "lengths": lengths}
                ),
                self._exec_pool,
                max_rows=self.config.generate_step_rows,
                max_photos=self.config.max_generate_photos,
                on_step=stats.on_step,
            )
            self.steps.start()

    async def close(self) -> None:
        if self.steps is not None:
            await self.steps.close()
        if self.batcher is not None:
            await self.batcher.close(drain=True)
        self._exec_pool.shutdown(wait=True)

    # -- preprocessing (per request; a bad item fails only its request) --------------------------
    def prepare_texts(self, texts: Sequence[str]) -> TextPrepared:
        for i, t in enumerate(texts):
            if not t.strip():
                raise InvalidArgument(f"texts[{i}]: empty text")
            if len(t) > self.config.max_text_chars:
                raise InvalidArgument(
                    f"texts[{i}]: {len(t)} characters, limit {self.config.max_text_chars}"
                )
        batch = self.tokenizer.encode(list(texts))
        if self.config.text_overflow == "reject":
            for i, cut in enumerate(batch.truncated):
                if cut:
                    raise InvalidArgument(
                        f"texts[{i}]: longer than the model's window of "
                        f"{self.tokenizer.max_length} tokens (text_overflow=reject)"
                    )
        return TextPrepared(batch)

    async def prepare_images(self, images: Sequence[bytes]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        futures = [
            loop.run_in_executor(
                self._decode_pool, decode_image, data, self.image_size, self.limits
            )
            for data in images
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        for i, r in enumerate(results):
            if isinstance(r, ImageDecodeError):
                raise InvalidArgument(f"images[{i}]: {r}")
            if isinstance(r, BaseException):
                raise r
        return np.stack(results)

    # -- execution (worker thread) ------------------------------------------------------------------
    def run_batch(self, parts: Sequence):
        if self.modality == "text":
            return self._run_text(_concat_tokens(parts, self.tokenizer.pad_id))
        if self.modality == "rerank":
            return self.runner.run(concat_pairs(parts))
        if self.modality == "compose":
            images, texts = zip(*parts, strict=True)
            return self.runner.run(
                {"image_embedding": np.concatenate(images), "text_embedding": np.concatenate(texts)}
            )
        pixels = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return self.runner.run({self.image_input: pixels})

    def _run_text(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Run a text batch; a large batch with much padding runs as two length-sorted halves.

        Titles vary in length (here 4-27 tokens, mean ~11), so one long title pads a whole batch.
        Sorting by length and running two halves, each padded to its own longest, cut padded
        tokens enough to raise throughput ~10% on CPU (benchmarks/encoder_bench.py). Rows are
        computed independently, so results do not change beyond float rounding.
        """
        mask = feeds["attention_mask"]
        lengths = mask.sum(axis=1)
        n, seq = mask.shape
        if n < BUCKET_MIN_BATCH or lengths.sum() > (1 - BUCKET_MIN_WASTE) * n * seq:
            return self.runner.run(feeds)
        order = np.argsort(lengths, kind="stable")
        out = None
        for half in (order[: n // 2], order[n // 2 :]):
            width = int(lengths[half].max())
            part = {k: np.ascontiguousarray(v[half, :width]) for k, v in feeds.items()}
            rows = self.runner.run(part)
            if out is None:
                out = np.empty((n, rows.shape[1]), dtype=rows.dtype)
            out[half] = rows
        return out

    def info(self) -> dict:
        m = self.manifest
        pre = {k: str(v) for k, v in (m.preprocessing or {}).items()}
        tok = m.tokenizer or {}
        if self.modality == "text":
            pre.setdefault("truncation", self.config.text_overflow)
        return {
            "name": self.name,
            "version": self.number,
            "modality": self.modality,
            "dim": self.dim,
            "max_batch_size": self.config.max_rerank_candidates if self.rerank else self.max_batch,
            "preprocessing": pre,
            "tokenizer": str(tok.get("name", tok.get("file", ""))) if tok else "",
            "max_sequence_length": self.tokenizer.max_length if self.tokenizer else 0,
            "image_size": self.image_size if self.modality in ("image", "caption") else 0,
            "providers": self.runner.providers,
            "outputs": sorted(self.manifest.outputs),
            "rerank": None
            if self.rerank is None
            else {
                "text_model": self.rerank.text_model,
                "image_model": self.rerank.image_model,
                "payload_width": int(self.rerank.payload["width"]),
                "payload_bytes": self.rerank.payload_bytes,
                "candidates": self.rerank.candidates,
            },
            "compose": {
                "text_model": self.manifest.compose["text_model"],
                "image_model": self.manifest.compose["image_model"],
            }
            if self.modality == "compose"
            else None,
            "caption": None
            if self.caption is None
            else {
                "attributes": list(self.caption.attributes["spans"]),
                "beam": int(self.caption.decoding["beam"]),
                "max_tokens": int(self.caption.decoding["max_tokens"]),
                "vocab_size": self.caption.vocab_size,
            },
        }


class ModelRegistry:
    """Loaded model versions by (name, version); loading and unloading at run time."""

    def __init__(self, config: EncoderConfig, stats_for, on_load_failure=None):
        self.config = config
        self._on_load_failure = on_load_failure or (lambda name: None)  # (model name) -> None
        self.repo = ModelRepository(config.models_dir)
        self._models: dict[tuple[str, int], LoadedModel] = {}
        self._unloaded: set[tuple[str, int]] = set()  # explicitly unloaded: polling leaves them
        self._lock = asyncio.Lock()
        self._stats_for = stats_for  # (name) -> BatchStats
        self._decode_pool = ThreadPoolExecutor(
            max_workers=config.decoders, thread_name_prefix="decode"
        )

    def loaded(self) -> list[LoadedModel]:
        return [self._models[k] for k in sorted(self._models)]

    def latest(self, name: str) -> int | None:
        versions = [v for (n, v) in self._models if n == name]
        return max(versions) if versions else None

    def get(self, name: str, version: int = 0) -> LoadedModel:
        if not name:
            raise InvalidArgument("model: required")
        if version < 0:
            raise InvalidArgument(f"version: {version} is negative")
        number = version or self.latest(name)
        model = self._models.get((name, number)) if number else None
        if model is None:
            known = sorted({n for n, _ in self._models})
            what = f"model {name!r}" + (f" version {version}" if version else "")
            raise NotFound(f"{what} is not loaded (loaded models: {known})")
        return model

    async def load(self, name: str, version: int = 0) -> tuple[LoadedModel, bool]:
        """Load ``name`` at ``version`` (0 = highest in the repository)."""
        async with self._lock:
            number = version or self.repo.latest_version(name)
            if number is None:
                raise NotFound(f"model {name!r} has no published version in {self.repo.root}")
            if (name, number) in self._models:
                return self._models[(name, number)], True
            try:
                mv = self.repo.load(name, number)
                model = await asyncio.to_thread(LoadedModel, mv, self.config, self._decode_pool)
            except FileNotFoundError as exc:
                self._on_load_failure(name)
                raise NotFound(str(exc)) from exc
            except ValueError as exc:
                self._on_load_failure(name)
                raise InvalidArgument(f"model {name!r} version {number}: {exc}") from exc
            except Exception:
                self._on_load_failure(name)
                raise
            model.start(self._stats_for(name))
            self._models[model.key] = model
            self._unloaded.discard(model.key)
            log.info("loaded", extra={"model": name, "version": number, "dim": model.dim})
            return model, False

    async def unload(self, name: str, version: int = 0) -> list[int]:
        async with self._lock:
            keys = [k for k in self._models if k[0] == name and (version == 0 or k[1] == version)]
            models = [self._models.pop(k) for k in keys]
            self._unloaded.update(keys)
        for m in models:
            await m.close()
            log.info("unloaded", extra={"model": m.name, "version": m.number})
        return sorted(k[1] for k in keys)

    async def load_initial(self) -> None:
        specs = self.config.models or self.repo.model_names()
        if not specs:
            raise NotFound(f"no models in repository {self.repo.root}")
        for spec in specs:
            name, _, version = spec.partition(":")
            await self.load(name, int(version or 0))

    async def poll_once(self) -> None:
        """Load versions newer than any seen so far; unload versions removed from disk."""
        names = self.config.models and [s.partition(":")[0] for s in self.config.models]
        for name in names or self.repo.model_names():
            on_disk = set(self.repo.versions(name))
            seen = max([v for n, v in (*self._models, *self._unloaded) if n == name], default=0)
            for v in sorted(x for x in on_disk if x > seen):
                try:
                    await self.load(name, v)
                except Exception:
                    log.exception("poll: cannot load", extra={"model": name, "version": v})
            for n, v in list(self._models):
                if n == name and v not in on_disk:
                    await self.unload(name, v)

    async def close(self) -> None:
        for m in list(self._models.values()):
            await m.close()
        self._models.clear()
        self._decode_pool.shutdown(wait=False, cancel_futures=True)
