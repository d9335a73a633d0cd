"""The index service against real gRPC servers on 127.0.0.1 port 0 with real faiss."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
from contextlib import contextmanager

import faiss
import numpy as np
import pytest

from index_service.client import IndexClient
from index_service.config import IndexConfig
from index_service.fanout import IndexFanout
from index_service.server import IndexServer
from tests.support.servers import ServerProcess, ServerThread, scrape
from vitrine.filters import all_of, any_of, between, eq, is_in, not_
from vitrine.serving import errors
from vitrine.v1 import common_pb2, index_pb2

DIM = 32
COLOURS = ["red", "blue", "green", "black", "white"]


def clustered(n: int, dim: int = DIM, seed: int = 0, clusters: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.3 * rng.standard_normal((n, dim)).astype(
        np.float32
    )
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def attrs_for(i: int) -> dict:
    return {
        "colour": COLOURS[i % 5],
        "price": float(i % 100),
        "in_stock": i % 3 != 0,
        "tags": ["sale"] if i % 7 == 0 else ["new", "summer"] if i % 7 == 1 else [],
        "cat": f"c{i % 50}",
    }


def _config(tmp_path, **kw) -> IndexConfig:
    base = dict(
        data_dir=str(tmp_path / "data"), port=0, metrics_port=0, log_format="text", search_threads=4
    )
    base.update(kw)
    return IndexConfig(**base)


@contextmanager
def two_processes(tmp_path):
    """Two index servers, each with its own data directory (a/, b/)."""
    with (
        ServerThread(IndexServer(_config(tmp_path / "a"))) as a,
        ServerThread(IndexServer(_config(tmp_path / "b"))) as b,
    ):
        yield a, b


@pytest.fixture()
def server(tmp_path):
    with ServerThread(IndexServer(_config(tmp_path))) as s:
        yield s


@pytest.fixture()
def client(server):
    with IndexClient(server.target) as c:
        yield c


def load(client, name, n, spec="Flat", shards=1, batch=500, metric="ip", seed=0):
    x = clustered(n, seed=seed)
    client.create_collection(name, DIM, metric, spec, shards)
    for start in range(0, n, batch):
        ids = [f"sku-{i}" for i in range(start, min(n, start + batch))]
        client.upsert(
            name,
            ids,
            x[start : start + len(ids)],
            [attrs_for(i) for i in range(start, start + len(ids))],
        )
    return x


def exact(x, q, k, mask=None, metric="ip"):
    idx = faiss.IndexFlatIP(DIM) if metric == "ip" else faiss.IndexFlatL2(DIM)
    labels = np.arange(len(x)) if mask is None else np.flatnonzero(mask)
    idx.add(x[labels])
    d, i = idx.search(q, k)
    return d, np.where(i >= 0, labels[np.maximum(i, 0)], -1)


@pytest.mark.parametrize("shards", [1, 2, 4])
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_flat_results_identical_to_in_process_faiss(client, shards, metric):
    x = load(client, "p", 3000, shards=shards, metric=metric)
    q = clustered(25, seed=9)
    d, i = exact(x, q, 10, metric=metric)
    hits = client.search("p", q, k=10)
    for row, (dr, ir) in enumerate(zip(d, i, strict=True)):
        assert [h.id for h in hits[row]] == [f"sku-{j}" for j in ir]
        assert np.allclose([h.score for h in hits[row]], dr, atol=1e-5)
    info = client.describe("p")
    assert (
        info.count == 3000
        and info.num_shards == shards
        and list(info.local_shards) == list(range(shards))
    )
    stats = client.stats("p")
    assert [s.num_vectors for s in stats.shards] and sum(
        s.num_vectors for s in stats.shards
    ) == 3000
    # Flat shards hold each vector once (the scan runs on the shard's own array, no IndexFlat copy).
    assert 3000 * DIM * 4 <= stats.total_memory_bytes < 2 * 3000 * DIM * 4


def test_two_processes_with_half_the_shards_merge_like_one(tmp_path):
    x = clustered(2000, seed=3)
    q = clustered(20, seed=4)
    ids = [f"sku-{i}" for i in range(len(x))]
    attrs = [attrs_for(i) for i in range(len(x))]
    with two_processes(tmp_path) as (a, b):

        async def go():
            fan = IndexFanout([a.target, b.target])
            await fan.create_collection("p", DIM, "ip", "Flat", num_shards=4)
            for s in range(0, len(x), 400):
                await fan.upsert("p", ids[s : s + 400], x[s : s + 400], attrs[s : s + 400])
            res = await fan.search("p", q, k=10)
            filtered = await fan.search("p", q, k=10, filter=eq("colour", "red"))
            await fan.close()
            return res, filtered

        res, filtered = asyncio.run(go())
        with IndexClient(a.target) as ca, IndexClient(b.target) as cb:
            assert list(ca.describe("p").local_shards) == [0, 1]
            assert list(cb.describe("p").local_shards) == [2, 3]
            assert (
                ca.count("p") + cb.count("p") == len(x) and ca.count("p") > 0 and cb.count("p") > 0
            )
    assert not res.partial
    d, i = exact(x, q, 10)
    for row in range(len(q)):
        assert [h.id for h in res.hits[row]] == [f"sku-{j}" for j in i[row]]
        assert np.allclose([h.score for h in res.hits[row]], d[row], atol=1e-5)
    red = np.array([attrs_for(j)["colour"] == "red" for j in range(len(x))])
    d, i = exact(x, q, 10, red)
    assert [[h.id for h in r] for r in filtered.hits] == [[f"sku-{j}" for j in row] for row in i]


def _mask(n, pred):
    return np.array([pred(attrs_for(i)) for i in range(n)])


FILTERS = [
    (eq("colour", "blue"), lambda a: a["colour"] == "blue"),
    (is_in("colour", ["red", "green"]), lambda a: a["colour"] in ("red", "green")),
    (between("price", gte=10, lt=20), lambda a: 10 <= a["price"] < 20),
    (eq("in_stock", False), lambda a: not a["in_stock"]),
    (eq("tags", "summer"), lambda a: "summer" in a["tags"]),
    (eq("price", 42), lambda a: a["price"] == 42),
    (
        all_of(eq("colour", "black"), not_(between("price", lte=50))),
        lambda a: a["colour"] == "black" and not a["price"] <= 50,
    ),
    (
        any_of(eq("cat", "c7"), all_of(is_in("tags", ["sale"]), eq("in_stock", True))),
        lambda a: a["cat"] == "c7" or ("sale" in a["tags"] and a["in_stock"]),
    ),
    (eq("missing_field", "x"), lambda a: False),
    (common_pb2.Filter(), lambda a: True),
]


@pytest.mark.parametrize(("flt", "pred"), FILTERS)
def test_filters_match_exact_filtered_search(client, flt, pred):
    x = load(client, "p", 3000, shards=2)
    q = clustered(10, seed=5)
    mask = _mask(len(x), pred)
    hits = client.search("p", q, k=10, filter=flt, include_attributes=True)
    if not mask.any():
        assert all(h == [] for h in hits)
        return
    _, i = exact(x, q, 10, mask)
    for row in range(len(q)):
        assert [h.id for h in hits[row]] == [f"sku-{j}" for j in i[row] if j >= 0]
        assert all(pred(h.attributes) for h in hits[row])


def test_filtered_hnsw_keeps_its_recall(tmp_path):
    cfg = _config(tmp_path, exact_max=100)  # force the in-index (selector) path for most filters
    with ServerThread(IndexServer(cfg)) as s, IndexClient(s.target) as c:
        x = load(c, "h", 5000, spec="HNSW32", shards=2)
        q = clustered(50, seed=6)
        for flt, pred in FILTERS[:4]:
            mask = _mask(len(x), pred)
            _, truth = exact(x, q, 10, mask)
            hits = c.search("h", q, k=10, filter=flt, ef_search=256)
            recall = np.mean(
                [
                    len({h.id for h in hits[r]} & {f"sku-{j}" for j in truth[r]}) / 10
                    for r in range(len(q))
                ]
            )
            assert recall >= 0.95, (flt, recall)


def test_upsert_replaces_delete_get_count(client):
    x = load(client, "p", 1000, shards=3)
    new = clustered(1, seed=77)
    client.upsert("p", ["sku-5"], new, [{"colour": "purple"}])
    assert client.count("p") == 1000
    got = client.get("p", ["sku-5", "nope"], include_vectors=True)
    assert [r.id for r in got.records] == ["sku-5"] and list(got.missing_ids) == ["nope"]
    assert np.array_equal(np.frombuffer(got.records[0].vector, "<f4"), new[0])
    assert got.records[0].attributes["colour"].string_value == "purple"
    top = client.search("p", new, k=1)[0][0]
    assert top.id == "sku-5" and top.score == pytest.approx(1.0, abs=1e-5)
    assert client.search("p", x[7], k=10, filter=eq("colour", "purple"))[0][0].id == "sku-5"
    assert client.delete("p", ["sku-5", "sku-6", "ghost"]) == 2
    assert client.count("p") == 998
    ids = {h.id for h in client.search("p", np.vstack([new, x[6]]), k=50)[0]}
    assert "sku-5" not in ids and "sku-6" not in ids
    assert client.get("p", ["sku-6"]).missing_ids == ["sku-6"]


def test_hnsw_tombstones_and_background_compaction(tmp_path):
    cfg = _config(tmp_path, compact_ratio=0.2)
    with ServerThread(IndexServer(cfg)) as s, IndexClient(s.target) as c:
        x = load(c, "h", 4000, spec="HNSW32", shards=1)
        q = clustered(20, seed=8)
        stop = threading.Event()
        all_deleted = threading.Event()
        errors_seen: list[Exception] = []
        checked = [0]

        def searching():
            while not stop.is_set():
                after = all_deleted.is_set()
                try:
                    results = c.search("h", q, k=10)
                    if not after:
                        continue
                    checked[0] += 1
                    for hits in results:
                        assert all(
                            int(h.id.split("-")[1]) % 2 == 1 or int(h.id.split("-")[1]) >= 3000
                            for h in hits
                        )
                except Exception as exc:
                    errors_seen.append(exc)

        deleted = [f"sku-{i}" for i in range(0, 3000, 2)]
        t = threading.Thread(target=searching)
        t.start()
        try:
            c.delete("h", deleted[:500])
            c.delete("h", deleted[500:])  # 1500 tombstones of 4000 labels > 20%: rebuild
            all_deleted.set()
            deadline = time.monotonic() + 60
            while c.stats("h").shards[0].rebuilds < 1:
                assert time.monotonic() < deadline, "no compaction happened"
                time.sleep(0.05)
        finally:
            stop.set()
            t.join()
        assert not errors_seen, errors_seen[:1]
        assert checked[0] > 0
        st = c.stats("h").shards[0]
        assert st.tombstones == 0 and st.num_vectors == 2500
        live = np.ones(len(x), bool)
        live[0:3000:2] = False
        _, truth = exact(x, q, 10, live)
        hits = c.search("h", q, k=10, ef_search=512)
        recall = np.mean(
            [
                len({h.id for h in hits[r]} & {f"sku-{j}" for j in truth[r]}) / 10
                for r in range(len(q))
            ]
        )
        assert recall >= 0.95


def test_ivf_answers_exactly_until_trained_then_trains(client):
    client.create_collection("ivf", DIM, "ip", "IVF16,Flat", 1)
    x = clustered(1200, seed=2)
    client.upsert("ivf", [f"a{i}" for i in range(300)], x[:300])
    assert not client.stats("ivf").shards[0].trained
    _, i = exact(x[:300], x[:5], 5)
    assert [[h.id for h in r] for r in client.search("ivf", x[:5], k=5)] == [
        [f"a{j}" for j in row] for row in i
    ]
    client.upsert("ivf", [f"a{i}" for i in range(300, 1200)], x[300:])
    deadline = time.monotonic() + 30
    while not client.stats("ivf").shards[0].trained:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    hits = client.search("ivf", x[:5], k=1, nprobe=16)
    assert [h[0].id for h in hits] == [f"a{j}" for j in range(5)]


def test_bad_input_gets_clear_status(client):
    client.create_collection("p", DIM, "ip", "Flat", 2, local_shards=[0])
    with pytest.raises(errors.AlreadyExists):
        client.create_collection("p", DIM)
    with pytest.raises(errors.InvalidArgument, match="index_spec"):
        client.create_collection("q", DIM, index_spec="NotAnIndex99")
    with pytest.raises(errors.InvalidArgument, match="name"):
        client.create_collection("Bad Name!", DIM)
    with pytest.raises(errors.InvalidArgument, match="dim"):
        client.create_collection("q", 0)
    with pytest.raises(errors.NotFound, match="nope"):
        client.search("nope", np.zeros(DIM), k=1)
    from index_service.collection import shard_of

    local_id = next(f"x{i}" for i in range(100) if shard_of(f"x{i}", 2) == 0)
    remote_id = next(f"x{i}" for i in range(100) if shard_of(f"x{i}", 2) == 1)
    with pytest.raises(
        errors.InvalidArgument, match=r"records\[0\].vector: 64 bytes, expected 128"
    ):
        client.upsert("p", [local_id], np.zeros((1, 16), np.float32))
    bad = np.zeros((2, DIM), np.float32)
    bad[1, 3] = np.nan
    with pytest.raises(errors.InvalidArgument, match=r"records\[1\].vector: contains NaN"):
        client.upsert("p", [local_id, local_id], bad)
    with pytest.raises(errors.FailedPrecondition, match="shard 1"):
        client.upsert("p", [remote_id], np.ones((1, DIM), np.float32))
    client.upsert("p", [local_id], np.ones((1, DIM), np.float32))
    with pytest.raises(errors.InvalidArgument, match="queries: shape"):
        client.search("p", np.zeros((1, 8)), k=1)
    with pytest.raises(errors.InvalidArgument, match="NaN"):
        client.search("p", np.full(DIM, np.inf), k=1)
    with pytest.raises(errors.InvalidArgument, match="k: 0"):
        client.search("p", np.zeros(DIM), k=0)
    no_bounds = common_pb2.Filter(range=common_pb2.Filter.Range(field="price"))
    with pytest.raises(errors.InvalidArgument, match=r"filter\.range: at least one bound"):
        client.search("p", np.zeros(DIM), k=1, filter=no_bounds)
    with pytest.raises(errors.InvalidArgument, match=r"filter.all_of\[1\].equals.field: required"):
        client.search("p", np.zeros(DIM), k=1, filter=all_of(eq("a", "b"), eq("", "x")))
    unset = common_pb2.Filter(equals=common_pb2.Filter.Equals(field="a"))
    with pytest.raises(errors.InvalidArgument, match="no kind set"):
        client.search("p", np.zeros(DIM), k=1, filter=unset)
    assert client.drop("p") and not client.drop("p")


def test_restart_recovers_from_snapshot_and_wal(tmp_path):
    cfg = _config(tmp_path, snapshot_wal_mb=1)
    with ServerThread(IndexServer(cfg)) as s, IndexClient(s.target) as c:
        x = load(c, "p", 6000, shards=2, batch=1000)  # > 1 MiB of WAL: at least one snapshot
        c.delete("p", ["sku-1", "sku-2"])
        c.upsert("p", ["sku-3"], x[:1], [{"colour": "gold"}])
        assert c.stats("p").snapshot_seq > 0
    data = tmp_path / "data" / "p"
    assert list(data.glob("snapshot-*")) and list(data.glob("wal-*.log"))
    with ServerThread(IndexServer(cfg)) as s, IndexClient(s.target) as c:
        assert c.count("p") == 5998
        assert c.get("p", ["sku-1"]).missing_ids == ["sku-1"]
        assert c.get("p", ["sku-3"]).records[0].attributes["colour"].string_value == "gold"
        q = clustered(5, seed=11)
        live = np.ones(6000, bool)
        live[[1, 2, 3]] = False
        _, i = exact(x, q, 10, live)
        hits = c.search("p", q, k=10)
        for r in range(5):
            want = [f"sku-{j}" for j in i[r]]
            got = [h.id for h in hits[r] if h.id != "sku-3"]
            assert got == want[: len(got)]
        assert c.stats("p").recovery_seconds > 0


def payload_for(rid: str, size: int = 1024) -> bytes:
    """Deterministic bytes of one record's payload (as a reranker's region tokens would be)."""
    return np.random.default_rng(abs(hash(rid)) % 2**32).bytes(size)


def test_payloads_stored_on_disk_and_returned_with_hits(tmp_path):
    cfg = _config(tmp_path, snapshot_wal_mb=1, max_payload_bytes=4096)
    x = clustered(3000)
    ids = [f"sku-{i}" for i in range(3000)]
    payloads = [payload_for(i) if n % 10 else b"" for n, i in enumerate(ids)]  # 10% have none
    with ServerThread(IndexServer(cfg)) as s, IndexClient(s.target) as c:
        c.create_collection("p", DIM, "ip", "Flat", 2, payload_bytes=1024)
        for b in range(0, 3000, 500):
            c.upsert("p", ids[b : b + 500], x[b : b + 500], payloads=payloads[b : b + 500])
        q = clustered(4, seed=5)
        hits = c.search("p", q, k=20, include_payloads=True)
        plain = c.search("p", q, k=20)
        for row, row_plain in zip(hits, plain, strict=True):
            assert [h.id for h in row] == [h.id for h in row_plain]
            for h in row:
                assert h.payload == payloads[int(h.id.split("-")[1])]
            assert all(h.payload == b"" for h in row_plain)
        got = c.get("p", ["sku-1", "sku-0", "nope"], include_payloads=True)
        assert [r.payload for r in got.records] == [payloads[1], b""]
        assert got.missing_ids == ["nope"]
        assert all(r.payload == b"" for r in c.get("p", ["sku-1"]).records)
        # Re-upserting without a payload removes it; a delete removes it too.
        c.upsert("p", ["sku-1"], x[1:2])
        c.delete("p", ["sku-2"])
        c.upsert("p", ["sku-2"], x[2:3])
        assert [
            r.payload for r in c.get("p", ["sku-1", "sku-2"], include_payloads=True).records
        ] == [
            b"",
            b"",
        ]
        stats = c.stats("p")
        assert stats.payloads == 3000 - 300 - 2  # 10% never had one; sku-1 and sku-2 lost theirs
        assert stats.payload_disk_bytes >= stats.payloads * 1024
        # Vector-search memory does not hold the payloads: same as a collection without them.
        c.create_collection("q", DIM, "ip", "Flat", 2)
        for b in range(0, 3000, 500):
            c.upsert("q", ids[b : b + 500], x[b : b + 500])
        no_payload_memory = c.stats("q").total_memory_bytes
        assert c.stats("p").total_memory_bytes <= no_payload_memory * 1.01
        # Wrong sizes are refused naming the item.
        with pytest.raises(errors.InvalidArgument, match=r"records\[1\]\.payload: 10 bytes"):
            c.upsert("p", ["a", "b"], x[:2], payloads=[payload_for("a"), b"x" * 10])
        with pytest.raises(errors.InvalidArgument, match=r"records\[0\]\.payload: 5000 bytes"):
            c.upsert("q", ["a"], x[:1], payloads=[b"x" * 5000])
        assert c.stats("p").snapshot_seq > 0  # > 1 MiB of WAL: snapshots were taken
    with ServerThread(IndexServer(cfg)) as s, IndexClient(s.target) as c:  # restart: recovery
        got = c.get("p", ids, include_payloads=True).records
        want = {i: p for i, p in zip(ids, payloads, strict=True) if i not in ("sku-1", "sku-2")}
        assert {r.id: r.payload for r in got if r.id in want} == want
        assert c.search("p", x[7:8], k=1, include_payloads=True)[0][0].payload == payloads[7]


def test_sigkill_mid_stream_loses_no_acknowledged_write(tmp_path):
    proc = ServerProcess(["serve", "index", "--data-dir", str(tmp_path / "data")], tmp_path).start()
    acked: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(0)
    try:
        with IndexClient(proc.target) as c:
            c.create_collection("p", DIM, "ip", "HNSW32", 2)
            stop = threading.Event()

            def writer(w: int):
                b = 0
                while not stop.is_set():
                    ids = [f"w{w}-b{b}-{i}" for i in range(50)]
                    vecs = rng.standard_normal((50, DIM)).astype(np.float32)
                    pays = [payload_for(i, 512) for i in ids]
                    try:
                        c.upsert("p", ids, vecs, [{"w": float(w)}] * 50, timeout=10, payloads=pays)
                    except errors.VitrineError:
                        return
                    acked.update(zip(ids, vecs, strict=True))
                    b += 1

            threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
            for t in threads:
                t.start()
            time.sleep(1.5)
            proc.kill()  # SIGKILL mid-stream
            stop.set()
            for t in threads:
                t.join(30)
    finally:
        proc.kill()
    assert len(acked) > 200
    proc2 = ServerProcess(
        ["serve", "index", "--data-dir", str(tmp_path / "data")], tmp_path
    ).start()
    try:
        with IndexClient(proc2.target) as c:
            ids = list(acked)
            got = {}
            for s in range(0, len(ids), 1000):
                part = ids[s : s + 1000]
                for r in c.get("p", part, include_vectors=True, include_payloads=True).records:
                    got[r.id] = np.frombuffer(r.vector, "<f4")
                    assert r.payload == payload_for(r.id, 512), f"{r.id}: payload differs"
            assert len(got) == len(acked), f"{len(acked) - len(got)} acknowledged writes lost"
            assert all(np.array_equal(got[k], acked[k]) for k in acked)
            count = c.count("p")
            assert len(acked) <= count <= len(acked) + 3 * 50  # at most the in-flight batches
            assert count % 50 == 0  # whole batches only: no half-written request
            stats = c.stats("p")
            assert stats.replayed_entries > 0 and stats.recovery_seconds > 0
    finally:
        proc2.terminate()
        assert proc2.wait(30) == 0


def test_health_metrics_and_grpcurl(server, client):
    load(client, "p", 200)
    client.search("p", clustered(1), k=3)
    with pytest.raises(errors.NotFound):
        client.count("nope")
    text = scrape(server.server.metrics_port)
    assert 'vitrine_index_records{collection="p"} 200.0' in text, text
    assert (
        'vitrine_grpc_requests_total{code="NOT_FOUND",method="Count",service="index"} 1.0' in text
    )
    promtool = shutil.which("promtool")
    if promtool:
        check = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server.target) as ch:
        resp = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="vitrine.v1.IndexService")
        )
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    import sys
    from pathlib import Path

    grpcurl = shutil.which("grpcurl") or shutil.which(
        "grpcurl", path=str(Path(sys.executable).parent)
    )
    if grpcurl:
        out = subprocess.run(
            [
                grpcurl,
                "-plaintext",
                "-d",
                '{"collection": "p"}',
                server.target,
                "vitrine.v1.IndexService/Count",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert '"count": "200"' in out.stdout, out.stderr
    assert index_pb2.CountResponse  # the stub the reflection answer describes
