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
import warnings
from typing import Callable, Dict, List, Mapping, Tuple

import numpy as np

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


def accuracy(labels: np.ndarray, probs: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    return 100.0 * float((probs.argmax(1) == labels).mean())


def mean_per_class(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean over classes of the per-class recall (percent): scikit-learn's
    ``balanced_accuracy_score``."""
    from sklearn.metrics import balanced_accuracy_score
    return 100.0 * float(balanced_accuracy_score(labels, probs.argmax(1)))


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


def score(metric: str, labels: np.ndarray, probs: np.ndarray) -> float:
    """``metric`` (one of :data:`METRICS`) of class probabilities ``probs``
    ([N, C]) against integer ``labels`` ([N])."""
    if metric not in _METRIC_FNS:
        raise ValueError(f'metric must be one of {", ".join(METRICS)}, got '
                         f'{metric!r}')
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
        validation ``curve`` ({lambda: score}) and whether every fit
        ``converged``.
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
    test_score = score(metric, test[1], class_probs(clf, test[0],
                                                    num_classes))
    return dict(metric=metric, score=test_score, lam=lam,
                log10_lam=math.log10(lam), curve=curve,
                converged=bool(all_converged and ok))


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
