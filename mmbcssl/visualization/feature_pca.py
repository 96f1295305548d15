"""Feature maps rendered as RGB by PCA, in the style of DINOv2's figures.

Oquab et al. 2023 (DINOv2, Figure 1) fit a PCA on the patch features of a
set of images and show the first three components as red, green and blue:
parts that the backbone represents alike get the same colour across
images. Here the features are any layer's ``[N, C, h, w]`` maps (a CNN
stage, or Swin/ViT tokens reshaped to their grid).
"""
import numpy as np
import torch
from sklearn.decomposition import PCA


def feature_pca_rgb(feats: torch.Tensor,
                    clip: float = 0.01) -> np.ndarray:
    """The first three principal components of every position, as RGB.

    Args:
        feats (torch.Tensor): ``[N, C, h, w]`` features of N images; one
            PCA is fitted on all ``N * h * w`` positions, so colours compare
            across images.
        clip (float): Each component is scaled to [0, 1] between its
            ``clip`` and ``1 - clip`` quantiles, so a few extreme positions
            do not wash out the rest. Defaults to 0.01.

    Returns:
        np.ndarray: ``float32 [N, h, w, 3]`` in [0, 1].
    """
    n, c, h, w = feats.shape
    if c < 3:
        raise ValueError(f'need at least 3 channels for an RGB PCA, got {c}')
    x = feats.permute(0, 2, 3, 1).reshape(-1, c).double().numpy()  # [NHW, C]
    comps = PCA(n_components=3, svd_solver='full').fit_transform(x)
    lo = np.quantile(comps, clip, axis=0)
    hi = np.quantile(comps, 1 - clip, axis=0)
    rgb = np.clip((comps - lo) / np.maximum(hi - lo, 1e-12), 0, 1)
    return rgb.reshape(n, h, w, 3).astype(np.float32)
