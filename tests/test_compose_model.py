"""The query composer: triplets from catalog attributes, training, ONNX export and manifest."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from exporter.compose.export import export_composer
from exporter.compose.phrases import CHANGES, modifier_phrases, target_phrase
from exporter.compose.train import ComposeConfig, train_combiner
from exporter.compose.triplets import build_triplets, query_phrases
from exporter.onnx_export import onnx_run
from exporter.split import split_products
from tests.support.tiny_compose import publish_compose, unit_rows
from tests.support.tiny_models import publish_image, publish_text
from vitrine.catalog import Product
from vitrine.cli import app
from vitrine.model_repo import ComposeSpec, Manifest, ModelRepository

DIM = 16


def _synthetic_products(n: int = 96) -> list[Product]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        attrs = {
            "articleType": ("Shirts", "Jeans")[i % 2],
            "gender": ("Men", "Women")[(i // 2) % 2],
            "baseColour": ("Red", "Blue", "Navy Blue")[int(rng.integers(3))],
            "usage": ("Casual", "Formal")[int(rng.integers(2))],
            "season": ("Summer", "Winter")[int(rng.integers(2))],
        }
        out.append(Product(str(i), f"product {i}", attrs))
    return out


def _phrase_embed(texts: list[str]) -> np.ndarray:
    return np.stack([unit_rows(1, DIM, zlib.crc32(t.encode()))[0] for t in texts])


def test_a_few_steps_of_training_export_to_matching_onnx(tmp_path):
    products = _synthetic_products()
    image = unit_rows(len(products), DIM, 1)
    train = build_triplets(products, range(64))
    val = build_triplets(products, range(64, 96))
    assert len(train) and len(val)
    cfg = ComposeConfig(
        proj=32, hidden=32, epochs=2, samples_per_epoch=64, batch_size=16, warmup_steps=2
    )
    result = train_combiner(image, _phrase_embed, train, val, cfg, quiet=True)
    assert len(result.history) == 2 and result.history[-1]["step"] == 8
    assert set(result.metrics["composer"]) == {*CHANGES.values(), "mean"}

    q_img, q_txt = image[val.rows[val.ref[:6]]], _phrase_embed(query_phrases(val)[:6])
    published = export_composer(
        ModelRepository(tmp_path), result, "t/1", "i/1", q_img, q_txt, {"test": True}
    )
    m = ModelRepository(tmp_path).load("vitrine-compose").manifest
    assert m == published.manifest and m.modality == "compose" and m.embedding_dim == DIM
    assert list(m.inputs) == ["image_embedding", "text_embedding"] and m.output == "embedding"
    assert m.compose == {
        "text_model": "t/1",
        "image_model": "i/1",
        "dim": DIM,
        "attributes": list(CHANGES),
    }
    assert m.metrics["export_parity_max_abs_diff"] <= 1e-5
    # Other inputs than the parity sample, another batch size: ONNX still matches torch.
    a, b = unit_rows(5, DIM, 7), unit_rows(5, DIM, 8)
    (got,) = onnx_run(
        published.onnx_path, {"image_embedding": a, "text_embedding": b}, ("embedding",)
    )
    with torch.no_grad():
        want = result.model(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert np.abs(got - want).max() <= 1e-5
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_triplets_from_the_demo_catalog_hold_only_the_requested_change(demo_catalog):
    products = demo_catalog.products
    rows = split_products(products).train
    t = build_triplets(products, rows)
    assert set(t.counts()) == set(CHANGES)
    pool = set(rows)
    for q in range(len(t)):
        ref = products[t.rows[t.ref[q]]].attributes
        attr, value = t.keys[t.key[q]]
        assert ref[attr] != value and modifier_phrases(attr, value)
        assert t.ref[q] not in t.targets[q]
        for r in t.rows[t.targets[q]]:
            assert r in pool
            a = products[r].attributes
            assert a["articleType"] == ref["articleType"]
            assert a[attr] == value
            assert a["gender"] == (value if attr == "gender" else ref["gender"])


def test_phrases():
    assert "in navy blue" in modifier_phrases("baseColour", "Navy Blue")
    assert "for men" in modifier_phrases("gender", "Men")
    assert "for formal wear" in modifier_phrases("usage", "Formal")
    assert "for summer" in modifier_phrases("season", "Summer")
    ref = {"gender": "Men", "baseColour": "Black", "articleType": "Sweaters", "usage": "Casual"}
    assert target_phrase(ref, "gender", "Women") == "Women Black Sweaters"
    assert target_phrase(ref, "baseColour", "Red") == "Men Red Sweaters"
    assert target_phrase(ref, "usage", "Formal") == "Formal Men Black Sweaters"
    assert target_phrase(ref, "season", "Summer") == "Summer Men Black Sweaters"


def test_compose_manifests_are_validated(tmp_path):
    v = publish_compose(tmp_path, dim=8, text_model="tiny-text/1", image_model="tiny-image/1")
    loaded = ModelRepository(tmp_path).load("vitrine-compose")
    assert loaded.manifest == v.manifest and loaded.manifest.compose["dim"] == 8
    data = json.loads(v.manifest.to_json())
    with pytest.raises(ValueError, match="compose entry"):
        Manifest.from_dict({**data, "compose": None})
    with pytest.raises(ValueError, match="embedding_dim"):
        Manifest.from_dict({**data, "embedding_dim": 16})
    with pytest.raises(ValueError, match="name/version"):
        ComposeSpec.from_dict({**data["compose"], "image_model": "tiny-image"})
    with pytest.raises(ValueError, match="unknown fields"):
        ComposeSpec.from_dict({**data["compose"], "extra": 1})


def test_train_composer_command_on_tiny_towers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the photo-embedding cache goes to ./.cache
    models = tmp_path / "models"
    publish_text(models, "vitrine-text", 1, dim=DIM)
    publish_image(models, "vitrine-image", 1, dim=DIM)
    result = CliRunner().invoke(
        app,
        ["train-composer", "--models", str(models), "--max-steps", "3", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    assert "vitrine-compose/1" in result.output
    m = ModelRepository(models).load("vitrine-compose").manifest
    assert m.compose["text_model"] == "vitrine-text/1"
    assert m.compose["image_model"] == "vitrine-image/1"
    assert m.training["split"]["test_size"] == 90  # the demo catalog's default split
    assert m.training["triplets"]["train"]["baseColour"] > 0
    assert "validation_success@10" in m.metrics
    assert list((tmp_path / ".cache" / "features").glob("compose-*/image_embedding.npy"))
