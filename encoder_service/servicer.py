"""Thin gRPC servicer over :class:`encoder_service.core.Encoder`."""

from __future__ import annotations

import time

import grpc

from encoder_service.core import Encoder
from vitrine.rerank_pairs import Candidate
from vitrine.serving.errors import InvalidArgument
from vitrine.serving.grpc_app import rpc
from vitrine.serving.metrics import RpcMetrics
from vitrine.tensors import from_tensor, to_tensor
from vitrine.v1 import encoder_pb2, encoder_pb2_grpc

_MODALITY = {
    "text": encoder_pb2.MODALITY_TEXT,
    "image": encoder_pb2.MODALITY_IMAGE,
    "rerank": encoder_pb2.MODALITY_RERANK,
    "caption": encoder_pb2.MODALITY_CAPTION,
    "compose": encoder_pb2.MODALITY_COMPOSE,
}


def _deadline(context: grpc.aio.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def model_info_pb(info: dict) -> encoder_pb2.ModelInfo:
    return encoder_pb2.ModelInfo(
        name=info["name"],
        version=info["version"],
        modality=_MODALITY[info["modality"]],
        dim=info["dim"],
        max_batch_size=info["max_batch_size"],
        preprocessing=info["preprocessing"],
        tokenizer=info["tokenizer"],
        max_sequence_length=info["max_sequence_length"],
        image_size=info["image_size"],
        latest=info["latest"],
        outputs=info["outputs"],
        rerank=encoder_pb2.RerankInfo(**info["rerank"]) if info["rerank"] else None,
        caption=encoder_pb2.CaptionInfo(**info["caption"]) if info.get("caption") else None,
        compose=encoder_pb2.ComposeInfo(**info["compose"]) if info.get("compose") else None,
    )


class EncoderServicer(encoder_pb2_grpc.EncoderServiceServicer):
    def __init__(self, encoder: Encoder, metrics: RpcMetrics):
        self.encoder = encoder
        self.metrics = metrics

    @rpc
    async def EmbedText(self, request, context):
        out = await self.encoder.embed_texts(
            request.model, request.version, request.texts, _deadline(context)
        )
        return encoder_pb2.EmbedTextResponse(
            model=out.model,
            version=out.version,
            embeddings=to_tensor(out.vectors),
            token_counts=out.token_counts,
            truncated=out.truncated,
        )

    @rpc
    async def EmbedImages(self, request, context):
        out = await self.encoder.embed_images(
            request.model,
            request.version,
            request.images,
            _deadline(context),
            request.include_payloads,
        )
        return encoder_pb2.EmbedImagesResponse(
            model=out.model,
            version=out.version,
            embeddings=to_tensor(out.vectors),
            payloads=out.payloads or [],
        )

    @rpc
    async def Compose(self, request, context):
        try:
            images = from_tensor(request.image_embeddings, "image_embeddings")
            texts = from_tensor(request.text_embeddings, "text_embeddings")
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        out = await self.encoder.compose(
            request.model, request.version, images, texts, _deadline(context)
        )
        return encoder_pb2.ComposeResponse(
            model=out.model, version=out.version, embeddings=to_tensor(out.vectors)
        )

    @rpc
    async def Rerank(self, request, context):
        out = await self.encoder.rerank(
            request.model,
            request.version,
            request.query_text,
            request.query_payload,
            [Candidate(c.payload, c.title, c.retrieval_score) for c in request.candidates],
            request.text_weight,
            request.image_weight,
            _deadline(context),
        )
        return encoder_pb2.RerankResponse(
            model=out.model,
            version=out.version,
            scores=out.scores.tolist(),
            match_scores=out.match_scores.tolist(),
        )

    @rpc
    async def Generate(self, request, context):
        out = await self.encoder.generate(
            request.model,
            request.version,
            request.images,
            request.beam,
            request.max_tokens,
            _deadline(context),
        )
        return encoder_pb2.GenerateResponse(
            model=out.model,
            version=out.version,
            captions=[
                encoder_pb2.Caption(
                    title=c.title,
                    attributes=[
                        encoder_pb2.PredictedAttribute(name=n, value=v, confidence=conf)
                        for n, v, conf in c.attributes
                    ],
                    mean_log_prob=c.mean_log_prob,
                    tokens=c.tokens,
                )
                for c in out.captions
            ],
        )

    @rpc
    async def GetModelInfo(self, request, context):
        infos = self.encoder.model_info(request.model)
        return encoder_pb2.GetModelInfoResponse(models=[model_info_pb(i) for i in infos])

    @rpc
    async def LoadModel(self, request, context):
        info, already = await self.encoder.load_model(request.model, request.version)
        return encoder_pb2.LoadModelResponse(model_info=model_info_pb(info), already_loaded=already)

    @rpc
    async def UnloadModel(self, request, context):
        versions = await self.encoder.unload_model(request.model, request.version)
        return encoder_pb2.UnloadModelResponse(unloaded_versions=versions)
