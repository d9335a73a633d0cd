"""Build ``vitrine.v1.Filter`` expressions in Python.

from vitrine.filters import eq, is_in, between, all_of, not_
f = all_of(eq("gender", "Men"), is_in("baseColour", ["Navy Blue", "Blue"]), between("price", lte=50))
"""

from __future__ import annotations

from collections.abc import Iterable

from vitrine.v1 import common_pb2

Scalar = str | float | int | bool


def value(v: Scalar | list[str]) -> common_pb2.AttributeValue:
    if isinstance(v, bool):
        return common_pb2.AttributeValue(bool_value=v)
    if isinstance(v, str):
        return common_pb2.AttributeValue(string_value=v)
    if isinstance(v, int | float):
        return common_pb2.AttributeValue(double_value=float(v))
    return common_pb2.AttributeValue(list_value=common_pb2.StringList(values=list(v)))


def eq(field: str, v: Scalar) -> common_pb2.Filter:
    return common_pb2.Filter(equals=common_pb2.Filter.Equals(field=field, value=value(v)))


def is_in(field: str, values: Iterable[Scalar]) -> common_pb2.Filter:
    return common_pb2.Filter(
        is_in=common_pb2.Filter.In(field=field, values=[value(v) for v in values])
    )


def between(
    field: str,
    *,
    gte: float | None = None,
    gt: float | None = None,
    lte: float | None = None,
    lt: float | None = None,
) -> common_pb2.Filter:
    bounds = {
        k: v for k, v in (("gte", gte), ("gt", gt), ("lte", lte), ("lt", lt)) if v is not None
    }
    return common_pb2.Filter(range=common_pb2.Filter.Range(field=field, **bounds))


def all_of(*filters: common_pb2.Filter) -> common_pb2.Filter:
    return common_pb2.Filter(all_of=common_pb2.Filter.And(filters=list(filters)))


def any_of(*filters: common_pb2.Filter) -> common_pb2.Filter:
    return common_pb2.Filter(any_of=common_pb2.Filter.Or(filters=list(filters)))


def not_(f: common_pb2.Filter) -> common_pb2.Filter:
    return common_pb2.Filter(negation=common_pb2.Filter.Not(filter=f))
