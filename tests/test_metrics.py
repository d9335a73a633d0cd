import math

import numpy as np
import pytest

from exporter.metrics import precision_at_k, rank, retrieval_metrics


def test_rank_is_stable_on_ties():
    s = np.array([[0.5, 0.9, 0.5, 0.1]])
    assert rank(s, 3).tolist() == [[1, 0, 2]]


def test_single_relevant_hand_computed():
    # query 0: relevant item ranked 1st; query 1: relevant ranked 3rd; query 2: ranked 6th.
    scores = np.array(
        [
            [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
            [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
            [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
        ]
    )
    rel = np.zeros_like(scores, dtype=bool)
    rel[0, 0] = rel[1, 2] = rel[2, 5] = True
    m = retrieval_metrics(scores, rel, ks=(1, 5, 10), cutoff=10)
    assert m["R@1"] == pytest.approx(1 / 3)
    assert m["R@5"] == pytest.approx(2 / 3)
    assert m["R@10"] == pytest.approx(1.0)
    # AP with one relevant item = 1/rank.
    assert m["mAP@10"] == pytest.approx((1 + 1 / 3 + 1 / 6) / 3)
    # nDCG with one relevant item = 1/log2(rank+1).
    assert m["nDCG@10"] == pytest.approx((1 + 1 / 2 + 1 / math.log2(7)) / 3)


def test_multiple_relevant_hand_computed():
    scores = np.array([[0.9, 0.8, 0.7, 0.6]])
    rel = np.array([[True, False, True, False]])  # relevant at ranks 1 and 3
    m = retrieval_metrics(scores, rel, ks=(1, 2), cutoff=3)
    assert m["R@1"] == 1.0 and m["R@2"] == 1.0
    assert m["mAP@3"] == pytest.approx((1.0 + 2 / 3) / 2)
    idcg = 1 + 1 / math.log2(3)
    assert m["nDCG@3"] == pytest.approx((1 + 1 / math.log2(4)) / idcg)


def test_query_without_relevant_is_skipped_and_counted():
    scores = np.array([[0.9, 0.1], [0.2, 0.8]])
    rel = np.array([[False, False], [False, True]])
    m = retrieval_metrics(scores, rel, ks=(1,), cutoff=2)
    assert m["queries"] == 1 and m["queries_without_relevant"] == 1
    assert m["R@1"] == 1.0


def test_precision_at_k_plain_and_capped():
    scores = np.array([[0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.4]])
    rel = np.array([[True, False, True, False], [True, False, False, False]])
    # top-2: q0 -> [0, 1] one hit; q1 -> [3, 2] no hit.
    assert precision_at_k(scores, rel, 2) == pytest.approx((0.5 + 0.0) / 2)
    # capped: q0 has 2 relevant -> 1/2; q1 has 1 relevant -> 0/1.
    assert precision_at_k(scores, rel, 2, capped=True) == pytest.approx(0.25)
    rel2 = np.array([[True, False, False, False], [False, False, False, True]])
    assert precision_at_k(scores, rel2, 2, capped=True) == pytest.approx(1.0)


def test_shape_mismatch_rejected():
    with pytest.raises(ValueError):
        retrieval_metrics(np.zeros((2, 3)), np.zeros((3, 2), dtype=bool))
