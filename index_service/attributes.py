"""Record attributes: storage per internal label and filter evaluation to a boolean mask.

Attributes are ``str``, ``float`` (numbers), ``bool`` or ``list[str]``. For filtering, each shard
keeps inverted postings for strings, bools and list elements (value → labels) and a float column
per numeric field, so a filter over a shard evaluates with numpy to a mask of matching labels;
the mask then becomes a faiss ``IDSelectorBitmap`` (search inside the index) or, when it selects
few records, the subset for an exact search.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vitrine.filters import value as filter_value
from vitrine.serving.errors import InvalidArgument
from vitrine.v1 import common_pb2

Value = str | float | bool | list[str]


def value_from_pb(v: common_pb2.AttributeValue, where: str) -> Value:
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        return v.string_value
    if kind == "double_value":
        if not math.isfinite(v.double_value):
            raise InvalidArgument(f"{where}: number must be finite")
        return float(v.double_value)
    if kind == "bool_value":
        return bool(v.bool_value)
    if kind == "list_value":
        return list(v.list_value.values)
    raise InvalidArgument(f"{where}: attribute value has no kind set")


value_to_pb = filter_value  # one encoding of attribute values, shared with vitrine.filters


def attrs_from_pb(attrs, where: str) -> dict[str, Value]:
    return {k: value_from_pb(v, f"{where}.attributes[{k!r}]") for k, v in attrs.items()}


class PbAttributes(Mapping):
    """A search hit's attributes, read from its protobuf map only when asked for.

    A fan-out search merges several shards' top-k and drops most hits, and a gateway answer
    passes the kept ones' attributes straight on: converting every hit's map to Python and back
    was a measurable part of the gateway's own time. ``get`` reads one key without converting the
    rest; :func:`attrs_to_pb` hands the original map through untouched.
    """

    __slots__ = ("_dict", "pb")

    def __init__(self, pb):
        self.pb = pb
        self._dict: dict[str, Value] | None = None

    def _all(self) -> dict[str, Value]:
        if self._dict is None:
            self._dict = attrs_from_pb(self.pb, "hit")
        return self._dict

    def __getitem__(self, key: str) -> Value:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self.pb)

    def get(self, key: str, default=None):
        if self._dict is not None:
            return self._dict.get(key, default)
        if key not in self.pb:  # (indexing a protobuf map would insert the key)
            return default
        return value_from_pb(self.pb[key], f"hit.attributes[{key!r}]")

    def __repr__(self) -> str:
        return repr(self._all())


def attrs_to_pb(attrs: Mapping[str, Value]) -> Mapping[str, common_pb2.AttributeValue]:
    if isinstance(attrs, PbAttributes):
        return attrs.pb  # already protobuf: passed through, not re-encoded
    return {k: value_to_pb(v) for k, v in attrs.items()}


def _key(value: Value) -> tuple[str, Any]:
    return ("b", value) if isinstance(value, bool) else ("s", value)


class AttributeIndex:
    """Postings and numeric columns over labels ``0..capacity-1`` of one shard."""

    def __init__(self) -> None:
        self.postings: dict[str, dict[tuple, list[int]]] = defaultdict(lambda: defaultdict(list))
        self.numbers: dict[str, np.ndarray] = {}
        self.size = 0
        self._arrays: dict[tuple[str, tuple], np.ndarray] = {}  # postings as arrays, cached
        # Per field, every posting as (keys, labels, key number per label): facet counts are
        # then one bincount. Cached like _arrays; both are dropped for what add() changes.
        self._codes: dict[str, tuple[list[tuple], np.ndarray, np.ndarray]] = {}

    def _grow(self, size: int) -> None:
        for name, col in self.numbers.items():
            if len(col) < size:
                new = np.full(max(size, 2 * len(col)), np.nan)
                new[: len(col)] = col
                self.numbers[name] = new
        self.size = max(self.size, size)

    def add(self, label: int, attrs: dict[str, Value]) -> None:
        self._grow(label + 1)
        for name, value in attrs.items():
            if isinstance(value, (bool, str)):
                key = _key(value)
                self.postings[name][key].append(label)
                self._arrays.pop((name, key), None)
                self._codes.pop(name, None)
            elif isinstance(value, list):
                for item in set(value):
                    self.postings[name][("s", item)].append(label)
                    self._arrays.pop((name, ("s", item)), None)
                self._codes.pop(name, None)
            else:
                col = self.numbers.get(name)
                if col is None:
                    col = np.full(max(16, 2 * self.size), np.nan)
                    self.numbers[name] = col
                col[label] = value

    # -- filters ---------------------------------------------------------------------------
    def mask(self, flt: common_pb2.Filter | None, n: int, where: str = "filter") -> np.ndarray:
        """Labels ``0..n-1`` matching ``flt`` (tombstones are not considered here)."""
        if flt is None:
            return np.ones(n, dtype=bool)
        kind = flt.WhichOneof("expr")
        if kind is None:
            return np.ones(n, dtype=bool)
        if kind == "equals":
            return self._postings_mask(flt.equals.field, [flt.equals.value], n, f"{where}.equals")
        if kind == "is_in":
            return self._postings_mask(flt.is_in.field, list(flt.is_in.values), n, f"{where}.is_in")
        if kind == "range":
            return self._range_mask(flt.range, n, f"{where}.range")
        if kind == "all_of":
            out = np.ones(n, dtype=bool)
            for i, sub in enumerate(flt.all_of.filters):
                out &= self.mask(sub, n, f"{where}.all_of[{i}]")
            return out
        if kind == "any_of":
            out = np.zeros(n, dtype=bool)
            for i, sub in enumerate(flt.any_of.filters):
                out |= self.mask(sub, n, f"{where}.any_of[{i}]")
            return out
        if kind == "negation":
            if not flt.negation.HasField("filter"):
                raise InvalidArgument(f"{where}.negation: filter required")
            return ~self.mask(flt.negation.filter, n, f"{where}.negation")
        raise InvalidArgument(f"{where}: unknown filter kind {kind}")  # pragma: no cover

    def _postings_mask(self, field: str, values, n: int, where: str) -> np.ndarray:
        if not field:
            raise InvalidArgument(f"{where}.field: required")
        out = np.zeros(n, dtype=bool)
        for v in values:
            value = value_from_pb(v, f"{where}.value")
            if isinstance(value, list):
                raise InvalidArgument(f"{where}.value: a list cannot be compared; use is_in")
            if isinstance(value, float):
                col = self.numbers.get(field)
                if col is not None:
                    out |= col[:n] == value
                continue
            arr = self._labels(field, _key(value))
            if arr is not None:
                out[arr[arr < n]] = True
        return out

    def _labels(self, field: str, key: tuple) -> np.ndarray | None:
        arr = self._arrays.get((field, key))
        if arr is None:
            labels = self.postings.get(field, {}).get(key)
            if not labels:
                return None
            arr = self._arrays[(field, key)] = np.asarray(labels, dtype=np.int64)
        return arr

    # -- facets ----------------------------------------------------------------------------
    def fields(self) -> set[str]:
        return set(self.postings) | set(self.numbers)

    def value_counts(self, field: str, mask: np.ndarray) -> dict[tuple, int]:
        """How many labels selected by ``mask`` hold each string/bool value of ``field``."""
        codes = self._codes.get(field)
        if codes is None:
            postings = self.postings.get(field)
            if not postings:
                return {}
            keys = list(postings)
            sizes = [len(postings[k]) for k in keys]
            labels = np.fromiter(
                (x for k in keys for x in postings[k]), dtype=np.int64, count=sum(sizes)
            )
            codes = self._codes[field] = (keys, labels, np.repeat(np.arange(len(keys)), sizes))
        keys, labels, key_of = codes
        inside = labels < len(mask)
        chosen = key_of[inside][mask[labels[inside]]]
        counts = np.bincount(chosen, minlength=len(keys))
        return {keys[i]: int(counts[i]) for i in np.flatnonzero(counts)}

    def number_stats(self, field: str, mask: np.ndarray) -> tuple[float, float, int] | None:
        """(min, max, count) of numeric ``field`` over the labels ``mask`` selects."""
        col = self.numbers.get(field)
        if col is None:
            return None
        m = min(len(col), len(mask))
        vals = col[:m][mask[:m]]
        vals = vals[~np.isnan(vals)]
        if not len(vals):
            return None
        return float(vals.min()), float(vals.max()), len(vals)

    def _range_mask(self, r: common_pb2.Filter.Range, n: int, where: str) -> np.ndarray:
        if not r.field:
            raise InvalidArgument(f"{where}.field: required")
        bounds = [r.HasField(b) for b in ("gte", "gt", "lte", "lt")]
        if not any(bounds):
            raise InvalidArgument(f"{where}: at least one bound (gte, gt, lte, lt) required")
        for b in ("gte", "gt", "lte", "lt"):
            if r.HasField(b) and not math.isfinite(getattr(r, b)):
                raise InvalidArgument(f"{where}.{b}: must be finite")
        col = self.numbers.get(r.field)
        if col is None:
            return np.zeros(n, dtype=bool)
        vals = col[:n] if len(col) >= n else np.concatenate([col, np.full(n - len(col), np.nan)])
        with np.errstate(invalid="ignore"):
            out = ~np.isnan(vals)
            if r.HasField("gte"):
                out &= vals >= r.gte
            if r.HasField("gt"):
                out &= vals > r.gt
            if r.HasField("lte"):
                out &= vals <= r.lte
            if r.HasField("lt"):
                out &= vals < r.lt
        return out


DEFAULT_FACET_VALUES = 20  # values per attribute when a request says 0
MAX_FACET_FIELDS = 100


def check_facet_fields(fields) -> None:
    """INVALID_ARGUMENT for a facets request's ``fields`` that cannot be right."""
    if len(fields) > MAX_FACET_FIELDS:
        raise InvalidArgument(f"fields: more than {MAX_FACET_FIELDS}")
    for i, f in enumerate(fields):
        if not f:
            raise InvalidArgument(f"fields[{i}]: empty attribute name")


def facet_value(key: tuple) -> common_pb2.AttributeValue:
    """The AttributeValue of a postings key (``("s", str)`` or ``("b", bool)``)."""
    kind, v = key
    if kind == "b":
        return common_pb2.AttributeValue(bool_value=v)
    return common_pb2.AttributeValue(string_value=v)


def facet_key(value: common_pb2.AttributeValue) -> tuple:
    """The postings key of a facet's AttributeValue (the inverse of :func:`facet_value`)."""
    if value.HasField("bool_value"):
        return ("b", value.bool_value)
    return ("s", value.string_value)


@dataclass
class FacetCounts:
    """Value counts per attribute over some records: a shard's, a process's, or the sum of
    several (:meth:`add`)."""

    matched: int = 0
    values: dict[str, dict[tuple, int]] = field(default_factory=dict)
    numbers: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # min, max, count
    truncated: set[str] = field(default_factory=set)  # fields some part did not list in full

    def add(self, other: FacetCounts) -> None:
        """Sum ``other``'s counts into these."""
        self.matched += other.matched
        for name, counts in other.values.items():
            mine = self.values.setdefault(name, {})
            for key, c in counts.items():
                mine[key] = mine.get(key, 0) + c
        for name, (lo, hi, c) in other.numbers.items():
            old = self.numbers.get(name)
            self.numbers[name] = (
                (lo, hi, c) if old is None else (min(old[0], lo), max(old[1], hi), old[2] + c)
            )
        self.truncated |= other.truncated

    @classmethod
    def from_pb(cls, facets, matched: int) -> FacetCounts:
        """The counts an index process answered (its ``Facet`` messages)."""
        out = cls(matched=matched)
        for f in facets:
            out.values[f.field] = {facet_key(v.value): v.count for v in f.values}
            if f.HasField("numbers"):
                out.numbers[f.field] = (f.numbers.min, f.numbers.max, f.numbers.count)
            if f.truncated:
                out.truncated.add(f.field)
        return out

    def to_pb(self, limit: int) -> list[common_pb2.Facet]:
        """Facets by field name: the ``limit`` most frequent values of each (ties by value)."""
        out = []
        for name in sorted(set(self.values) | set(self.numbers)):
            counts = self.values.get(name, {})
            top = heapq.nsmallest(limit, counts.items(), key=lambda kv: (-kv[1], kv[0]))
            facet = common_pb2.Facet(
                field=name,
                values=[common_pb2.FacetValue(value=facet_value(k), count=c) for k, c in top],
                truncated=len(counts) > limit or name in self.truncated,
            )
            if name in self.numbers:
                lo, hi, c = self.numbers[name]
                facet.numbers.CopyFrom(common_pb2.NumericFacet(min=lo, max=hi, count=c))
            out.append(facet)
        return out
