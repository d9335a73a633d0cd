from vitrine.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Modality(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODALITY_UNSPECIFIED: _ClassVar[Modality]
    MODALITY_TEXT: _ClassVar[Modality]
    MODALITY_IMAGE: _ClassVar[Modality]
    MODALITY_RERANK: _ClassVar[Modality]
    MODALITY_CAPTION: _ClassVar[Modality]
    MODALITY_COMPOSE: _ClassVar[Modality]
MODALITY_UNSPECIFIED: Modality
MODALITY_TEXT: Modality
MODALITY_IMAGE: Modality
MODALITY_RERANK: Modality
MODALITY_CAPTION: Modality
MODALITY_COMPOSE: Modality

class ComposeRequest(_message.Message):
    __slots__ = ("model", "version", "image_embeddings", "text_embeddings")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    TEXT_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    image_embeddings: _common_pb2.Tensor
    text_embeddings: _common_pb2.Tensor
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., image_embeddings: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., text_embeddings: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ...) -> None: ...

class ComposeResponse(_message.Message):
    __slots__ = ("model", "version", "embeddings")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    embeddings: _common_pb2.Tensor
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., embeddings: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ...) -> None: ...

class EmbedTextRequest(_message.Message):
    __slots__ = ("model", "version", "texts")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., texts: _Optional[_Iterable[str]] = ...) -> None: ...

class EmbedTextResponse(_message.Message):
    __slots__ = ("model", "version", "embeddings", "token_counts", "truncated")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_COUNTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    embeddings: _common_pb2.Tensor
    token_counts: _containers.RepeatedScalarFieldContainer[int]
    truncated: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., embeddings: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., token_counts: _Optional[_Iterable[int]] = ..., truncated: _Optional[_Iterable[bool]] = ...) -> None: ...

class EmbedImagesRequest(_message.Message):
    __slots__ = ("model", "version", "images", "include_payloads")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    images: _containers.RepeatedScalarFieldContainer[bytes]
    include_payloads: bool
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., images: _Optional[_Iterable[bytes]] = ..., include_payloads: _Optional[bool] = ...) -> None: ...

class EmbedImagesResponse(_message.Message):
    __slots__ = ("model", "version", "embeddings", "payloads")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    embeddings: _common_pb2.Tensor
    payloads: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., embeddings: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., payloads: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "modality", "dim", "max_batch_size", "preprocessing", "tokenizer", "max_sequence_length", "image_size", "latest", "outputs", "rerank", "caption", "compose")
    class PreprocessingEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    PREPROCESSING_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    RERANK_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    COMPOSE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    modality: Modality
    dim: int
    max_batch_size: int
    preprocessing: _containers.ScalarMap[str, str]
    tokenizer: str
    max_sequence_length: int
    image_size: int
    latest: bool
    outputs: _containers.RepeatedScalarFieldContainer[str]
    rerank: RerankInfo
    caption: CaptionInfo
    compose: ComposeInfo
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., modality: _Optional[_Union[Modality, str]] = ..., dim: _Optional[int] = ..., max_batch_size: _Optional[int] = ..., preprocessing: _Optional[_Mapping[str, str]] = ..., tokenizer: _Optional[str] = ..., max_sequence_length: _Optional[int] = ..., image_size: _Optional[int] = ..., latest: _Optional[bool] = ..., outputs: _Optional[_Iterable[str]] = ..., rerank: _Optional[_Union[RerankInfo, _Mapping]] = ..., caption: _Optional[_Union[CaptionInfo, _Mapping]] = ..., compose: _Optional[_Union[ComposeInfo, _Mapping]] = ...) -> None: ...

class ComposeInfo(_message.Message):
    __slots__ = ("text_model", "image_model")
    TEXT_MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_MODEL_FIELD_NUMBER: _ClassVar[int]
    text_model: str
    image_model: str
    def __init__(self, text_model: _Optional[str] = ..., image_model: _Optional[str] = ...) -> None: ...

class CaptionInfo(_message.Message):
    __slots__ = ("attributes", "beam", "max_tokens", "vocab_size")
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    BEAM_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    VOCAB_SIZE_FIELD_NUMBER: _ClassVar[int]
    attributes: _containers.RepeatedScalarFieldContainer[str]
    beam: int
    max_tokens: int
    vocab_size: int
    def __init__(self, attributes: _Optional[_Iterable[str]] = ..., beam: _Optional[int] = ..., max_tokens: _Optional[int] = ..., vocab_size: _Optional[int] = ...) -> None: ...

class RerankInfo(_message.Message):
    __slots__ = ("text_model", "image_model", "payload_width", "payload_bytes", "candidates")
    TEXT_MODEL_FIELD_NUMBER: _ClassVar[int]
    IMAGE_MODEL_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_WIDTH_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    text_model: str
    image_model: str
    payload_width: int
    payload_bytes: int
    candidates: int
    def __init__(self, text_model: _Optional[str] = ..., image_model: _Optional[str] = ..., payload_width: _Optional[int] = ..., payload_bytes: _Optional[int] = ..., candidates: _Optional[int] = ...) -> None: ...

class RerankCandidate(_message.Message):
    __slots__ = ("payload", "title", "retrieval_score")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    title: str
    retrieval_score: float
    def __init__(self, payload: _Optional[bytes] = ..., title: _Optional[str] = ..., retrieval_score: _Optional[float] = ...) -> None: ...

class RerankRequest(_message.Message):
    __slots__ = ("model", "version", "query_text", "query_payload", "candidates", "text_weight", "image_weight")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    QUERY_TEXT_FIELD_NUMBER: _ClassVar[int]
    QUERY_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    TEXT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    query_text: str
    query_payload: bytes
    candidates: _containers.RepeatedCompositeFieldContainer[RerankCandidate]
    text_weight: float
    image_weight: float
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., query_text: _Optional[str] = ..., query_payload: _Optional[bytes] = ..., candidates: _Optional[_Iterable[_Union[RerankCandidate, _Mapping]]] = ..., text_weight: _Optional[float] = ..., image_weight: _Optional[float] = ...) -> None: ...

class RerankResponse(_message.Message):
    __slots__ = ("model", "version", "scores", "match_scores")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    MATCH_SCORES_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    scores: _containers.RepeatedScalarFieldContainer[float]
    match_scores: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., scores: _Optional[_Iterable[float]] = ..., match_scores: _Optional[_Iterable[float]] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class LoadModelRequest(_message.Message):
    __slots__ = ("model", "version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class LoadModelResponse(_message.Message):
    __slots__ = ("model_info", "already_loaded")
    MODEL_INFO_FIELD_NUMBER: _ClassVar[int]
    ALREADY_LOADED_FIELD_NUMBER: _ClassVar[int]
    model_info: ModelInfo
    already_loaded: bool
    def __init__(self, model_info: _Optional[_Union[ModelInfo, _Mapping]] = ..., already_loaded: _Optional[bool] = ...) -> None: ...

class UnloadModelRequest(_message.Message):
    __slots__ = ("model", "version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class UnloadModelResponse(_message.Message):
    __slots__ = ("unloaded_versions",)
    UNLOADED_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    unloaded_versions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, unloaded_versions: _Optional[_Iterable[int]] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("model", "version", "images", "beam", "max_tokens")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    BEAM_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    images: _containers.RepeatedScalarFieldContainer[bytes]
    beam: int
    max_tokens: int
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., images: _Optional[_Iterable[bytes]] = ..., beam: _Optional[int] = ..., max_tokens: _Optional[int] = ...) -> None: ...

class PredictedAttribute(_message.Message):
    __slots__ = ("name", "value", "confidence")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    confidence: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class Caption(_message.Message):
    __slots__ = ("title", "attributes", "mean_log_prob", "tokens")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    MEAN_LOG_PROB_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    title: str
    attributes: _containers.RepeatedCompositeFieldContainer[PredictedAttribute]
    mean_log_prob: float
    tokens: int
    def __init__(self, title: _Optional[str] = ..., attributes: _Optional[_Iterable[_Union[PredictedAttribute, _Mapping]]] = ..., mean_log_prob: _Optional[float] = ..., tokens: _Optional[int] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("model", "version", "captions")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CAPTIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    captions: _containers.RepeatedCompositeFieldContainer[Caption]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., captions: _Optional[_Iterable[_Union[Caption, _Mapping]]] = ...) -> None: ...
