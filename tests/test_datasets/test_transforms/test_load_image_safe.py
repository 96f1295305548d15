"""LoadImageFromFileSafe: an unreadable image is reported by its path (also
across a DataLoader worker), or skipped, resampled, counted and logged."""
import logging

import mmcv
import numpy as np
import pytest
from mmengine.dataset import default_collate
from mmengine.logging import MMLogger
from mmpretrain.datasets import CustomDataset
from torch.utils.data import DataLoader

import mmbcssl  # noqa: F401
from mmbcssl.datasets.transforms import (CorruptImageError,
                                         LoadImageFromFileSafe)

NUM_GOOD = 6


def _folder(tmp_path, bad: dict):
    """An image folder (2 classes) with NUM_GOOD good PNGs plus the files
    in ``bad`` (name -> bytes) in class 'b'."""
    rng = np.random.default_rng(0)
    for cls in 'ab':
        (tmp_path / cls).mkdir()
    for i in range(NUM_GOOD):
        img = rng.integers(0, 256, (20, 24, 3), np.uint8)
        mmcv.imwrite(img, str(tmp_path / 'ab'[i % 2] / f'good{i}.png'))
    for name, data in bad.items():
        (tmp_path / 'b' / name).write_bytes(data)
    return str(tmp_path)


def _dataset(root, on_error, multi_crop=False):
    pipeline = [dict(type='LoadImageFromFileSafe', on_error=on_error)]
    if multi_crop:
        pipeline.append(dict(type='DINOMultiCrop', global_crop_size=16,
                             local_crop_size=8, num_local_crops=2))
    pipeline.append(dict(type='PackInputs'))
    return CustomDataset(data_prefix=root, pipeline=pipeline)


def _index(ds, name):
    return next(i for i in range(len(ds))
                if ds.get_data_info(i)['img_path'].endswith(name))


class _Lines(logging.Handler):
    """Collects what mmengine's current logger emits (it does not
    propagate to the root logger, so pytest's caplog misses it)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append((record.levelno, record.getMessage()))


@pytest.fixture
def log_lines():
    logger = MMLogger.get_current_instance()
    handler = _Lines()
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


BAD_FILES = {
    'garbage.png': b'not an image at all',
    'empty.jpg': b'',
    # a PNG signature and nothing after it
    'cut.png': b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR',
}


@pytest.mark.parametrize('name', sorted(BAD_FILES))
def test_raise_names_the_file(tmp_path, name):
    ds = _dataset(_folder(tmp_path, {name: BAD_FILES[name]}), 'raise')
    with pytest.raises(CorruptImageError) as info:
        ds[_index(ds, name)]
    message = str(info.value)
    assert str(tmp_path / 'b' / name) in message
    assert "on_error='skip'" in message
    assert isinstance(info.value, OSError)


def test_missing_file_names_the_file(tmp_path):
    t = LoadImageFromFileSafe()
    path = str(tmp_path / 'gone.jpg')
    with pytest.raises(CorruptImageError, match='gone.jpg'):
        t(dict(img_path=path))


def test_raise_names_the_file_across_a_worker(tmp_path):
    """The path survives DataLoader's re-raise in the main process."""
    ds = _dataset(_folder(tmp_path, {'garbage.png': b'xx'}), 'raise')
    loader = DataLoader(ds, batch_size=len(ds), num_workers=1,
                        collate_fn=default_collate)
    batches = iter(loader)
    try:
        with pytest.raises(CorruptImageError, match='garbage.png'):
            next(batches)
    finally:
        # stop the worker now: left to the garbage collector, the shutdown
        # of a failed iterator waits out a 5 s timeout in a later test
        batches._shutdown_workers()


def test_skip_resamples_counts_and_logs(tmp_path, log_lines):
    np.random.seed(0)  # mmengine draws the replacement index with numpy
    root = _folder(tmp_path, BAD_FILES)
    ds = _dataset(root, 'skip', multi_crop=True)
    loader_t = ds.pipeline.transforms[0]
    assert isinstance(loader_t, LoadImageFromFileSafe)
    bad = [_index(ds, n) for n in BAD_FILES]

    sample = ds[bad[0]]  # a broken one: another, readable sample comes back
    assert sample['data_samples'].img_path.endswith('.png')
    assert 'good' in sample['data_samples'].img_path
    assert [tuple(v.shape) for v in sample['inputs']] == (
        [(3, 16, 16)] * 2 + [(3, 8, 8)] * 2)
    assert loader_t.num_skipped >= 1

    # a whole epoch: every sample valid, every skip counted and logged
    batch = default_collate([ds[i] for i in range(len(ds))])
    assert len(batch['data_samples']) == NUM_GOOD + len(BAD_FILES)
    assert all('good' in s.img_path for s in batch['data_samples'])
    skips = [m for lvl, m in log_lines if m.startswith('skipping unreadable')]
    assert len(skips) == loader_t.num_skipped >= 1 + len(BAD_FILES)
    assert all(lvl == logging.WARNING for lvl, m in log_lines
               if m.startswith('skipping unreadable'))
    for name in BAD_FILES:
        assert any(name in m for m in skips)
    assert skips[-1].endswith(
        f'{loader_t.num_skipped} skipped so far in main process')


def test_good_images_are_not_counted(tmp_path):
    ds = _dataset(_folder(tmp_path, {}), 'skip')
    for i in range(len(ds)):
        ds[i]
    assert ds.pipeline.transforms[0].num_skipped == 0


def test_same_image_as_mmcv_loader(tmp_path):
    from mmcv.transforms import LoadImageFromFile
    path = str(tmp_path / 'x.png')
    mmcv.imwrite(np.random.default_rng(1).integers(0, 256, (9, 7, 3),
                                                   np.uint8), path)
    ours = LoadImageFromFileSafe(on_error='skip')(dict(img_path=path))
    ref = LoadImageFromFile()(dict(img_path=path))
    np.testing.assert_array_equal(ours['img'], ref['img'])
    assert ours['ori_shape'] == ref['ori_shape'] == (9, 7)


def test_bad_policy():
    with pytest.raises(ValueError, match='on_error'):
        LoadImageFromFileSafe(on_error='ignore')
    with pytest.raises(ValueError, match='max_bad_share'):
        LoadImageFromFileSafe(on_error='skip', max_bad_share=2)


def test_too_many_bad_images_stop_the_run(tmp_path):
    """skip tolerates a few bad files; beyond max_bad_share of what was
    read, the data set is broken and the run stops, naming a file."""
    bad = {f'bad{i}.jpg': b'' for i in range(4)}
    root = _folder(tmp_path, bad)  # 6 good + 4 bad
    load = LoadImageFromFileSafe(on_error='skip', max_bad_share=0.3,
                                 min_images=5)
    paths = sorted(str(p) for p in tmp_path.rglob('*.*'))
    with pytest.raises(CorruptImageError, match=r'\d of the \d+ images read'
                       r' .*max_bad_share=0.3'):
        for path in paths:
            load(dict(img_path=path))
    # the same files with a tolerant share: every bad one skipped
    load = LoadImageFromFileSafe(on_error='skip', max_bad_share=0.6,
                                 min_images=5)
    out = [load(dict(img_path=p)) for p in paths]
    assert sum(o is None for o in out) == 4 == load.num_skipped
    assert root


def _jpeg(path, mode='RGB', size=(40, 30)):
    from PIL import Image
    rng = np.random.default_rng(2)
    data = rng.integers(0, 256, (size[1], size[0], len(mode)), np.uint8)
    img = Image.fromarray(data[..., 0] if mode == 'L' else data, mode)
    img.save(path, format='JPEG', quality=90)
    return str(path)


@pytest.mark.parametrize('mode,size', [('CMYK', (40, 30)), ('L', (40, 30)),
                                       ('RGB', (12, 9))])
def test_readable_odd_images_go_through_the_pipelines(tmp_path, mode, size):
    """CMYK and greyscale JPEGs load as 3-channel images, and an image
    smaller than the crop is resized up: through the k-NN/val transform
    and DINO's multi-crop alike, nothing is skipped."""
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    path = _jpeg(tmp_path / f'x_{mode}.jpg', mode, size)
    knn = Compose([
        dict(type='LoadImageFromFileSafe', on_error='raise'),
        dict(type='ResizeEdge', scale=36, edge='short', backend='pillow',
             interpolation='bicubic'),
        dict(type='CenterCrop', crop_size=32),
        dict(type='PackInputs'),
    ])
    out = knn(dict(img_path=path))
    assert tuple(out['inputs'].shape) == (3, 32, 32)
    dino = Compose([
        dict(type='LoadImageFromFileSafe', on_error='raise'),
        dict(type='DINOMultiCrop', global_crop_size=32, local_crop_size=16,
             num_local_crops=2),
        dict(type='PackInputs'),
    ])
    views = dino(dict(img_path=path))['inputs']
    assert [tuple(v.shape) for v in views] == [(3, 32, 32)] * 2 + [
        (3, 16, 16)] * 2


@pytest.mark.parametrize('backend', ['cv2', 'pillow'])
def test_truncated_jpeg_names_the_file(tmp_path, backend):
    """A JPEG cut in half is refused by either decoder, naming the file."""
    path = _jpeg(tmp_path / 'full.jpg', size=(64, 64))
    data = open(path, 'rb').read()
    cut = tmp_path / 'cut.jpg'
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(CorruptImageError, match='cut.jpg'):
        LoadImageFromFileSafe(imdecode_backend=backend)(
            dict(img_path=str(cut)))
