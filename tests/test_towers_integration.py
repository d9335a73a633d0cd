"""Integration: train a few steps on the demo catalog, export, check parity, evaluate (real towers)."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from exporter.onnx_export import PARITY_ATOL, onnx_outputs
from exporter.pipeline import export_checkpoint, load_checkpoint
from exporter.towers import build_towers
from vitrine.cli import app
from vitrine.model_repo import ModelRepository
from vitrine.preprocess import TextTokenizer, load_image_file

pytestmark = pytest.mark.slow


def test_training_publishes_both_pairs_with_manifests(trained_repo, demo_catalog):
    models, trained = trained_repo
    repo = ModelRepository(models)
    assert repo.model_names() == ["probe-image", "probe-text", "vitrine-image", "vitrine-text"]
    for name in repo.model_names():
        mv = repo.load(name)
        m = mv.manifest
        assert m.version == 1 and m.embedding_dim == 256 and m.normalized
        assert m.training["data_hash"] == demo_catalog.fingerprint()
        assert m.training["split"]["sizes"] == {"train": 450, "val": 60, "test": 90}
        assert m.metrics["export_parity_max_abs_diff"] <= PARITY_ATOL
        assert m.opset >= 17
        if m.modality == "text":
            assert mv.tokenizer_path.is_file() and m.tokenizer["max_length"] == 64
        else:
            assert m.preprocessing["size"] == 224 and m.inputs["pixels"]["dtype"] == "uint8"
    assert {t.name for t in trained} == {"vitrine", "probe"}
    assert all(t.checkpoint.is_file() for t in trained)


def test_onnx_matches_pytorch_on_unseen_real_inputs(trained_repo, demo_catalog):
    models, trained = trained_repo
    repo = ModelRepository(models)
    model, _ = load_checkpoint(trained[0].checkpoint)
    text_tower, image_tower = build_towers(model)
    products = demo_catalog.products[100:111]
    texts = [p.title for p in products] + ["an extremely long query " * 30]
    tv = repo.load("vitrine-text")
    batch = TextTokenizer(tv.tokenizer_path, 64).encode(texts)
    assert batch.truncated[-1]
    for sl in (slice(0, 1), slice(0, 3), slice(0, len(texts))):  # dynamic batch and sequence
        feeds = {"input_ids": batch.input_ids[sl], "attention_mask": batch.attention_mask[sl]}
        with torch.no_grad():
            ref = text_tower(*(torch.from_numpy(v) for v in feeds.values())).numpy()
        got = onnx_outputs(tv.onnx_path, feeds)
        assert got.shape == (sl.stop, 256)
        assert np.abs(ref - got).max() <= PARITY_ATOL
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    pixels = np.stack([load_image_file(p.image_path) for p in products[:5]])
    with torch.no_grad():
        ref = image_tower(torch.from_numpy(pixels)).numpy()
    got = onnx_outputs(repo.load("vitrine-image").onnx_path, {"pixels": pixels})
    assert got.shape == (5, 256)
    assert np.abs(ref - got).max() <= PARITY_ATOL


def test_export_command_publishes_next_version(trained_repo, tmp_path):
    _models, trained = trained_repo
    t, i, r = export_checkpoint(trained[1].checkpoint, tmp_path, "probe")
    assert r is None  # no reranker for the probe
    assert (t.manifest.version, i.manifest.version) == (1, 1)
    result = CliRunner().invoke(
        app,
        [
            "export",
            "--checkpoint",
            str(trained[1].checkpoint),
            "--out",
            str(tmp_path),
            "--name",
            "probe",
        ],
    )
    assert result.exit_code == 0, result.output
    assert ModelRepository(tmp_path).versions("probe-text") == [1, 2]


def test_eval_json_reports_both_pairs_on_the_test_pool(trained_repo):
    models, _ = trained_repo
    result = CliRunner().invoke(app, ["eval", "--models", str(models), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["pool_size"] == 90 and report["split"] == "test"
    assert set(report["models"]) == {"vitrine", "probe"}
    for r in report["models"].values():
        for direction in ("text_to_image", "image_to_text"):
            for rule in ("strict", "title"):
                m = r[direction][rule]
                assert m["queries"] == 90
                for k in ("R@1", "R@5", "R@10", "mAP@10", "nDCG@10"):
                    assert 0.0 <= m[k] <= 1.0
                assert m["R@1"] <= m["R@5"] <= m["R@10"]
            # the title rule only adds relevant items: recall can't drop
            assert r[direction]["title"]["R@10"] >= r[direction]["strict"]["R@10"]
        assert r["attribute_queries"] > 0 and 0.0 <= r["attribute_precision@10"] <= 1.0
    assert "goal_t2i_strict_R@10>=0.90" in report["vs_baseline"]


def test_training_is_deterministic_and_learns(demo_catalog, feature_cache_dir):
    from exporter.features import extract_features
    from exporter.split import split_products
    from exporter.train import TrainConfig, train_towers

    feats = extract_features(demo_catalog, cache_dir=feature_cache_dir, quiet=True)
    split = split_products(demo_catalog.products)
    cfg = TrainConfig(epochs=8, batch_size=64, warmup_steps=5, lr=2e-3)
    a = train_towers(demo_catalog, feats, split, cfg, quiet=True)
    b = train_towers(demo_catalog, feats, split, cfg, quiet=True)
    for (ka, va), (kb, vb) in zip(
        a.model.state_dict().items(), b.model.state_dict().items(), strict=True
    ):
        assert ka == kb and torch.equal(va, vb)
    assert a.history[-1]["loss"] < a.history[0]["loss"]
    # 8 short epochs on 450 products already beat chance (R@10 = 10/60) by far on validation.
    assert a.val_metrics["t2i_strict_R@10"] > 0.4


def _train_and_export_unfrozen(demo_catalog, cache_dir, models, device):
    from exporter.pipeline import run_training
    from exporter.towers import TowerSpec
    from exporter.train import TrainConfig

    cfg = TrainConfig(
        spec=TowerSpec(text_tail=1, image_tail=1),
        epochs=1,
        batch_size=32,
        max_steps=2,
        warmup_steps=1,
        device=device,
    )
    (trained,) = run_training(
        demo_catalog, models, cfg, with_probe=False, cache_dir=cache_dir, quiet=True
    )
    return trained


def test_fine_tuning_starts_from_frozen_heads_with_the_attribute_loss(
    demo_catalog, feature_cache_dir
):
    from exporter.features import extract_features
    from exporter.split import split_products
    from exporter.towers import TowerSpec
    from exporter.train import TrainConfig, train_towers

    split = split_products(demo_catalog.products, 90, 60)
    frozen = TrainConfig(batch_size=32, max_steps=2, warmup_steps=1, attr_loss=0.2)
    feats = extract_features(demo_catalog, cache_dir=feature_cache_dir, quiet=True)
    init = train_towers(demo_catalog, feats, split, frozen, quiet=True).model.state_dict()
    tuned_cfg = TrainConfig(spec=TowerSpec(image_tail=1), batch_size=32, max_steps=0)
    feats1 = extract_features(demo_catalog, 0, 1, cache_dir=feature_cache_dir, quiet=True)
    tuned = train_towers(demo_catalog, feats1, split, tuned_cfg, quiet=True, init=init).model
    for name, value in tuned.state_dict().items():  # heads from stage 1, tail from the backbone
        if name in init:
            assert torch.equal(value, init[name]), name
    assert any(n.startswith("image_tail.") for n in tuned.state_dict())
    with pytest.raises(ValueError, match="does not fit"):
        train_towers(
            demo_catalog,
            feats,
            split,
            TrainConfig(spec=TowerSpec(dim=64), max_steps=0),
            quiet=True,
            init=init,
        )


def test_partial_unfreezing_trains_and_exports_with_parity(
    demo_catalog, feature_cache_dir, tmp_path
):
    trained = _train_and_export_unfrozen(demo_catalog, feature_cache_dir, tmp_path, "cpu")
    model, training = load_checkpoint(trained.checkpoint)
    assert training["config"]["spec"]["text_tail"] == 1 and len(model.text_tail.layers) == 1
    assert model.image_tail.active
    # The fine-tuned blocks changed, and the exported graph carries them (parity vs PyTorch).
    _, image_tower = build_towers(model)
    pixels = np.stack([load_image_file(p.image_path) for p in demo_catalog.products[200:204]])
    with torch.no_grad():
        ref = image_tower(torch.from_numpy(pixels)).numpy()
    got = onnx_outputs(trained.image.onnx_path, {"pixels": pixels})
    assert np.abs(ref - got).max() <= PARITY_ATOL
    from exporter.backbones import load_efficientnet_lite0

    fresh = load_efficientnet_lite0()._blocks[-1]._project_conv.weight
    assert not torch.equal(model.image_tail.blocks[-1]._project_conv.weight, fresh)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_partial_unfreezing_on_gpu(demo_catalog, feature_cache_dir, tmp_path):
    trained = _train_and_export_unfrozen(demo_catalog, feature_cache_dir, tmp_path, "cuda")
    assert trained.text.manifest.training["config"]["device"] == "cuda"
    assert trained.image.manifest.metrics["export_parity_max_abs_diff"] <= PARITY_ATOL
