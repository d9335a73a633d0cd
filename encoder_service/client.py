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
from vitrine.tensors import from_tensor
from vitrine.v1 import encoder_pb2, encoder_pb2_grpc


@dataclass
class EmbedResult:
    model: str
    version: int
    vectors: np.ndarray  # float32 [n, dim]
    token_counts: list[int] | None = None
    truncated: list[bool] | None = None


def _text_result(r: encoder_pb2.EmbedTextResponse) -> EmbedResult:
    return EmbedResult(
        r.model,
        r.version,
        from_tensor(r.embeddings, "embeddings"),
        list(r.token_counts),
        list(r.truncated),
    )


def _image_result(r: encoder_pb2.EmbedImagesResponse) -> EmbedResult:
    return EmbedResult(r.model, r.version, from_tensor(r.embeddings, "embeddings"))


class EncoderClient(SyncClientBase):
    stub_class = encoder_pb2_grpc.EncoderServiceStub

    def embed_texts(
        self, model: str, texts: Sequence[str], version: int = 0, timeout: float | None = None
    ) -> EmbedResult:
        req = encoder_pb2.EmbedTextRequest(model=model, version=version, texts=list(texts))
        return _text_result(self._call("EmbedText", req, timeout))

    def embed_images(
        self, model: str, images: Sequence[bytes], version: int = 0, timeout: float | None = None
    ) -> EmbedResult:
        req = encoder_pb2.EmbedImagesRequest(model=model, version=version, images=list(images))
        return _image_result(self._call("EmbedImages", req, timeout))

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
        self, model: str, images: Sequence[bytes], version: int = 0, timeout: float | None = None
    ) -> EmbedResult:
        req = encoder_pb2.EmbedImagesRequest(model=model, version=version, images=list(images))
        return _image_result(await self._call("EmbedImages", req, timeout))

    async def model_info(self, model: str = "") -> list[encoder_pb2.ModelInfo]:
        resp = await self._call("GetModelInfo", encoder_pb2.GetModelInfoRequest(model=model))
        return list(resp.models)

    async def load_model(self, model: str, version: int = 0) -> encoder_pb2.LoadModelResponse:
        req = encoder_pb2.LoadModelRequest(model=model, version=version)
        return await self._call("LoadModel", req)

    async def unload_model(self, model: str, version: int = 0) -> list[int]:
        req = encoder_pb2.UnloadModelRequest(model=model, version=version)
        return list((await self._call("UnloadModel", req)).unloaded_versions)
