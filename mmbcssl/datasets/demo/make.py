"""Write the demo data sets in the real benchmarks' on-disk formats.

Layout under ``out_dir`` (see the README, "Demo data"):

* ``imagenet/{train,val}/<wnid>/<wnid>_<n>.JPEG`` + ``meta/{train,val}.txt``
  (mmpretrain's "<wnid>/<file> <label>" lines) + ``meta/classes.txt``;
* ``coco/{train2017,val2017}/*.jpg`` +
  ``coco/annotations/instances_{train2017,val2017}.json`` (polygons);
* ``seg/{images,annotations}/{training,validation}/`` (ADE20K layout;
  label 0 = background, 1..K = categories);
* ``imagenet-a/<wnid>/``, ``imagenet-r/<wnid>/`` (class subsets),
  ``imagenet-sketch/sketch/<wnid>/`` (all classes),
  ``imagenet-c/<corruption>/<severity>/<wnid>/`` (ImageNet-C-style, at the
  demo crop size as ImageNet-C's images are at 224);
* ``demo_data.json``, the manifest, written last: a complete output has
  one, and re-running with the same arguments does nothing.

Class wnids are real ImageNet-1k wnids, about a third in both official
ImageNet-A and ImageNet-R class lists (timm's package data), a third only in
A's, a third only in R's. The A-style set holds exactly the demo classes of
the official A list, the R-style set those of the R list, so both pass the
official lists' check (``ImageNetSubset(subset_classes=...)``) unchanged.
"""
import json
import os
import os.path as osp
import shutil
import time
from dataclasses import asdict, dataclass
from typing import Dict, List

import numpy as np
from PIL import Image

from mmbcssl.datasets.corruptions import BENCHMARK, EXTRA
from mmbcssl.datasets.imagenet_c_maker import NOTE, corruption_jobs, run_jobs
from mmbcssl.datasets.imagenet_subset import load_wnids
from .world import MAX_CLASSES, SHAPES, TEXTURES, class_image, scene

# 2: ImageNet-C-style images cropped to the demo crop size; 3: wnids and
# A/R-style classes follow the official ImageNet-A/R lists
VERSION = 3
MANIFEST = 'demo_data.json'
JPEG_QUALITY = 90
# The crop size of the demo configs (configs/_base_/datasets/
# demo_classification.py): the demo's 224. ImageNet-C's images are the val
# images resized to 256 and centre-cropped to 224 before corruption; the
# demo's are resized to 64 * 256 / 224 and centre-cropped to 64 the same way.
DEMO_CROP = 64
# Stable ids that seed each image's generator.
_SPLIT_IDS = {'train': 1, 'val': 2, 'a': 3, 'r': 4, 'sketch': 5,
              'coco_train': 6, 'coco_val': 7}


@dataclass
class DemoSizes:
    """How much demo data to make.

    Args:
        num_classes (int): Classes (at most 12). Defaults to 10.
        train_per_class (int): Defaults to 40.
        val_per_class (int): Defaults to 12.
        image_size (int): Side of classification images. Defaults to 96.
        coco_train (int): COCO-style train images. Defaults to 48.
        coco_val (int): COCO-style val images. Defaults to 16.
        coco_size (int): Side of COCO-style images. Defaults to 192.
        robust_per_class (int): A/R/Sketch images per class. Defaults to 6.
        c_per_class (int): Val images per class that get every corruption.
            Defaults to 1.
        extra_corruptions (bool): Also the 4 extra ImageNet-C corruptions.
            Defaults to False.
        plain (bool): ImageNet-style train/val images in the world's
            ``plain`` style (upright, grey background, no distractors), the
            data of the DINO learning experiments. Defaults to False.
    """
    num_classes: int = 10
    train_per_class: int = 40
    val_per_class: int = 12
    image_size: int = 96
    coco_train: int = 48
    coco_val: int = 16
    coco_size: int = 192
    robust_per_class: int = 6
    c_per_class: int = 1
    extra_corruptions: bool = False
    plain: bool = False

    def validate(self) -> None:
        if not 2 <= self.num_classes <= MAX_CLASSES:
            raise ValueError(f'num_classes must be in [2, {MAX_CLASSES}], '
                             f'got {self.num_classes}')
        for name in ('train_per_class', 'val_per_class', 'coco_train',
                     'coco_val', 'robust_per_class', 'c_per_class'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got '
                                 f'{getattr(self, name)}')
        if self.c_per_class > self.val_per_class:
            raise ValueError('c_per_class must be <= val_per_class')
        for name in ('image_size', 'coco_size'):
            if getattr(self, name) < 32:
                raise ValueError(f'{name} must be >= 32 px, got '
                                 f'{getattr(self, name)}')


def _rng(seed: int, split: str, *ids: int) -> np.random.Generator:
    # One generator per image: adding images never changes earlier ones.
    return np.random.default_rng([seed, _SPLIT_IDS[split], *ids])


def _save(img: np.ndarray, path: str) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(img).save(path, quality=JPEG_QUALITY)


def pick_wnids(num_classes: int) -> List[str]:
    """Sorted ImageNet-1k wnids: of every three, one in both official
    ImageNet-A and -R lists, one only in A's and one only in R's, each
    group spread evenly over its sorted pool."""
    a, r = (set(load_wnids(name)) for name in ('imagenet-a', 'imagenet-r'))
    in_1k = set(load_wnids('imagenet-1k'))
    pools = [sorted(a & r & in_1k), sorted((a - r) & in_1k),
             sorted((r - a) & in_1k)]
    picked = []
    for group, pool in enumerate(pools):
        count = len(range(group, num_classes, 3))
        spots = np.linspace(0, len(pool) - 1, count).round().astype(int)
        picked += [pool[i] for i in spots]
    return sorted(picked)


def subsets(wnids: List[str]) -> Dict[str, List[int]]:
    """Classes of the A- and R-style sets: the demo classes in the official
    ImageNet-A and ImageNet-R lists (fewer than all, and different)."""
    out = {}
    for name in ('imagenet-a', 'imagenet-r'):
        official = set(load_wnids(name))
        out[name] = [i for i, w in enumerate(wnids) if w in official]
    return out


def _write_classification(out: str, wnids, sizes: DemoSizes, seed: int):
    root = osp.join(out, 'imagenet')
    style = 'plain' if sizes.plain else 'photo'
    for split, per_class in (('train', sizes.train_per_class),
                             ('val', sizes.val_per_class)):
        lines = []
        for label, wnid in enumerate(wnids):
            for n in range(per_class):
                img = class_image(SHAPES[label], TEXTURES[label],
                                  sizes.image_size,
                                  _rng(seed, split, label, n), style)
                rel = f'{wnid}/{wnid}_{n}.JPEG'
                _save(img, osp.join(root, split, rel))
                lines.append(f'{rel} {label}')
        os.makedirs(osp.join(root, 'meta'), exist_ok=True)
        with open(osp.join(root, 'meta', f'{split}.txt'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    with open(osp.join(root, 'meta', 'classes.txt'), 'w') as f:
        f.write('\n'.join(wnids) + '\n')
    return sizes.num_classes * (sizes.train_per_class + sizes.val_per_class)


def _write_robustness(out: str, wnids, sizes: DemoSizes, seed: int):
    counts = {}
    for name, style, split in (('imagenet-a', 'hard', 'a'),
                               ('imagenet-r', 'rendition', 'r')):
        for label in subsets(wnids)[name]:
            for n in range(sizes.robust_per_class):
                img = class_image(SHAPES[label], TEXTURES[label],
                                  sizes.image_size,
                                  _rng(seed, split, label, n), style)
                _save(img, osp.join(out, name, wnids[label],
                                    f'{wnids[label]}_{n}.JPEG'))
        counts[name] = len(subsets(wnids)[name]) * sizes.robust_per_class
    for label, wnid in enumerate(wnids):
        for n in range(sizes.robust_per_class):
            img = class_image(SHAPES[label], TEXTURES[label],
                              sizes.image_size,
                              _rng(seed, 'sketch', label, n), 'sketch')
            _save(img, osp.join(out, 'imagenet-sketch', 'sketch', wnid,
                                f'{wnid}_{n}.JPEG'))
    counts['imagenet-sketch'] = len(wnids) * sizes.robust_per_class
    return counts


def _write_imagenet_c(out: str, wnids, sizes: DemoSizes, seed: int,
                      workers: int) -> int:
    root = osp.join(out, 'imagenet-c')
    names = BENCHMARK + (EXTRA if sizes.extra_corruptions else ())
    items = [(osp.join(out, 'imagenet', 'val', wnid, f'{wnid}_{n}.JPEG'),
              wnid, label, n) for label, wnid in enumerate(wnids)
             for n in range(sizes.c_per_class)]
    jobs = corruption_jobs(items, root, names, seed=seed, size=DEMO_CROP,
                           quality=JPEG_QUALITY)
    run_jobs(jobs, workers)
    with open(osp.join(root, 'README.txt'), 'w') as f:
        f.write(NOTE.format(src='the demo val images'))
    return len(jobs)


def _polygons(mask: np.ndarray) -> List[List[float]]:
    """COCO polygons of a hole-free mask, from its outer contour."""
    import cv2
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    polys = []
    for c in contours:
        if len(c) >= 3:
            polys.append(c.reshape(-1).astype(float).tolist())
    return polys


def _write_coco(out: str, sizes: DemoSizes, seed: int) -> Dict[str, int]:
    from pycocotools import mask as mask_utils
    root = osp.join(out, 'coco')
    seg_root = osp.join(out, 'seg')
    k = sizes.num_classes
    categories = [(SHAPES[i], TEXTURES[i]) for i in range(k)]
    cats = [dict(id=i + 1, name=SHAPES[i], supercategory='shape')
            for i in range(k)]
    counts = {}
    for split, n_images, seg_split in (('train', sizes.coco_train,
                                        'training'),
                                       ('val', sizes.coco_val, 'validation')):
        images, anns = [], []
        for idx in range(n_images):
            img, objects = scene(categories, sizes.coco_size,
                                 _rng(seed, f'coco_{split}', idx))
            name = f'{idx + 1:012d}.jpg'
            _save(img, osp.join(root, f'{split}2017', name))
            _save(img, osp.join(seg_root, 'images', seg_split, name))
            h, w = img.shape[:2]
            label_map = np.zeros((h, w), np.uint8)
            images.append(dict(id=idx + 1, file_name=name, width=w,
                               height=h))
            for cat, mask in objects:
                polys = _polygons(mask)
                rle = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
                x, y, bw, bh = mask_utils.toBbox(rle).tolist()
                anns.append(dict(
                    id=len(anns) + 1, image_id=idx + 1, category_id=cat + 1,
                    segmentation=polys, area=float(mask_utils.area(rle)),
                    bbox=[x, y, bw, bh], iscrowd=0))
                label_map[mask] = cat + 1
            seg_dir = osp.join(seg_root, 'annotations', seg_split)
            os.makedirs(seg_dir, exist_ok=True)
            Image.fromarray(label_map).save(
                osp.join(seg_dir, name.replace('.jpg', '.png')))
        os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
        with open(osp.join(root, 'annotations',
                           f'instances_{split}2017.json'), 'w') as f:
            json.dump(dict(images=images, annotations=anns, categories=cats,
                           info=dict(description='mmbcssl demo data'),
                           licenses=[]), f)
        counts[f'coco_{split}_images'] = n_images
        counts[f'coco_{split}_objects'] = len(anns)
    return counts


def read_manifest(out_dir: str):
    path = osp.join(out_dir, MANIFEST)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def demo_data_holding(path: str):
    """``(out_dir, manifest)`` of the demo data tree that holds ``path``
    (``path`` itself or a folder above it has the manifest), or None: the
    mark by which a result's data root is told to be demo data, whatever
    the config was called."""
    folder = osp.abspath(path)
    while True:
        manifest = read_manifest(folder)
        if manifest is not None:
            return folder, manifest
        parent = osp.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _same_request(manifest: dict, request: dict) -> bool:
    """Whether ``manifest`` was made by ``request``. A size field that an
    older manifest lacks had its default value then (fields are only ever
    added with the old behaviour as default), so the data is reused."""
    old = dict(manifest)
    if isinstance(old.get('sizes'), dict):
        old['sizes'] = {**asdict(DemoSizes()), **old['sizes']}
    return all(old.get(k) == v for k, v in request.items())


def make_demo_data(out_dir: str,
                   sizes: DemoSizes = None,
                   seed: int = 0,
                   force: bool = False,
                   workers: int = None,
                   log=print) -> dict:
    """Make (or reuse) the demo data under ``out_dir``.

    Args:
        out_dir (str): Output folder.
        sizes (DemoSizes, optional): Defaults to ``DemoSizes()``.
        seed (int): Defaults to 0.
        force (bool): Regenerate even if a matching output exists, and
            overwrite a folder that is not demo data. Defaults to False.
        workers (int, optional): Processes for the corruptions. Defaults to
            the CPU count (at most 4).
        log (callable): Progress messages. Defaults to ``print``.

    Returns:
        dict: The manifest.

    Raises:
        FileExistsError: ``out_dir`` is a non-empty folder that is not demo
            data and ``force`` is False.
    """
    sizes = sizes or DemoSizes()
    sizes.validate()
    request = dict(version=VERSION, seed=seed, sizes=asdict(sizes))
    manifest = read_manifest(out_dir)
    if manifest is not None and not force and _same_request(
            manifest, request):
        log(f'demo data in {out_dir} is complete and up to date; nothing '
            'to do (--force regenerates)')
        return manifest
    if osp.isdir(out_dir) and os.listdir(out_dir):
        known = {'imagenet', 'coco', 'seg', 'imagenet-a', 'imagenet-r',
                 'imagenet-sketch', 'imagenet-c', MANIFEST}
        if not force and not set(os.listdir(out_dir)) <= known:
            raise FileExistsError(
                f'{out_dir} exists and is not demo data made by mmbcssl; '
                'choose another --out or pass --force to overwrite it')
        log(f'regenerating {out_dir} (incomplete, different arguments or '
            '--force)')
        shutil.rmtree(out_dir)
    start = time.time()
    wnids = pick_wnids(sizes.num_classes)
    counts = {'imagenet': _write_classification(out_dir, wnids, sizes,
                                                seed)}
    counts.update(_write_robustness(out_dir, wnids, sizes, seed))
    counts.update(_write_coco(out_dir, sizes, seed))
    workers = workers or min(4, os.cpu_count() or 1)
    counts['imagenet-c'] = _write_imagenet_c(out_dir, wnids, sizes, seed,
                                             workers)
    manifest = dict(
        request,
        wnids=wnids,
        classes=[dict(wnid=w, shape=SHAPES[i], texture=TEXTURES[i])
                 for i, w in enumerate(wnids)],
        subsets=subsets(wnids),
        counts=counts,
        seconds=round(time.time() - start, 1))
    # Written last: its presence marks a complete output.
    tmp = osp.join(out_dir, MANIFEST + '.part')
    with open(tmp, 'w') as f:
        json.dump(manifest, f, indent=2)
    os.replace(tmp, osp.join(out_dir, MANIFEST))
    log(f'wrote demo data to {out_dir} in {manifest["seconds"]}s: '
        + ', '.join(f'{k} {v}' for k, v in counts.items()))
    return manifest
