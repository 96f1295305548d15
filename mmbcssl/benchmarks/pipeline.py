"""Throughput of DINO's multi-crop pipeline, images/s per data worker.

``tools/analysis_tools/benchmark_pipeline.py``. One process, one thread (as
a DataLoader worker runs: torch sets one thread per worker), from decoded
images: N images from a folder or made in memory, warm-up passes, then the
median of timed passes. Times the paper's setting (224/96 px, 2+8 views)
and the CPU demo's (64/32 px, 2+4), next to the same augmentations written
with torchvision (DINO's own code path) when torchvision is installed,
e.g.::

    python tools/analysis_tools/benchmark_pipeline.py --num-images 32 \\
        --out work_dirs/benchmark_pipeline.json
    python tools/analysis_tools/benchmark_pipeline.py \\
        --folder data/imagenet/train --setting 224,96,10
"""
import argparse
import os
import os.path as osp
import random
import sys
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmbcssl.datasets.transforms import dino_multi_crop as dmc
from mmbcssl.utils.outputs import write_json
from .common import format_table, round_robin, run_main, spread

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


@dataclass
class CropSetting:
    """One multi-crop configuration to time.

    Args:
        name (str): Label in the table.
        global_crop_size (int): Side of the 2 global views.
        local_crop_size (int): Side of the local views.
        num_local_crops (int): Number of local views.
    """
    name: str
    global_crop_size: int
    local_crop_size: int
    num_local_crops: int

    @property
    def num_views(self) -> int:
        return 2 + self.num_local_crops


# The paper's setting and the CPU demo's (configs/dino/*_demo.py).
PAPER_SETTING = CropSetting('paper 224/96, 2+8', 224, 96, 8)
DEMO_SETTING = CropSetting('CPU demo 64/32, 2+4', 64, 32, 4)


def synthetic_images(num: int,
                     height: int = 375,
                     width: int = 500,
                     seed: int = 0) -> List[np.ndarray]:
    """Smooth random colour images (uint8 HWC BGR), made in memory.

    Blobs of colour plus a little fine noise, so that colour jitter, grey
    and blur act on varied content. The default 500 x 375 is the most common
    ImageNet training image size.

    Args:
        num (int): Number of images.
        height (int): Image height. Defaults to 375.
        width (int): Image width. Defaults to 500.
        seed (int): Seed of the generator. Defaults to 0.

    Returns:
        list[np.ndarray]: ``num`` arrays of shape (height, width, 3).
    """
    import cv2
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(num):
        coarse = rng.uniform(0, 255, (12, 16, 3)).astype(np.float32)
        smooth = cv2.resize(coarse, (width, height),
                            interpolation=cv2.INTER_CUBIC)
        noisy = smooth + rng.normal(0, 8, smooth.shape)
        images.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return images


def folder_images(folder: str, num: int) -> List[np.ndarray]:
    """The first ``num`` images found under ``folder`` (sorted, recursive),
    decoded by mmcv as uint8 HWC BGR.

    Args:
        folder (str): Folder to search.
        num (int): How many images to load.

    Returns:
        list[np.ndarray]: The decoded images.

    Raises:
        FileNotFoundError: No image under ``folder``.
    """
    import mmcv
    paths = []
    for root, _, files in os.walk(folder):
        paths += [osp.join(root, f) for f in files
                  if f.lower().endswith(IMAGE_EXTENSIONS)]
    paths = sorted(paths)[:num]
    if not paths:
        raise FileNotFoundError(f'no image ({", ".join(IMAGE_EXTENSIONS)}) '
                                f'under {folder}')
    return [mmcv.imread(p, channel_order='bgr') for p in paths]


class _RandomPILBlur:
    """DINO's ``utils.GaussianBlur``: with probability ``prob`` a PIL
    Gaussian blur whose radius is drawn uniformly on every call."""

    def __init__(self, prob: float, radius: Tuple[float, float]) -> None:
        self.prob = prob
        self.radius = radius

    def __call__(self, img: Any) -> Any:
        from PIL import ImageFilter
        if random.random() > self.prob:
            return img
        radius = random.uniform(*self.radius)
        return img.filter(ImageFilter.GaussianBlur(radius=radius))


class _RandomPILSolarize:
    """DINO's ``utils.Solarization``: ``PIL.ImageOps.solarize`` (threshold
    128) with probability ``prob``."""

    def __init__(self, prob: float) -> None:
        self.prob = prob

    def __call__(self, img: Any) -> Any:
        from PIL import ImageOps
        return ImageOps.solarize(img) if random.random() < self.prob else img


def torchvision_dino_augmentation(
        global_crop_size: int = 224,
        local_crop_size: int = 96,
        num_local_crops: int = 8,
        global_crop_scale: Sequence[float] = (0.4, 1.0),
        local_crop_scale: Sequence[float] = (0.05, 0.4),
        normalize: bool = True) -> Callable[[Any], list]:
    """DINO's augmentation written with torchvision, as the reference point.

    Follows facebookresearch/dino ``main_dino.py`` (``DataAugmentationDINO``)
    with the probabilities of
    :mod:`mmbcssl.datasets.transforms.dino_multi_crop`; works on
    an RGB PIL image and returns the list of views.

    Args:
        global_crop_size (int): Defaults to 224.
        local_crop_size (int): Defaults to 96.
        num_local_crops (int): Defaults to 8.
        global_crop_scale (Sequence[float]): Defaults to (0.4, 1.0).
        local_crop_scale (Sequence[float]): Defaults to (0.05, 0.4).
        normalize (bool): End every view with ``ToTensor`` and the ImageNet
            ``Normalize``, as DINO does in its workers; False returns PIL
            images. Defaults to True.

    Returns:
        Callable: PIL image -> list of ``2 + num_local_crops`` views.
    """
    from torchvision import transforms as T
    bicubic = T.InterpolationMode.BICUBIC

    def view(size: int, scale: Sequence[float], blur_prob: float,
             solarize_prob: float = 0.) -> Callable:
        steps = [
            T.RandomResizedCrop(size, scale=tuple(scale),
                                interpolation=bicubic),
            T.RandomHorizontalFlip(p=dmc.FLIP_PROB),
            T.RandomApply([T.ColorJitter(**dmc.JITTER)], p=dmc.JITTER_PROB),
            T.RandomGrayscale(p=dmc.GRAYSCALE_PROB),
            _RandomPILBlur(blur_prob, dmc.BLUR_RADIUS),
        ]
        if solarize_prob:
            steps.append(_RandomPILSolarize(solarize_prob))
        if normalize:
            steps += [T.ToTensor(),
                      T.Normalize((0.485, 0.456, 0.406),
                                  (0.229, 0.224, 0.225))]
        return T.Compose(steps)

    blur1, blur2, blur_local = dmc.BLUR_PROBS
    global1 = view(global_crop_size, global_crop_scale, blur1)
    global2 = view(global_crop_size, global_crop_scale, blur2,
                   dmc.SOLARIZE_PROB)
    local = view(local_crop_size, local_crop_scale, blur_local)

    def augment(img: Any) -> list:
        return [global1(img), global2(img)] + [
            local(img) for _ in range(num_local_crops)]

    return augment


def time_per_image(fn: Callable[[Any], Any],
                   inputs: Sequence[Any],
                   repeats: int = 5,
                   warmup: int = 1) -> Dict[str, float]:
    """Images per second of ``fn`` over ``inputs``: the median of
    ``repeats`` timed passes after ``warmup`` untimed ones.

    Args:
        fn (Callable): Called once per input.
        inputs (Sequence): One pass calls ``fn`` on each.
        repeats (int): Timed passes. Defaults to 5.
        warmup (int): Untimed passes first (caches, lazy imports).
            Defaults to 1.

    Returns:
        dict: ``images_per_s`` (median pass), ``ms_per_image``,
        ``images_per_s_min`` and ``images_per_s_max`` over the passes.
    """
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')

    def one_pass() -> None:
        for x in inputs:
            fn(x)

    rates = spread([
        len(inputs) / t
        for t in round_robin({'pass': one_pass}, repeats, warmup)['pass']
    ])
    return dict(images_per_s=rates['median'],
                ms_per_image=1000. / rates['median'],
                images_per_s_min=rates['min'], images_per_s_max=rates['max'])


def _seed(seed: int) -> None:
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def benchmark_pipelines(images: Sequence[np.ndarray],
                        settings: Sequence[CropSetting] = (PAPER_SETTING,
                                                           DEMO_SETTING),
                        repeats: int = 5,
                        warmup: int = 1,
                        with_torchvision: bool = True,
                        seed: int = 0) -> List[Dict[str, Any]]:
    """Time the multi-crop pipeline for each setting, in one thread.

    Implementations, all from a decoded image (decoding is left out: it is
    the same for both libraries):

    * ``DINOMultiCrop``: our transform on a BGR array;
    * ``DINOMultiCrop + PackInputs``: plus the conversion to tensors a
      worker does before collation;
    * ``torchvision PIL``: the same augmentations with torchvision on an
      RGB PIL image, views left as PIL images;
    * ``torchvision + ToTensor/Normalize``: DINO's complete worker
      pipeline (we normalise in the data preprocessor instead).

    Args:
        images (Sequence[np.ndarray]): uint8 HWC BGR images.
        settings (Sequence[CropSetting]): Defaults to the paper's and the
            CPU demo's.
        repeats (int): Timed passes. Defaults to 5.
        warmup (int): Untimed passes. Defaults to 1.
        with_torchvision (bool): Also time the torchvision reference.
            Defaults to True.
        seed (int): Seed of ``random``, numpy and torch before each
            implementation. Defaults to 0.

    Returns:
        list[dict]: One row per (setting, implementation) with the fields of
        :func:`time_per_image` and the setting.
    """
    import torch
    from mmpretrain.registry import TRANSFORMS
    from PIL import Image

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a DataLoader worker
    try:
        rows = []
        pil_images = [Image.fromarray(np.ascontiguousarray(img[..., ::-1]))
                      for img in images] if with_torchvision else []
        for setting in settings:
            kwargs = dict(global_crop_size=setting.global_crop_size,
                          local_crop_size=setting.local_crop_size,
                          num_local_crops=setting.num_local_crops)
            multi_crop = TRANSFORMS.build(dict(type='DINOMultiCrop',
                                               **kwargs))
            pack = TRANSFORMS.build(dict(type='PackInputs'))
            candidates = [
                ('DINOMultiCrop', images,
                 lambda img: multi_crop(dict(img=img))),
                ('DINOMultiCrop + PackInputs', images,
                 lambda img: pack(multi_crop(dict(img=img)))),
            ]
            if with_torchvision:
                candidates += [
                    ('torchvision PIL', pil_images,
                     torchvision_dino_augmentation(**kwargs,
                                                   normalize=False)),
                    ('torchvision + ToTensor/Normalize', pil_images,
                     torchvision_dino_augmentation(**kwargs,
                                                   normalize=True)),
                ]
            for name, inputs, fn in candidates:
                _seed(seed)
                timing = time_per_image(fn, inputs, repeats, warmup)
                sizes = {k: v for k, v in asdict(setting).items()
                         if k != 'name'}
                rows.append(dict(setting=setting.name,
                                 implementation=name,
                                 num_views=setting.num_views,
                                 num_images=len(inputs),
                                 repeats=repeats, **sizes, **timing))
        return rows
    finally:
        torch.set_num_threads(threads)


def format_pipelines(rows: Sequence[Dict[str, Any]]) -> str:
    """The rows of :func:`benchmark_pipelines` as a Markdown table."""
    return format_table([
        'setting', 'implementation', 'views', 'img/s (median)', 'ms/img',
        'img/s min-max'
    ], [[
        r['setting'], r['implementation'], r['num_views'],
        f"{r['images_per_s']:.1f}", f"{r['ms_per_image']:.2f}",
        f"{r['images_per_s_min']:.1f}-{r['images_per_s_max']:.1f}"
    ] for r in rows], markdown=True)


def environment() -> Dict[str, Optional[str]]:
    """Versions and CPU that a benchmark result depends on."""
    import platform

    import mmcv
    import PIL
    import torch
    try:
        import torchvision
        tv_version = torchvision.__version__
    except ImportError:
        tv_version = None
    return dict(python=platform.python_version(), numpy=np.__version__,
                pillow=PIL.__version__, mmcv=mmcv.__version__,
                torch=torch.__version__, torchvision=tv_version,
                cpu=platform.processor() or platform.machine(),
                cpu_count=str(os.cpu_count()))


def _setting(text: str) -> CropSetting:
    try:
        glob, loc, num = (int(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected GLOBAL,LOCAL,NUM_LOCAL (e.g. 224,96,8), got {text!r}')
    return CropSetting(f'{glob}/{loc}, 2+{num}', glob, loc, num)


def _size(text: str) -> Tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected WIDTHxHEIGHT (e.g. 500x375), got {text!r}')
    return w, h


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--folder', help='time on images from this folder '
                        '(recursive); default: images made in memory')
    parser.add_argument('--num-images', type=int, default=32)
    parser.add_argument('--image-size', type=_size, default=(500, 375),
                        help='WIDTHxHEIGHT of the images made in memory')
    parser.add_argument('--setting', type=_setting, action='append',
                        help='GLOBAL,LOCAL,NUM_LOCAL; repeatable (default: '
                        '224,96,8 and 64,32,4)')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed passes over the images')
    parser.add_argument('--repeats', type=int, default=5,
                        help='timed passes; the median is reported')
    parser.add_argument('--no-torchvision', action='store_true',
                        help='skip the torchvision reference')
    parser.add_argument('--out', help='write the results as JSON')
    return parser


def report(args: argparse.Namespace, command: str) -> None:
    if args.folder:
        images = folder_images(args.folder, args.num_images)
    else:
        width, height = args.image_size
        images = synthetic_images(args.num_images, height, width)
    with_tv = not args.no_torchvision
    if with_tv:
        try:
            import torchvision  # noqa: F401
        except ImportError:
            print('torchvision is not installed: no reference timings',
                  file=sys.stderr)
            with_tv = False
    settings = args.setting or [PAPER_SETTING, DEMO_SETTING]
    rows = benchmark_pipelines(images, settings, args.repeats, args.warmup,
                               with_tv)
    source = args.folder or (f'{len(images)} images made in memory, '
                             f'{images[0].shape[1]}x{images[0].shape[0]}')
    print(f'images: {source}; 1 thread; median of {args.repeats} passes '
          f'after {args.warmup} warm-up pass(es)\n')
    print(format_pipelines(rows))
    if args.out:
        write_json(args.out, dict(command=command, images=source,
                                  warmup=args.warmup, repeats=args.repeats,
                                  environment=environment(), results=rows))
        print(f'\nwrote {args.out}')


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = ' '.join(
        ['python tools/analysis_tools/benchmark_pipeline.py', *argv])
    return run_main(build_parser(), lambda args: report(args, command),
                    argv)
