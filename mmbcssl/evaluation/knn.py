"""Weighted k-NN classification on frozen features (the DINO protocol).

Protocol (Caron et al. 2021, ``eval_knn.py`` of facebookresearch/dino; Wu et
al. 2018): features are L2-normalised; for each query the k most similar
training features (cosine similarity) vote for their label with weight
``exp(sim / T)``, T = 0.07; the class with the largest summed weight wins.
We evaluate several k in one pass (the neighbours of the largest k contain
those of every smaller k) and report top-1 and top-5.

Scale: the full ImageNet train bank is 1.28M x 768. It is kept in half
precision (1.97 GB; ``extract_features(..., normalize=True,
dtype=torch.float16)`` stores it so from the first batch, and no float32
copy of the whole bank is ever made) and similarities are computed for a
chunk of queries against a chunk of the bank at a time, keeping a running
top-k, so memory stays at the bank plus ``chunk_size x bank_chunk_size``
similarities and ``chunk_size x num_classes`` votes per k.
"""
from typing import Dict, Iterable, Optional, Sequence

import torch
import torch.nn.functional as F

DEFAULT_KS = (10, 20, 100, 200)


def knn_classify(train_feats: torch.Tensor,
                 train_labels: torch.Tensor,
                 test_feats: torch.Tensor,
                 num_classes: int,
                 ks: Sequence[int] = DEFAULT_KS,
                 temperature: float = 0.07,
                 chunk_size: int = 1024,
                 bank_dtype: Optional[torch.dtype] = None,
                 bank_chunk_size: int = 65536,
                 normalized: bool = False) -> Dict[int, torch.Tensor]:
    """Class scores of a weighted k-NN for each k.

    Args:
        train_feats (Tensor): Bank features, (N, D); normalised here.
        train_labels (Tensor): Bank labels, (N, ), int.
        test_feats (Tensor): Query features, (M, D); normalised here.
        num_classes (int): Number of classes C.
        ks (Sequence[int]): Neighbour counts. Defaults to (10, 20, 100, 200).
        temperature (float): T of the vote weight exp(sim / T).
            Defaults to 0.07.
        chunk_size (int): Queries per similarity chunk. Defaults to 1024.
        bank_chunk_size (int): Bank rows per similarity chunk; with
            ``chunk_size`` it bounds the similarity buffer. Defaults to 65536.
        bank_dtype (torch.dtype, optional): Storage type of the bank, e.g.
            ``torch.float16`` for ImageNet-size banks; each bank chunk is
            cast to float32 for its similarities. Defaults to the dtype of
            ``train_feats`` when it is a half type, else float32.
        normalized (bool): ``train_feats`` rows already have unit norm
            (``extract_features(..., normalize=True)``); a bank that is
            also in ``bank_dtype`` is then used as it is, without a copy.
            Defaults to False.

    Returns:
        dict[int, Tensor]: For each k, the (M, C) summed vote weights.
    """
    ks = sorted(set(int(k) for k in ks))
    if not ks or ks[0] < 1:
        raise ValueError(f'ks must be positive integers, got {ks}')
    n = train_feats.shape[0]
    if train_labels.shape != (n, ):
        raise ValueError(f'train_labels must have shape ({n},), got '
                         f'{tuple(train_labels.shape)}')
    k_max = min(ks[-1], n)
    bank = normalized_bank(train_feats, bank_dtype, bank_chunk_size,
                           normalized)
    labels = train_labels.long().to(bank.device)
    scores = {k: [] for k in ks}
    for start in range(0, test_feats.shape[0], chunk_size):
        query = F.normalize(
            test_feats[start:start + chunk_size].float(), dim=1).to(
                bank.device)  # [m, D]
        top_sim, top_idx = _chunked_topk(query, bank, k_max, bank_chunk_size)
        weights = (top_sim / temperature).exp()  # [m, k_max]
        neighbour_labels = labels[top_idx]  # [m, k_max]
        for k in ks:
            # The k nearest are the first k of the sorted k_max. Summing
            # votes with scatter_add keeps the buffer at [m, C] (a one-hot
            # [m, k_max, C] would be 0.8 GB for m 1024, k 200, C 1000).
            k_eff = min(k, k_max)
            votes = weights.new_zeros(weights.shape[0], num_classes)
            votes.scatter_add_(1, neighbour_labels[:, :k_eff],
                               weights[:, :k_eff])
            scores[k].append(votes)  # [m, C]
    return {k: torch.cat(v) for k, v in scores.items()}


def normalized_bank(feats: torch.Tensor,
                    dtype: Optional[torch.dtype] = None,
                    chunk_size: int = 65536,
                    normalized: bool = False) -> torch.Tensor:
    """``feats`` with unit-norm rows, stored in ``dtype``.

    Normalised one chunk at a time straight into the result, so the peak is
    the input plus the result, never a float32 copy of the whole bank
    (3.9 GB for ImageNet); an input that is already normalised and in
    ``dtype`` is returned as it is.
    """
    if dtype is None:
        half = (torch.float16, torch.bfloat16)
        dtype = feats.dtype if feats.dtype in half else torch.float32
    if normalized and feats.dtype == dtype:
        return feats
    bank = torch.empty(feats.shape, dtype=dtype, device=feats.device)
    for start in range(0, feats.shape[0], chunk_size):
        rows = feats[start:start + chunk_size].float()
        bank[start:start + chunk_size] = F.normalize(rows, dim=1).to(dtype)
    return bank


def _chunked_topk(query: torch.Tensor, bank: torch.Tensor, k: int,
                  bank_chunk_size: int):
    """Top-k cosine similarities of ``query`` rows over the whole bank,
    one bank chunk at a time (a running top-k merged with each chunk's)."""
    best_sim = best_idx = None
    for b0 in range(0, bank.shape[0], bank_chunk_size):
        chunk = bank[b0:b0 + bank_chunk_size].float()  # [n, D]
        sim = query @ chunk.T  # [m, n]
        sim, idx = sim.topk(min(k, sim.shape[1]), dim=1)
        idx = idx + b0
        if best_sim is not None:
            sim = torch.cat([best_sim, sim], dim=1)
            idx = torch.cat([best_idx, idx], dim=1)
            sim, order = sim.topk(min(k, sim.shape[1]), dim=1)
            idx = idx.gather(1, order)
        best_sim, best_idx = sim, idx
    return best_sim, best_idx  # [m, k] each, most similar first


def topk_accuracy(scores: torch.Tensor,
                  labels: torch.Tensor,
                  topk: Iterable[int] = (1, 5)) -> Dict[int, float]:
    """Top-k accuracy in percent for each k of ``topk``."""
    labels = labels.long().to(scores.device)
    out = {}
    for k in topk:
        k_eff = min(k, scores.shape[1])
        pred = scores.topk(k_eff, dim=1).indices  # [M, k]
        correct = (pred == labels[:, None]).any(dim=1)
        out[k] = 100.0 * correct.double().mean().item()
    return out


def knn_evaluate(train_feats: torch.Tensor,
                 train_labels: torch.Tensor,
                 test_feats: torch.Tensor,
                 test_labels: torch.Tensor,
                 num_classes: int,
                 ks: Sequence[int] = DEFAULT_KS,
                 temperature: float = 0.07,
                 chunk_size: int = 1024,
                 bank_dtype: Optional[torch.dtype] = None,
                 bank_chunk_size: int = 65536,
                 normalized: bool = False) -> Dict[str, float]:
    """Top-1/top-5 accuracy of the weighted k-NN for every k.

    Returns:
        dict: ``{'knn/k20_top1': ..., 'knn/k20_top5': ..., ...}``.
    """
    scores = knn_classify(train_feats, train_labels, test_feats, num_classes,
                          ks, temperature, chunk_size, bank_dtype,
                          bank_chunk_size, normalized)
    metrics = {}
    for k, s in scores.items():
        acc = topk_accuracy(s, test_labels, (1, 5))
        metrics[f'knn/k{k}_top1'] = acc[1]
        metrics[f'knn/k{k}_top5'] = acc[5]
    return metrics
