import json

import pytest

from vitrine.model_repo import MANIFEST, MODEL_FILE, Manifest, ModelRepository


def _manifest(name="m-text", version=1, **kw):
    base = dict(
        name=name,
        version=version,
        modality="text",
        embedding_dim=8,
        inputs={"input_ids": {"dtype": "int64", "shape": ["batch", "sequence"]}},
        tokenizer={"file": "tokenizer.json", "max_length": 16},
        training={"data_hash": "abc"},
        metrics={"R@10": 0.5},
        pair="m-image",
    )
    base.update(kw)
    return Manifest(**base)


def test_manifest_round_trip(tmp_path):
    repo = ModelRepository(tmp_path)
    v, d = repo.new_version_dir("m-text")
    assert v == 1
    (d / MODEL_FILE).write_bytes(b"onnx")
    published = repo.publish(_manifest())
    loaded = repo.load("m-text")
    assert loaded.manifest == published.manifest
    assert json.loads((d / MANIFEST).read_text())["training"] == {"data_hash": "abc"}
    assert loaded.tokenizer_path == d / "tokenizer.json"


def test_unpublished_versions_are_invisible(tmp_path):
    repo = ModelRepository(tmp_path)
    _, d1 = repo.new_version_dir("m-text")
    (d1 / MODEL_FILE).write_bytes(b"x")
    repo.publish(_manifest())
    _, d2 = repo.new_version_dir("m-text")  # version 2: model written, no manifest yet
    (d2 / MODEL_FILE).write_bytes(b"x")
    assert repo.versions("m-text") == [1]
    assert repo.load("m-text").manifest.version == 1
    assert repo.next_version("m-text") == 3
    with pytest.raises(FileNotFoundError):
        repo.load("m-text", 2)


def test_publish_requires_model_and_valid_manifest(tmp_path):
    repo = ModelRepository(tmp_path)
    repo.new_version_dir("m-text")
    with pytest.raises(FileNotFoundError):
        repo.publish(_manifest())
    with pytest.raises(ValueError, match="modality"):
        _manifest(modality="audio").validate()
    with pytest.raises(ValueError, match="tokenizer"):
        _manifest(tokenizer=None).validate()


def test_manifest_mismatch_and_unknown_fields_rejected(tmp_path):
    repo = ModelRepository(tmp_path)
    _, d = repo.new_version_dir("m-text")
    (d / MODEL_FILE).write_bytes(b"x")
    (d / MANIFEST).write_text(_manifest(version=7).to_json())
    with pytest.raises(ValueError, match="path says"):
        repo.load("m-text", 1)
    data = json.loads(_manifest().to_json())
    data["surprise"] = 1
    with pytest.raises(ValueError, match="unknown manifest fields"):
        Manifest.from_dict(data)
