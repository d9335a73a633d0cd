"""Python clients for the encoder service (blocking and asyncio), used by the gateway and tests.

    with EncoderClient("127.0.0.1:50051") as enc:
        vectors = enc.embed_texts("vitrine-text", ["navy blue shirt"]).vectors   # float32 [1, dim]

Failed calls raise :mod:`vitrine.serving.errors` types (``InvalidArgument``, ``ResourceExhausted``
with ``retry_after_s``, ``DeadlineExceeded``, ``NotFound``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vitrine.serving.client import AsyncClientBase, SyncClientBase
from vitrine.tensors import from_tensor, to_tensor
from vitrine.v1 import encoder_pb2, encoder_pb2_grpc


@dataclass
class EmbedResult:
    model: str
    version: int
    vectors: np.ndarray  # float32 [n, dim]
    token_counts: list[int] | None = None
    truncated: list[bool] | None = None
    payloads: list[bytes] | None = None  # per image, when asked for (the reranker reads them)


@dataclass
class RerankResult:
    model: str
    version: int
    scores: list[float]  # blended with the retrieval scores, higher is better
    match_scores: list[float]  # the image-text match logits alone


@dataclass
class Caption:
    title: str
    attributes: dict[str, tuple[str, float]]  # name -> (value, confidence)
    mean_log_prob: float
    tokens: int


@dataclass
class GenerateResult:
    model: str
    version: int
    captions: list[Caption]


def _generate_result(r: encoder_pb2.GenerateResponse) -> GenerateResult:
    return GenerateResult(
        r.model,
        r.version,
        [
            Caption(
                c.title,
                {a.name: (a.value, a.confidence) for a in c.attributes},
                c.mean_log_prob,
                c.tokens,
            )
            for c in r.captions
        ],
    )


def _generate_request(model, images, beam, max_tokens, version):
    return encoder_pb2.GenerateRequest(
        model=model, version=version, images=list(images), beam=beam, max_tokens=max_tokens
    )


@dataclass
class Candidate:
    """One candidate of a Rerank call: its payload and/or title, and its retrieval score."""

    payload: bytes = b""
    title: str = ""
    retrieval_score: float = 0.0


def _rerank_request(
    model, query_text, query_payload, candidates, text_weight, image_weight, version
):
    return encoder_pb2.RerankRequest(
        model=model,
        version=version,
        query_text=query_text,
        query_payload=query_payload,
        candidates=[
            encoder_pb2.RerankCandidate(
                payload=c.payload, title=c.title, retrieval_score=c.retrieval_score
            )
            for c in candidates
        ],
        text_weight=text_weight,
        image_weight=image_weight,
    )


def _compose_request(model, image_vectors, text_vectors, version):
    return encoder_pb2.ComposeRequest(
        model=model,
        version=version,
        image_embeddings=to_tensor(np.atleast_2d(np.asarray(image_vectors, dtype=np.float32))),
        text_embeddings=to_tensor(np.atleast_2d(np.asarray(text_vectors, dtype=np.float32))),
    )


def _rerank_result(r: encoder_pb2.RerankResponse) -> RerankResult:
    return RerankResult(r.model, r.version, list(r.scores), list(r.match_scores))


def _text_result(r: encoder_pb2.EmbedTextResponse) -> EmbedResult:
    return EmbedResult(
        r.model,
        r.version,
        from_tensor(r.embeddings, "embeddings"),
        list(r.token_counts),
        list(r.truncated),
    )


def _image_result(r: encoder_pb2.EmbedImagesResponse) -> EmbedResult:
    payloads = list(r.payloads) if r.payloads else None
    return EmbedResult(
        r.model, r.version, from_tensor(r.embeddings, "embeddings"), payloads=payloads
    )


class EncoderClient(SyncClientBase):
    stub_class = encoder_pb2_grpc.EncoderServiceStub

    def embed_texts(
        self, model: str, texts: Sequence[str], version: int = 0, timeout: float | None = None
    ) -> EmbedResult:
        req = encoder_pb2.EmbedTextRequest(model=model, version=version, texts=list(texts))
        return _text_result(self._call("EmbedText", req, timeout))

    def embed_images(
        self,
        model: str,
        images: Sequence[bytes],
        version: int = 0,
        timeout: float | None = None,
        include_payloads: bool = False,
    ) -> EmbedResult:
        req = encoder_pb2.EmbedImagesRequest(
            model=model, version=version, images=list(images), include_payloads=include_payloads
        )
        return _image_result(self._call("EmbedImages", req, timeout))

    def rerank(
        self,
        model: str,
        candidates: Sequence[Candidate],
        query_text: str = "",
        query_payload: bytes = b"",
        text_weight: float = 0.0,
        image_weight: float = 0.0,
        version: int = 0,
        timeout: float | None = None,
    ) -> RerankResult:
        req = _rerank_request(
            model, query_text, query_payload, candidates, text_weight, image_weight, version
        )
        return _rerank_result(self._call("Rerank", req, timeout))

    def compose(
        self,
        model: str,
        image_vectors: np.ndarray,
        text_vectors: np.ndarray,
        version: int = 0,
        timeout: float | None = None,
    ) -> EmbedResult:
        r = self._call(
            "Compose", _compose_request(model, image_vectors, text_vectors, version), timeout
        )
        return EmbedResult(r.model, r.version, from_tensor(r.embeddings, "embeddings"))

    def generate(
        self,
        model: str,
        images: Sequence[bytes],
        beam: int = 0,
        max_tokens: int = 0,
        version: int = 0,
        timeout: float | None = None,
    ) -> GenerateResult:
        req = _generate_request(model, images, beam, max_tokens, version)
        return _generate_result(self._call("Generate", req, timeout))

    def model_info(self, model: str = "") -> list[encoder_pb2.ModelInfo]:
        return list(self._call("GetModelInfo", encoder_pb2.GetModelInfoRequest(model=model)).models)

    def load_model(self, model: str, version: int = 0) -> encoder_pb2.LoadModelResponse:
        return self._call("LoadModel", encoder_pb2.LoadModelRequest(model=model, version=version))

    def unload_model(self, model: str, version: int = 0) -> list[int]:
        req = encoder_pb2.UnloadModelRequest(model=model, version=version)
        return list(self._call("UnloadModel", req).unloaded_versions)


class AsyncEncoderClient(AsyncClientBase):
    stub_class = encoder_pb2_grpc.EncoderServiceStub

    async def embed_texts(
        self, model: str, texts: Sequence[str], version: int = 0, timeout: float | None = None
    ) -> EmbedResult:
        req = encoder_pb2.EmbedTextRequest(model=model, version=version, texts=list(texts))
        return _text_result(await self._call("EmbedText", req, timeout))

    async def embed_images(
        self,
        model: str,
        images: Sequence[bytes],
        version: int = 0,
        timeout: float | None = None,
        include_payloads: bool = False,
    ) -> EmbedResult:
        req = encoder_pb2.EmbedImagesRequest(
            model=model, version=version, images=list(images), include_payloads=include_payloads
        )
        return _image_result(await self._call("EmbedImages", req, timeout))

    async def rerank(
        self,
        model: str,
        candidates: Sequence[Candidate],
        query_text: str = "",
        query_payload: bytes = b"",
        text_weight: float = 0.0,
        image_weight: float = 0.0,
        version: int = 0,
        timeout: float | None = None,
    ) -> RerankResult:
        req = _rerank_request(
            model, query_text, query_payload, candidates, text_weight, image_weight, version
        )
        return _rerank_result(await self._call("Rerank", req, timeout))

    async def compose(
        self,
        model: str,
        image_vectors: np.ndarray,
        text_vectors: np.ndarray,
        version: int = 0,
        timeout: float | None = None,
    ) -> EmbedResult:
        req = _compose_request(model, image_vectors, text_vectors, version)
        r = await self._call("Compose", req, timeout)
        return EmbedResult(r.model, r.version, from_tensor(r.embeddings, "embeddings"))

    async def generate(
        self,
        model: str,
        images: Sequence[bytes],
        beam: int = 0,
        max_tokens: int = 0,
        version: int = 0,
        timeout: float | None = None,
    ) -> GenerateResult:
        req = _generate_request(model, images, beam, max_tokens, version)
        return _generate_result(await self._call("Generate", req, timeout))

    async def model_info(self, model: str = "") -> list[encoder_pb2.ModelInfo]:
        resp = await self._call("GetModelInfo", encoder_pb2.GetModelInfoRequest(model=model))
        return list(resp.models)

    async def load_model(self, model: str, version: int = 0) -> encoder_pb2.LoadModelResponse:
        req = encoder_pb2.LoadModelRequest(model=model, version=version)
        return await self._call("LoadModel", req)

    async def unload_model(self, model: str, version: int = 0) -> list[int]:
        req = encoder_pb2.UnloadModelRequest(model=model, version=version)
        return list((await self._call("UnloadModel", req)).unloaded_versions)
