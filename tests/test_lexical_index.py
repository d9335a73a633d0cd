"""The index service's lexical (BM25, tantivy) index on real servers: what shoppers type
(brands, model numbers, typos), filters, sharding, and durability through SIGKILL."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from index_service.client import IndexClient, _search_request
from index_service.config import IndexConfig
from index_service.lexical import analyze
from index_service.server import IndexServer
from tests.support.servers import ServerProcess, ServerThread
from vitrine.filters import all_of, eq
from vitrine.serving import errors

DIM = 16
BRANDS = ["Puma", "Nike", "Adidas", "Reebok", "Fila", "Casio", "Titan", "Fastrack"]
COLOURS = ["Red", "Navy Blue", "Black", "White", "Green"]
TYPES = ["Shirts", "Tshirts", "Sports Shoes", "Watches", "Backpacks"]
GENDERS = ["Men", "Women"]


def product(i: int) -> tuple[str, dict]:
    brand, colour = BRANDS[i % 8], COLOURS[(i // 8) % 5]
    kind, gender = TYPES[(i // 40) % 5], GENDERS[(i // 200) % 2]
    model = f"MX{1000 + i}A"  # a model number, unique per product
    title = f"{brand} {gender} {colour} {kind} {model}"
    attrs = {"brand": brand, "baseColour": colour, "articleType": kind, "gender": gender}
    return title, attrs


def text_of(i: int) -> str:
    title, attrs = product(i)
    return " ".join([title, *attrs.values()])


def fill(c: IndexClient, name: str, n: int, shards: int, batch: int = 100) -> None:
    rng = np.random.default_rng(0)
    c.create_collection(name, DIM, "ip", "Flat", shards)
    for s in range(0, n, batch):
        ids = [f"p{i}" for i in range(s, min(n, s + batch))]
        vecs = rng.standard_normal((len(ids), DIM)).astype(np.float32)
        attrs = [product(int(i[1:]))[1] for i in ids]
        c.upsert(name, ids, vecs, attrs, texts=[text_of(int(i[1:])) for i in ids])


@pytest.fixture()
def server(tmp_path):
    cfg = IndexConfig(data_dir=str(tmp_path / "data"), port=0, metrics_port=0, log_format="text")
    with ServerThread(IndexServer(cfg)) as s:
        yield s


def test_analysis_splits_case_punctuation_and_adds_trigrams():
    terms = analyze("MTP-1191A, Navy")
    assert terms[:3] == ["mtp", "1191a", "navy"]
    assert {"#mt", "mtp", "tp#", "#11", "91a", "1a#", "#na", "vy#"} <= set(terms)


@pytest.mark.parametrize("shards", [1, 3])
def test_brands_model_numbers_typos_and_filters(server, shards):
    with IndexClient(server.target) as c:
        fill(c, "shop", 400, shards)
        (brand,) = c.search_text("shop", ["puma"], k=10, include_attributes=True)
        assert len(brand) == 10 and all(h.attributes["brand"] == "Puma" for h in brand)
        assert all(h.score > 0 for h in brand)
        assert [h.score for h in brand] == sorted((h.score for h in brand), reverse=True)
        # "Puma Sports Shoes": the products that are both rank above the rest.
        both = c.search_text("shop", ["PUMA sports-shoes"], k=10, include_attributes=True)[0]
        assert all(
            h.attributes["brand"] == "Puma" and h.attributes["articleType"] == "Sports Shoes"
            for h in both
        )
        # A model number, whole or as a fragment, finds its product first.
        assert c.search_text("shop", ["MX1234A"], k=5)[0][0].id == "p234"
        assert c.search_text("shop", ["mx1234"], k=5)[0][0].id == "p234"
        # One letter dropped: the trigrams still find the brand.
        typo = c.search_text("shop", ["fastrak"], k=10, include_attributes=True)[0]
        assert all(h.attributes["brand"] == "Fastrack" for h in typo)
        # Filters apply as for vector search.
        flt = eq("gender", "Women")
        hits = c.search_text("shop", ["nike"], k=10, filter=flt, include_attributes=True)[0]
        assert len(hits) == 10
        assert all(
            h.attributes["brand"] == "Nike" and h.attributes["gender"] == "Women" for h in hits
        )
        # A filter that leaves only a few: all of them, nothing else.
        rare = all_of(eq("articleType", "Watches"), eq("brand", "Casio"), eq("gender", "Men"))
        want = set()
        for i in range(400):
            a = product(i)[1]
            if (a["articleType"], a["brand"], a["gender"]) == ("Watches", "Casio", "Men"):
                want.add(f"p{i}")
        got = c.search_text("shop", ["casio watch"], k=50, filter=rare)[0]
        assert {h.id for h in got} == want and want
        # Words nobody wrote: nothing (not an error).
        assert c.search_text("shop", ["zzzz"], k=10) == [[]]
        # Deletes and re-upserts without text leave the lexical index.
        c.delete("shop", ["p234"])
        assert all(h.id != "p234" for h in c.search_text("shop", ["MX1234A"], k=5)[0])
        vec = np.ones((1, DIM), dtype=np.float32)
        c.upsert("shop", ["p235"], vec, [product(235)[1]])
        assert all(h.id != "p235" for h in c.search_text("shop", ["MX1235A"], k=5)[0])
        assert c.stats("shop").lexical_documents == 398
        assert c.get("shop", ["p1", "p235"]).records[0].text == text_of(1)


def test_bad_lexical_requests_get_invalid_argument(server):
    with IndexClient(server.target) as c:
        fill(c, "shop", 20, 1)
        with pytest.raises(errors.InvalidArgument, match=r"text_queries\[1\]: empty"):
            c.search_text("shop", ["puma", "  "], k=5)
        both = _search_request("shop", np.ones((1, DIM)), 5, None, 0, 0, False, (), False, ["a"])
        with pytest.raises(errors.InvalidArgument, match="set one of them"):
            c._call("Search", both)
        with pytest.raises(errors.InvalidArgument, match=r"records\[0\]\.text"):
            c.upsert("shop", ["x"], np.ones((1, DIM), np.float32), texts=["w " * 20_000])


def test_lexical_index_survives_sigkill_and_restart(tmp_path):
    """Writers with texts, SIGKILL mid-stream, restart: every acknowledged record is found by
    its model number; then a graceful restart (snapshot) finds them again."""
    data = str(tmp_path / "data")
    proc = ServerProcess(["serve", "index", "--data-dir", data], tmp_path).start()
    acked: list[int] = []
    lock = threading.Lock()
    try:
        with IndexClient(proc.target) as c:
            c.create_collection("p", DIM, "ip", "Flat", 2)
            stop = threading.Event()
            rng = np.random.default_rng(0)

            def writer(w: int):
                b = 0
                while not stop.is_set():
                    nums = [100_000 * (w + 1) + 50 * b + i for i in range(50)]
                    try:
                        c.upsert(
                            "p",
                            [f"p{i}" for i in nums],
                            rng.standard_normal((50, DIM)).astype(np.float32),
                            texts=[text_of(i) for i in nums],
                            timeout=10,
                        )
                    except errors.VitrineError:
                        return
                    with lock:
                        acked.extend(nums)
                    b += 1

            threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
            for t in threads:
                t.start()
            time.sleep(1.5)
            proc.kill()
            stop.set()
            for t in threads:
                t.join(30)
    finally:
        proc.kill()
    assert len(acked) > 100
    sample = np.random.default_rng(1).choice(acked, 40, replace=False)
    for _restart in range(2):  # after the crash (WAL replay), then after a graceful restart
        proc = ServerProcess(["serve", "index", "--data-dir", data], tmp_path).start()
        try:
            with IndexClient(proc.target) as c:
                assert c.stats("p").lexical_documents == c.count("p") >= len(acked)
                queries = [product(int(i))[0].split()[-1] for i in sample]
                tops = c.search_text("p", queries, k=1)
                assert [h[0].id for h in tops] == [f"p{i}" for i in sample]
        finally:
            proc.terminate()
            assert proc.wait(30) == 0
