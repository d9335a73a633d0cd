"""The encoder as plain async Python: validate, preprocess, batch, infer. No gRPC in here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry

from encoder_service.config import EncoderConfig
from encoder_service.metrics import EncoderMetrics
from encoder_service.models import LoadedModel, ModelRegistry
from vitrine.captioning import BeamState, DecodeOptions, detokenize, read_attributes, reconcile
from vitrine.rerank_pairs import Candidate, build_pairs, combine
from vitrine.serving.errors import InvalidArgument

log = logging.getLogger("vitrine.encoder")
MAX_MODEL_NAME_BYTES = 255  # a model name is a directory name of the repository


@dataclass
class Embeddings:
    model: str
    version: int
    vectors: np.ndarray  # float32 [n, dim]
    token_counts: list[int] | None = None
    truncated: list[bool] | None = None
    payloads: list[bytes] | None = None  # image towers with a payload output, when asked for


@dataclass
class Reranked:
    model: str
    version: int
    scores: np.ndarray  # float32 [candidates]: blended with the retrieval scores
    match_scores: np.ndarray  # float32 [candidates]: the match features alone


@dataclass
class Described:
    title: str
    attributes: list[tuple[str, str, float]]  # (name, value, confidence), in the model's order
    mean_log_prob: float
    tokens: int


@dataclass
class Generated:
    model: str
    version: int
    captions: list[Described]


class Encoder:
    def __init__(self, config: EncoderConfig, registry: CollectorRegistry | None = None):
        self.config = config
        self.metrics = EncoderMetrics(registry or CollectorRegistry())
        self.models = ModelRegistry(
            config,
            self.metrics.stats_for,
            lambda name: self.metrics.load_failures.labels(name).inc(),
        )
        self._poller: asyncio.Task | None = None

    async def start(self) -> None:
        await self.models.load_initial()
        self._update_loaded_gauge()
        if self.config.poll_interval_s > 0:
            self._poller = asyncio.create_task(self._poll_loop(), name="repository-poller")

    async def close(self) -> None:
        if self._poller:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        await self.models.close()

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval_s)
            try:
                await self.models.poll_once()
                self._update_loaded_gauge()
            except Exception:
                log.exception("repository poll failed")

    def _update_loaded_gauge(self) -> None:
        counts: dict[str, int] = {}
        for m in self.models.loaded():
            counts[m.name] = counts.get(m.name, 0) + 1
        for name, n in counts.items():
            self.metrics.loaded.labels(name).set(n)

    def _model(self, name: str, version: int, modality: str) -> LoadedModel:
        model = self.models.get(name, version)
        if model.modality != modality:
            raise InvalidArgument(f"model: {name!r} is a {model.modality} model, not {modality}")
        return model

    def _check_batch(self, model: LoadedModel, n: int, field: str) -> None:
        if n == 0:
            raise InvalidArgument(f"{field}: empty batch")
        if n > model.max_batch:
            raise InvalidArgument(
                f"{field}: {n} items, model {model.name} accepts at most {model.max_batch} per call"
            )

    async def embed_texts(
        self, name: str, version: int, texts: Sequence[str], deadline: float | None = None
    ) -> Embeddings:
        model = self._model(name, version, "text")
        self._check_batch(model, len(texts), "texts")
        t0 = time.perf_counter()
        if len(texts) > 8:
            prepared = await asyncio.to_thread(model.prepare_texts, texts)
        else:
            prepared = model.prepare_texts(texts)
        self.metrics.preprocess_time.labels(model.name).observe(time.perf_counter() - t0)
        vectors = await model.batcher.submit(prepared, len(texts), deadline)
        return Embeddings(
            model.name,
            model.number,
            vectors,
            token_counts=prepared.batch.token_counts,
            truncated=prepared.batch.truncated,
        )

    async def embed_images(
        self,
        name: str,
        version: int,
        images: Sequence[bytes],
        deadline: float | None = None,
        include_payloads: bool = False,
    ) -> Embeddings:
        model = self._model(name, version, "image")
        self._check_batch(model, len(images), "images")
        if include_payloads and not model.payload_width:
            raise InvalidArgument(
                f"include_payloads: model {model.name}/{model.number} has no payload output"
            )
        t0 = time.perf_counter()
        pixels = await model.prepare_images(images)
        self.metrics.preprocess_time.labels(model.name).observe(time.perf_counter() - t0)
        out = await model.batcher.submit(pixels, len(images), deadline)
        if not model.payload_width:
            return Embeddings(model.name, model.number, out)
        vectors, payloads = out
        blobs = [row.astype("<f2").tobytes() for row in payloads] if include_payloads else None
        return Embeddings(model.name, model.number, vectors, payloads=blobs)

    async def compose(
        self,
        name: str,
        version: int,
        image_vectors: np.ndarray,
        text_vectors: np.ndarray,
        deadline: float | None = None,
    ) -> Embeddings:
        """Query vectors from photo and modifier-text embeddings (a composition model)."""
        model = self._model(name, version, "compose")
        for field, x in (("image_embeddings", image_vectors), ("text_embeddings", text_vectors)):
            if x.ndim != 2 or x.shape[1] != model.dim:
                raise InvalidArgument(f"{field}: shape {list(x.shape)}, expected [n, {model.dim}]")
            if not np.isfinite(x).all():
                raise InvalidArgument(f"{field}: contains NaN or Inf")
        if len(image_vectors) != len(text_vectors):
            raise InvalidArgument(
                f"text_embeddings: {len(text_vectors)} rows, image_embeddings has "
                f"{len(image_vectors)}"
            )
        self._check_batch(model, len(image_vectors), "image_embeddings")
        parts = (
            np.ascontiguousarray(image_vectors, dtype=np.float32),
            np.ascontiguousarray(text_vectors, dtype=np.float32),
        )
        vectors = await model.batcher.submit(parts, len(image_vectors), deadline)
        return Embeddings(model.name, model.number, vectors)

    async def rerank(
        self,
        name: str,
        version: int,
        query_text: str,
        query_payload: bytes,
        candidates: Sequence[Candidate],
        text_weight: float = 0.0,
        image_weight: float = 0.0,
        deadline: float | None = None,
    ) -> Reranked:
        """Score ``candidates`` for a text, photo (its payload) or composite query."""
        model = self._model(name, version, "rerank")
        args = (
            model.tokenizer,
            int(model.rerank.payload["width"]),
            query_text,
            query_payload,
            candidates,
            text_weight,
            image_weight,
            self.config.max_rerank_candidates,
            self.config.max_text_chars,
        )
        t0 = time.perf_counter()
        pairs = (
            await asyncio.to_thread(build_pairs, *args)
            if len(candidates) > 64
            else build_pairs(*args)
        )
        self.metrics.preprocess_time.labels(model.name).observe(time.perf_counter() - t0)
        score, match = await model.batcher.submit(pairs, pairs.n, deadline)
        scores, matches = combine(pairs, score, match)
        return Reranked(model.name, model.number, scores, matches)

    async def generate(
        self,
        name: str,
        version: int,
        images: Sequence[bytes],
        beam: int = 0,
        max_tokens: int = 0,
        deadline: float | None = None,
    ) -> Generated:
        """Title and attributes for each photo (greedy or beam search, batched across calls)."""
        model = self._model(name, version, "caption")
        self._check_batch(model, len(images), "images")
        defaults = model.caption.decoding
        limit = int(defaults["max_tokens"])
        opts = DecodeOptions(
            beam=beam or int(defaults["beam"]),
            max_tokens=max_tokens or limit,
            no_repeat_ngram=int(defaults["no_repeat_ngram"]),
            length_penalty=float(defaults["length_penalty"]),
        )
        opts.validate(self.config.max_beam, limit)
        t0 = time.perf_counter()
        pixels = await model.prepare_images(images)
        self.metrics.preprocess_time.labels(model.name).observe(time.perf_counter() - t0)
        memory, probs = await model.batcher.submit(pixels, len(images), deadline)
        layout = model.caption.attributes
        attrs = [read_attributes(row, layout) for row in probs]
        states = [BeamState(i, opts, model.consistency.banned(a)) for i, a in enumerate(attrs)]
        best = await model.steps.decode(memory, states, deadline)
        captions = []
        for h, a, row in zip(best, attrs, probs, strict=True):
            n = len(h.tokens) + (1 if h.done else 0)
            title = detokenize(h.tokens, model.words)
            a = reconcile(title, a, row, layout)
            captions.append(
                Described(
                    title,
                    [(k, v, c) for k, (v, c) in a.values.items()],
                    h.logprob / max(n, 1),
                    n,
                )
            )
        return Generated(model.name, model.number, captions)

    def model_info(self, name: str = "") -> list[dict]:
        models = self.models.loaded()
        if name:
            models = [m for m in models if m.name == name]
            if not models:
                self.models.get(name)  # raises NotFound with the list of loaded models
        latest = {m.name: self.models.latest(m.name) for m in models}
        return [{**m.info(), "latest": latest[m.name] == m.number} for m in models]

    async def load_model(self, name: str, version: int) -> tuple[dict, bool]:
        if not name:
            raise InvalidArgument("model: required")
        # The name becomes a directory of the repository: one path component, as published
        # (a longer one made the file system raise ENAMETOOLONG, answered INTERNAL).
        if (
            len(name.encode()) > MAX_MODEL_NAME_BYTES
            or name.startswith(".")
            or any(c in name for c in "/\\\0")
        ):
            shown = name if len(name) <= 64 else f"{name[:64]}..."
            raise InvalidArgument(
                f"model: {shown!r} is not a model name (at most {MAX_MODEL_NAME_BYTES} bytes, "
                "no '/', '\\' or NUL, not starting with '.')"
            )
        if version < 0:
            raise InvalidArgument(f"version: {version} is negative")
        model, already = await self.models.load(name, version)
        self._update_loaded_gauge()
        return {**model.info(), "latest": self.models.latest(name) == model.number}, already

    async def unload_model(self, name: str, version: int) -> list[int]:
        if not name:
            raise InvalidArgument("model: required")
        if version < 0:
            raise InvalidArgument(f"version: {version} is negative")
        versions = await self.models.unload(name, version)
        self.metrics.loaded.labels(name).set(
            len([m for m in self.models.loaded() if m.name == name])
        )
        return versions
