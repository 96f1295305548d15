"""Linear transfer on frozen features: the CLIP protocol that EsViT uses for
its small-data-set suite.

Protocol (Radford et al. 2021, "Learning Transferable Visual Models From
Natural Language Supervision", section 3.2 and appendix A.3; Li et al.
2021, EsViT, appendix): an L-BFGS logistic regression (scikit-learn,
at most 1000 iterations) on the frozen features of each data set. Its L2
strength lambda is chosen on a validation split by a parametric binary
search over [1e-6, 1e6]: first the seven values 1e-6, 1e-4, ..., 1e6, then
the interval around the best value is halved until the grid reaches 8 steps
per decade. The chosen lambda is refitted on train + validation and scored on
the test split with the data set's metric (CLIP Table 9): accuracy,
mean-per-class accuracy, 11-point mAP (VOC2007) or ROC-AUC.

scikit-learn's ``LogisticRegression`` takes ``C``, the inverse of the
regularisation strength; we use ``C = 1 / lambda``.

Features: the backbone's last layer only. EsViT's transfer table (Li et
al. 2021, arXiv 2106.09785, appendix C.5, Table 10) says "Only the last
layer feature is considered for all models"; the concatenated last-4-blocks
feature of the ImageNet linear probe is refused
(:func:`check_last_layer_feature`).
"""
import math
import os
import os.path as osp
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
from mmengine.config import Config

from mmbcssl.evaluation.fingerprint import (checkpoint_record,
                                            make_fingerprint, model_record,
                                            transform_record)
from mmbcssl.evaluation.outcomes import Outcomes, dataset_image_keys
from mmbcssl.evaluation.statistics import register_statistic
from mmbcssl.utils.launch import UserError

METRICS = ('accuracy', 'mean_per_class', 'map_11point', 'roc_auc')


def check_last_layer_feature(model_cfg: Mapping, name: str = '') -> None:
    """Refuse a backbone that returns the features of several blocks.

    The transfer suite uses the last layer's feature only (EsViT, appendix
    C.5), while the ImageNet linear probes of Swin and ViT concatenate the
    last 4 blocks (``SwinTransformerLastBlocks``,
    ``VisionTransformerLastBlocks``).

    Args:
        model_cfg (Mapping): The ``model`` of a config.
        name (str): How the message names the config. Defaults to ''.

    Raises:
        ValueError: the backbone concatenates more than one block.
    """
    backbone = dict(model_cfg.get('backbone') or {})
    kind = str(backbone.get('type', ''))
    blocks = backbone.get('num_last_blocks', 4)
    if kind.endswith('LastBlocks') and blocks != 1:
        raise ValueError(
            f'{name or "the model"}: {kind} concatenates the last {blocks} '
            'blocks (the ImageNet linear-probe feature), but the transfer '
            'suite uses the last layer\'s feature only (EsViT, arXiv '
            '2106.09785, appendix C.5); pass the backbone\'s own config '
            'instead, e.g. configs/_base_/models/swin-t.py')


#: the metrics of each image's predicted class alone; the others rank the
#: images by each class's probability
ARGMAX_METRICS = ('accuracy', 'mean_per_class')


def accuracy(labels: np.ndarray, pred: np.ndarray) -> float:
    """Top-1 accuracy in percent of the predicted classes ``pred``."""
    return 100.0 * float((pred == labels).mean())


def mean_per_class(labels: np.ndarray, pred: np.ndarray) -> float:
    """Mean over classes of the per-class recall (percent) of the
    predicted classes ``pred``: scikit-learn's
    ``balanced_accuracy_score``."""
    from sklearn.metrics import balanced_accuracy_score
    return 100.0 * float(balanced_accuracy_score(labels, pred))


def map_11point(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean over classes of the VOC2007 11-point interpolated average
    precision (percent), each class ranking the test images by its
    probability; classes without a test image are left out.

    The interpolation is mmdet's ``average_precision(mode='11points')``;
    precision/recall come from the ranking of every image (one-vs-rest).
    """
    from mmdet.evaluation.functional import average_precision
    aps = []
    for c in range(probs.shape[1]):
        positive = labels == c
        if not positive.any():
            continue
        order = np.argsort(-probs[:, c], kind='stable')
        tp = np.cumsum(positive[order])  # true positives in the top r
        rank = np.arange(1, len(order) + 1)
        aps.append(
            average_precision(tp / positive.sum(), tp / rank, '11points'))
    return 100.0 * float(np.mean(aps))


def roc_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """ROC-AUC in percent: of the positive class for two classes (Hateful
    Memes), one-vs-rest macro average for more."""
    from sklearn.metrics import roc_auc_score
    if probs.shape[1] == 2:
        return 100.0 * float(roc_auc_score(labels, probs[:, 1]))
    return 100.0 * float(
        roc_auc_score(labels, probs, multi_class='ovr', average='macro',
                      labels=np.arange(probs.shape[1])))


_METRIC_FNS: Dict[str, Callable[[np.ndarray, np.ndarray], float]] = dict(
    accuracy=accuracy, mean_per_class=mean_per_class,
    map_11point=map_11point, roc_auc=roc_auc)


def score(metric: str,
          labels: np.ndarray,
          probs: Optional[np.ndarray] = None,
          pred: Optional[np.ndarray] = None) -> float:
    """``metric`` (one of :data:`METRICS`) of class probabilities ``probs``
    ([N, C]) against integer ``labels`` ([N]); the metrics of
    :data:`ARGMAX_METRICS` take the predicted classes ``pred`` ([N])
    instead when given (default: ``probs.argmax(1)``)."""
    if metric not in _METRIC_FNS:
        raise ValueError(f'metric must be one of {", ".join(METRICS)}, got '
                         f'{metric!r}')
    if metric in ARGMAX_METRICS:
        return _METRIC_FNS[metric](labels,
                                   probs.argmax(1) if pred is None else pred)
    return _METRIC_FNS[metric](labels, probs)


def search_l2(evaluate: Callable[[float], float],
              log_min: float = -6.,
              log_max: float = 6.,
              coarse_step: float = 2.,
              steps_per_decade: int = 8) -> Tuple[float, Dict[float, float]]:
    """CLIP's parametric binary search for the best L2 strength.

    Args:
        evaluate (Callable[[float], float]): Validation score of a lambda
            (higher is better); called at most once per lambda.
        log_min (float): log10 of the smallest lambda. Defaults to -6.
        log_max (float): log10 of the largest lambda. Defaults to 6.
        coarse_step (float): Decades between the first values. Defaults
            to 2 (1e-6, 1e-4, ..., 1e6).
        steps_per_decade (int): Final resolution. Defaults to 8.

    Returns:
        tuple: ``(best lambda, {lambda: score} of every lambda tried)``.
        Equal scores go to the larger lambda (the simpler model).
    """
    tried: Dict[float, float] = {}  # log10 lambda -> score

    def at(log_lam: float) -> float:
        log_lam = round(log_lam, 9)  # one key per grid point
        if log_lam not in tried:
            tried[log_lam] = float(evaluate(10.0**log_lam))
        return tried[log_lam]

    def best_of(candidates: List[float]) -> float:
        # max score, then max lambda
        return max(candidates, key=lambda c: (at(c), c))

    n = int(round((log_max - log_min) / coarse_step))
    best = best_of([log_min + i * coarse_step for i in range(n + 1)])
    step = coarse_step / 2
    while step >= 1 / steps_per_decade - 1e-9:
        around = [c for c in (best - step, best, best + step)
                  if log_min - 1e-9 <= c <= log_max + 1e-9]
        best = best_of(around)
        step /= 2
    return 10.0**round(best, 9), {10.0**k: v for k, v in tried.items()}


def fit_logistic(feats: np.ndarray, labels: np.ndarray, lam: float,
                 max_iter: int = 1000):
    """scikit-learn's L-BFGS logistic regression with L2 strength ``lam``
    (``C = 1 / lam``). Returns ``(model, converged)``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    clf = LogisticRegression(C=1.0 / lam, max_iter=max_iter, solver='lbfgs')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', ConvergenceWarning)
        clf.fit(feats, labels)
    converged = not any(
        issubclass(w.category, ConvergenceWarning) for w in caught)
    return clf, converged


def class_probs(clf, feats: np.ndarray, num_classes: int) -> np.ndarray:
    """[N, num_classes] probabilities; classes the classifier never saw in
    training get 0 (their columns would be missing otherwise)."""
    probs = np.zeros((feats.shape[0], num_classes))
    probs[:, clf.classes_] = clf.predict_proba(feats)
    return probs


def transfer_one(train: Tuple[np.ndarray, np.ndarray],
                 val: Tuple[np.ndarray, np.ndarray],
                 test: Tuple[np.ndarray, np.ndarray],
                 num_classes: int,
                 metric: str,
                 max_iter: int = 1000) -> Dict[str, object]:
    """Search lambda on (train, val), refit on both, score on test.

    Returns:
        dict: ``metric`` name, test ``score``, chosen ``lambda``, the
        validation ``curve`` ({lambda: score}), whether every fit
        ``converged`` and the test images' class ``probs`` ([N, C], what
        the score was computed from).
    """
    all_converged = True

    def validate(lam: float) -> float:
        nonlocal all_converged
        clf, ok = fit_logistic(*train, lam, max_iter)
        all_converged &= ok
        return score(metric, val[1], class_probs(clf, val[0], num_classes))

    lam, curve = search_l2(validate)
    clf, ok = fit_logistic(
        np.concatenate([train[0], val[0]]),
        np.concatenate([train[1], val[1]]), lam, max_iter)
    probs = class_probs(clf, test[0], num_classes)  # [N, C]
    return dict(metric=metric, score=score(metric, test[1], probs), lam=lam,
                log10_lam=math.log10(lam), curve=curve,
                converged=bool(all_converged and ok), probs=probs)


def holdout_split(labels: np.ndarray, fraction: float,
                  seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) of a stratified hold-out of ``fraction`` of the
    images, for data sets without a validation split."""
    from sklearn.model_selection import train_test_split
    idx = np.arange(len(labels))
    counts = np.bincount(labels)
    if counts[counts > 0].min() < 2:
        raise ValueError(
            'a stratified validation hold-out needs at least 2 training '
            'images per class; give the data set a val/ split instead')
    tr, va = train_test_split(idx, test_size=fraction, random_state=seed,
                              stratify=labels)
    return np.sort(tr), np.sort(va)


def summarise(results: Dict[str, Dict[str, Dict[str, object]]],
              models: List[str]) -> Dict[str, object]:
    """Average per model and, for every other model, wins/ties/losses of
    the first model against it.

    Args:
        results: ``{model: {data set: transfer_one(...) result}}``.
        models (list[str]): Model names; the first is the one compared.
    """
    sets = list(results[models[0]])
    out: Dict[str, object] = dict(
        average={
            m: float(np.mean([results[m][s]['score'] for s in sets]))
            for m in models
        })
    ref = models[0]
    versus = {}
    for other in models[1:]:
        diff = [results[ref][s]['score'] - results[other][s]['score']
                for s in sets]
        versus[other] = dict(wins=sum(d > 0 for d in diff),
                             ties=sum(d == 0 for d in diff),
                             losses=sum(d < 0 for d in diff))
    out['versus'] = versus
    return out


@dataclass(frozen=True)
class TransferProtocol:
    """How the features are taken: short side ``resize``, centre crop
    ``img_size`` (the k-NN protocol's transform), in batches.

    Args:
        img_size (int): Centre crop. Defaults to 224.
        resize (int): Short side before the crop. Defaults to 256.
        batch_size (int): Images per forward pass. Defaults to 64.
        num_workers (int): Data loader workers. Defaults to 4.
    """
    img_size: int = 224
    resize: int = 256
    batch_size: int = 64
    num_workers: int = 4


def transfer_model(protocol: TransferProtocol, config: str,
                   checkpoint: Optional[str], registry: Dict,
                   classes: Dict[str, List[str]], preset: str,
                   disk=None, log=None) -> Tuple[Dict[str, Dict], Outcomes]:
    """The transfer protocol for one model: ``{set: result}``, each result
    a :func:`transfer_one` result with the set's sizes and its
    ``fingerprint``, and the per-image outcomes of the test images
    (:func:`transfer_outcomes`).

    Args:
        protocol (TransferProtocol): The feature settings.
        config (str): A config with the backbone (and neck).
        checkpoint (str, optional): Its weights; None: random init.
        registry (dict): :func:`read_registry`.
        classes (dict): Each set's class folders (:func:`check_layout`).
        preset (str): How the mean over the sets is labelled
            (:func:`select_sets`).
        disk (FeatureCache, optional): Keep the features on disk.
        log (callable, optional): Called with one line per set.
    """
    import torch
    from mmengine.logging import print_log

    from mmbcssl.apis import init_backbone
    from mmbcssl.evaluation.features import FeatureTransform
    log = log or (lambda msg: print_log(msg, logger='current'))
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    model = init_backbone(config, checkpoint, device=device)
    cfg = Config.fromfile(config)
    # the model's own input statistics; the protocol's resize and crop
    transform = FeatureTransform.from_config(cfg, protocol.resize,
                                             protocol.img_size)
    cache = SetFeatures(
        model, transform, protocol.batch_size, protocol.num_workers, disk,
        key=dict(
            weights=checkpoint_record(checkpoint)['sha256']
            or 'random init, seed 0',
            model=model_record(cfg.model),
            input=transform.input_record()))
    results, outcomes = run_model(cache, registry, classes, log)
    for name, res in results.items():
        res['fingerprint'] = transfer_fingerprint(
            protocol, config, checkpoint, name, registry[name], res, preset)
    return results, outcomes


LAYOUT = ('<data_root>/<root>/<split>/<class>/<image> with the same class '
          'folders in every split')


def select_sets(path: str, preset: Optional[str],
                only: Optional[List[str]]) -> Tuple[Optional[List[str]], str]:
    """The set names to run and how the mean over them is labelled: a
    preset of the registry (``presets = dict(clip23=[...], ...)``), an
    explicit ``--sets`` list, or every set of the registry."""
    if preset and only:
        raise UserError('--preset and --sets: give one of them')
    if not only and not preset:
        return None, f'every set of {osp.basename(path)}'
    if only:
        return only, f'custom: {len(only)} sets'
    presets = dict(Config.fromfile(path).get('presets') or {})
    if preset not in presets:
        raise UserError(f'unknown preset {preset!r}; {path} has: '
                        f'{", ".join(presets) or "none"}')
    return list(presets[preset]), f'{preset} ({len(presets[preset])} sets)'


def read_registry(path: str, only: Optional[List[str]] = None) -> Dict:
    """``{name: entry}`` of the registry file, each entry with ``root``
    (joined to ``data_root``), ``metric``, ``train``, ``val`` (None: a
    stratified hold-out of ``val_fraction`` of train) and ``test``."""
    if not osp.isfile(path):
        raise UserError(f'registry {path!r} not found (see '
                        'configs/transfer/datasets.py)')
    cfg = Config.fromfile(path)
    sets = cfg.get('datasets')
    if not isinstance(sets, dict) or not sets:
        raise UserError(f'{path}: expected a non-empty `datasets` dict')
    names = list(sets) if not only else only
    unknown = [n for n in names if n not in sets]
    if unknown:
        raise UserError(f'unknown data set(s) {", ".join(unknown)}; '
                        f'{path} has: {", ".join(sets)}')
    out = {}
    for name in names:
        entry = dict(train='train', val=None, test='test', val_fraction=0.2)
        entry.update(sets[name])
        if entry.get('metric') not in METRICS:
            raise UserError(f'{path}: {name}.metric must be one of '
                            f'{", ".join(METRICS)}, got '
                            f'{entry.get("metric")!r}')
        entry['root'] = osp.join(cfg.get('data_root', ''), entry['root'])
        out[name] = entry
    return out


def check_layout(name: str, entry: Dict) -> List[str]:
    """The class folders (sorted, as the labels are numbered), the same in
    every split; else a message naming what is missing where."""
    splits = [s for s in (entry['train'], entry['val'], entry['test']) if s]
    classes = {}
    for split in splits:
        folder = osp.join(entry['root'], split)
        if not osp.isdir(folder):
            raise UserError(f'{name}: {folder!r} not found; expected '
                            f'{LAYOUT}')
        classes[split] = sorted(
            d for d in os.listdir(folder)
            if osp.isdir(osp.join(folder, d)))
    ref = classes[entry['train']]
    for split, found in classes.items():
        if found != ref:
            missing = sorted(set(ref) - set(found))
            extra = sorted(set(found) - set(ref))
            raise UserError(
                f'{name}: the class folders of {split!r} differ from '
                f'{entry["train"]!r} (missing {missing[:5]}, extra '
                f'{extra[:5]}); labels would not match. Expected {LAYOUT}')
    if len(ref) < 2:
        raise UserError(f'{name}: {len(ref)} class folder(s) in '
                        f'{osp.join(entry["root"], entry["train"])}; a '
                        'classifier needs at least 2')
    return ref


class SetFeatures:
    """Features of (root, split) for one model, extracted once per run, and
    kept on disk across runs when given a :class:`FeatureCache` (shared
    with k-NN and later evaluations of the same weights)."""

    def __init__(self, model, transform, batch_size: int, num_workers: int,
                 disk=None, key: Optional[Dict] = None) -> None:
        # transform: a FeatureTransform, which also sets resize and crop
        self.model, self.transform = model, transform
        self.batch_size, self.num_workers = batch_size, num_workers
        self.disk, self.key = disk, dict(key or {})
        self._cache: Dict[Tuple[str, str], Tuple[np.ndarray,
                                                 np.ndarray]] = {}
        self._images: Dict[Tuple[str, str], List[str]] = {}

    def images(self, root: str, split: str) -> List[str]:
        """The image keys of (root, split) (:func:`dataset_image_keys`),
        in the order of its features' rows; after :meth:`__call__`."""
        return self._images[(root, split)]

    def __call__(self, root: str, split: str):
        from mmbcssl.evaluation.feature_cache import dataset_identity
        from mmbcssl.evaluation.features import extract_features
        key = (root, split)
        if key not in self._cache:
            ds = self.transform.dataset(root, split)
            self._images[key] = dataset_image_keys(ds)
            if self.disk is None:
                feats, labels = extract_features(self.model, ds,
                                                 self.batch_size,
                                                 self.num_workers,
                                                 transform=self.transform)
            else:
                fields = dict(
                    self.key, data=dataset_identity(ds, root, split),
                    transform=transform_record(self.transform.pipeline()))
                feats, labels = self.disk.extract(
                    self.model, ds, fields, self.batch_size,
                    self.num_workers, transform=self.transform)
            self._cache[key] = (feats.double().numpy(), labels.numpy())
        return self._cache[key]


def run_model(cache: SetFeatures, registry: Dict,
              classes: Dict[str, List[str]], log) -> Tuple[Dict, Outcomes]:
    """``{set: transfer_one result}`` for one model and the per-image
    outcomes of the test images (:func:`transfer_outcomes`); ``classes``
    are each set's class folders (:func:`check_layout`)."""
    results, tests = {}, {}
    for name, entry in registry.items():
        train = cache(entry['root'], entry['train'])
        if entry['val']:
            val = cache(entry['root'], entry['val'])
        else:
            try:
                tr, va = holdout_split(train[1], entry['val_fraction'])
            except ValueError as e:
                raise UserError(f'{name}: {e}') from None
            train, val = (train[0][tr], train[1][tr]), (train[0][va],
                                                        train[1][va])
        test = cache(entry['root'], entry['test'])
        num_classes = len(classes[name])
        res = transfer_one(train, val, test, num_classes, entry['metric'])
        tests[name] = dict(images=cache.images(entry['root'], entry['test']),
                           labels=test[1], probs=res.pop('probs'),
                           metric=entry['metric'], score=res['score'])
        res.update(num_classes=num_classes, num_train=len(train[1]),
                   num_val=len(val[1]), num_test=len(test[1]))
        log(f'  {name}: {entry["metric"]} {res["score"]:.2f} '
            f'(lambda {res["lam"]:.3g}'
            f'{"" if res["converged"] else ", not converged"})')
        results[name] = res
    return results, transfer_outcomes(tests)


def transfer_outcomes(tests: Mapping[str, Mapping]) -> Outcomes:
    """The per-image outcomes of one model's transfer: the test images of
    every set, concatenated in the order of ``tests``, keyed
    ``<set>/<path in the set's root>``, with the arrays

    - ``set``: each row's set (its index in ``meta['sets']``), the stratum
      a resample stays within;
    - ``label`` and ``pred``: the true and the predicted class (all that
      accuracy and mean-per-class need);
    - ``probs.values`` / ``probs.offsets``: each image's class
      probabilities (ragged: C values per image of a set whose metric
      ranks the images, 11-point mAP or ROC-AUC; none for the others), in
      the smallest float type (float16, float32, float64) from which every
      such set's score is recomputed exactly.

    ``meta['metrics']['average']`` recomputes the mean over the sets
    (:func:`transfer_mean`).

    Args:
        tests (Mapping): ``{set: dict(images=keys, labels=[N],
            probs=[N, C], metric=..., score=...)}``.
    """
    images, sets, ranked = [], [], []
    strata, labels, preds, sizes = [], [], [], []  # per set, [N] each
    for s, (name, t) in enumerate(tests.items()):
        n, c = t['probs'].shape
        images += [f'{name}/{key}' for key in t['images']]
        strata.append(np.full(n, s))
        labels.append(np.asarray(t['labels']))
        preds.append(t['probs'].argmax(1))
        needs_probs = t['metric'] not in ARGMAX_METRICS
        sizes.append(np.full(n, c if needs_probs else 0))
        if needs_probs:
            ranked.append(t)
        sets.append(dict(name=name, metric=t['metric'], num_classes=c))
    dtype = next((d for d in (np.float16, np.float32)
                  if all(_reproduces(t, d) for t in ranked)), np.float64)
    values = [t['probs'].astype(dtype).reshape(-1) for t in ranked]
    offsets = np.concatenate([[0], np.cumsum(np.concatenate(sizes))])
    arrays = {
        'set': _small_int(np.concatenate(strata)),
        'label': _small_int(np.concatenate(labels)),
        'pred': _small_int(np.concatenate(preds)),
        'probs.values': np.concatenate(values) if values else np.zeros(
            0, dtype),
        'probs.offsets': offsets.astype(np.int64),
    }
    return Outcomes(images, arrays, 'scores', dict(
        sets=sets, metrics=dict(average=dict(statistic='transfer_mean',
                                             strata='set'))))


def _reproduces(test: Mapping, dtype) -> bool:
    """Whether ``test``'s probabilities stored as ``dtype`` give its score
    exactly (rounding can tie two images' ranks; float16 rows may no
    longer sum to 1, which a multi-class ROC-AUC refuses)."""
    probs = test['probs'].astype(dtype).astype(np.float64)
    try:
        return score(test['metric'], np.asarray(test['labels']),
                     probs) == test['score']
    except ValueError:
        return False


def _small_int(a: np.ndarray) -> np.ndarray:
    """Non-negative integers in the smallest unsigned type that holds
    them."""
    return a.astype(np.min_scalar_type(int(a.max()) if a.size else 0))


@register_statistic('transfer_mean')
def transfer_mean(outcomes: Outcomes,
                  idx: Optional[np.ndarray] = None,
                  strata: str = 'set') -> float:
    """The mean over the sets of each set's score (its own metric,
    :func:`score`) on the rows ``idx`` of :func:`transfer_outcomes` (a
    resample within each set, the sets given by the array ``strata``;
    None: every row): the transfer result's ``average``."""
    a = outcomes.arrays
    rows = np.arange(len(outcomes.images)) if idx is None else np.asarray(
        idx)
    stratum = a[strata][rows]
    scores = []
    for s, entry in enumerate(outcomes.meta['sets']):
        r = rows[stratum == s]
        labels = a['label'][r].astype(np.int64)
        if entry['metric'] in ARGMAX_METRICS:
            scores.append(score(entry['metric'], labels,
                                pred=a['pred'][r].astype(np.int64)))
            continue
        cols = a['probs.offsets'][r][:, None] + np.arange(
            entry['num_classes'])  # [n, C]
        scores.append(score(entry['metric'], labels,
                            a['probs.values'][cols].astype(np.float64)))
    return float(np.mean(scores))


def transfer_fingerprint(protocol: 'TransferProtocol', config: str,
                         checkpoint: Optional[str], name: str, entry: Dict,
                         result: Dict, preset: str) -> Dict:
    """The protocol fingerprint of one (model, data set) result."""
    from mmbcssl.evaluation.features import knn_dataset_cfg
    transform = transform_record(
        knn_dataset_cfg('', '', protocol.img_size,
                        protocol.resize)['pipeline'])
    fields = dict(
        task='transfer-linear', dataset=name, metric=entry['metric'],
        transform=transform, features_normalised=False,
        classifier='L-BFGS logistic regression, at most 1000 iterations; '
        'lambda by CLIP\'s binary search on the validation split',
        images=dict(train=result['num_train'], val=result['num_val'],
                    test=result['num_test']))
    return make_fingerprint(
        fields, checkpoint_record(checkpoint),
        model_record(Config.fromfile(config).model),
        dict(global_batch=protocol.batch_size, world_size=1, preset=preset))
