#!/usr/bin/env python
"""Training (or inference) speed and peak memory of detectors/segmentors,
side by side, on synthetic batches at a fixed size.

Models are configs as in benchmark.py (``CONFIG[+deploy][,key=value...]``),
e.g. Mask R-CNN with BC-SSL-T vs Swin-T at 1333 x 800::

    python tools/analysis_tools/benchmark_dense.py \\
        configs/mask_rcnn/bcssl-t_9x9_100e_fpn_3x_coco.py \\
        configs/mask_rcnn/swin-t_dino_300e_fpn_3x_coco.py \\
        --mode train --batch-size 2 --out bench_det.json

SyncBN layers run as plain BN (one process): what each GPU computes
locally, without the all-reduce.
"""
import argparse
import json
import platform
import sys

import torch

from mmbcssl.utils.analysis import parse_model_spec
from mmbcssl.utils.dense_benchmark import (benchmark_dense, build_step,
                                           cpu_peak_memory, format_dense)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='+', help='CONFIG[+deploy][,k=v...]')
    parser.add_argument('--mode', choices=['train', 'infer'],
                        default='train')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--img-shape', type=int, nargs=2,
                        default=[800, 1333], metavar=('H', 'W'))
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--amp', action='store_true')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--no-memory', action='store_true',
                        help='CPU: skip the per-model peak-memory runs')
    parser.add_argument('--out', help='write the results as JSON')
    args = parser.parse_args(argv)

    import mmbcssl  # noqa: F401  (registries)
    steps = {}
    for text in args.models:
        steps[text] = build_step(parse_model_spec(text), args.batch_size,
                                 tuple(args.img_shape), args.mode,
                                 args.device, args.channels_last, args.amp)
    results = benchmark_dense(steps, args.batch_size, args.warmup,
                              args.repeats)
    if args.device == 'cpu' and not args.no_memory:
        for text in args.models:
            results[text]['peak_mem_mb'] = cpu_peak_memory(
                text, args.batch_size, tuple(args.img_shape),
                args.mode)
    print(format_dense(results, args.models, args.mode))
    if args.out:
        meta = dict(vars(args), torch=torch.__version__,
                    threads=torch.get_num_threads(),
                    machine=platform.processor() or platform.machine())
        with open(args.out, 'w') as f:
            json.dump(dict(meta=meta, results=results), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
