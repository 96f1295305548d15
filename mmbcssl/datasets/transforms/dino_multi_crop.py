"""DINO's multi-crop augmentation as one transform.

Source: Caron et al. 2021, "Emerging Properties in Self-Supervised Vision
Transformers", and facebookresearch/dino ``main_dino.py``
(``DataAugmentationDINO``) with ``utils.py`` (``GaussianBlur``,
``Solarization``). Every view is built from mmpretrain/mmcv transforms whose
behaviour we checked against that torchvision/PIL code, op by op (tests in
``tests/test_datasets/test_transforms/test_dino_multi_crop.py`` compare the
pixels):

* ``RandomResizedCrop`` with ``backend='pillow'``: the same crop sampler as
  torchvision (area ~ U(scale), log-uniform aspect ratio in (3/4, 4/3), 10
  attempts, then a centre crop) and the same PIL bicubic resize. The default
  cv2 backend would not anti-alias when shrinking a large crop to 96 px.
* ``RandomFlip`` (mmcv), p 0.5, horizontal.
* ``ColorJitter(0.4, 0.4, 0.2, 0.1)`` inside mmcv's ``RandomApply`` with p
  0.8: like torchvision, the four adjustments run in a random order with
  factors drawn per call, through PIL's ``ImageEnhance`` and HSV code
  (mmpretrain's default ``backend='pillow'``). Negative hue shifts work on
  numpy 2 through :mod:`mmbcssl.compat`.
* ``RandomGrayscale`` (mmcv), p 0.2, three channels kept. Images are BGR in
  mmcv pipelines, so the luma weights are given in BGR order.
* ``GaussianBlur`` (mmpretrain): the radius is drawn per call, uniform in
  (0.1, 2.0), by ``magnitude_std='inf'`` with ``magnitude_level ==
  total_level`` (``U(0, level) / total_level`` mapped onto the range), and
  applied with PIL's ``ImageFilter.GaussianBlur`` as in DINO.
* ``Solarize(thr=128)`` (mmpretrain): inverts pixels >= 128, like
  ``PIL.ImageOps.solarize``.
"""
import warnings
from typing import List, Optional, Sequence, Tuple

from mmpretrain.datasets.transforms import MultiView
from mmpretrain.registry import TRANSFORMS

# mmpretrain's ColorJitter calls mmcv.adjust_color(alpha=...) with the pillow
# backend, which warns on every call that only ``alpha`` is used; that is
# exactly what we want, and the warning would end up in every training log.
warnings.filterwarnings(
    'ignore', message="Only use 'alpha' for pillow backend",
    category=UserWarning, module='mmcv.image.photometric')

# mmpretrain's transforms by scoped name: mmcv's Compose builds from the root
# registry, where plain names would not find them when no default scope is
# set (a pipeline built outside a runner). mmcv's own transforms (flip,
# apply, grayscale) live in that root registry and are found by their plain
# names from any scope ('mmpretrain.RandomApply' is not found from inside
# the mmpretrain scope). A test builds the pipeline both ways.
_S = 'mmpretrain.'

# DINO's values (main_dino.py, DataAugmentationDINO and utils.py).
FLIP_PROB = 0.5
JITTER = dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
JITTER_PROB = 0.8
GRAYSCALE_PROB = 0.2
BLUR_RADIUS = (0.1, 2.0)
# global-1, global-2, every local view
BLUR_PROBS = (1.0, 0.1, 0.5)
SOLARIZE_PROB = 0.2  # global-2 only
SOLARIZE_THRESHOLD = 128  # PIL.ImageOps.solarize's default


def _crop(size: int, scale: Tuple[float, float]) -> dict:
    return dict(type=_S + 'RandomResizedCrop', scale=size,
                crop_ratio_range=tuple(scale), interpolation='bicubic',
                backend='pillow')


def _flip_jitter_gray(jitter: dict, jitter_prob: float,
                      grayscale_prob: float) -> List[dict]:
    return [
        dict(type='RandomFlip', prob=FLIP_PROB, direction='horizontal'),
        dict(type='RandomApply',
             transforms=[dict(type=_S + 'ColorJitter', **jitter)],
             prob=jitter_prob),
        # BGR luma weights (ITU-R 601-2, as PIL's convert('L'))
        dict(type='RandomGrayscale', prob=grayscale_prob,
             keep_channels=True, channel_weights=(0.114, 0.587, 0.299)),
    ]


def _blur(prob: float, radius: Tuple[float, float]) -> dict:
    # magnitude ~ U(0, 10) / 10 * (2.0 - 0.1) + 0.1, drawn on every call
    return dict(type=_S + 'GaussianBlur', magnitude_range=radius,
                magnitude_level=10, total_level=10, magnitude_std='inf',
                prob=prob)


def _check_scale(name: str, scale: Sequence[float]) -> Tuple[float, float]:
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f'{name} must be (min, max) with 0 < min <= max '
                         f'<= 1, got {scale}')
    return float(scale[0]), float(scale[1])


@TRANSFORMS.register_module()
class DINOMultiCrop(MultiView):
    """2 global views + N local views of one image, in that order.

    ``results['img']`` (one uint8 HWC BGR image) becomes a list of uint8 HWC
    BGR images ``[global-1, global-2, local-1, ..., local-N]``, the contract
    of mmpretrain's ``MultiView``: ``PackInputs`` turns it into a list of CHW
    tensors, ``default_collate`` into one batch tensor per view, and
    ``SelfSupDataPreprocessor`` converts each to RGB float and normalises.

    Each view: random resized crop (bicubic), flip p 0.5, colour jitter
    (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale p 0.2, Gaussian blur with a radius
    ~ U(0.1, 2.0) drawn per image with p 1.0 (global-1), 0.1 (global-2) or
    0.5 (each local view), and solarisation p 0.2 on global-2 only.

    Note:
        DINO normalises each view (ImageNet mean/std) on the CPU; here, as
        everywhere in mmpretrain, the model's data preprocessor does it on
        the batch (``SelfSupDataPreprocessor(mean=[123.675, 116.28,
        103.53], std=[58.395, 57.12, 57.375], to_rgb=True)``), which is the
        same arithmetic on the same uint8 pixels.
        mmcv's ``RandomGrayscale`` truncates the weighted sum where PIL
        rounds it, so a grey view can be one level (1/255) darker than
        DINO's.

    Args:
        global_crop_size (int): Side of the square global views, in pixels.
            Defaults to 224.
        local_crop_size (int): Side of the square local views, in pixels.
            Defaults to 96.
        num_local_crops (int): Number of local views; 0 gives the 2 global
            views only. Defaults to 8.
        global_crop_scale (Sequence[float]): Range of the crop area as a
            fraction of the image area, for the global views.
            Defaults to (0.4, 1.0).
        local_crop_scale (Sequence[float]): The same for the local views.
            Defaults to (0.05, 0.4).
        color_jitter (dict, optional): ``brightness``, ``contrast``,
            ``saturation`` and ``hue`` of the colour jitter. Defaults to
            DINO's (0.4, 0.4, 0.2, 0.1).
        color_jitter_prob (float): Defaults to 0.8 (DINO).
        grayscale_prob (float): Defaults to 0.2 (DINO).
        blur_radius (Sequence[float]): (min, max) of the Gaussian blur
            radius in pixels of the output view, the same range for every
            view as in DINO. Defaults to DINO's (0.1, 2.0).

    Note:
        The colour arguments exist for data whose colours identify an image
        but not its class (the built-in demo data): with DINO's mild jitter
        the views of one image share their colours, and clustering by colour
        solves the pre-training task without learning shape or texture.
        SimCLR (Chen et al. 2020, section 3, Figure 6) showed the same
        shortcut on ImageNet crops. Keep the defaults for the paper's runs.

        ``blur_radius`` is in pixels and does not scale with the crops:
        DINO's radius of up to 2 px is mild on a 224-px view, but on a 48-px
        demo view it equals a 9-px blur at 224 px and wipes out fine
        texture. Recipes with small crops scale it with the crop size (the
        demo configs do).
    """

    def __init__(self,
                 global_crop_size: int = 224,
                 local_crop_size: int = 96,
                 num_local_crops: int = 8,
                 global_crop_scale: Sequence[float] = (0.4, 1.0),
                 local_crop_scale: Sequence[float] = (0.05, 0.4),
                 color_jitter: Optional[dict] = None,
                 color_jitter_prob: float = JITTER_PROB,
                 grayscale_prob: float = GRAYSCALE_PROB,
                 blur_radius: Sequence[float] = BLUR_RADIUS) -> None:
        if int(num_local_crops) != num_local_crops or num_local_crops < 0:
            raise ValueError(
                f'num_local_crops must be an int >= 0, got {num_local_crops}')
        for name, size in (('global_crop_size', global_crop_size),
                           ('local_crop_size', local_crop_size)):
            if int(size) != size or size <= 0:
                raise ValueError(f'{name} must be an int > 0, got {size}')
        global_crop_scale = _check_scale('global_crop_scale',
                                         global_crop_scale)
        local_crop_scale = _check_scale('local_crop_scale', local_crop_scale)
        jitter = dict(JITTER if color_jitter is None else color_jitter)
        if set(jitter) != set(JITTER):
            raise ValueError(f'color_jitter needs exactly the keys '
                             f'{sorted(JITTER)}, got {sorted(jitter)}')
        for name, prob in (('color_jitter_prob', color_jitter_prob),
                           ('grayscale_prob', grayscale_prob)):
            if not 0 <= prob <= 1:
                raise ValueError(f'{name} must be in [0, 1], got {prob}')
        colour = (jitter, float(color_jitter_prob), float(grayscale_prob))
        if len(blur_radius) != 2 or not 0 < blur_radius[0] <= blur_radius[1]:
            raise ValueError(f'blur_radius must be (min, max) with 0 < min '
                             f'<= max, in pixels, got {blur_radius}')
        radius = (float(blur_radius[0]), float(blur_radius[1]))

        blur_global1, blur_global2, blur_local = BLUR_PROBS
        views = [
            # global view 1: always blurred
            [_crop(global_crop_size, global_crop_scale),
             *_flip_jitter_gray(*colour), _blur(blur_global1, radius)],
            # global view 2: rarely blurred, sometimes solarised
            [_crop(global_crop_size, global_crop_scale),
             *_flip_jitter_gray(*colour), _blur(blur_global2, radius),
             dict(type=_S + 'Solarize', thr=SOLARIZE_THRESHOLD,
                  prob=SOLARIZE_PROB)],
        ]
        num_views = [1, 1]
        if num_local_crops:
            # one pipeline object serves every local view: each call draws
            # its own crop, flip, jitter, ... (no randomness is cached)
            views.append([_crop(local_crop_size, local_crop_scale),
                          *_flip_jitter_gray(*colour),
                          _blur(blur_local, radius)])
            num_views.append(int(num_local_crops))
        super().__init__(transforms=views, num_views=num_views)
        self.global_crop_size = int(global_crop_size)
        self.local_crop_size = int(local_crop_size)
        self.num_local_crops = int(num_local_crops)
        self.global_crop_scale = global_crop_scale
        self.local_crop_scale = local_crop_scale
        self.color_jitter, self.color_jitter_prob, self.grayscale_prob = \
            colour
        self.blur_radius = radius

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'global_crop_size={self.global_crop_size}, '
                f'local_crop_size={self.local_crop_size}, '
                f'num_local_crops={self.num_local_crops}, '
                f'global_crop_scale={self.global_crop_scale}, '
                f'local_crop_scale={self.local_crop_scale}, '
                f'color_jitter={self.color_jitter}, '
                f'color_jitter_prob={self.color_jitter_prob}, '
                f'grayscale_prob={self.grayscale_prob}, '
                f'blur_radius={self.blur_radius})')
