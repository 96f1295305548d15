"""Effective receptive fields, measured as RepLKNet measures them.

Ding et al. 2022 ("Scaling Up Your Kernels to 31x31", Section 5 and
Appendix; the ``erf/`` scripts of DingXiaoH/RepLKNet-pytorch): for each
image, the gradient of the central point of a stage's output (summed over
channels) with respect to the input, reduced over the colour channels and
averaged over about 50 images, is the contribution map. It is shown as
``log10(x + 1)`` scaled to [0, 1], and summarised by the high-contribution
area ratio: the smallest square centred on the input's centre that covers a
share ``t`` of the total (scaled) contribution, as a share of the input
area, for t = 20%, 30%, 50% and 99%.

Note:
    RepLKNet's script takes the ReLU of the central point and of the input
    gradient; the default here takes the absolute gradient of the plain
    sum (Luo et al. 2016's definition, which counts negative contributions
    too). ``grad='relu'`` reproduces the script. Both average over images
    (not a sum, which would shift ``log10(x + 1)``).
"""
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from .layers import (check_layer, num_extra_tokens, run_to_layer,
                     to_feature_map)

THRESHOLDS = (0.2, 0.3, 0.5, 0.99)
GRAD_MODES = ('abs', 'relu')


def erf_map(backbone: nn.Module,
            layer: str,
            batches: Iterable[torch.Tensor],
            grad: str = 'abs') -> np.ndarray:
    """The mean contribution map of ``layer``'s central output point.

    Args:
        backbone (nn.Module): The network, in the mode to measure (eval:
            BatchNorm with running statistics, no drop path).
        layer (str): Module name in ``backbone`` whose output is measured
            (a stage, e.g. ``stages.3``); checked on the first batch by
            :func:`~mmbcssl.visualization.layers.check_layer`.
        batches (Iterable[torch.Tensor]): Normalised ``[B, 3, H, W]``
            inputs, all of one size.
        grad (str): ``'abs'``: |d sum_c y_c / d x|; ``'relu'``: RepLKNet's
            script, ReLU(d sum_c ReLU(y_c) / d x). Defaults to 'abs'.

    Returns:
        np.ndarray: ``float64 [H, W]``, the per-image map (summed over RGB)
        averaged over the images. Images whose gradient is not finite are
        skipped, as in RepLKNet's script.
    """
    if grad not in GRAD_MODES:
        raise ValueError(f'grad must be one of {GRAD_MODES}, got {grad!r}')
    extra = num_extra_tokens(backbone)
    target, total, count = None, None, 0
    for x in batches:
        if target is None:
            target = check_layer(backbone, backbone, layer, x)
        x = x.detach().clone().requires_grad_(True)
        out = to_feature_map(run_to_layer(backbone, target, x),
                             tuple(x.shape[-2:]), extra)  # [B, C, h, w]
        h, w = out.shape[-2:]
        point = out[:, :, h // 2, w // 2]  # [B, C]
        if grad == 'relu':
            point = torch.relu(point)
        # images are independent in eval mode: the gradient of the batch
        # sum is each image's own gradient
        (g, ) = torch.autograd.grad(point.sum(), x)
        g = g.abs() if grad == 'abs' else torch.relu(g)
        per_image = g.sum(dim=1).double()  # [B, 3, H, W] -> [B, H, W]
        keep = torch.isfinite(per_image).flatten(1).all(dim=1)
        if not keep.any():
            continue
        batch_sum = per_image[keep].sum(dim=0).cpu().numpy()
        total = batch_sum if total is None else total + batch_sum
        count += int(keep.sum())
    if not count:
        raise ValueError('no image gave a finite gradient')
    return total / count


def scale_erf(erf: np.ndarray) -> np.ndarray:
    """``log10(x + 1)`` rescaled to [0, 1] (RepLKNet's display and the map
    its area ratios are measured on)."""
    scaled = np.log10(erf + 1)
    peak = scaled.max()
    return scaled / peak if peak > 0 else scaled


def area_ratios(erf: np.ndarray,
                thresholds: Sequence[float] = THRESHOLDS,
                scaled: bool = False) -> Dict[float, Dict[str, float]]:
    """RepLKNet's high-contribution area ratios of a contribution map.

    Args:
        erf (np.ndarray): ``[H, W]`` non-negative contribution map.
        thresholds (Sequence[float]): Shares t of the total contribution.
            Defaults to (0.2, 0.3, 0.5, 0.99).
        scaled (bool): ``erf`` is already :func:`scale_erf`-ed; otherwise
            it is scaled first, as RepLKNet's analysis script does.
            Defaults to False.

    Returns:
        dict: ``{t: {'side': s, 'ratio': r}}``: the smallest odd side ``s``
        of a square centred on pixel ``(H // 2, W // 2)`` (clipped to the
        input) whose sum reaches ``t`` of the total, and ``r``, the clipped
        square's area over ``H * W``.

    Note:
        RepLKNet's script tries sides 3, 5, ... up to H - 1 and needs a
        share strictly above t; here sides start at 1, reaching t suffices,
        and the square may grow until it holds the whole input (r = 1).
    """
    data = np.asarray(erf, dtype=np.float64)
    if not scaled:
        data = scale_erf(data)
    h, w = data.shape
    total = data.sum()
    if not total > 0:
        raise ValueError('the contribution map is zero everywhere: the '
                         'measured output does not depend on the input')
    # prefix sums: the sum of any rectangle in O(1)
    cum = np.zeros((h + 1, w + 1))
    cum[1:, 1:] = data.cumsum(0).cumsum(1)
    cy, cx = h // 2, w // 2
    for t in thresholds:
        if not 0 < t <= 1:
            raise ValueError(f'thresholds must be in (0, 1], got {t}')
    out = {}
    for half in range(max(h, w)):
        y0, y1 = max(cy - half, 0), min(cy + half + 1, h)
        x0, x1 = max(cx - half, 0), min(cx + half + 1, w)
        share = (cum[y1, x1] - cum[y0, x1] - cum[y1, x0] + cum[y0, x0]) \
            / total
        for t in thresholds:
            # the last square holds everything; the tolerance absorbs the
            # rounding of the prefix sums at t = 100%
            if t not in out and share >= t - 1e-12:
                out[t] = dict(side=2 * half + 1,
                              ratio=(y1 - y0) * (x1 - x0) / (h * w))
        if len(out) == len(set(thresholds)):
            break
    return out


def erf_figure(maps: Sequence[np.ndarray],
               labels: Sequence[str],
               ratios: Optional[Sequence[dict]] = None,
               title: Optional[str] = None,
               panel: int = 240,
               dpi: int = 100):
    """Heat maps of ``log10(x + 1)`` scaled to [0, 1], one per model.

    Args:
        maps: ``[H, W]`` contribution maps (:func:`erf_map`).
        labels: One label per map.
        ratios: :func:`area_ratios` of each map, written under it.
            Defaults to None.
        title (str, optional): Figure title.
        panel (int): Side of a heat map in pixels. Defaults to 240.
        dpi (int): Defaults to 100.

    Returns:
        matplotlib.figure.Figure: ``(n * (panel + 16) + 64) x (panel + 64 +
        22 if title)`` pixels (a shared colour bar on the right).
    """
    from matplotlib.figure import Figure
    n = len(maps)
    gap, bar = 16, 64
    top = 28 + (22 if title else 0)
    bottom = 36
    width = n * (panel + gap) + bar
    height = top + panel + bottom
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    image = None
    for i, (erf, label) in enumerate(zip(maps, labels)):
        ax = fig.add_axes([(gap + i * (panel + gap)) / width,
                           bottom / height, panel / width, panel / height])
        # high contributions dark, as in RepLKNet's figures
        image = ax.imshow(scale_erf(erf), cmap='magma_r', vmin=0, vmax=1,
                          interpolation='nearest')
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(label, fontsize=8)
        if ratios is not None:
            r = ratios[i]
            text = '  '.join(f't={t:.0%}: {r[t]["ratio"]:.1%}'
                             for t in sorted(r) if t in (0.2, 0.5, 0.99))
            ax.text(0.5, -0.04, text, transform=ax.transAxes, ha='center',
                    va='top', fontsize=7)
    cax = fig.add_axes([(n * (panel + gap) + 12) / width, bottom / height,
                        12 / width, panel / height])
    fig.colorbar(image, cax=cax)
    cax.tick_params(labelsize=7)
    if title:
        fig.text(0.5, 1 - 14 / height, title, ha='center', va='center',
                 fontsize=10)
    return fig


def erf_record(label: str, erf: np.ndarray, **meta) -> dict:
    """One model's JSON entry: label, metadata, map size, area ratios
    (shares of the input area, in [0, 1]) and the square sides."""
    ratios = area_ratios(erf)
    return dict(
        label=label, **meta, input_size=list(erf.shape),
        area_ratio={f'{t:g}': r['ratio'] for t, r in ratios.items()},
        side={f'{t:g}': r['side'] for t, r in ratios.items()})


def erf_report(records: List[dict], grad: str = 'abs') -> dict:
    """The JSON written by ``tools/visualization/vis_erf.py``."""
    return dict(
        definition=(
            'high-contribution area ratio (Ding et al. 2022): the smallest '
            'square centred on the input centre covering a share t of the '
            'total log10(x + 1) contribution, over the input area; x = '
            + ('|d sum_c y_c / d input|' if grad == 'abs' else
               'ReLU(d sum_c ReLU(y_c) / d input)') +
            ' summed over RGB, y the central point of the layer output, '
            'averaged over images'),
        thresholds=[float(f'{t:g}') for t in THRESHOLDS],
        models=records)
