"""Make an ImageNet-C-*style* tree from any folder of class folders.

``<src>/<class>/<image>`` becomes ``<out>/<corruption>/<severity>/<class>/
<image stem>.JPEG`` (the layout :class:`ImageNetC` reads), with the
corruptions of the ``imagecorruptions`` package (see
:mod:`mmbcssl.datasets.corruptions` for what it is and the fixes it needs).

The benchmark's own preparation (Hendrycks & Dietterich 2019, their
``make_imagenet_c.py``) resizes each val image to 256 and centre-crops 224
before corrupting, and saves JPEG at quality 85; ``size=224`` does the same.
A tree made here is still an approximation of ImageNet-C (other source
images and library versions), and its ``README.txt`` says so: report its
numbers as ImageNet-C-style, never as the benchmark.
"""
import os
import os.path as osp
from concurrent.futures import ProcessPoolExecutor
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from mmbcssl.utils.data_checks import DataLayoutError
from .corruptions import BENCHMARK, EXTRA, corrupt

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
NOTE = ('ImageNet-C-STYLE data made by mmbcssl with the imagecorruptions '
        'package (ImageNet-C severities) from {src}.\nIt is an '
        'approximation, not the ImageNet-C benchmark (Hendrycks & '
        'Dietterich, ICLR 2019): report its numbers as ImageNet-C-style.\n')

# (source, destination, corruption, severity, seed, size, JPEG quality)
Job = Tuple[str, str, str, int, int, Optional[int], int]


def corruption_jobs(items: Sequence[Tuple[str, str, int, int]],
                    out_root: str,
                    corruptions: Sequence[str],
                    severities: Iterable[int] = (1, 2, 3, 4, 5),
                    seed: int = 0,
                    size: Optional[int] = None,
                    quality: int = 85) -> List[Job]:
    """One job per (image, corruption, severity).

    Args:
        items: ``(source path, class folder, class index, image index)``;
            the indices only seed the corruption, so that adding images or
            classes never changes the others.
        size: Resize the short side to ``size * 256 / 224`` and centre-crop
            ``size`` first (ImageNet-C's preparation at 224); None keeps
            the image as it is.
    """
    jobs = []
    for ci, name in enumerate(corruptions):
        for severity in severities:
            for src, folder, label, n in items:
                stem = osp.splitext(osp.basename(src))[0]
                dst = osp.join(out_root, name, str(severity), folder,
                               f'{stem}.JPEG')
                job_seed = (seed * 1_000_003 + ci * 7919 + severity * 131 +
                            label * 17 + n)
                jobs.append((src, dst, name, severity, job_seed, size,
                             quality))
    return jobs


def imagenet_c_crop(img: Image.Image, size: int) -> Image.Image:
    """Short side to ``size * 256 / 224`` (bilinear), centre crop ``size``:
    ImageNet-C's 256 / 224 preparation at any size."""
    short = round(size * 256 / 224)
    w, h = img.size
    scale = short / min(w, h)
    img = img.resize(
        (max(size, round(w * scale)), max(size, round(h * scale))),
        Image.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return img.crop((left, top, left + size, top + size))


def run_job(job: Job) -> None:
    src, dst, name, severity, seed, size, quality = job
    try:
        img = Image.open(src).convert('RGB')
    except OSError as e:
        raise DataLayoutError(f'cannot read image {src!r}: {e}') from None
    if size is not None:
        img = imagenet_c_crop(img, size)
    out = corrupt(np.asarray(img), name, severity, seed)
    os.makedirs(osp.dirname(dst), exist_ok=True)
    tmp = dst + '.tmp'
    Image.fromarray(out).save(tmp, format='JPEG', quality=quality)
    os.replace(tmp, dst)  # never a half-written image


def run_jobs(jobs: Sequence[Job], workers: int = 1) -> None:
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(run_job, jobs, chunksize=16))
    else:
        for job in jobs:
            run_job(job)


def scan_folder(src_root: str) -> List[Tuple[str, str, int, int]]:
    """``(path, class folder, class index, image index)`` of every image of
    ``<src_root>/<class>/``, sorted."""
    if not osp.isdir(src_root):
        raise DataLayoutError(f'{src_root!r} does not exist; expected '
                              '<root>/<class>/<image> folders')
    classes = sorted(e.name for e in os.scandir(src_root) if e.is_dir())
    items = []
    for label, folder in enumerate(classes):
        files = sorted(
            f for f in os.listdir(osp.join(src_root, folder))
            if f.lower().endswith(IMAGE_EXTENSIONS))
        items += [(osp.join(src_root, folder, f), folder, label, n)
                  for n, f in enumerate(files)]
    if not items:
        raise DataLayoutError(f'{src_root!r} has no images in class '
                              'folders; expected <root>/<class>/<image>')
    return items


def make_imagenet_c(src_root: str,
                    out_root: str,
                    corruptions: Sequence[str] = BENCHMARK,
                    severities: Iterable[int] = (1, 2, 3, 4, 5),
                    size: Optional[int] = 224,
                    seed: int = 0,
                    workers: int = 1) -> int:
    """Write the tree; images already there are kept (a stopped run
    resumes). Returns the number of images written."""
    unknown = [c for c in corruptions if c not in BENCHMARK + EXTRA]
    if unknown:
        raise ValueError(f'unknown corruptions {unknown}; known: '
                         f'{BENCHMARK + EXTRA}')
    severities = list(severities)
    if any(s not in range(1, 6) for s in severities):
        raise ValueError(f'severities must be in 1..5, got {severities}')
    jobs = corruption_jobs(scan_folder(src_root), out_root, corruptions,
                           severities, seed, size)
    todo = [j for j in jobs if not osp.isfile(j[1])]
    run_jobs(todo, workers)
    with open(osp.join(out_root, 'README.txt'), 'w') as f:
        f.write(NOTE.format(src=src_root))
    return len(todo)


def main(argv: Optional[List[str]] = None) -> int:
    import argparse

    from mmbcssl.utils.launch import run_cli
    parser = argparse.ArgumentParser(
        description='Make an ImageNet-C-style tree (an approximation of '
        'the benchmark) from <src>/<class>/<image> with imagecorruptions')
    parser.add_argument('src', help='folder of class folders, e.g. a val '
                        'set in ImageNet layout')
    parser.add_argument('out', help='tree to write: <out>/<corruption>/'
                        '<severity>/<class>/')
    parser.add_argument('--corruptions', nargs='+', default=list(BENCHMARK),
                        choices=BENCHMARK + EXTRA, metavar='NAME',
                        help='default: the 15 benchmark corruptions')
    parser.add_argument('--extra', action='store_true',
                        help='also the 4 extra ones (never in mCE)')
    parser.add_argument('--severities', nargs='+', type=int,
                        default=[1, 2, 3, 4, 5], choices=range(1, 6))
    parser.add_argument('--size', type=int, default=224,
                        help='resize + centre crop to this size first, as '
                        'ImageNet-C did (0: keep the images as they are)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--workers', type=int,
                        default=min(4, os.cpu_count() or 1))

    def _run() -> None:
        args = parser.parse_args(argv)
        names = list(args.corruptions) + (list(EXTRA) if args.extra else [])
        n = make_imagenet_c(args.src, args.out, names, args.severities,
                            args.size or None, args.seed, args.workers)
        print(f'wrote {n} images to {args.out} (ImageNet-C-style: see '
              f'{osp.join(args.out, "README.txt")})')

    return run_cli(_run)
