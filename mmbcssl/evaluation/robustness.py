"""Robustness arithmetic: ImageNet-A/R class restriction and ImageNet-C mCE.

Sources:
    * Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to
      Common Corruptions and Perturbations", ICLR 2019: CE, mCE and relative
      mCE, normalised by AlexNet, whose errors the paper reports. The
      per-corruption AlexNet errors below are the means over the 5
      severities of the per-severity table in the BC-SSL authors' DINO fork
      (Shiweiliuiiiiiii/dino, ``timm/utils/imagenet_c.py``,
      ``imagenetc_alexnet_error_rates_list``).
    * Hendrycks et al., "Natural Adversarial Examples" (ImageNet-A) and
      "The Many Faces of Robustness" (ImageNet-R): evaluate a 1000-way model
      on the 200-class subsets by keeping only those 200 logits.
"""
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch

# The 15 corruptions of the mCE benchmark, in the paper's order.
BENCHMARK_CORRUPTIONS = (
    'gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur',
    'glass_blur', 'motion_blur', 'zoom_blur', 'snow', 'frost', 'fog',
    'brightness', 'contrast', 'elastic_transform', 'pixelate',
    'jpeg_compression')
# Shipped with ImageNet-C as held-out corruptions: never part of mCE.
EXTRA_CORRUPTIONS = ('speckle_noise', 'gaussian_blur', 'spatter', 'saturate')
SEVERITIES = (1, 2, 3, 4, 5)

# AlexNet's error on each corruption, averaged over the 5 severities
# (Hendrycks & Dietterich 2019; per severity in the BC-SSL authors' fork,
# timm/utils/imagenet_c.py).
ALEXNET_MEAN_ERROR = {
    'gaussian_noise': 0.886428,
    'shot_noise': 0.894468,
    'impulse_noise': 0.922640,
    'defocus_blur': 0.819880,
    'glass_blur': 0.826268,
    'motion_blur': 0.785948,
    'zoom_blur': 0.798360,
    'snow': 0.866816,
    'frost': 0.826572,
    'fog': 0.819324,
    'brightness': 0.564592,
    'contrast': 0.853204,
    'elastic_transform': 0.646056,
    'pixelate': 0.717840,
    'jpeg_compression': 0.606500,
}
ALEXNET_CLEAN_ERROR = 0.43478

# (set, protocol family) -> (result name, config stem in configs/robustness):
# 'official' is the benchmarks' own protocol, 'authors' the BC-SSL authors'
# robustness script (ImageNet-C resized to 256 before the 224 crop,
# ImageNet-A/R scored 1000-way). Sketch has all 1000 classes and the clean
# val transform, so both families evaluate it the same way.
PROTOCOL_CONFIGS = {
    ('c', 'official'): ('c', 'imagenet-c'),
    ('c', 'authors'): ('c_resize256', 'imagenet-c_resize256'),
    ('sketch', 'official'): ('sketch', 'imagenet-sketch'),
    ('r', 'official'): ('r', 'imagenet-r'),
    ('r', 'authors'): ('r_1000way', 'imagenet-r_1000way'),
    ('a', 'official'): ('a', 'imagenet-a'),
    ('a', 'authors'): ('a_1000way', 'imagenet-a_1000way'),
}


def robustness_plan(sets: Sequence[str],
                    protocols: Sequence[str]) -> List[Tuple[str, str, str]]:
    """``(set, result name, config stem)`` of each evaluation, in the order
    of ``sets``: each set under each protocol family asked for (a
    :data:`PROTOCOL_CONFIGS` key); Sketch once whichever is asked, since
    both families evaluate it the same way."""
    out: List[Tuple[str, str, str]] = []
    for key in sets:
        for family in ('official', 'authors'):
            found = PROTOCOL_CONFIGS.get((key, family))
            if found and (family in protocols or key == 'sketch') and \
                    found[0] not in {name for _, name, _ in out}:
                out.append((key, *found))
    return out


def clean_error(metrics: Mapping[str, float]) -> Optional[float]:
    """The clean top-1 error in [0, 1] that relative mCE subtracts, from
    the metrics of the probe on the clean val set (``accuracy/top1`` in
    percent); None when they have no top-1."""
    top1 = metrics.get('accuracy/top1')
    return None if top1 is None else 1 - top1 / 100


def restrict_logits(logits: torch.Tensor,
                    class_indices: Sequence[int]) -> torch.Tensor:
    """Keep only the columns of ``class_indices`` (ImageNet-A/R protocol).

    Args:
        logits (Tensor): (N, C) scores of the full model, e.g. C = 1000.
        class_indices (Sequence[int]): Column of each subset class in the
            full model's class order; subset class ``j`` is column
            ``class_indices[j]``.

    Returns:
        Tensor: (N, len(class_indices)) scores; its argmax is a subset label.
    """
    index = torch.as_tensor(list(class_indices), dtype=torch.long,
                            device=logits.device)
    if index.numel() == 0:
        raise ValueError('class_indices is empty')
    if int(index.min()) < 0 or int(index.max()) >= logits.shape[1]:
        raise ValueError(f'class_indices must lie in [0, {logits.shape[1]})')
    return logits.index_select(1, index)  # [N, K]


def _check_complete(errors: Mapping[str, Mapping[int, float]],
                    corruptions: Sequence[str]) -> None:
    missing = [
        f'{c}/{s}' for c in corruptions for s in SEVERITIES
        if s not in errors.get(c, {})
    ]
    if missing:
        raise ValueError(
            f'missing corruption/severity results: {", ".join(missing)}')


def corruption_errors(errors: Mapping[str, Mapping[int, float]],
                      clean_error: float = None) -> Dict[str, float]:
    """Per-corruption CE, mCE, relative mCE and the unnormalised mean error.

    Args:
        errors (Mapping): ``errors[corruption][severity]`` is the top-1 error
            in [0, 1] of the model on that corruption and severity. All 15
            benchmark corruptions x 5 severities must be present; the 4 extra
            corruptions are reported but never enter mCE.
        clean_error (float, optional): Top-1 error on the clean val set, in
            [0, 1]; needed for relative mCE.

    Returns:
        dict: values in percent:
            ``CE/<corruption>`` (AlexNet-normalised, x100),
            ``mCE`` (mean of the 15 CEs),
            ``relative_CE/<corruption>`` and ``relative_mCE`` (if
            ``clean_error`` is given),
            ``mean_error`` (plain mean over 15 x 5 errors, x100: the number
            the BC-SSL authors' script printed),
            ``error/<corruption>`` (mean over severities, x100) and
            ``error/<corruption>/<severity>`` (x100) for all corruptions
            present, extras included, and
            ``error/severity<s>`` (mean over the 15, x100).
    """
    _check_complete(errors, BENCHMARK_CORRUPTIONS)
    out: Dict[str, float] = {}
    ces: List[float] = []
    rel_ces: List[float] = []
    for c in BENCHMARK_CORRUPTIONS:
        errs = [errors[c][s] for s in SEVERITIES]
        alex = ALEXNET_MEAN_ERROR[c] * len(SEVERITIES)
        ce = sum(errs) / alex
        out[f'CE/{c}'] = 100 * ce
        ces.append(ce)
        if clean_error is not None:
            rel = sum(e - clean_error for e in errs) / (
                alex - len(SEVERITIES) * ALEXNET_CLEAN_ERROR)
            out[f'relative_CE/{c}'] = 100 * rel
            rel_ces.append(rel)
    out['mCE'] = 100 * sum(ces) / len(ces)
    if rel_ces:
        out['relative_mCE'] = 100 * sum(rel_ces) / len(rel_ces)
    all_errs = [
        errors[c][s] for c in BENCHMARK_CORRUPTIONS for s in SEVERITIES
    ]
    out['mean_error'] = 100 * sum(all_errs) / len(all_errs)
    for c, by_severity in errors.items():
        if by_severity:
            out[f'error/{c}'] = 100 * sum(by_severity.values()) / len(
                by_severity)
            for s, err in by_severity.items():
                out[f'error/{c}/{s}'] = 100 * err
    for s in SEVERITIES:
        out[f'error/severity{s}'] = 100 * sum(
            errors[c][s] for c in BENCHMARK_CORRUPTIONS) / len(
                BENCHMARK_CORRUPTIONS)
    return out
