"""DINOMultiCrop: view structure, fresh randomness, per-view probabilities
(binomial bounds over many draws), the full collate/preprocessor path."""
import math
from collections import defaultdict

import numpy as np
import torch

import mmbcssl  # noqa: F401
from mmpretrain.registry import MODELS, TRANSFORMS

N_DRAWS = 400


def _build(**kw):
    cfg = dict(type='DINOMultiCrop', global_crop_size=24, local_crop_size=12,
               num_local_crops=2)
    cfg.update(kw)
    return TRANSFORMS.build(cfg)


def _image(seed=0, size=40):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3),
                                                np.uint8)


def test_views_order_sizes_and_dtype():
    t = _build(global_crop_size=32, local_crop_size=16, num_local_crops=5)
    views = t(dict(img=_image()))['img']
    assert [v.shape for v in views] == [(32, 32, 3)] * 2 + [(16, 16, 3)] * 5
    assert all(v.dtype == np.uint8 for v in views)


def test_bicubic_pillow_crops():
    t = _build()
    crops = [tr for p in t.pipelines for tr in p.transforms
             if type(tr).__name__ == 'RandomResizedCrop']
    assert len(crops) == 3
    assert all(c.interpolation == 'bicubic' and c.backend == 'pillow'
               for c in crops)
    assert crops[0].crop_ratio_range == (0.4, 1.0)
    assert crops[2].crop_ratio_range == (0.05, 0.4)


def test_fresh_randomness_per_call():
    t = _build()
    img = _image()
    a, b = t(dict(img=img.copy()))['img'], t(dict(img=img.copy()))['img']
    assert any(not np.array_equal(x, y) for x, y in zip(a, b))


def _instrument(t):
    """Count, per view pipeline and transform type, how often the transform
    changed its input; record blur radii."""
    applied = defaultdict(int)
    radii = defaultdict(list)  # per view; drawn only when the blur applies
    for view, pipe in enumerate(t.pipelines):
        for tr in pipe.transforms:
            name = type(tr).__name__
            if name == 'RandomApply':
                tr = tr.transforms.transforms[0]  # the ColorJitter inside
                name = 'ColorJitter'
            original = tr.transform

            def wrapped(results, _orig=original, _key=(view, name)):
                before = results['img'].copy()
                out = _orig(results)
                if _key[1] == 'RandomFlip':
                    applied[_key] += bool(out.get('flip'))
                elif not np.array_equal(before, out['img']):
                    applied[_key] += 1
                return out

            tr.transform = wrapped
            if name == 'GaussianBlur':
                # A small radius can leave a smooth crop unchanged, so
                # blurs are counted by their radius draws instead.
                magnitude = tr.random_magnitude

                def record(_m=magnitude, _view=view):
                    r = _m()
                    radii[_view].append(r)
                    return r

                tr.random_magnitude = record
    return applied, radii


def _within(count, n, p, sigmas=4.5):
    return abs(count / n - p) <= sigmas * math.sqrt(p * (1 - p) / n) + 1e-9


def test_per_view_probabilities_over_many_draws():
    np.random.seed(0)
    t = _build(num_local_crops=1)
    applied, radii = _instrument(t)
    for i in range(N_DRAWS):
        t(dict(img=_image(i)))
    n = N_DRAWS
    # blur: global-1 always, global-2 0.1, locals 0.5
    assert len(radii[0]) == n
    assert _within(len(radii[1]), n, 0.1)
    assert _within(len(radii[2]), n, 0.5)
    # solarise: only in global-2's pipeline, p 0.2
    assert _within(applied[(1, 'Solarize')], n, 0.2)
    assert not any(k[1] == 'Solarize' and k[0] != 1 for k in applied)
    for view in range(3):
        assert _within(applied[(view, 'ColorJitter')], n, 0.8)
        assert _within(applied[(view, 'RandomGrayscale')], n, 0.2)
        assert _within(applied[(view, 'RandomFlip')], n, 0.5)
    # blur radius ~ U(0.1, 2.0), drawn per image
    radii = np.concatenate([radii[v] for v in range(3)])
    assert radii.min() >= 0.1 and radii.max() <= 2.0
    assert len(np.unique(radii)) == len(radii)
    assert abs(radii.mean() - 1.05) < 0.1


def test_negative_hue_jitter_runs_on_numpy2():
    from mmpretrain.datasets.transforms import ColorJitter
    t = ColorJitter(hue=0.5)
    for i in range(30):
        t(dict(img=_image(i, 16)))


def test_collate_and_preprocessor_give_one_batch_per_view(demo_data):
    from mmengine.dataset import default_collate
    from mmpretrain.datasets import CustomDataset
    ds = CustomDataset(
        data_root=f'{demo_data}/imagenet', ann_file='meta/train.txt',
        data_prefix='train',
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='DINOMultiCrop', global_crop_size=32,
                       local_crop_size=16, num_local_crops=3),
                  dict(type='PackInputs')])
    batch = default_collate([ds[i] for i in range(4)])
    pre = MODELS.build(dict(type='SelfSupDataPreprocessor',
                            mean=[123.675, 116.28, 103.53],
                            std=[58.395, 57.12, 57.375], to_rgb=True))
    out = pre(batch, training=True)['inputs']
    assert [tuple(x.shape) for x in out] == [(4, 3, 32, 32)] * 2 + [
        (4, 3, 16, 16)] * 3
    assert all(x.dtype == torch.float32 for x in out)
    assert abs(float(out[0].mean())) < 1.5  # normalised
