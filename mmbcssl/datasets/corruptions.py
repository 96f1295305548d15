"""ImageNet-C-style corruptions with the ``imagecorruptions`` package.

``imagecorruptions`` 1.1.2 (Michaelis et al. 2019) implements the 19
ImageNet-C corruptions, 18 with the benchmark's severity tables. Images made
with it are **ImageNet-C-style, not the benchmark** (different source images
and JPEG pipeline). Two of its calls fail on current libraries, and we fix
them for that module only, at run time:

* ``skimage.filters.gaussian(..., multichannel=True)``: scikit-image >= 0.21
  removed ``multichannel`` (glass_blur, gaussian_blur);
* ``np.float_``: removed in numpy 2 (fog's plasma fractal);
* ``skimage.util.random_noise`` (impulse_noise) now draws from a fresh,
  unseeded generator unless given ``rng``; we pass one drawn from numpy's
  global generator so a seeded call is reproducible like the others.
"""
from typing import Any, Optional

import numpy as np

BENCHMARK = ('gaussian_noise', 'shot_noise', 'impulse_noise', 'defocus_blur',
             'glass_blur', 'motion_blur', 'zoom_blur', 'snow', 'frost', 'fog',
             'brightness', 'contrast', 'elastic_transform', 'pixelate',
             'jpeg_compression')
EXTRA = ('speckle_noise', 'gaussian_blur', 'spatter', 'saturate')

_fixed = False


class _NumpyForImageCorruptions:
    """numpy, plus the aliases numpy 2 removed that imagecorruptions uses."""
    float_ = np.float64

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


def _gaussian(image, sigma=1, multichannel: Optional[bool] = None, **kw):
    from skimage.filters import gaussian
    if multichannel:
        kw.setdefault('channel_axis', -1)
    return gaussian(image, sigma=sigma, **kw)


class _SkimageForImageCorruptions:
    """scikit-image, with ``util.random_noise`` seeded from numpy's global
    generator (which :func:`corrupt` seeds)."""

    class util:

        @staticmethod
        def random_noise(image, **kwargs):
            from skimage.util import random_noise
            kwargs.setdefault('rng', int(np.random.randint(0, 2**31 - 1)))
            return random_noise(image, **kwargs)

    def __getattr__(self, name: str) -> Any:
        import skimage
        return getattr(skimage, name)


def fix_imagecorruptions() -> None:
    """Make ``imagecorruptions`` run on numpy 2 and scikit-image >= 0.21."""
    global _fixed
    if _fixed:
        return
    import imagecorruptions.corruptions as corruptions
    corruptions.gaussian = _gaussian
    corruptions.np = _NumpyForImageCorruptions()
    corruptions.sk = _SkimageForImageCorruptions()
    _fixed = True


def corrupt(image: np.ndarray, corruption: str, severity: int,
            seed: int) -> np.ndarray:
    """Corrupt an RGB uint8 image; ``seed`` makes the result reproducible
    (imagecorruptions draws from numpy's global generator)."""
    fix_imagecorruptions()
    from imagecorruptions import corrupt as _corrupt
    if corruption not in BENCHMARK + EXTRA:
        raise ValueError(f'unknown corruption {corruption!r}; known: '
                         f'{BENCHMARK + EXTRA}')
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        out = _corrupt(image, corruption_name=corruption, severity=severity)
    finally:
        np.random.set_state(state)
    return np.asarray(out).astype(np.uint8)
