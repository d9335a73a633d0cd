from vitrine.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RerankMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RERANK_MODE_UNSPECIFIED: _ClassVar[RerankMode]
    RERANK_MODE_ON: _ClassVar[RerankMode]
    RERANK_MODE_OFF: _ClassVar[RerankMode]

class RetrievalMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RETRIEVAL_MODE_UNSPECIFIED: _ClassVar[RetrievalMode]
    RETRIEVAL_MODE_VECTOR: _ClassVar[RetrievalMode]
    RETRIEVAL_MODE_LEXICAL: _ClassVar[RetrievalMode]
    RETRIEVAL_MODE_HYBRID: _ClassVar[RetrievalMode]

class ComposeMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPOSE_MODE_UNSPECIFIED: _ClassVar[ComposeMode]
    COMPOSE_MODE_WEIGHTED: _ClassVar[ComposeMode]
    COMPOSE_MODE_MODEL: _ClassVar[ComposeMode]
RERANK_MODE_UNSPECIFIED: RerankMode
RERANK_MODE_ON: RerankMode
RERANK_MODE_OFF: RerankMode
RETRIEVAL_MODE_UNSPECIFIED: RetrievalMode
RETRIEVAL_MODE_VECTOR: RetrievalMode
RETRIEVAL_MODE_LEXICAL: RetrievalMode
RETRIEVAL_MODE_HYBRID: RetrievalMode
COMPOSE_MODE_UNSPECIFIED: ComposeMode
COMPOSE_MODE_WEIGHTED: ComposeMode
COMPOSE_MODE_MODEL: ComposeMode

class CompositeWeights(_message.Message):
    __slots__ = ("text_weight", "image_weight")
    TEXT_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    text_weight: float
    image_weight: float
    def __init__(self, text_weight: _Optional[float] = ..., image_weight: _Optional[float] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("text", "image", "weights", "filter", "k", "page_size", "page_token", "include_attributes", "rerank", "rerank_candidates", "describe_query", "retrieval_mode", "compose_mode")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    RERANK_FIELD_NUMBER: _ClassVar[int]
    RERANK_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    DESCRIBE_QUERY_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_MODE_FIELD_NUMBER: _ClassVar[int]
    COMPOSE_MODE_FIELD_NUMBER: _ClassVar[int]
    text: str
    image: bytes
    weights: CompositeWeights
    filter: _common_pb2.Filter
    k: int
    page_size: int
    page_token: str
    include_attributes: bool
    rerank: RerankMode
    rerank_candidates: int
    describe_query: bool
    retrieval_mode: RetrievalMode
    compose_mode: ComposeMode
    def __init__(self, text: _Optional[str] = ..., image: _Optional[bytes] = ..., weights: _Optional[_Union[CompositeWeights, _Mapping]] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ..., k: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., include_attributes: _Optional[bool] = ..., rerank: _Optional[_Union[RerankMode, str]] = ..., rerank_candidates: _Optional[int] = ..., describe_query: _Optional[bool] = ..., retrieval_mode: _Optional[_Union[RetrievalMode, str]] = ..., compose_mode: _Optional[_Union[ComposeMode, str]] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("product_id", "score", "attributes", "caption", "retrieval_score", "lexical_score")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.AttributeValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.AttributeValue, _Mapping]] = ...) -> None: ...
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    LEXICAL_SCORE_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    score: float
    attributes: _containers.MessageMap[str, _common_pb2.AttributeValue]
    caption: str
    retrieval_score: float
    lexical_score: float
    def __init__(self, product_id: _Optional[str] = ..., score: _Optional[float] = ..., attributes: _Optional[_Mapping[str, _common_pb2.AttributeValue]] = ..., caption: _Optional[str] = ..., retrieval_score: _Optional[float] = ..., lexical_score: _Optional[float] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("stage", "seconds")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    seconds: float
    def __init__(self, stage: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results", "next_page_token", "partial", "stages_run", "timings", "reranked", "degraded_stages", "query_description", "retrieval_mode", "compose_mode")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    STAGES_RUN_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    RERANKED_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_STAGES_FIELD_NUMBER: _ClassVar[int]
    QUERY_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_MODE_FIELD_NUMBER: _ClassVar[int]
    COMPOSE_MODE_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[Result]
    next_page_token: str
    partial: bool
    stages_run: _containers.RepeatedScalarFieldContainer[str]
    timings: _containers.RepeatedCompositeFieldContainer[StageTiming]
    reranked: int
    degraded_stages: _containers.RepeatedScalarFieldContainer[str]
    query_description: Description
    retrieval_mode: RetrievalMode
    compose_mode: ComposeMode
    def __init__(self, results: _Optional[_Iterable[_Union[Result, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., partial: _Optional[bool] = ..., stages_run: _Optional[_Iterable[str]] = ..., timings: _Optional[_Iterable[_Union[StageTiming, _Mapping]]] = ..., reranked: _Optional[int] = ..., degraded_stages: _Optional[_Iterable[str]] = ..., query_description: _Optional[_Union[Description, _Mapping]] = ..., retrieval_mode: _Optional[_Union[RetrievalMode, str]] = ..., compose_mode: _Optional[_Union[ComposeMode, str]] = ...) -> None: ...

class Description(_message.Message):
    __slots__ = ("title", "attributes", "model")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    title: str
    attributes: _containers.RepeatedCompositeFieldContainer[AttributeGuess]
    model: str
    def __init__(self, title: _Optional[str] = ..., attributes: _Optional[_Iterable[_Union[AttributeGuess, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class AttributeGuess(_message.Message):
    __slots__ = ("name", "value", "confidence")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    confidence: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ("image", "beam")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    BEAM_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    beam: int
    def __init__(self, image: _Optional[bytes] = ..., beam: _Optional[int] = ...) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("description",)
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    description: Description
    def __init__(self, description: _Optional[_Union[Description, _Mapping]] = ...) -> None: ...

class Product(_message.Message):
    __slots__ = ("id", "title", "attributes", "image")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.AttributeValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.AttributeValue, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    attributes: _containers.MessageMap[str, _common_pb2.AttributeValue]
    image: bytes
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., attributes: _Optional[_Mapping[str, _common_pb2.AttributeValue]] = ..., image: _Optional[bytes] = ...) -> None: ...

class ItemStatus(_message.Message):
    __slots__ = ("id", "code", "message")
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    id: str
    code: int
    message: str
    def __init__(self, id: _Optional[str] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class UpsertProductsRequest(_message.Message):
    __slots__ = ("products", "fill_missing")
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    FILL_MISSING_FIELD_NUMBER: _ClassVar[int]
    products: _containers.RepeatedCompositeFieldContainer[Product]
    fill_missing: bool
    def __init__(self, products: _Optional[_Iterable[_Union[Product, _Mapping]]] = ..., fill_missing: _Optional[bool] = ...) -> None: ...

class UpsertProductsResponse(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedCompositeFieldContainer[ItemStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[ItemStatus, _Mapping]]] = ...) -> None: ...

class IngestProductsRequest(_message.Message):
    __slots__ = ("products", "fill_missing")
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    FILL_MISSING_FIELD_NUMBER: _ClassVar[int]
    products: _containers.RepeatedCompositeFieldContainer[Product]
    fill_missing: bool
    def __init__(self, products: _Optional[_Iterable[_Union[Product, _Mapping]]] = ..., fill_missing: _Optional[bool] = ...) -> None: ...

class IngestProductsResponse(_message.Message):
    __slots__ = ("received", "succeeded", "failed", "failures")
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    received: int
    succeeded: int
    failed: int
    failures: _containers.RepeatedCompositeFieldContainer[ItemStatus]
    def __init__(self, received: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., failures: _Optional[_Iterable[_Union[ItemStatus, _Mapping]]] = ...) -> None: ...

class DeleteProductsRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteProductsResponse(_message.Message):
    __slots__ = ("statuses",)
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    statuses: _containers.RepeatedCompositeFieldContainer[ItemStatus]
    def __init__(self, statuses: _Optional[_Iterable[_Union[ItemStatus, _Mapping]]] = ...) -> None: ...

class GetFacetsRequest(_message.Message):
    __slots__ = ("fields", "limit", "filter")
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    filter: _common_pb2.Filter
    def __init__(self, fields: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ..., filter: _Optional[_Union[_common_pb2.Filter, _Mapping]] = ...) -> None: ...

class GetFacetsResponse(_message.Message):
    __slots__ = ("facets", "matched", "partial")
    FACETS_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    facets: _containers.RepeatedCompositeFieldContainer[_common_pb2.Facet]
    matched: int
    partial: bool
    def __init__(self, facets: _Optional[_Iterable[_Union[_common_pb2.Facet, _Mapping]]] = ..., matched: _Optional[int] = ..., partial: _Optional[bool] = ...) -> None: ...
