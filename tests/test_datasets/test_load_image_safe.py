"""Corrupt images: reported by path, or skipped and counted."""
import os.path as osp
import shutil

import pytest
from mmpretrain.datasets import CustomDataset

import mmbcssl  # noqa: F401
from mmbcssl.datasets.transforms import CorruptImageError


def _dataset_with_a_broken_image(demo_data, tmp_path, on_error):
    root = tmp_path / 'imagenet'
    shutil.copytree(osp.join(demo_data, 'imagenet'), root)
    first = (root / 'meta' / 'train.txt').read_text().split()[0]
    broken = root / 'train' / first
    broken.write_bytes(b'not a jpeg at all')
    ds = CustomDataset(
        data_root=str(root), ann_file='meta/train.txt', data_prefix='train',
        pipeline=[dict(type='LoadImageFromFileSafe', on_error=on_error),
                  dict(type='PackInputs')])
    return ds, str(broken)


def test_raise_names_the_file(demo_data, tmp_path):
    ds, broken = _dataset_with_a_broken_image(demo_data, tmp_path, 'raise')
    with pytest.raises(CorruptImageError) as info:
        ds[0]
    assert broken in str(info.value) and "on_error='skip'" in str(
        info.value)


def test_skip_resamples_and_counts(demo_data, tmp_path):
    ds, broken = _dataset_with_a_broken_image(demo_data, tmp_path, 'skip')
    sample = ds[0]  # the broken one: another sample comes back
    assert sample['inputs'].shape[0] == 3
    assert sample['data_samples'].img_path != broken
    loader = ds.pipeline.transforms[0]
    assert loader.num_skipped == 1
    ds[1]  # a good image: nothing more skipped
    assert loader.num_skipped == 1


def test_bad_policy():
    from mmbcssl.datasets.transforms import LoadImageFromFileSafe
    with pytest.raises(ValueError, match='on_error'):
        LoadImageFromFileSafe(on_error='ignore')
