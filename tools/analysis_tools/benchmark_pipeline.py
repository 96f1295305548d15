#!/usr/bin/env python
"""Throughput of DINO's multi-crop pipeline, images/s per data worker.

One process, one thread (as a DataLoader worker), from decoded images: N
images from a folder or made in memory, warm-up passes, then the median of
timed passes. Times the paper's setting (224/96 px, 2+8 views) and the CPU
demo's (64/32 px, 2+4), next to the same augmentations written with
torchvision (DINO's own code path) when torchvision is installed, e.g.::

    python tools/analysis_tools/benchmark_pipeline.py --num-images 32 \\
        --out work_dirs/benchmark_pipeline.json
    python tools/analysis_tools/benchmark_pipeline.py \\
        --folder data/imagenet/train --setting 224,96,10
"""
import argparse
import json
import os
import os.path as osp
import sys

import mmbcssl  # noqa: F401  registers DINOMultiCrop, applies the hue fix
from mmbcssl.datasets.pipeline_benchmark import (DEMO_SETTING, PAPER_SETTING,
                                                 CropSetting,
                                                 benchmark_pipelines,
                                                 environment, folder_images,
                                                 format_table,
                                                 synthetic_images)


def _setting(text: str) -> CropSetting:
    try:
        glob, loc, num = (int(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected GLOBAL,LOCAL,NUM_LOCAL (e.g. 224,96,8), got {text!r}')
    return CropSetting(f'{glob}/{loc}, 2+{num}', glob, loc, num)


def _size(text: str):
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'expected WIDTHxHEIGHT (e.g. 500x375), got {text!r}')
    return w, h


def main(argv=None) -> int:
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
    args = parser.parse_args(argv)

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
    print(format_table(rows))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            argv = sys.argv[1:] if argv is None else argv
            command = ' '.join(
                ['python tools/analysis_tools/benchmark_pipeline.py', *argv])
            json.dump(dict(command=command,
                           images=source, warmup=args.warmup,
                           repeats=args.repeats, environment=environment(),
                           results=rows), f, indent=2)
        print(f'\nwrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
