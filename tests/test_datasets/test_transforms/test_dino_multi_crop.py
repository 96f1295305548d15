"""DINOMultiCrop against DINO's augmentation (facebookresearch/dino
``main_dino.py``, ``DataAugmentationDINO``).

* structure: 2 + N uint8 HWC views in the order [global-1, global-2, locals];
* every op gives the same pixels as DINO's torchvision/PIL op for the same
  random parameters (bicubic PIL crop, jitter incl. negative hue, blur,
  solarise, grey, flip);
* per-view probabilities over many draws, with exact binomial tests: the
  application of each op is detected where its work is done (the mmcv/PIL
  function it calls, or its unmistakable effect), per output position;
* fresh randomness per call; blur radius ~ U(0.1, 2) drawn per image;
* the full path dataset -> pipeline -> default_collate -> data
  preprocessor gives one normalised batch per view.
"""
import random
from collections import Counter, defaultdict

import mmcv
import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS, TRANSFORMS
from PIL import Image, ImageFilter, ImageOps
from scipy import stats
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

import mmbcssl  # noqa: F401  registers the transforms, applies the hue fix
from mmbcssl.datasets.transforms import DINOMultiCrop

# ImageNet mean/std on the 0-255 scale: DINO's (0.485, 0.456, 0.406) and
# (0.229, 0.224, 0.225) times 255.
MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]


def _build(**kw) -> DINOMultiCrop:
    cfg = dict(type='DINOMultiCrop', global_crop_size=24, local_crop_size=12,
               num_local_crops=2)
    cfg.update(kw)
    return TRANSFORMS.build(cfg)


def _noise(rng, h=48, w=64):
    """Random BGR noise: every op leaves an unmistakable trace on it."""
    return rng.integers(0, 256, (h, w, 3), np.uint8)


def _rgb_pil(bgr):
    return Image.fromarray(np.ascontiguousarray(bgr[..., ::-1]))


def _bgr(pil):
    return np.asarray(pil)[..., ::-1]


def _op(t, view, name):
    """The sub-transform ``name`` of pipeline ``view`` (0: global-1,
    1: global-2, 2: locals); ColorJitter is looked up inside RandomApply."""
    for tr in t.pipelines[view].transforms:
        if type(tr).__name__ == 'RandomApply':
            tr = tr.transforms.transforms[0]
        if type(tr).__name__ == name:
            return tr
    raise LookupError(name)


# --------------------------------------------------------------------------
# structure
# --------------------------------------------------------------------------
@pytest.mark.parametrize('g,loc,n,src', [(224, 96, 8, (375, 500)),
                                         (64, 32, 4, (80, 120)),
                                         (24, 12, 0, (40, 30))])
def test_views_order_sizes_dtype(g, loc, n, src):
    t = _build(global_crop_size=g, local_crop_size=loc, num_local_crops=n)
    img = _noise(np.random.default_rng(0), *src)
    kept = img.copy()
    results = dict(img=img, img_path='x.jpg', gt_label=3)
    out = t(results)
    views = out['img']
    assert isinstance(views, list)
    assert [v.shape for v in views] == [(g, g, 3)] * 2 + [(loc, loc, 3)] * n
    assert all(v.dtype == np.uint8 for v in views)
    # other keys pass through; the source image is not written to
    assert out['img_path'] == 'x.jpg' and out['gt_label'] == 3
    np.testing.assert_array_equal(img, kept)


def test_same_classes_with_and_without_default_scope():
    def types(t):
        return [type(tr) for p in t.pipelines for tr in p.transforms]

    plain = _build()
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        scoped = _build()
    assert types(plain) == types(scoped)


@pytest.mark.parametrize('kw', [dict(num_local_crops=-1),
                                dict(num_local_crops=1.5),
                                dict(global_crop_size=0),
                                dict(local_crop_scale=(0.4, 0.05)),
                                dict(global_crop_scale=(0.0, 1.0)),
                                dict(global_crop_scale=(0.4, 1.2)),
                                dict(color_jitter=dict(brightness=0.4)),
                                dict(color_jitter_prob=1.5),
                                dict(grayscale_prob=-0.1),
                                dict(blur_radius=(0.0, 2.0)),
                                dict(blur_radius=(2.0, 0.1)),
                                dict(blur_radius=(0.5,))])
def test_bad_arguments(kw):
    with pytest.raises(ValueError):
        DINOMultiCrop(**kw)


# --------------------------------------------------------------------------
# each op equals DINO's torchvision/PIL op, pixel for pixel
# --------------------------------------------------------------------------
@pytest.mark.parametrize('view', [0, 2])
def test_crop_is_pil_bicubic_like_torchvision(monkeypatch, view):
    t = _build(global_crop_size=40, local_crop_size=20)
    crop = _op(t, view, 'RandomResizedCrop')
    size = crop.scale[0]
    img = _noise(np.random.default_rng(1), 60, 80)
    top, left, h, w = 5, 7, 50, 66  # shrink: PIL's bicubic anti-aliases
    monkeypatch.setattr(crop, 'rand_crop_params', lambda _: (top, left, h, w))
    ours = crop(dict(img=img))['img']
    ref = TF.resized_crop(_rgb_pil(img), top, left, h, w, [size, size],
                          InterpolationMode.BICUBIC)
    np.testing.assert_array_equal(ours, _bgr(ref))
    # the comparison can tell interpolations apart
    bilinear = TF.resized_crop(_rgb_pil(img), top, left, h, w, [size, size],
                               InterpolationMode.BILINEAR)
    assert not np.array_equal(ours, _bgr(bilinear))


@pytest.mark.parametrize('order,b,c,s,h', [
    ([0, 1, 2, 3], 1.3, 0.7, 1.15, 0.08),
    ([3, 2, 1, 0], 0.65, 1.35, 0.85, -0.09),  # negative hue: numpy 2 fix
    ([2, 0, 3, 1], 1.1, 0.9, 0.95, -0.02),
])
def test_color_jitter_matches_torchvision(monkeypatch, order, b, c, s, h):
    jitter = _op(_build(), 0, 'ColorJitter')
    monkeypatch.setattr(jitter, '_rand_params',
                        lambda: (np.array(order), b, c, s, h))
    img = _noise(np.random.default_rng(2))
    ours = jitter(dict(img=img))['img']
    ref = _rgb_pil(img)
    ops = [lambda x: TF.adjust_brightness(x, b),
           lambda x: TF.adjust_contrast(x, c),
           lambda x: TF.adjust_saturation(x, s),
           lambda x: TF.adjust_hue(x, h)]
    for i in order:
        ref = ops[i](ref)
    np.testing.assert_array_equal(ours, _bgr(ref))


def test_color_jitter_factor_ranges():
    jitter = _op(_build(), 2, 'ColorJitter')
    # torchvision's ColorJitter(0.4, 0.4, 0.2, 0.1) ranges
    assert jitter.brightness == (0.6, 1.4)
    assert jitter.contrast == (0.6, 1.4)
    assert jitter.saturation == (0.8, 1.2)
    assert jitter.hue == (-0.1, 0.1)


def test_colour_arguments_reach_every_view():
    # the demo recipe's stronger colour augmentation
    t = _build(color_jitter=dict(brightness=0.8, contrast=0.8,
                                 saturation=0.8, hue=0.5),
               color_jitter_prob=1.0, grayscale_prob=0.5)
    for view in range(3):
        jitter = _op(t, view, 'ColorJitter')
        assert jitter.brightness == pytest.approx((0.2, 1.8))
        assert jitter.saturation == pytest.approx((0.2, 1.8))
        assert jitter.hue == pytest.approx((-0.5, 0.5))
        assert _op(t, view, 'RandomGrayscale').prob == 0.5
        apply = [op for op in t.pipelines[view].transforms
                 if type(op).__name__ == 'RandomApply']
        assert [a.prob for a in apply] == [1.0]


def test_blur_radius_reaches_every_view():
    """A demo-size radius range (DINO's scaled by about 0.3) is what every
    view's blur draws from."""
    t = _build(blur_radius=(0.03, 0.6))
    rng = np.random.default_rng(5)
    for view in range(3):
        blur = _op(t, view, 'GaussianBlur')
        radii = [blur.random_magnitude() for _ in range(200)]
        assert 0.03 <= min(radii) and max(radii) <= 0.6
        assert max(radii) - min(radii) > 0.4  # spread over the range
    assert 'blur_radius=(0.03, 0.6)' in repr(t)
    _ = t(dict(img=_noise(rng, 40, 40)))  # runs end to end


def test_blur_is_pil_gaussian_blur(monkeypatch):
    blur = _op(_build(), 0, 'GaussianBlur')
    monkeypatch.setattr(blur, 'random_magnitude', lambda: 1.37)
    img = _noise(np.random.default_rng(3))
    ours = blur(dict(img=img))['img']
    ref = _rgb_pil(img).filter(ImageFilter.GaussianBlur(radius=1.37))
    np.testing.assert_array_equal(ours, _bgr(ref))


def test_solarize_is_pil_solarize(monkeypatch):
    solarize = _op(_build(), 1, 'Solarize')
    monkeypatch.setattr(solarize, 'random_disable', lambda: False)
    img = _noise(np.random.default_rng(4))
    ours = solarize(dict(img=img))['img']
    np.testing.assert_array_equal(ours, _bgr(ImageOps.solarize(
        _rgb_pil(img))))


def test_grayscale_matches_pil_luma(monkeypatch):
    gray = _op(_build(), 0, 'RandomGrayscale')
    monkeypatch.setattr(gray, '_random_prob', lambda: 0.0)
    img = _noise(np.random.default_rng(5))
    ours = gray(dict(img=img))['img']
    ref = np.asarray(_rgb_pil(img).convert('L'))
    assert ours.shape == img.shape
    assert (ours == ours[..., :1]).all()  # three equal channels
    # mmcv truncates the weighted sum where PIL rounds (documented Note)
    diff = ref.astype(int) - ours[..., 0].astype(int)
    assert diff.min() >= 0 and diff.max() <= 1


def test_flip_is_horizontal(monkeypatch):
    flip = _op(_build(), 2, 'RandomFlip')
    monkeypatch.setattr(flip, '_choose_direction', lambda: 'horizontal')
    img = _noise(np.random.default_rng(6))
    ours = flip(dict(img=img))['img']
    np.testing.assert_array_equal(ours, _bgr(TF.hflip(_rgb_pil(img))))


# --------------------------------------------------------------------------
# randomness over many draws
# --------------------------------------------------------------------------
N_DRAWS = 2500
N_LOCAL = 2
POSITIONS = 2 + N_LOCAL  # 0: global-1, 1: global-2, 2..: locals
OPS = ('flip', 'jitter', 'gray', 'blur', 'solarize')


@pytest.fixture(scope='module')
def draws():
    """Run DINOMultiCrop N_DRAWS times on fresh noise images and record, per
    call and output position, which ops were applied, the blur radius, the
    crop area fraction and the colour-jitter op order."""
    random.seed(0)
    np.random.seed(0)
    t = _build(global_crop_size=12, local_crop_size=6,
               num_local_crops=N_LOCAL)
    applied = np.zeros((N_DRAWS, POSITIONS, len(OPS)), bool)
    radii = defaultdict(list)  # position -> radii of applied blurs
    area = defaultdict(list)  # position -> crop area / image area
    jitter_orders = []
    hue_factors = []
    state = dict(call=0, pos=None, order=None, made={})

    def mark(op):
        applied[state['call'], state['pos'], OPS.index(op)] = True

    with pytest.MonkeyPatch.context() as mp:
        # which output position is being made: wrap MultiView's per-view
        # pipelines (locals share one pipeline object)
        def at(pos, pipeline):
            def run(results):
                state['pos'] = pos
                out = pipeline(results)
                state['made'][pos] = out['img']
                return out
            return run

        t.transforms = [at(k, p) for k, p in enumerate(t.transforms)]

        # flip: RandomFlip calls mmcv.imflip only when it flips
        imflip = mmcv.imflip
        mp.setattr(mmcv, 'imflip', lambda *a, **k: (mark('flip'),
                                                    imflip(*a, **k))[1])
        # solarise: mmpretrain's Solarize calls mmcv.solarize when applied
        solarize = mmcv.solarize
        mp.setattr(mmcv, 'solarize', lambda *a, **k: (mark('solarize'),
                                                      solarize(*a, **k))[1])

        # blur: mmpretrain's GaussianBlur builds PIL's filter when applied
        class RecordingBlur(ImageFilter.GaussianBlur):
            def __init__(self, radius=2):
                mark('blur')
                radii[state['pos']].append(radius)
                super().__init__(radius=radius)

        mp.setattr(ImageFilter, 'GaussianBlur', RecordingBlur)

        # jitter: the ColorJitter inside RandomApply runs only when applied;
        # the order of its four mmcv.adjust_* calls is recorded too
        for name in ('adjust_brightness', 'adjust_contrast', 'adjust_color',
                     'adjust_hue'):
            fn = getattr(mmcv, name)

            def adjust(*a, _fn=fn, _name=name, **k):
                state['order'].append(_name)
                if _name == 'adjust_hue':
                    hue_factors.append(a[1])
                return _fn(*a, **k)

            mp.setattr(mmcv, name, adjust)
        for view in range(3):
            jitter = _op(t, view, 'ColorJitter')

            def run_jitter(results, _orig=jitter.transform):
                mark('jitter')
                state['order'] = []
                out = _orig(results)
                jitter_orders.append(tuple(state['order']))
                return out

            mp.setattr(jitter, 'transform', run_jitter)

            # grey: a colourful noise crop comes out with 3 equal channels
            gray = _op(t, view, 'RandomGrayscale')

            def run_gray(results, _orig=gray.transform):
                before = results['img']
                out = _orig(results)
                img = out['img']
                if (img == img[..., :1]).all() and not (
                        before == before[..., :1]).all():
                    mark('gray')
                return out

            mp.setattr(gray, 'transform', run_gray)

            crop = _op(t, view, 'RandomResizedCrop')

            def params(img, _orig=crop.rand_crop_params):
                top, left, h, w = _orig(img)
                area[state['pos']].append(h * w / (img.shape[0] *
                                                   img.shape[1]))
                return top, left, h, w

            mp.setattr(crop, 'rand_crop_params', params)

        rng = np.random.default_rng(0)
        for i in range(N_DRAWS):
            state['call'] = i
            views = t(dict(img=_noise(rng, 40, 40)))['img']
            # what was recorded at position k is output k
            assert all(views[k] is state['made'][k]
                       for k in range(POSITIONS))
    return dict(applied=applied, radii=radii, area=area,
                jitter_orders=jitter_orders, hue_factors=hue_factors)


def _consistent(count, n, p):
    """Exact two-sided binomial test; p 0 or 1 must be met exactly."""
    if p in (0., 1.):
        return count == n * p
    return stats.binomtest(int(count), n, p).pvalue > 1e-6


EXPECTED = {  # DINO's probabilities per output position
    'flip': [0.5] * POSITIONS,
    'jitter': [0.8] * POSITIONS,
    'gray': [0.2] * POSITIONS,
    'blur': [1.0, 0.1] + [0.5] * N_LOCAL,
    'solarize': [0.0, 0.2] + [0.0] * N_LOCAL,
}


@pytest.mark.parametrize('op', OPS)
def test_per_view_probabilities(draws, op):
    counts = draws['applied'][:, :, OPS.index(op)].sum(axis=0)
    for pos, p in enumerate(EXPECTED[op]):
        assert _consistent(counts[pos], N_DRAWS, p), (
            f'{op} at position {pos}: {counts[pos]}/{N_DRAWS}, expected '
            f'p={p}')


def test_binomial_test_has_power():
    """With N_DRAWS draws the tests above catch a probability off by 0.05."""
    assert not _consistent(int(0.15 * N_DRAWS), N_DRAWS, 0.1)
    assert not _consistent(int(0.25 * N_DRAWS), N_DRAWS, 0.2)
    assert not _consistent(N_DRAWS - 1, N_DRAWS, 1.0)


def test_ops_drawn_independently_across_views(draws):
    """Each view draws its own decisions (no caching across views)."""
    flips = draws['applied'][:, :, OPS.index('flip')]
    both = (flips[:, 0] & flips[:, 1]).sum()
    assert _consistent(both, N_DRAWS, 0.25)


def test_blur_radius_uniform_per_image(draws):
    radii = np.concatenate([draws['radii'][p] for p in range(POSITIONS)])
    assert radii.min() >= 0.1 and radii.max() <= 2.0
    # a fresh radius on every blur (the defect: one radius drawn at build)
    assert len(np.unique(radii)) == len(radii)
    assert stats.kstest(radii, 'uniform', args=(0.1, 1.9)).pvalue > 1e-4


def test_crop_scales_per_view_like_torchvision(draws):
    """Crop area fractions follow torchvision's RandomResizedCrop sampler
    with DINO's scales: (0.4, 1) for the globals, (0.05, 0.4) for locals."""
    from torchvision.transforms import RandomResizedCrop
    img = Image.new('RGB', (40, 40))
    for positions, scale in (([0, 1], (0.4, 1.0)),
                             (range(2, POSITIONS), (0.05, 0.4))):
        ours = np.concatenate([draws['area'][p] for p in positions])
        ref = []
        for _ in range(len(ours)):
            _, _, h, w = RandomResizedCrop.get_params(img, scale,
                                                      (3 / 4, 4 / 3))
            ref.append(h * w / 1600)
        assert stats.ks_2samp(ours, ref).pvalue > 1e-4, scale
        # 40 px images: a crop side is rounded to a pixel, hence the slack
        assert ours.min() >= scale[0] * 0.8 and ours.max() <= scale[1] * 1.1


def test_jitter_order_is_random_like_torchvision(draws):
    orders = draws['jitter_orders']
    assert all(len(o) == 4 for o in orders)
    assert len(set(orders)) == 24  # every permutation occurs
    firsts = Counter(o[0] for o in orders)
    assert stats.chisquare(list(firsts.values())).pvalue > 1e-4


def test_negative_hue_through_the_pipeline(draws):
    hues = np.array(draws['hue_factors'])
    assert hues.min() >= -0.1 and hues.max() <= 0.1
    # about half the shifts were negative, none raised (numpy 2 fix)
    assert _consistent((hues < 0).sum(), len(hues), 0.5)


@pytest.mark.skipif(int(np.__version__.split('.')[0]) < 2,
                    reason='numpy 1 wraps the negative shift silently')
def test_mmcv_hue_without_the_fix_fails_on_numpy2():
    """Why the fix matters: mmcv's own adjust_hue on a negative shift."""
    from mmbcssl import compat
    img = _noise(np.random.default_rng(8), 8, 8)
    with pytest.raises(OverflowError):
        compat.mmcv_adjust_hue(img, -0.05, backend='pillow')
    assert mmcv.adjust_hue is compat.adjust_hue  # what ColorJitter calls


def test_fresh_randomness_per_call():
    t = _build(global_crop_size=16, local_crop_size=8, num_local_crops=3)
    img = _noise(np.random.default_rng(7))
    a = t(dict(img=img))['img']
    b = t(dict(img=img))['img']
    for x, y in zip(a, b):
        assert not np.array_equal(x, y)


# --------------------------------------------------------------------------
# dataset -> pipeline -> collate -> data preprocessor
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('folder')
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(60, 80), (90, 70), (64, 64), (50, 120)]):
        (root / f'class{i % 2}').mkdir(exist_ok=True)
        mmcv.imwrite(_noise(rng, h, w), str(root / f'class{i % 2}' /
                                            f'{i}.png'))
    return str(root)


@pytest.mark.parametrize('g,loc,n', [(224, 96, 8), (32, 16, 3)])
def test_dataset_collate_preprocessor(image_folder, g, loc, n):
    from mmengine.dataset import default_collate
    from mmpretrain.datasets import CustomDataset
    from torch.utils.data import DataLoader
    ds = CustomDataset(
        data_prefix=image_folder,
        pipeline=[dict(type='LoadImageFromFileSafe'),
                  dict(type='DINOMultiCrop', global_crop_size=g,
                       local_crop_size=loc, num_local_crops=n),
                  dict(type='PackInputs')])
    loader = DataLoader(ds, batch_size=4, collate_fn=default_collate)
    batch = next(iter(loader))
    views = batch['inputs']
    assert isinstance(views, list) and len(views) == 2 + n
    assert all(v.dtype == torch.uint8 for v in views)

    pre = MODELS.build(dict(type='SelfSupDataPreprocessor', mean=MEAN,
                            std=STD, to_rgb=True))
    out = pre(batch, training=True)['inputs']
    assert [tuple(x.shape) for x in out] == (
        [(4, 3, g, g)] * 2 + [(4, 3, loc, loc)] * n)
    assert all(x.dtype == torch.float32 for x in out)
    # the preprocessor's normalisation is DINO's ToTensor + Normalize on
    # the RGB view
    for packed, normed in zip(views, out):
        rgb = packed[0].flip(0)  # CHW BGR -> RGB
        ref = TF.normalize(rgb.float() / 255, [m / 255 for m in MEAN],
                           [s / 255 for s in STD])
        torch.testing.assert_close(normed[0], ref, atol=1e-5, rtol=1e-5)
