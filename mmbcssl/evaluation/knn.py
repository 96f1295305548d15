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

The protocol is data plus one function: :class:`KNNProtocol` holds its
settings (their defaults stated here once) and :func:`run_knn` turns a
model and two image sets into metrics with their fingerprint, and into
which query images each k got right (:meth:`KNNResult.outcomes`, the
per-image outcomes a top-1 number's interval is computed from). The tool
(``tools/knn_eval.py``), the pre-training monitor (:class:`KNNMonitorHook`)
and the benchmark suite all go through :func:`run_knn`.
"""
import dataclasses
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine import dist
from mmengine.logging import print_log

from .features import FeatureTransform, extract_features
from .fingerprint import make_fingerprint, transform_record
from .outcomes import Outcomes, dataset_image_keys

DEFAULT_KS = (10, 20, 100, 200)
BANK_DTYPES = {'float16': torch.float16, 'float32': torch.float32}


@dataclass(frozen=True)
class KNNProtocol:
    """The settings of the weighted k-NN protocol (DINO's ``eval_knn.py``).

    Args:
        ks (tuple[int]): Neighbour counts, all evaluated in one pass.
            Defaults to (10, 20, 100, 200).
        temperature (float): T of the vote weight exp(sim / T).
            Defaults to 0.07.
        bank_dtype (str): Storage type of the train bank, ``'float16'``
            (an ImageNet bank is 1.97 GB instead of 3.9 GB) or
            ``'float32'``. Defaults to 'float16'.
        batch_size (int): Images per forward, per process. It changes no
            number beyond float rounding; it is recorded as the run's
            global batch. Defaults to 256.
    """
    ks: Sequence[int] = DEFAULT_KS
    temperature: float = 0.07
    bank_dtype: str = 'float16'
    batch_size: int = 256

    def __post_init__(self):
        ks = tuple(sorted({int(k) for k in self.ks}))
        if not ks or ks[0] < 1:
            raise ValueError(f'KNNProtocol: ks must be positive integers, '
                             f'got {list(self.ks)}')
        object.__setattr__(self, 'ks', ks)
        if self.temperature <= 0:
            raise ValueError('KNNProtocol: temperature must be positive, '
                             f'got {self.temperature}')
        if self.bank_dtype not in BANK_DTYPES:
            raise ValueError(f'KNNProtocol: bank_dtype {self.bank_dtype!r} '
                             f'is not one of {sorted(BANK_DTYPES)}')
        if self.batch_size < 1:
            raise ValueError('KNNProtocol: batch_size must be positive, got '
                             f'{self.batch_size}')

    @classmethod
    def from_dict(cls, settings: Mapping[str, Any]) -> 'KNNProtocol':
        """The protocol of ``settings``; an unknown key is refused with
        the accepted ones."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(settings) - set(names))
        if unknown:
            raise ValueError(f'KNNProtocol: unknown setting(s) {unknown}; '
                             f'accepted: {names}')
        return cls(**settings)

    @property
    def dtype(self) -> torch.dtype:
        return BANK_DTYPES[self.bank_dtype]


class TooManyUnreadableImages(ValueError):
    """More images were unreadable than the run allows."""


@dataclass
class KNNResult:
    """Metrics of one :func:`run_knn` and the protocol they were made by.

    ``protocol`` is the fingerprint's protocol record; ``skipped`` the
    messages of the images left out as unreadable; ``images`` the keys of
    the query images classified (:func:`dataset_image_keys`, the skipped
    ones left out) and ``correct`` for each k whether each of them was
    right at top-1 (bool, in the order of ``images``).
    """
    metrics: Dict[str, float]
    protocol: Dict[str, Any]
    skipped: List[str] = field(default_factory=list)
    batch_size: int = 1
    world_size: int = 1
    images: List[str] = field(default_factory=list)
    correct: Dict[int, np.ndarray] = field(default_factory=dict)

    def outcomes(self) -> Outcomes:
        """The per-image outcomes of the top-1 metrics: one boolean pass
        ``k<k>`` per k, each ``knn/k<k>_top1`` recomputed from it as
        100 x its mean (:mod:`mmbcssl.evaluation.statistics`'s
        ``accuracy``). Top-5 is not kept: no table column reads it
        (:mod:`mmbcssl.evaluation.columns`)."""
        return Outcomes(
            self.images, {f'k{k}': c for k, c in self.correct.items()},
            'correct', dict(metrics={
                f'knn/k{k}_top1': dict(statistic='accuracy',
                                       arrays=[f'k{k}'], scale=100.0)
                for k in self.correct
            }))

    def fingerprint(self, checkpoint: Mapping, model: Mapping,
                    run: Mapping) -> Dict[str, Any]:
        """The whole fingerprint: ``run`` gets the global batch and the
        world size of this evaluation in front."""
        run = dict(global_batch=self.batch_size * self.world_size,
                   world_size=self.world_size, **run)
        return make_fingerprint(self.protocol, checkpoint, model, run)


def run_knn(model: nn.ModuleDict,
            protocol: KNNProtocol,
            transform: FeatureTransform,
            bank,
            query,
            num_classes: Optional[int] = None,
            class_indices: Optional[Sequence[int]] = None,
            num_workers: int = 0,
            skip_bad_images: bool = False,
            max_bad_share: float = 0.01,
            cache=None,
            cache_key: Optional[Mapping[str, Any]] = None,
            progress: bool = False,
            channels_last: bool = False) -> KNNResult:
    """The k-NN protocol: features of ``bank`` and ``query``, classified.

    Args:
        model (nn.ModuleDict): ``backbone`` (and ``neck``) in eval mode.
        protocol (KNNProtocol): ks, T, bank precision, batch size.
        transform (FeatureTransform): The model's input; ``bank`` and
            ``query`` are built with its pipeline.
        bank: The labelled train images (an mmpretrain data set).
        query: The images to classify, in the label space of ``bank``.
        num_classes (int, optional): Classes of the bank. Defaults to the
            largest label seen + 1.
        class_indices (Sequence[int], optional): The query set's classes
            among the bank's: votes for other classes are dropped (the
            ImageNet-A/R protocol applied to the votes). Defaults to None.
        num_workers (int): Data-loader workers. Defaults to 0.
        skip_bad_images (bool): Leave unreadable images out, counted,
            instead of stopping at the first. Defaults to False.
        max_bad_share (float): With ``skip_bad_images``, the largest share
            of unreadable images allowed. Defaults to 0.01.
        cache (FeatureCache, optional): Keep the features on disk.
        cache_key (Mapping, optional): With ``cache``: the identity of the
            weights, model and inference settings; the data set and
            transform are added per split.
        progress (bool): Log each split and a progress bar.
        channels_last (bool): Feed channels-last images.

    Returns:
        KNNResult: identical on every process.
    """
    # 1. features of both sets, L2-normalised, the bank in its storage
    # type from the first batch; each process extracts its share and all
    # end with the whole sets
    skipped: Optional[List[str]] = [] if skip_bad_images else None
    feats, rows = [], []  # rows: the data-set index of each query row
    for split, ds in (('train', bank), ('query', query)):
        if progress and dist.is_main_process():
            print_log(f'extracting {split} features ({len(ds)} images)',
                      logger='current')
        kwargs = dict(normalize=True, dtype=protocol.dtype, skipped=skipped,
                      progress=progress, channels_last=channels_last,
                      transform=transform,
                      kept=rows if split == 'query' else None)
        if cache is None:
            feats += extract_features(model, ds, protocol.batch_size,
                                      num_workers, **kwargs)
        else:
            key = dict(cache_key or {})
            key = dict(weights=key.pop('weights', None),
                       data=_identity(ds, split),
                       transform=transform_record(transform.pipeline()),
                       **key)
            feats += cache.extract(model, ds, key, protocol.batch_size,
                                   num_workers, **kwargs)
    bank_f, bank_y, query_f, query_y = feats
    skipped = skipped or []
    total = len(bank_y) + len(query_y) + len(skipped)
    if len(skipped) > max_bad_share * total:
        raise TooManyUnreadableImages(
            f'{len(skipped)} of {total} images are unreadable, more than '
            f'--max-bad-share {max_bad_share} (first: {skipped[0]}): the '
            'data set looks broken')

    # 2. weighted votes of the k nearest bank features; one process
    # classifies (the bank is the same on all), on the model's device
    # (and keeps which query images each k got right at top-1)
    box = [None]
    if dist.is_main_process():
        device = next(model.parameters()).device
        num_classes = num_classes or int(max(bank_y.max(),
                                             query_y.max())) + 1
        scores = knn_classify(bank_f.to(device), bank_y, query_f,
                              num_classes, ks=protocol.ks,
                              temperature=protocol.temperature,
                              bank_dtype=protocol.dtype, normalized=True)
        metrics, correct = {}, {}
        for k, s in scores.items():
            if class_indices is not None:
                s = _restrict(s, class_indices)
            hits = topk_correct(s, query_y, (1, 5))  # [M] bool each
            metrics[f'knn/k{k}_top1'] = _percent(hits[1])
            metrics[f'knn/k{k}_top5'] = _percent(hits[5])
            correct[k] = hits[1].cpu().numpy()
        keys = dataset_image_keys(query)
        box = [(metrics, correct, [keys[i] for i in rows])]
    dist.broadcast_object_list(box)  # a no-op on one process
    metrics, correct, images = box[0]

    # 3. what the numbers are
    record = dict(
        task='knn',
        dataset=f'folder {osp.basename(osp.abspath(bank.data_root))}',
        transform=transform_record(transform.pipeline()),
        ks=list(protocol.ks), temperature=protocol.temperature,
        normalisation='L2', bank_dtype=protocol.bank_dtype,
        class_restriction='none',
        images=dict(train=len(bank_y), val=len(query_y)),
        skipped_images=len(skipped))
    if class_indices is not None:
        record.update(
            class_restriction='votes restricted to the classes of the set',
            images=dict(train=len(bank_y), query=len(query_y)))
    return KNNResult(metrics, record, skipped, protocol.batch_size,
                     dist.get_world_size(), images, correct)


def bank_classes(dataset) -> List[str]:
    """The train bank's class wnids in label order: the data set's
    classes, or (annotation-file mode, which does not name them) the
    sorted class folders of ``<data_root>/train``, the order in which
    mmpretrain numbers them and ImageNet's ``meta/train.txt`` labels them.
    """
    import os
    classes = dataset.metainfo.get('classes')
    if classes:
        return list(classes)
    folder = osp.join(dataset.data_root, 'train')
    return sorted(d for d in os.listdir(folder)
                  if osp.isdir(osp.join(folder, d)))


def query_dataset(root: str,
                  transform: FeatureTransform,
                  classes: Sequence[str],
                  prefix: str = '',
                  subset_classes: Optional[str] = None,
                  corruption: Optional[str] = None,
                  severity: Optional[int] = None,
                  max_queries: Optional[int] = None):
    """A robustness set in the label space of the train bank (its class
    wnids ``classes``), through ``transform``'s pipeline: ``<root>/
    <prefix>/<wnid>/`` folders (ImageNet-A/R/Sketch, ``subset_classes``
    the set's fixed list) or an ImageNet-C tree (``corruption`` and
    ``severity``); with ``max_queries``, that many evenly spaced images."""
    from mmbcssl.datasets import ImageNetC, ImageNetSubset
    pipeline = transform.pipeline()

    def build(**kwargs):
        if corruption:
            return ImageNetC(root, corruption, severity,
                             base_classes=classes, pipeline=pipeline,
                             **kwargs)
        return ImageNetSubset(data_root=root, data_prefix=prefix,
                              base_classes=classes,
                              subset_classes=subset_classes,
                              pipeline=pipeline, **kwargs)

    ds = build()
    if max_queries and max_queries < len(ds):
        step = len(ds) / max_queries
        ds = build(indices=sorted(
            {int(i * step) for i in range(max_queries)}))
    return ds


def _identity(dataset, split: str) -> Dict[str, Any]:
    from .feature_cache import dataset_identity
    return dataset_identity(dataset, dataset.data_root, split)


def _restrict(scores: torch.Tensor, class_indices) -> torch.Tensor:
    from .robustness import restrict_logits
    return restrict_logits(scores, class_indices)


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


def topk_correct(scores: torch.Tensor,
                 labels: torch.Tensor,
                 topk: Iterable[int] = (1, 5)) -> Dict[int, torch.Tensor]:
    """For each k of ``topk``, whether each query's label is among its k
    highest scores ([M] bool)."""
    labels = labels.long().to(scores.device)
    out = {}
    for k in topk:
        k_eff = min(k, scores.shape[1])
        pred = scores.topk(k_eff, dim=1).indices  # [M, k]
        out[k] = (pred == labels[:, None]).any(dim=1)  # [M]
    return out


def topk_accuracy(scores: torch.Tensor,
                  labels: torch.Tensor,
                  topk: Iterable[int] = (1, 5)) -> Dict[int, float]:
    """Top-k accuracy in percent for each k of ``topk``."""
    return {k: _percent(c)
            for k, c in topk_correct(scores, labels, topk).items()}


def _percent(correct: torch.Tensor) -> float:
    """100 x the share of True: the number the per-image outcomes
    reproduce (100 x their mean)."""
    return 100.0 * correct.double().mean().item()


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
