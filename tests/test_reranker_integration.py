"""Integration: the real reranker and captioner trained briefly on the demo catalog, exported,
served, evaluated."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from encoder_service.client import Candidate, EncoderClient
from encoder_service.config import EncoderConfig
from encoder_service.server import EncoderServer
from exporter.onnx_export import check_parity
from exporter.pipeline import RERANK_CHECKPOINT, load_checkpoint
from exporter.rerank.export import INPUTS, OUTPUTS, RERANK_PARITY_ATOL
from exporter.rerank.export import load_checkpoint as load_rerank
from exporter.towers import build_towers
from tests.support.servers import ServerThread
from vitrine.cli import app
from vitrine.model_repo import ModelRepository
from vitrine.preprocess import TextTokenizer, load_image_file

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rerank_repo(tmp_path_factory, demo_catalog, feature_cache_dir):
    from exporter.caption.train import CaptionConfig
    from exporter.pipeline import run_training
    from exporter.rerank.train import RerankConfig
    from exporter.train import TrainConfig

    torch.set_num_threads(2)
    models = tmp_path_factory.mktemp("rerank-models")
    trained = run_training(
        demo_catalog,
        models,
        TrainConfig(epochs=2, batch_size=64, max_steps=12, warmup_steps=2),
        with_probe=False,
        cache_dir=feature_cache_dir,
        quiet=True,
        rerank=RerankConfig(max_steps=40, candidates=20),
        caption=CaptionConfig(max_steps=30),
    )
    return models, trained[0]


def _torch_models(models, trained):
    towers, _ = load_checkpoint(trained.checkpoint)
    rerank, _ = load_rerank(models / ".checkpoints" / RERANK_CHECKPOINT)
    _, image_tower = build_towers(towers, rerank.image_heads)
    return rerank, image_tower


def test_train_publishes_towers_with_payload_and_the_reranker(rerank_repo):
    models, trained = rerank_repo
    repo = ModelRepository(models)
    assert repo.model_names() == [
        "vitrine-caption",
        "vitrine-image",
        "vitrine-rerank",
        "vitrine-text",
    ]
    image, rerank = repo.load("vitrine-image"), repo.load("vitrine-rerank")
    layout = image.manifest.outputs["payload"]["layout"]
    assert rerank.manifest.rerank["image_model"] == "vitrine-image/1"
    assert rerank.manifest.rerank["payload"] == layout
    assert 0 < layout["bytes"] <= 8192  # the payload budget
    assert rerank.manifest.metrics["export_parity_max_abs_diff"] <= RERANK_PARITY_ATOL
    assert set(rerank.manifest.rerank["weights"]) == {"text_query", "photo_query"}
    assert trained.rerank.manifest.version == 1


def test_onnx_parity_of_reranker_and_payload_on_unseen_inputs(rerank_repo, demo_catalog):
    models, trained = rerank_repo
    rerank, image_tower = _torch_models(models, trained)
    repo = ModelRepository(models)
    products = demo_catalog.products[200:209]
    pixels = np.stack([load_image_file(p.image_path) for p in products])
    diffs = check_parity(
        image_tower,
        repo.load("vitrine-image").onnx_path,
        {"pixels": pixels},
        ("embedding", "payload"),
    )
    assert diffs["embedding"] <= 1e-4
    with torch.no_grad():
        payloads = image_tower(torch.from_numpy(pixels))[1].numpy()
    rv = repo.load("vitrine-rerank")
    tok = TextTokenizer(rv.tokenizer_path, 64)
    texts = [p.title for p in products] + ["navy blu shirt for men", "x " * 200]
    for n in (1, 7, 37):  # dynamic batch of pairs and sequence length
        ti = np.arange(n) % len(texts)
        b = tok.encode([texts[i] for i in ti])
        feeds = {
            "text_ids": b.input_ids,
            "text_mask": b.attention_mask,
            "payload": payloads[np.arange(n) % len(payloads)],
            "retrieval": np.linspace(-0.3, 0.9, n).astype(np.float32),
            "direction": (np.arange(n) % 2).astype(np.int64),
        }
        assert list(feeds) == list(INPUTS)
        diffs = check_parity(rerank.model, rv.onnx_path, feeds, OUTPUTS, RERANK_PARITY_ATOL)
        assert max(diffs.values()) <= RERANK_PARITY_ATOL


def test_encoder_serves_the_reranker_like_pytorch(rerank_repo, demo_catalog):
    models, trained = rerank_repo
    rerank, _ = _torch_models(models, trained)
    products = demo_catalog.products[300:312]
    cfg = EncoderConfig(models_dir=str(models), port=0, metrics_port=-1, log_format="text")
    with ServerThread(EncoderServer(cfg)) as s, EncoderClient(s.target) as enc:
        info = {m.name: m for m in enc.model_info()}
        assert "payload" in info["vitrine-image"].outputs
        assert info["vitrine-rerank"].rerank.payload_bytes == rerank.model.layout.width * 2
        res = enc.embed_images(
            "vitrine-image", [p.image_path.read_bytes() for p in products], include_payloads=True
        )
        cands = [
            Candidate(pay, p.title, float(x))
            for pay, p, x in zip(res.payloads, products, np.linspace(0.1, 0.6, 12), strict=True)
        ]
        query = products[4].title
        served = enc.rerank("vitrine-rerank", cands, query_text=query)
        photo = enc.rerank("vitrine-rerank", cands, query_payload=res.payloads[4])
    tok = TextTokenizer(models / "vitrine-rerank" / "1" / "tokenizer.json", 64)
    payload = torch.from_numpy(np.stack([np.frombuffer(c.payload, "<f2") for c in cands]))
    retrieval = torch.tensor([c.retrieval_score for c in cands], dtype=torch.float32)
    with torch.no_grad():
        b = tok.encode([query] * 12)
        want, _ = rerank.model(
            torch.from_numpy(b.input_ids),
            torch.from_numpy(b.attention_mask),
            payload,
            retrieval,
            torch.zeros(12, dtype=torch.int64),
        )
        b = tok.encode([c.title for c in cands])
        want_photo, _ = rerank.model(
            torch.from_numpy(b.input_ids),
            torch.from_numpy(b.attention_mask),
            payload[4:5].repeat(12, 1),
            retrieval,
            torch.ones(12, dtype=torch.int64),
        )
    assert np.allclose(served.scores, want.numpy(), atol=1e-4)
    assert np.allclose(photo.scores, want_photo.numpy(), atol=1e-4)


def test_eval_reports_retrieval_and_rerank_side_by_side(rerank_repo):
    models, _ = rerank_repo
    result = CliRunner().invoke(
        app, ["eval", "--models", str(models), "--json", "--quiet", "--rerank", "20"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    r = report["models"]["vitrine"]
    rr = r["reranked"]
    assert rr["rerank_model"] == "vitrine-rerank/1" and rr["candidates"] == 20
    for direction in ("text_to_image", "image_to_text"):
        for rule in ("strict", "title"):
            m, base = rr[direction][rule], r[direction][rule]
            assert m["queries"] == base["queries"] == 90
            assert m["R@1"] <= m["R@5"] <= m["R@10"]
            assert 0.0 <= m["mAP@10"] <= 1.0
    assert 0.0 <= rr["attribute_precision@10"] <= 1.0


def test_train_reranker_command_publishes_a_new_version(rerank_repo, tmp_path, demo_catalog):
    import shutil

    models, _ = rerank_repo
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    result = CliRunner().invoke(
        app,
        ["train-reranker", "--models", str(copy), "--max-steps", "3", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    assert "vitrine-rerank/2" in result.output
    repo = ModelRepository(copy)
    assert repo.load("vitrine-rerank").manifest.rerank["image_model"] == "vitrine-image/2"


def test_the_captioner_is_published_served_and_evaluated(rerank_repo, demo_catalog):
    from exporter.evaluate_caption import OnnxCaptioner
    from vitrine.captioning import DecodeOptions

    models, trained = rerank_repo
    cap = ModelRepository(models).load("vitrine-caption")
    assert trained.caption.manifest.version == cap.manifest.version == 1  # with the towers
    assert cap.manifest.metrics["export_parity_max_abs_diff"] <= 1e-4  # real EfficientNet trunk
    products = demo_catalog.products[100:106]
    local = OnnxCaptioner(cap)
    memory, probs = local.encode(np.stack([load_image_file(p.image_path) for p in products]))
    want = local.describe(
        memory, probs, DecodeOptions(max_tokens=cap.manifest.caption["decoding"]["max_tokens"])
    )
    cfg = EncoderConfig(models_dir=str(models), port=0, metrics_port=-1, log_format="text")
    with ServerThread(EncoderServer(cfg)) as s, EncoderClient(s.target) as enc:
        got = enc.generate("vitrine-caption", [p.image_path.read_bytes() for p in products])
    assert [c.title for c in got.captions] == [t for t, _ in want]
    result = CliRunner().invoke(
        app, ["eval-captions", "--models", str(models), "--json", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["pool_size"] == 90
    assert set(report["titles"]) == {"captioner", "attribute_template", "nearest_neighbour"}
    for row in report["titles"].values():
        assert 0.0 <= row["BLEU-4"] <= 1.0 and row["CIDEr-D"] >= 0.0
        assert set(row["attribute_words"]) == {"gender", "baseColour", "articleType"}
    assert set(report["head_accuracy"]) >= {"gender", "articleType", "baseColour"}
