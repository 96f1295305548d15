#!/usr/bin/env python
"""Inference throughput (images/s) of several models, side by side.

Models are configs, optionally with ``+deploy`` (fold BN with
switch_to_deploy) and ``,key=value`` overrides, e.g.::

    python tools/analysis_tools/benchmark.py \\
        configs/_base_/models/bcssl-t_9x9.py \\
        configs/_base_/models/bcssl-t_9x9.py+deploy \\
        configs/_base_/models/convnext-t_7x7.py,model.backbone.kernel_size=9 \\
        configs/_base_/models/swin-t.py --batch-size 32 --both-formats \\
        --out bench.json

``--both-formats`` times each model in NCHW and in channels_last in the same
run, so that each is compared at its faster layout.
"""
import argparse
import json
import platform
import sys

import torch

from mmbcssl.utils.analysis import (benchmark, build_model, format_benchmark,
                                    parse_model_spec)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='+', help='CONFIG[+deploy][,k=v...]')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--amp', action='store_true',
                        help='autocast: fp16 on CUDA, bf16 on CPU')
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument('--channels-last', action='store_true')
    layout.add_argument('--both-formats', action='store_true',
                        help='time each model in NCHW and in channels_last '
                        '(compare models at their faster layout)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile every model')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5,
                        help='round-robin rounds over all models')
    parser.add_argument('--iters', type=int, default=3,
                        help='batches per model per round')
    parser.add_argument('--out', help='write the results as JSON')
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        print('error: --device cuda but no CUDA device', file=sys.stderr)
        return 2
    models = {}
    for spec in args.models:
        path, deploy, overrides = parse_model_spec(spec)
        models[spec] = build_model(path, overrides, deploy)
    results = benchmark(models, args.batch_size, args.img_size, args.device,
                        args.amp, args.channels_last, args.compile,
                        args.warmup, args.repeats, args.iters,
                        args.both_formats)
    print(format_benchmark(results, list(results)))
    setting = {
        k: v
        for k, v in vars(args).items() if k not in ('models', 'out')
    }
    setting.update(torch=torch.__version__, threads=torch.get_num_threads(),
                   machine=platform.processor() or platform.machine(),
                   gpu=torch.cuda.get_device_name() if args.device == 'cuda'
                   else None)
    print('setting:', json.dumps(setting))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(setting=setting, results=results), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
