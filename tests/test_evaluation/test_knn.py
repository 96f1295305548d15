"""Weighted k-NN against a brute-force reference written query by query."""
import math

import pytest
import torch

from mmbcssl.evaluation.knn import (knn_classify, knn_evaluate,
                                    normalized_bank, topk_accuracy)


def brute_force_scores(train, labels, query, num_classes, k, t):
    """The protocol spelled out: cosine similarity to every bank entry,
    the k largest vote with exp(sim / T)."""
    out = torch.zeros(len(query), num_classes, dtype=torch.float64)
    for i, q in enumerate(query):
        sims = []
        for j, x in enumerate(train):
            cos = float(q @ x) / (float(q.norm()) * float(x.norm()))
            sims.append((cos, j))
        sims.sort(reverse=True)
        for cos, j in sims[:k]:
            out[i, labels[j]] += math.exp(cos / t)
    return out


@pytest.mark.parametrize('ks', [(1, ), (10, 20, 100, 200), (3, 7)])
def test_matches_brute_force_for_every_k(ks):
    g = torch.Generator().manual_seed(1)
    train = torch.randn(250, 8, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 6, (250, ), generator=g)
    query = torch.randn(9, 8, generator=g, dtype=torch.float64)
    scores = knn_classify(train, labels, query, 6, ks=ks, chunk_size=4,
                          bank_chunk_size=33)
    assert sorted(scores) == sorted(ks)
    for k in ks:
        ref = brute_force_scores(train, labels, query, 6, k, 0.07)
        torch.testing.assert_close(scores[k].double(), ref, rtol=1e-4,
                                   atol=1e-6)


def test_chunked_equals_unchunked_and_half_bank_is_close():
    g = torch.Generator().manual_seed(2)
    train = torch.randn(3000, 32, generator=g)
    labels = torch.randint(0, 10, (3000, ), generator=g)
    query = torch.randn(50, 32, generator=g)
    whole = knn_classify(train, labels, query, 10, chunk_size=10**6,
                         bank_chunk_size=10**6)
    chunked = knn_classify(train, labels, query, 10, chunk_size=7,
                           bank_chunk_size=128)
    half = knn_classify(train, labels, query, 10, chunk_size=16,
                        bank_chunk_size=500, bank_dtype=torch.float16)
    for k in whole:
        # Same neighbours; float32 matmuls blocked differently round
        # differently, and exp(sim / 0.07) scales that by ~14.
        torch.testing.assert_close(chunked[k], whole[k], rtol=1e-5, atol=0)
        # fp16 storage moves similarities by ~1e-3: same predictions.
        agree = (half[k].argmax(1) == whole[k].argmax(1)).float().mean()
        assert agree >= 0.96


def test_prenormalised_half_bank_is_used_without_a_copy():
    """The path of tools/knn_eval.py: features stored normalised in
    float16 by extract_features are classified in place, with the scores of
    the default path (which normalises and casts itself)."""
    g = torch.Generator().manual_seed(3)
    train = torch.randn(400, 16, generator=g)
    labels = torch.randint(0, 5, (400, ), generator=g)
    query = torch.randn(20, 16, generator=g)
    bank = normalized_bank(train, torch.float16, chunk_size=64)
    assert bank.dtype == torch.float16
    torch.testing.assert_close(bank.float().norm(dim=1), torch.ones(400),
                               atol=1e-3, rtol=0)
    assert normalized_bank(bank, torch.float16, normalized=True) is bank
    ref = knn_classify(train, labels, query, 5, bank_dtype=torch.float16)
    got = knn_classify(bank, labels, query, 5, bank_dtype=torch.float16,
                       normalized=True)
    for k in ref:
        torch.testing.assert_close(got[k], ref[k])


def test_k_larger_than_bank_uses_all_entries():
    train = torch.eye(3)
    labels = torch.tensor([0, 1, 1])
    scores = knn_classify(train, labels, torch.tensor([[1., 0., 0.]]), 2,
                          ks=(200, ))
    e = math.exp
    expected = torch.tensor([[e(1 / 0.07), 2 * e(0.)]])
    torch.testing.assert_close(scores[200], expected)


def test_topk_accuracy_and_metric_names():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]])
    labels = torch.tensor([0, 1, 1])
    acc = topk_accuracy(scores, labels, (1, 2))
    # Only row 0 is right at top-1; every label is within the top 2.
    assert acc[1] == pytest.approx(100 / 3) and acc[2] == 100.0
    train = torch.randn(40, 4)
    metrics = knn_evaluate(train, torch.arange(40) % 4, train,
                           torch.arange(40) % 4, 4, ks=(1, ))
    # Each query's nearest neighbour is itself.
    assert metrics['knn/k1_top1'] == 100.0 and 'knn/k1_top5' in metrics


def test_bad_arguments():
    with pytest.raises(ValueError, match='ks'):
        knn_classify(torch.randn(4, 2), torch.zeros(4), torch.randn(1, 2), 2,
                     ks=(0, ))
    with pytest.raises(ValueError, match='train_labels'):
        knn_classify(torch.randn(4, 2), torch.zeros(3), torch.randn(1, 2), 2)
