"""DINO's multi-crop augmentation as one transform.

Caron et al. 2021 (facebookresearch/dino ``main_dino.py``,
``DataAugmentationDINO``). Built from mmpretrain/mmcv transforms whose
semantics match the reference once configured:

* ``RandomResizedCrop``: bicubic, pillow backend;
* ``ColorJitter(0.4, 0.4, 0.2, 0.1)`` with p 0.8: the four jitters in random
  order, factors drawn per call (hue works on numpy 2 through
  :mod:`mmbcssl.compat`);
* ``RandomGrayscale`` p 0.2: images are BGR in mmcv pipelines, hence BGR
  luma weights;
* ``GaussianBlur``: radius ~ U(0.1, 2.0) drawn per call (``magnitude_std=
  'inf'`` with ``magnitude_level == total_level``), p 1.0 / 0.1 / 0.5 for
  global-1 / global-2 / locals;
* ``Solarize(thr=128)`` p 0.2 on global-2 only.

Normalisation and BGR -> RGB happen in the model's data preprocessor, as
everywhere in mmpretrain.
"""
from typing import List, Sequence, Tuple

from mmpretrain.datasets.transforms import MultiView
from mmpretrain.registry import TRANSFORMS


# mmpretrain's transforms by scoped name: mmcv's Compose builds from the root
# registry when no default scope is set (a pipeline built outside a runner).
# mmcv's own transforms (flip, apply, grayscale) live in that root registry
# and are found from any scope by their plain names.
_S = 'mmpretrain.'


def _flip_and_jitter() -> List[dict]:
    return [
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(
            type='RandomApply',
            transforms=[
                dict(type=_S + 'ColorJitter', brightness=0.4, contrast=0.4,
                     saturation=0.2, hue=0.1)
            ],
            prob=0.8),
        dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
             channel_weights=(0.114, 0.587, 0.299)),
    ]


def _blur(prob: float) -> dict:
    return dict(type=_S + 'GaussianBlur', magnitude_range=(0.1, 2.0),
                magnitude_level=10, total_level=10, magnitude_std='inf',
                prob=prob)


def _crop(size: int, scale: Tuple[float, float]) -> dict:
    return dict(type=_S + 'RandomResizedCrop', scale=size,
                crop_ratio_range=tuple(scale), interpolation='bicubic',
                backend='pillow')


@TRANSFORMS.register_module()
class DINOMultiCrop(MultiView):
    """2 global views + N local views of one image, in that order.

    ``results['img']`` becomes a list of uint8 HWC images:
    [global-1, global-2, local-1 .. local-N]; ``PackInputs`` and the
    default collate turn it into one batch tensor per view.

    Args:
        global_crop_size (int): Defaults to 224.
        local_crop_size (int): Defaults to 96.
        num_local_crops (int): Defaults to 8.
        global_crop_scale (Sequence[float]): Defaults to (0.4, 1.0).
        local_crop_scale (Sequence[float]): Defaults to (0.05, 0.4).
    """

    def __init__(self,
                 global_crop_size: int = 224,
                 local_crop_size: int = 96,
                 num_local_crops: int = 8,
                 global_crop_scale: Sequence[float] = (0.4, 1.0),
                 local_crop_scale: Sequence[float] = (0.05, 0.4)) -> None:
        if num_local_crops < 0:
            raise ValueError(f'num_local_crops must be >= 0, got '
                             f'{num_local_crops}')
        views = [
            # global view 1: always blurred
            [_crop(global_crop_size, global_crop_scale), *_flip_and_jitter(),
             _blur(1.0)],
            # global view 2: rarely blurred, sometimes solarised
            [_crop(global_crop_size, global_crop_scale), *_flip_and_jitter(),
             _blur(0.1), dict(type=_S + 'Solarize', thr=128, prob=0.2)],
        ]
        num_views = [1, 1]
        if num_local_crops:
            views.append([_crop(local_crop_size, local_crop_scale),
                          *_flip_and_jitter(), _blur(0.5)])
            num_views.append(num_local_crops)
        super().__init__(transforms=views, num_views=num_views)
        self.num_local_crops = num_local_crops
