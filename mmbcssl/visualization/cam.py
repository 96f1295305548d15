"""Class activation maps (Grad-CAM, Eigen-CAM) with pytorch-grad-cam.

The paper's Figure 4 shows Grad-CAM of BC-SSL for each kernel size. Grad-CAM
(Selvaraju et al. 2017) weights the target layer's channels by the mean
gradient of a class score, so it needs a classifier: a linear probe's head
on the frozen backbone. Eigen-CAM (Muhammad and Yeasin 2020) projects the
target layer's activations on their first principal component and needs
no labels, so it also shows a pre-trained backbone as it is.
"""
import textwrap
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from pytorch_grad_cam import EigenCAM, GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

from .feature_pca import feature_pca_rgb
from .images import to_input
from .layers import (check_layer, default_cam_layer, num_extra_tokens,
                     run_to_layer, stage_names, to_feature_map)
from .model import VisModel

METHODS = ('gradcam', 'eigencam', 'pca')
METHOD_NAMES = dict(gradcam='Grad-CAM', eigencam='Eigen-CAM',
                    pca='feature PCA')


class SignedEigenCAM(EigenCAM):
    """pytorch-grad-cam's Eigen-CAM with the sign of the component fixed.

    The first principal direction comes out of the SVD with an arbitrary
    sign, and the CAM keeps only the positive side: without a rule, some
    maps would show the background instead of the object. Each projection
    is flipped so that its larger extreme is positive, the rule of
    Seg-Eigen-CAM (Chung and Ying 2025, Eq. 13; pytorch-grad-cam 1.5.7
    ships it as ``get_2d_projection_with_sign_correction``, but that
    release also requires opencv-python-headless, a second cv2 beside the
    opencv-python of the OpenMMLab stack). The projection itself is
    pytorch-grad-cam's.
    """

    def get_cam_image(self, input_tensor, target_layer, targets, activations,
                      grads, eigen_smooth):
        proj = get_2d_projection(activations)  # [N, h, w]
        flip = np.abs(proj.min(axis=(1, 2))) > np.abs(proj.max(axis=(1, 2)))
        proj[flip] *= -1
        return proj


def default_layer(model: VisModel, method: str) -> str:
    """The CAM target layer, or the last stage's output for the PCA."""
    if method == 'pca':
        return stage_names(model.backbone)[-1]
    return default_cam_layer(model.backbone)


def compute_maps(model: VisModel,
                 images: Sequence[np.ndarray],
                 method: str = 'eigencam',
                 layer: Optional[str] = None,
                 target_class: Optional[int] = None,
                 batch_size: int = 8) -> Tuple[np.ndarray, List[int]]:
    """Maps of one model over images.

    Args:
        model (VisModel): The network (with a head for Grad-CAM).
        images (Sequence[np.ndarray]): RGB ``uint8 [H, W, 3]`` images of
            one size.
        method (str): ``'gradcam'``, ``'eigencam'`` or ``'pca'``.
            Defaults to 'eigencam'.
        layer (str, optional): Module name in ``model.backbone``; None takes
            :func:`default_layer`. Checked by
            :func:`~mmbcssl.visualization.layers.check_layer`.
        target_class (int, optional): Grad-CAM's class; None takes each
            image's predicted class.
        batch_size (int): Images per forward. Defaults to 8.

    Returns:
        tuple: ``(maps, classes)``. CAMs are ``float32 [N, H, W]`` in
        [0, 1]; the PCA gives ``[N, h, w, 3]`` RGB at the layer's
        resolution. ``classes`` are Grad-CAM's target classes (empty for
        the other methods).
    """
    if method not in METHODS:
        raise ValueError(f'method must be one of {METHODS}, got {method!r}')
    name = layer or default_layer(model, method)
    device = next(model.parameters()).device
    # a CAM of a single cell is blank: pytorch-grad-cam scales each map
    # by its own range
    target = check_layer(model, model.backbone, name,
                         to_input(images[:batch_size], device),
                         min_size=1 if method == 'pca' else 2)
    hw = images[0].shape[:2]
    extra = num_extra_tokens(model.backbone)
    if method == 'pca':
        with torch.no_grad():
            feats = torch.cat([
                to_feature_map(
                    run_to_layer(model, target,
                                 to_input(images[i:i + batch_size], device)),
                    hw, extra).float().cpu()
                for i in range(0, len(images), batch_size)])
        return feature_pca_rgb(feats), []
    if method == 'gradcam' and model.head is None:
        raise ValueError('Grad-CAM needs a classification head (a linear '
                         "probe's); use eigencam for a backbone alone")

    def reshape(t: torch.Tensor) -> torch.Tensor:
        return to_feature_map(t, hw, extra)

    cam_cls = GradCAM if method == 'gradcam' else SignedEigenCAM
    cam = cam_cls(model=model, target_layers=[target],
                  reshape_transform=reshape)
    maps, classes = [], []
    try:
        for i in range(0, len(images), batch_size):
            x = to_input(images[i:i + batch_size], device)
            targets = None
            if method == 'gradcam':
                if target_class is None:
                    with torch.no_grad():
                        pred = model(x).argmax(dim=1).tolist()
                else:
                    pred = [target_class] * x.shape[0]
                classes += pred
                targets = [ClassifierOutputTarget(c) for c in pred]
            maps.append(cam(input_tensor=x, targets=targets))
    finally:
        cam.activations_and_grads.release()
    return np.concatenate(maps).astype(np.float32), classes


def overlay(image: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """A CAM over its RGB image (pytorch-grad-cam's jet overlay)."""
    return show_cam_on_image(image.astype(np.float32) / 255, cam,
                             use_rgb=True)


def render_cells(images: Sequence[np.ndarray], maps: np.ndarray,
                 method: str) -> List[np.ndarray]:
    """RGB ``uint8`` cells: CAM overlays, or the PCA upsampled (nearest)."""
    if method != 'pca':
        return [overlay(img, m) for img, m in zip(images, maps)]
    cells = []
    for img, m in zip(images, maps):
        h, w = img.shape[:2]
        rows = np.arange(h) * m.shape[0] // h
        cols = np.arange(w) * m.shape[1] // w
        cells.append((m[rows][:, cols] * 255).round().astype(np.uint8))
    return cells


def grid_figure(rows: Sequence[Sequence[np.ndarray]],
                row_labels: Sequence[str],
                col_labels: Optional[Sequence[str]] = None,
                title: Optional[str] = None,
                cell: int = 160,
                notes: Optional[Sequence[Optional[Sequence[str]]]] = None,
                dpi: int = 100):
    """A grid of images: one row per model, one column per image.

    Args:
        rows: ``rows[i][j]`` is an RGB ``uint8`` image.
        row_labels: One label per row, written vertically on the left
            (wrapped to two lines).
        col_labels: One label per column, on top. Defaults to None.
        title (str, optional): Figure title.
        cell (int): Side of a cell in pixels. Defaults to 160.
        notes: ``notes[i][j]`` is written in the corner of cell (i, j)
            (e.g. Grad-CAM's class); a row may be None. Defaults to None.
        dpi (int): Defaults to 100.

    Returns:
        matplotlib.figure.Figure: ``(28 + cols * cell) x (top + rows *
        cell)`` pixels, ``top`` being 6 plus 22 for a title and 18 for
        column labels.
    """
    from matplotlib.figure import Figure
    n_rows, n_cols = len(rows), len(rows[0])
    left = 28
    top = 6 + (22 if title else 0) + (18 if col_labels else 0)
    width, height = left + n_cols * cell, top + n_rows * cell
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            # axes in figure fractions, from the top-left corner in pixels
            ax = fig.add_axes([(left + j * cell) / width,
                               1 - (top + (i + 1) * cell) / height,
                               cell / width, cell / height])
            ax.imshow(img, interpolation='nearest')
            ax.set_axis_off()
            if notes and notes[i]:
                ax.text(0.03, 0.03, notes[i][j], transform=ax.transAxes,
                        fontsize=7, color='white', va='bottom',
                        bbox=dict(facecolor='black', alpha=0.5, pad=1,
                                  linewidth=0))
        # at most two lines of ~6 px characters along the cell's height
        label = '\n'.join(textwrap.wrap(row_labels[i], max(8, cell // 6))[:2])
        fig.text(left / 2 / width, 1 - (top + (i + 0.5) * cell) / height,
                 label, rotation=90, ha='center', va='center', fontsize=8,
                 linespacing=1.0)
    if col_labels:
        for j, label in enumerate(col_labels):
            fig.text((left + (j + 0.5) * cell) / width,
                     1 - (top - 9) / height, label, ha='center',
                     va='center', fontsize=7)
    if title:
        fig.text(0.5, 1 - 15 / height, title, ha='center', va='center',
                 fontsize=10)
    return fig
