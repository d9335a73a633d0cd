"""export-clip on a tiny randomly initialised CLIPModel saved to a temp dir (no hub)."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from exporter.clip_export import ClipImage, ClipText
from exporter.onnx_export import PARITY_ATOL, onnx_outputs
from vitrine.cli import app
from vitrine.model_repo import ModelRepository
from vitrine.preprocess import TextTokenizer, load_image_file


def _tiny_clip(dest):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPModel

    words = ["[PAD]", "[UNK]", "<s>", "</s>", "red", "dress", "navy", "blue", "shirt", "bag"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)]
    )
    tok.save(str(dest / "tokenizer.json"))
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=len(words),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=16,
            eos_token_id=3,
            bos_token_id=2,
            pad_token_id=0,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=24,
    )
    model = CLIPModel(cfg).eval()
    model.save_pretrained(str(dest))
    return model


def test_export_clip_checkpoint_round_trip(tmp_path, demo_catalog):
    ckpt = tmp_path / "clip-ckpt"
    ckpt.mkdir()
    clip = _tiny_clip(ckpt)
    out = tmp_path / "models"
    result = CliRunner().invoke(app, ["export-clip", "--checkpoint", str(ckpt), "--out", str(out)])
    assert result.exit_code == 0, result.output
    repo = ModelRepository(out)
    assert repo.model_names() == ["clip-image", "clip-text"]
    t, i = repo.load("clip-text"), repo.load("clip-image")
    assert t.manifest.embedding_dim == i.manifest.embedding_dim == 24
    assert t.manifest.tokenizer["max_length"] == 16 and t.manifest.pair == "clip-image"
    assert i.manifest.preprocessing["size"] == 32
    assert json.loads((i.path / "manifest.json").read_text())["inputs"]["pixels"]["shape"][1] == 32

    batch = TextTokenizer(t.tokenizer_path, 16).encode(["red dress", "navy blue shirt bag"])
    feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
    with torch.no_grad():
        ref = ClipText(clip)(*(torch.from_numpy(v) for v in feeds.values())).numpy()
    got = onnx_outputs(t.onnx_path, feeds)
    assert got.shape == (2, 24) and np.abs(ref - got).max() <= PARITY_ATOL

    pixels = np.stack([load_image_file(p.image_path, 32) for p in demo_catalog.products[:3]])
    img = ClipImage(
        clip,
        tuple(i.manifest.preprocessing["in_graph_normalization"]["mean"]),
        tuple(i.manifest.preprocessing["in_graph_normalization"]["std"]),
    )
    with torch.no_grad():
        ref = img(torch.from_numpy(pixels)).numpy()
    got = onnx_outputs(i.onnx_path, {"pixels": pixels})
    assert got.shape == (3, 24) and np.abs(ref - got).max() <= PARITY_ATOL


def test_export_clip_requires_tokenizer_json(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    _tiny_clip(ckpt)
    (ckpt / "tokenizer.json").unlink()
    from exporter.clip_export import export_clip_checkpoint

    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json"):
        export_clip_checkpoint(ckpt, tmp_path / "m")
