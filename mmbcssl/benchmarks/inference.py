"""Inference throughput (images/s) of several models, side by side.

``tools/analysis_tools/benchmark.py``. Models are configs, optionally with
``+deploy`` (fold BN with switch_to_deploy) and ``,key=value`` overrides,
e.g.::

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
import copy
import json
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from mmbcssl.utils.outputs import write_json
from .common import (ModelForward, build_model, format_table, machine_info,
                     parse_model_spec, round_robin, run_main, spread)


def benchmark(models: Dict[str, nn.Module],
              batch_size: int = 32,
              img_size: int = 224,
              device: str = 'cpu',
              amp: bool = False,
              channels_last: bool = False,
              compile: bool = False,
              warmup: int = 2,
              repeats: int = 5,
              iters: int = 3,
              both_formats: bool = False) -> Dict[str, Dict[str, Any]]:
    """Inference images/s of several models, measured side by side.

    Each repeat times every model once, in turn (round-robin,
    :func:`~.common.round_robin`), so a noisy neighbour on a shared machine
    affects all models alike; the median and the spread over repeats are
    reported.

    Args:
        models (dict): name -> model (classifiers are run with the head).
        batch_size (int): Defaults to 32.
        img_size (int): Defaults to 224.
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to 'cpu'.
        amp (bool): Autocast (fp16 on CUDA, bf16 on CPU). Defaults to False.
        channels_last (bool): Defaults to False.
        compile (bool): ``torch.compile`` each model (on CPU with inductor's
            weight freezing). Defaults to False.
        warmup (int): Untimed iterations per model. Defaults to 2.
        repeats (int): Timed rounds. Defaults to 5.
        iters (int): Forward passes per model per round. Defaults to 3.
        both_formats (bool): Time every model in NCHW and in channels_last
            (names get `` [nchw]`` / `` [channels_last]``), so that each
            model can be compared at its faster layout within one run;
            overrides ``channels_last``. Defaults to False.

    Returns:
        dict: name -> ``{'median', 'min', 'max', 'samples'}`` in images/s.
    """
    dev = torch.device(device)
    x = torch.randn(batch_size, 3, img_size, img_size, device=dev)
    if both_formats:
        formats = {' [nchw]': torch.contiguous_format,
                   ' [channels_last]': torch.channels_last}
    else:
        formats = {'': torch.channels_last if channels_last else
                   torch.contiguous_format}
    if compile and dev.type == 'cpu':
        # Inference-only graphs: let inductor constant-fold the weights and
        # use oneDNN's prepacked linear/conv with fused pointwise ops.
        import torch._inductor.config as inductor_config
        inductor_config.freezing = True
    passes = {}
    for name, model in models.items():
        for suffix, fmt in formats.items():
            fn = ModelForward(copy.deepcopy(model) if both_formats else model,
                              with_head=True).to(dev).eval()
            fn = fn.to(memory_format=fmt)
            fn = torch.compile(fn) if compile else fn
            passes[name + suffix] = (
                lambda fn=fn, x=x.to(memory_format=fmt): fn(x))
    autocast = dict(device_type=dev.type,
                    dtype=torch.float16 if dev.type == 'cuda' else
                    torch.bfloat16, enabled=amp)
    with torch.inference_mode(), torch.autocast(**autocast):
        seconds = round_robin(passes, repeats, warmup, iters, dev)
    return {
        name: spread([batch_size * iters / t for t in s])
        for name, s in seconds.items()
    }


def format_benchmark(results: Dict[str, Dict[str, Any]],
                     names: Sequence[str]) -> str:
    """The results of :func:`benchmark` as a table, with each model's
    speed relative to the first of ``names``."""
    first = results[names[0]]['median']
    rows = [[
        n, f'{results[n]["median"]:.1f}',
        f'[{results[n]["min"]:.1f}, {results[n]["max"]:.1f}]',
        f'{results[n]["median"] / first:.3f}x'
    ] for n in names]
    return format_table(
        ['model', 'img/s (median)', '[min, max]', f'vs {names[0]}'], rows,
        align='lrrl')


def build_parser() -> argparse.ArgumentParser:
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
    return parser


def report(args: argparse.Namespace) -> None:
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
    setting.update(machine_info(),
                   gpu=torch.cuda.get_device_name()
                   if args.device == 'cuda' else None)
    print('setting:', json.dumps(setting))
    if args.out:
        write_json(args.out, dict(setting=setting, results=results))


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(build_parser(), report, argv)
