from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tensor(_message.Message):
    __slots__ = ("data", "shape")
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, data: _Optional[bytes] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class StringList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class AttributeValue(_message.Message):
    __slots__ = ("string_value", "double_value", "bool_value", "list_value")
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    LIST_VALUE_FIELD_NUMBER: _ClassVar[int]
    string_value: str
    double_value: float
    bool_value: bool
    list_value: StringList
    def __init__(self, string_value: _Optional[str] = ..., double_value: _Optional[float] = ..., bool_value: _Optional[bool] = ..., list_value: _Optional[_Union[StringList, _Mapping]] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("equals", "is_in", "range", "all_of", "any_of", "negation")
    class Equals(_message.Message):
        __slots__ = ("field", "value")
        FIELD_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        field: str
        value: AttributeValue
        def __init__(self, field: _Optional[str] = ..., value: _Optional[_Union[AttributeValue, _Mapping]] = ...) -> None: ...
    class In(_message.Message):
        __slots__ = ("field", "values")
        FIELD_FIELD_NUMBER: _ClassVar[int]
        VALUES_FIELD_NUMBER: _ClassVar[int]
        field: str
        values: _containers.RepeatedCompositeFieldContainer[AttributeValue]
        def __init__(self, field: _Optional[str] = ..., values: _Optional[_Iterable[_Union[AttributeValue, _Mapping]]] = ...) -> None: ...
    class Range(_message.Message):
        __slots__ = ("field", "gte", "gt", "lte", "lt")
        FIELD_FIELD_NUMBER: _ClassVar[int]
        GTE_FIELD_NUMBER: _ClassVar[int]
        GT_FIELD_NUMBER: _ClassVar[int]
        LTE_FIELD_NUMBER: _ClassVar[int]
        LT_FIELD_NUMBER: _ClassVar[int]
        field: str
        gte: float
        gt: float
        lte: float
        lt: float
        def __init__(self, field: _Optional[str] = ..., gte: _Optional[float] = ..., gt: _Optional[float] = ..., lte: _Optional[float] = ..., lt: _Optional[float] = ...) -> None: ...
    class And(_message.Message):
        __slots__ = ("filters",)
        FILTERS_FIELD_NUMBER: _ClassVar[int]
        filters: _containers.RepeatedCompositeFieldContainer[Filter]
        def __init__(self, filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ...) -> None: ...
    class Or(_message.Message):
        __slots__ = ("filters",)
        FILTERS_FIELD_NUMBER: _ClassVar[int]
        filters: _containers.RepeatedCompositeFieldContainer[Filter]
        def __init__(self, filters: _Optional[_Iterable[_Union[Filter, _Mapping]]] = ...) -> None: ...
    class Not(_message.Message):
        __slots__ = ("filter",)
        FILTER_FIELD_NUMBER: _ClassVar[int]
        filter: Filter
        def __init__(self, filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...
    EQUALS_FIELD_NUMBER: _ClassVar[int]
    IS_IN_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    ALL_OF_FIELD_NUMBER: _ClassVar[int]
    ANY_OF_FIELD_NUMBER: _ClassVar[int]
    NEGATION_FIELD_NUMBER: _ClassVar[int]
    equals: Filter.Equals
    is_in: Filter.In
    range: Filter.Range
    all_of: Filter.And
    any_of: Filter.Or
    negation: Filter.Not
    def __init__(self, equals: _Optional[_Union[Filter.Equals, _Mapping]] = ..., is_in: _Optional[_Union[Filter.In, _Mapping]] = ..., range: _Optional[_Union[Filter.Range, _Mapping]] = ..., all_of: _Optional[_Union[Filter.And, _Mapping]] = ..., any_of: _Optional[_Union[Filter.Or, _Mapping]] = ..., negation: _Optional[_Union[Filter.Not, _Mapping]] = ...) -> None: ...

class FacetValue(_message.Message):
    __slots__ = ("value", "count")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    value: AttributeValue
    count: int
    def __init__(self, value: _Optional[_Union[AttributeValue, _Mapping]] = ..., count: _Optional[int] = ...) -> None: ...

class NumericFacet(_message.Message):
    __slots__ = ("min", "max", "count")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    min: float
    max: float
    count: int
    def __init__(self, min: _Optional[float] = ..., max: _Optional[float] = ..., count: _Optional[int] = ...) -> None: ...

class Facet(_message.Message):
    __slots__ = ("field", "values", "truncated", "numbers")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    NUMBERS_FIELD_NUMBER: _ClassVar[int]
    field: str
    values: _containers.RepeatedCompositeFieldContainer[FacetValue]
    truncated: bool
    numbers: NumericFacet
    def __init__(self, field: _Optional[str] = ..., values: _Optional[_Iterable[_Union[FacetValue, _Mapping]]] = ..., truncated: _Optional[bool] = ..., numbers: _Optional[_Union[NumericFacet, _Mapping]] = ...) -> None: ...
