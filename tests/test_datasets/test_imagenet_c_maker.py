"""tools/misc/make_imagenet_c.py: an ImageNet-C-style tree from any class
folder, readable by ImageNetC, resumable, labelled as an approximation."""
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mmbcssl.datasets import ImageNetC
from mmbcssl.datasets.imagenet_c_maker import (imagenet_c_crop, main,
                                               make_imagenet_c)
from mmbcssl.utils.data_checks import DataLayoutError

CLASSES = ['n01440764', 'n01443537']


def _source(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / 'src'
    for c in CLASSES:
        (src / c).mkdir(parents=True)
        for i in range(2):
            # smooth images: added noise is measurable
            img = np.full((48, 64, 3), 60 + 80 * i, np.uint8)
            img[:, :32] += rng.integers(0, 20, 3, dtype=np.uint8)
            Image.fromarray(img).save(src / c / f'img{i}.png')
    return str(src)


def test_tree_layout_sizes_and_severity(tmp_path):
    src, out = _source(tmp_path), str(tmp_path / 'c')
    n = make_imagenet_c(src, out, ['gaussian_noise', 'fog'], [1, 5], size=32)
    assert n == 2 * 2 * 4  # corruptions x severities x images
    path = osp.join(out, 'gaussian_noise', '5', CLASSES[1], 'img0.JPEG')
    assert Image.open(path).size == (32, 32)
    assert 'not the ImageNet-C benchmark' in open(
        osp.join(out, 'README.txt')).read()
    # a higher severity moves the image further from the clean one
    clean = np.asarray(
        imagenet_c_crop(
            Image.open(osp.join(src, CLASSES[0], 'img0.png')).convert('RGB'),
            32))
    err = {}
    for s in (1, 5):
        img = np.asarray(Image.open(osp.join(
            out, 'gaussian_noise', str(s), CLASSES[0], 'img0.JPEG')))
        err[s] = np.abs(img.astype(float) - clean).mean()
    assert err[5] > 2 * err[1] > 0
    ds = ImageNetC(out, 'fog', 5, base_classes=CLASSES, pipeline=[])
    assert len(ds) == 4
    assert ds.metainfo['class_indices'] == (0, 1)
    # a second run keeps what is there
    assert make_imagenet_c(src, out, ['gaussian_noise', 'fog'], [1, 5],
                           size=32) == 0


def test_bad_input(tmp_path, capsys):
    with pytest.raises(DataLayoutError, match='does not exist'):
        make_imagenet_c(str(tmp_path / 'none'), str(tmp_path / 'c'))
    (tmp_path / 'empty' / 'n01440764').mkdir(parents=True)
    with pytest.raises(DataLayoutError, match='no images'):
        make_imagenet_c(str(tmp_path / 'empty'), str(tmp_path / 'c'))
    with pytest.raises(SystemExit):
        main([str(tmp_path), str(tmp_path / 'c'), '--corruptions', 'rain'])
    assert 'invalid choice' in capsys.readouterr().err
    assert main([str(tmp_path / 'none'), str(tmp_path / 'c')]) == 2
