"""Facets (attribute value counts) of the index service and their merge over index processes."""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pytest

from index_service.client import IndexClient
from index_service.fanout import IndexFanout
from index_service.server import IndexServer
from tests.support.servers import ServerThread
from tests.test_index_service import DIM, _config, attrs_for, clustered, two_processes
from vitrine.filters import between, eq
from vitrine.serving import errors

N = 600


def expected(attrs: list[dict], field: str) -> Counter:
    out: Counter = Counter()
    for a in attrs:
        v = a.get(field)
        if isinstance(v, list):
            out.update(set(v))
        elif isinstance(v, bool):
            out[("b", v)] += 1
        elif isinstance(v, str):
            out[v] += 1
    return out


def got(facet) -> dict:
    out = {}
    for fv in facet.values:
        v = fv.value
        out[("b", v.bool_value) if v.HasField("bool_value") else v.string_value] = fv.count
    return out


def by_field(resp) -> dict:
    return {f.field: f for f in resp.facets}


@pytest.fixture()
def loaded(tmp_path):
    """One index process, 3 shards, N records; then overwrites and deletes (which must not count)."""
    x = clustered(N)
    with ServerThread(IndexServer(_config(tmp_path))) as s, IndexClient(s.target) as c:
        c.create_collection("p", DIM, "ip", "Flat", 3)
        attrs = {f"sku-{i}": attrs_for(i) for i in range(N)}
        c.upsert("p", list(attrs), x, list(attrs.values()))
        # overwrite 50 with other values, delete 30: live records only are counted
        for i in range(50):
            attrs[f"sku-{i}"] = {**attrs_for(i), "colour": "purple", "price": 1000.0}
        c.upsert(
            "p", [f"sku-{i}" for i in range(50)], x[:50], [attrs[f"sku-{i}"] for i in range(50)]
        )
        gone = [f"sku-{i}" for i in range(100, 130)]
        c.delete("p", gone)
        for rid in gone:
            del attrs[rid]
        yield c, attrs


def test_counts_are_exact_over_live_records(loaded):
    c, attrs = loaded
    resp = c.facets("p", limit=100)
    assert resp.matched == len(attrs) == N - 30
    f = by_field(resp)
    assert set(f) == {"colour", "price", "in_stock", "tags", "cat"}
    rows = list(attrs.values())
    for field in ("colour", "in_stock", "tags", "cat"):
        assert got(f[field]) == dict(expected(rows, field)), field
        assert not f[field].truncated
    counts = [v.count for v in f["colour"].values]
    assert counts == sorted(counts, reverse=True) and got(f["colour"])["purple"] == 50
    prices = [a["price"] for a in rows]
    nums = f["price"].numbers
    assert (nums.min, nums.max, nums.count) == (min(prices), max(prices), len(prices))
    assert not f["colour"].HasField("numbers") and not f["price"].values


def test_filter_limit_and_fields(loaded):
    c, attrs = loaded
    flt = eq("colour", "red")
    resp = c.facets("p", fields=["cat", "price"], limit=3, filter=flt)
    red = [a for a in attrs.values() if a["colour"] == "red"]
    assert resp.matched == len(red)
    f = by_field(resp)
    assert set(f) == {"cat", "price"}
    want = expected(red, "cat")
    top = sorted(want.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert [(v.value.string_value, v.count) for v in f["cat"].values] == top
    assert f["cat"].truncated == (len(want) > 3)
    ranged = c.facets("p", fields=["colour"], filter=between("price", gte=1000))
    assert got(by_field(ranged)["colour"]) == {"purple": 50}
    assert c.facets("p", fields=["no_such_field"]).facets[0].values == []


def test_new_records_count_and_filter_after_a_cached_query(loaded):
    """A filter or facet evaluated once must see records added later (postings caches)."""
    c, _ = loaded
    before = c.facets("p", fields=["colour"], filter=eq("colour", "teal")).matched
    hits = c.search("p", clustered(1, seed=9), k=5, filter=eq("colour", "teal"))
    assert before == 0 and hits == [[]]
    c.upsert("p", ["new-1", "new-2"], clustered(2, seed=5), [{"colour": "teal"}] * 2)
    assert got(by_field(c.facets("p", fields=["colour"]))["colour"])["teal"] == 2
    hits = c.search("p", clustered(1, seed=9), k=5, filter=eq("colour", "teal"))
    assert sorted(h.id for h in hits[0]) == ["new-1", "new-2"]


def test_bad_requests_are_invalid_argument(loaded):
    c, _ = loaded
    with pytest.raises(errors.InvalidArgument, match="limit"):
        c.facets("p", limit=-1)
    with pytest.raises(errors.InvalidArgument, match=r"fields\[1\]"):
        c.facets("p", fields=["colour", ""])
    with pytest.raises(errors.InvalidArgument, match="fields"):
        c.facets("p", fields=[f"f{i}" for i in range(101)])
    with pytest.raises(errors.NotFound):
        c.facets("nope")


def test_two_processes_sum_like_one(tmp_path):
    x = clustered(1000, seed=3)
    ids = [f"sku-{i}" for i in range(len(x))]
    attrs = [attrs_for(i) for i in range(len(x))]
    with two_processes(tmp_path) as (a, b):

        async def go():
            fan = IndexFanout([a.target, b.target])
            await fan.create_collection("p", DIM, "ip", "Flat", num_shards=4)
            await fan.upsert("p", ids, x, attrs)
            out = await fan.facets("p", limit=10)
            red = await fan.facets("p", ["tags"], 10, eq("colour", "red"))
            await fan.close()
            return out, red

        out, red = asyncio.run(go())
    assert out.matched == len(x) and not out.partial
    f = {facet.field: facet for facet in out.facets}
    want = expected(attrs, "cat")  # 50 values of 20 each: the top 10 by value on ties
    top = sorted(want.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert [(v.value.string_value, v.count) for v in f["cat"].values] == top
    assert f["cat"].truncated
    assert got(f["colour"]) == dict(expected(attrs, "colour"))
    prices = np.array([a["price"] for a in attrs])
    assert (f["price"].numbers.min, f["price"].numbers.max) == (prices.min(), prices.max())
    assert f["price"].numbers.count == len(x)
    reds = [a for a in attrs if a["colour"] == "red"]
    assert red.matched == len(reds)
    assert got(red.facets[0]) == dict(expected(reds, "tags"))
