"""Loss functions, heads and batch ordering on synthetic tensors (no backbones)."""

import math

import numpy as np
import pytest
import torch

from exporter.heads import ImageHead, TextHead
from exporter.losses import InfoNCE, TripletLoss, make_loss
from exporter.train import TrainConfig, _epoch_order


def test_infonce_matches_clip_formula_with_single_positives():
    torch.manual_seed(0)
    t = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    v = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    loss = InfoNCE(init_temperature=0.1)
    got = loss(t, v, torch.eye(6, dtype=torch.bool))
    logits = 10.0 * t @ v.T
    labels = torch.arange(6)
    ref = 0.5 * (
        torch.nn.functional.cross_entropy(logits, labels)
        + torch.nn.functional.cross_entropy(logits.T, labels)
    )
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)
    assert loss.temperature == pytest.approx(0.1, rel=1e-5)


def test_infonce_multi_positive_does_not_punish_duplicates():
    # Rows 0 and 1 share a title; image 1 is slightly off image 0.
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    v = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.05], [0.0, 1.0]]), dim=-1)
    pos = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    multi = InfoNCE()(t, v, pos)
    # Both duplicates equally likely: the loss is the entropy of a 50/50 split on those rows.
    assert multi.item() == pytest.approx(2 / 3 * math.log(2), abs=2e-3)
    (g_multi,) = torch.autograd.grad(multi, t)
    single = InfoNCE()(t, v, torch.eye(3, dtype=torch.bool))
    (g_single,) = torch.autograd.grad(single, t)
    # One-hot targets pull text 0 and text 1 apart (towards different images); multi-positive
    # targets ask nothing of the sort, so the gradient on the duplicate texts is far smaller.
    assert g_single[:2].norm() > 5 * g_multi[:2].norm()


def test_triplet_zero_when_margin_met_and_positive_otherwise():
    t = torch.eye(3)
    assert TripletLoss(0.2)(t, t.clone(), torch.eye(3, dtype=torch.bool)).item() == 0.0
    shuffled = t[[1, 0, 2]]
    assert TripletLoss(0.2)(t, shuffled, torch.eye(3, dtype=torch.bool)).item() > 0.5
    with pytest.raises(ValueError):
        make_loss("hinge")


def test_heads_output_unit_vectors_and_respect_mask():
    torch.manual_seed(0)
    head = TextHead(16, 8, "mlp").eval()
    states = torch.randn(2, 5, 16)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    out = head(states, mask)
    assert torch.allclose(out.norm(dim=-1), torch.ones(2), atol=1e-6)
    changed = states.clone()
    changed[0, 3:] = 99.0  # padding positions must not matter
    assert torch.allclose(head(changed, mask)[0], out[0], atol=1e-6)
    img = ImageHead(16, 8, "mlp", extra_width=4).eval()
    y = img(torch.randn(3, 16, 7, 7), torch.randn(3, 4))
    assert y.shape == (3, 8) and torch.allclose(y.norm(dim=-1), torch.ones(3), atol=1e-6)


class _FakeData:
    def __init__(self, type_code):
        self.rows = np.arange(len(type_code))
        self.type_code = np.asarray(type_code)


def test_epoch_order_is_a_permutation_with_type_runs():
    rng_types = np.random.default_rng(0).integers(0, 5, size=103)
    data = _FakeData(rng_types)
    plain = _epoch_order(data, TrainConfig(batch_size=16), np.random.default_rng(1))
    assert sorted(plain.tolist()) == list(range(103))
    hard = _epoch_order(
        data, TrainConfig(batch_size=16, hard_batches=0.5), np.random.default_rng(1)
    )
    assert sorted(hard.tolist()) == list(range(103))
    # The first 8 of each full batch are (nearly always) one article type.
    purity = []
    for b in range(103 // 16):
        head = data.type_code[hard[b * 16 : b * 16 + 8]]
        purity.append(np.bincount(head).max() / len(head))
    assert np.mean(purity) > 0.8


def test_attribute_classifiers_average_the_per_attribute_cross_entropies():
    from exporter.train import AttributeClassifiers

    torch.manual_seed(0)
    aux = AttributeClassifiers(4, {"gender": 2, "baseColour": 3})
    emb = torch.randn(5, 4)
    labels = {"gender": torch.tensor([0, 1, 0, 1, 1]), "baseColour": torch.tensor([2, 0, 1, 1, 0])}
    ce = torch.nn.functional.cross_entropy
    want = 0.5 * (
        ce(aux.heads["gender"](emb), labels["gender"])
        + ce(aux.heads["baseColour"](emb), labels["baseColour"])
    )
    assert aux(emb, labels).item() == pytest.approx(want.item(), rel=1e-6)
