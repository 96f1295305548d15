"""The demo data: real formats (loaded by the upstream libraries' own
classes), determinism, idempotency and learnable signal."""
import dataclasses
import hashlib
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from mmbcssl.datasets.demo import DemoSizes, make_demo_data
from mmbcssl.datasets.demo.make import MANIFEST
from mmbcssl.evaluation.robustness import BENCHMARK_CORRUPTIONS

TINY = DemoSizes(num_classes=3, train_per_class=2, val_per_class=1,
                 image_size=32, coco_train=2, coco_val=1, coco_size=64,
                 robust_per_class=1, c_per_class=1)


def _hashes(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            if f == MANIFEST:
                continue  # holds the generation time
            p = osp.join(d, f)
            with open(p, 'rb') as fh:
                out[osp.relpath(p, root)] = hashlib.md5(fh.read()).digest()
    return out


def test_generation_is_deterministic(tmp_path):
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    make_demo_data(a, TINY, seed=3, log=lambda m: None)
    make_demo_data(b, TINY, seed=3, log=lambda m: None)
    ha, hb = _hashes(a), _hashes(b)
    assert len(ha) > 3 * 75 and ha == hb
    c = str(tmp_path / 'c')
    make_demo_data(c, TINY, seed=4, log=lambda m: None)
    assert _hashes(c) != ha


def test_idempotent_rerun_and_incomplete_output(tmp_path):
    out = str(tmp_path / 'd')
    msgs = []
    make_demo_data(out, TINY, log=msgs.append)
    manifest = osp.join(out, MANIFEST)
    stamp = os.stat(manifest).st_mtime_ns
    make_demo_data(out, TINY, log=msgs.append)
    assert 'nothing to do' in msgs[-1]
    assert os.stat(manifest).st_mtime_ns == stamp
    os.remove(manifest)  # as if interrupted before the end
    make_demo_data(out, TINY, log=msgs.append)
    assert 'regenerating' in ' '.join(msgs) and osp.isfile(manifest)


def test_an_older_manifest_is_reused_and_a_new_option_regenerates(tmp_path):
    """A manifest written before a size field existed (here ``plain``)
    matches a request with that field at its default; a request with the
    field set regenerates."""
    out = str(tmp_path / 'e')
    msgs = []
    make_demo_data(out, TINY, log=msgs.append)
    path = osp.join(out, MANIFEST)
    manifest = json.load(open(path))
    del manifest['sizes']['plain']
    json.dump(manifest, open(path, 'w'))
    make_demo_data(out, TINY, log=msgs.append)
    assert 'nothing to do' in msgs[-1]
    make_demo_data(out, dataclasses.replace(TINY, plain=True),
                   log=msgs.append)
    assert 'regenerating' in msgs[-2]
    assert json.load(open(path))['sizes']['plain'] is True


def test_plain_style_is_upright_on_grey():
    """The learning experiments' style: a grey background, no distractors,
    and the same upright shape wherever it is drawn (photo-style shapes
    turn at random); an unknown style is an error."""
    from mmbcssl.datasets.demo.world import class_image, shape_mask
    rng = np.random.default_rng(0)
    imgs = [class_image('star', 'solid', 96, rng, 'plain') for _ in range(6)]
    for img in imgs:
        border = np.concatenate([img[:3].reshape(-1, 3),
                                 img[-3:].reshape(-1, 3)])
        assert abs(border.mean() - 128) < 4 and border.std() < 12

    def star_points_up(img):
        # the topmost object pixel is a star tip, centred over the object
        obj = np.abs(img.astype(float) - 128).sum(-1) > 60
        ys, xs = np.nonzero(obj)
        top = xs[ys == ys.min()].mean()
        return abs(top - xs.mean()) < 3

    assert all(star_points_up(img) for img in imgs)
    # the check can fail: a turned star on the same grey
    turned = np.full((96, 96, 3), 128, np.uint8)
    turned[shape_mask('star', (96, 96), (48, 48), 30, 0.3)] = 250
    assert not star_points_up(turned)
    with pytest.raises(ValueError, match='unknown style'):
        class_image('star', 'solid', 96, rng, 'watercolour')


def test_refuses_a_folder_that_is_not_demo_data(tmp_path):
    (tmp_path / 'thesis.tex').write_text('precious')
    with pytest.raises(FileExistsError, match='not demo data'):
        make_demo_data(str(tmp_path), TINY, log=lambda m: None)
    assert (tmp_path / 'thesis.tex').exists()


@pytest.mark.parametrize('field, value', [('num_classes', 13),
                                          ('train_per_class', 0),
                                          ('image_size', 8)])
def test_bad_sizes_name_the_argument(tmp_path, field, value):
    sizes = DemoSizes(**{field: value})
    with pytest.raises(ValueError, match=field):
        make_demo_data(str(tmp_path / 'x'), sizes)


def test_imagenet_style_loads_with_mmpretrain(demo_data):
    from mmpretrain.datasets import CustomDataset
    root = osp.join(demo_data, 'imagenet')
    with open(osp.join(root, 'meta', 'classes.txt')) as f:
        wnids = f.read().split()
    assert wnids == sorted(wnids) and len(wnids) == 10
    ann = CustomDataset(data_root=root, ann_file='meta/train.txt',
                        data_prefix='train',
                        classes=osp.join(root, 'meta', 'classes.txt'))
    folder = CustomDataset(data_root=root, data_prefix='val')
    assert len(ann) == 80 and len(folder) == 40
    assert folder.metainfo['classes'] == tuple(wnids)
    for ds in (ann, folder):
        for i in range(0, len(ds), 7):
            info = ds.get_data_info(i)
            wnid = osp.basename(osp.dirname(info['img_path']))
            assert wnids.index(wnid) == info['gt_label']
    # Real ImageNet-1k wnids.
    from mmbcssl.datasets.imagenet_subset import load_wnids
    assert set(wnids) <= set(load_wnids('imagenet-1k'))


def _coco(demo_data, split):
    from pycocotools.coco import COCO
    return COCO(osp.join(demo_data, 'coco', 'annotations',
                         f'instances_{split}2017.json'))


def test_coco_polygons_match_pixels_and_boxes(demo_data):
    from pycocotools import mask as mask_utils
    coco = _coco(demo_data, 'train')
    assert len(coco.getCatIds()) == 10 and len(coco.getImgIds()) == 6
    for img_id in coco.getImgIds():
        info = coco.loadImgs(img_id)[0]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        assert 2 <= len(anns) <= 5
        label = np.asarray(Image.open(osp.join(
            demo_data, 'seg', 'annotations', 'training',
            info['file_name'].replace('.jpg', '.png'))))
        for ann in anns:
            m = coco.annToMask(ann).astype(bool)
            assert abs(int(m.sum()) - ann['area']) <= 1
            # The polygon covers the object's pixels in the label map.
            obj = label == ann['category_id']
            overlap = (m & obj).sum() / m.sum()
            assert overlap > 0.95
            x, y, w, h = ann['bbox']
            ys, xs = np.nonzero(m)
            assert xs.min() >= x - 1 and xs.max() <= x + w
            assert ys.min() >= y - 1 and ys.max() <= y + h
            assert mask_utils.area(
                mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))) > 0


@pytest.mark.parametrize('iou_type', ['bbox', 'segm'])
def test_cocoeval_of_ground_truth_is_perfect(demo_data, iou_type):
    from pycocotools.cocoeval import COCOeval
    gt = _coco(demo_data, 'val')
    dets = [dict(ann, score=1.0) for ann in gt.loadAnns(gt.getAnnIds())]
    for d in dets:
        d.pop('id')
    ev = COCOeval(gt, gt.loadRes(dets), iou_type)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)


def test_mmdet_coco_dataset_loads_it(demo_data):
    from mmdet.datasets import CocoDataset
    with open(osp.join(demo_data, 'demo_data.json')) as f:
        classes = tuple(c['shape'] for c in json.load(f)['classes'])
    ds = CocoDataset(
        data_root=osp.join(demo_data, 'coco'),
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        metainfo=dict(classes=classes),
        # Scoped names: no global default scope is changed for other tests.
        pipeline=[dict(type='mmdet.LoadImageFromFile'),
                  dict(type='mmdet.LoadAnnotations', with_bbox=True,
                       with_mask=True)])
    assert len(ds) == 6
    sample = ds[0]
    assert sample['gt_bboxes'].shape[0] == len(sample['gt_masks']) >= 2
    assert sample['img'].shape[:2] == (128, 128)


def test_robustness_trees(demo_data):
    with open(osp.join(demo_data, 'demo_data.json')) as f:
        manifest = json.load(f)
    wnids = set(manifest['wnids'])
    for name in ('imagenet-a', 'imagenet-r'):
        found = set(os.listdir(osp.join(demo_data, name)))
        assert found < wnids and len(found) < len(wnids)
    assert set(os.listdir(osp.join(demo_data, 'imagenet-sketch',
                                   'sketch'))) == wnids
    c_root = osp.join(demo_data, 'imagenet-c')
    assert sorted(d for d in os.listdir(c_root) if d != 'README.txt') == \
        sorted(BENCHMARK_CORRUPTIONS)
    for c in BENCHMARK_CORRUPTIONS:
        for s in range(1, 6):
            assert set(os.listdir(osp.join(c_root, c, str(s)))) == wnids
    assert 'not the' in open(osp.join(c_root, 'README.txt')).read()
    # at the demo crop size, as ImageNet-C's images are at 224
    from PIL import Image
    from mmbcssl.datasets.demo.make import DEMO_CROP
    wnid = sorted(wnids)[0]
    folder = osp.join(c_root, 'fog', '3', wnid)
    with Image.open(osp.join(folder, os.listdir(folder)[0])) as img:
        assert img.size == (DEMO_CROP, DEMO_CROP)


def test_robustness_sets_load_with_the_project_datasets(demo_data):
    from mmbcssl.datasets import ImageNetC, ImageNetSubset
    from mmbcssl.datasets.imagenet_subset import load_wnids
    classes = osp.join(demo_data, 'imagenet', 'meta', 'classes.txt')
    wnids = load_wnids(classes)
    for name in ('imagenet-a', 'imagenet-r'):
        # the demo's A/R-style sets hold exactly the demo classes of the
        # official lists, so they pass the official lists' check
        subset = ImageNetSubset(data_root=osp.join(demo_data, name),
                                base_classes=classes, subset_classes=name)
        official = set(load_wnids(name))
        assert list(subset.metainfo['classes']) == [
            w for w in wnids if w in official]
        assert 0 < len(subset.metainfo['class_indices']) < 10
    c = ImageNetC(osp.join(demo_data, 'imagenet-c'), 'fog', 5,
                  base_classes=classes)
    assert c.metainfo['class_indices'] == tuple(range(10))


def test_classes_carry_shape_and_texture_signal(demo_data):
    """Hand-made HOG features + k-NN beat chance clearly, while mean colour
    does not: the class is in shape and texture, which DINO's colour
    augmentations leave intact (measured on the default size: HOG 26.7%,
    colour 10.8%, chance 10%)."""
    from skimage.feature import hog
    from mmbcssl.evaluation.knn import knn_evaluate
    root = osp.join(demo_data, 'imagenet')

    def load(split):
        feats, colours, labels = [], [], []
        for line in open(osp.join(root, 'meta', f'{split}.txt')):
            path, label = line.split()
            img = Image.open(osp.join(root, split, path)).convert('RGB')
            gray = np.asarray(img.convert('L'))
            feats.append(hog(gray, pixels_per_cell=(8, 8),
                             cells_per_block=(2, 2)))
            colours.append(np.asarray(img).reshape(-1, 3).mean(0))
            labels.append(int(label))
        return (torch.tensor(np.array(feats)).float(),
                torch.tensor(np.array(colours)).float(),
                torch.tensor(labels))

    hog_tr, col_tr, y_tr = load('train')
    hog_va, col_va, y_va = load('val')
    shape_acc = knn_evaluate(hog_tr, y_tr, hog_va, y_va, 10,
                             ks=(10, ))['knn/k10_top1']
    colour_acc = knn_evaluate(col_tr, y_tr, col_va, y_va, 10,
                              ks=(10, ))['knn/k10_top1']
    assert shape_acc >= 20.0  # chance: 10%
    assert colour_acc < shape_acc


def test_command_line_help_is_the_fields_documentation(capsys):
    """Every DemoSizes field is a flag whose help is its docstring entry."""
    from dataclasses import fields

    from mmbcssl.datasets.demo import main
    with pytest.raises(SystemExit):
        main(['--help'])
    text = ' '.join(capsys.readouterr().out.split())
    for f in fields(DemoSizes):
        assert '--' + f.name.replace('_', '-') in text
    assert 'Val images per class that get every corruption.' in text
    assert 'upright, grey background, no distractors' in text
    assert 'COCO-style train images. Defaults to 48.' in text
