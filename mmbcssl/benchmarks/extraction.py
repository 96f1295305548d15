"""Is feature extraction bound by the model or by the data?

``tools/analysis_tools/benchmark_extraction.py``. Times, side by side in
one run (round-robin), the suite's feature extraction over a folder data
set (``extract_features``: decoding, resize and crop in the data workers,
then the backbone) and the raw backbone on in-memory tensors of the same
batch size, size and layout (what ``tools/analysis_tools/benchmark.py``
times). Their ratio says how much the data path costs: 1.0 means loading is
fully hidden behind the model.

    python tools/analysis_tools/benchmark_extraction.py \\
        configs/dino/bcssl-t_9x9_100e_demo.py --data-root data/demo/imagenet \\
        --split train --img-size 64 --resize 73 --batch-size 64 --workers 1
"""
import argparse
from typing import Dict, List, Optional

import torch

from mmbcssl.apis import init_backbone, load_model_config
from mmbcssl.evaluation.features import FeatureTransform, extract_features
from mmbcssl.utils.launch import UserError
from mmbcssl.utils.outputs import write_json
from .common import format_table, machine_info, round_robin, run_main, spread


def run(config: str, data_root: str, split: str, img_size: int,
        resize: int, batch_size: int, workers: int, repeats: int,
        deploy: bool = True, channels_last: bool = True,
        device: str = 'cpu') -> Dict:
    """Images/s of the extraction and of the raw backbone, per round."""
    dev = torch.device(device)
    model = init_backbone(config, None, device=dev, deploy=deploy,
                          channels_last=channels_last)
    transform = FeatureTransform.from_config(load_model_config(config),
                                             resize, img_size)
    dataset = transform.dataset(data_root, split)
    n = len(dataset)
    # the raw backbone sees the same number of images in the same batches
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    sizes = [min(batch_size, n - i) for i in range(0, n, batch_size)]
    batches = [torch.randn(b, 3, img_size, img_size,
                           device=dev).contiguous(memory_format=fmt)
               for b in sizes]

    def raw() -> None:
        for x in batches:
            out = model['backbone'](x)
            if 'neck' in model:
                model['neck'](out)

    def extraction() -> None:
        extract_features(model, dataset, batch_size, workers,
                         channels_last=channels_last, transform=transform)

    with torch.inference_mode():
        seconds = round_robin(dict(raw_backbone=raw, extraction=extraction),
                              repeats, warmup=1, device=dev)
    results = {k: spread([n / t for t in s]) for k, s in seconds.items()}
    return dict(
        setting=dict(config=config, data_root=data_root, split=split,
                     images=n, img_size=img_size, resize=resize,
                     batch_size=batch_size, workers=workers, deploy=deploy,
                     channels_last=channels_last, device=device,
                     repeats=repeats, **machine_info()),
        results=results,
        extraction_vs_raw=results['extraction']['median'] /
        results['raw_backbone']['median'])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='feature extraction against the raw backbone')
    parser.add_argument('config', help='a config with model.backbone')
    parser.add_argument('--data-root', required=True,
                        help='<root>/<split>/<class>/<image>')
    parser.add_argument('--split', default='train')
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--resize', type=int, default=256)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--no-deploy', action='store_true')
    parser.add_argument('--nchw', action='store_true',
                        help='NCHW instead of channels_last')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--out', help='write the result as JSON')
    return parser


def report(args: argparse.Namespace) -> None:
    if args.workers < 0 or args.batch_size < 1 or args.repeats < 1:
        raise UserError('--workers >= 0, --batch-size >= 1, --repeats >= 1')
    out = run(args.config, args.data_root, args.split, args.img_size,
              args.resize, args.batch_size, args.workers, args.repeats,
              not args.no_deploy, not args.nchw, args.device)
    rows = [[k, f"{v['median']:.1f}", f"[{v['min']:.1f}, {v['max']:.1f}]"]
            for k, v in out['results'].items()]
    print(format_table(['path', 'img/s (median)', '[min, max]'], rows,
                       markdown=True))
    print(f"extraction / raw backbone: {out['extraction_vs_raw']:.3f}x")
    if args.out:
        write_json(args.out, out)


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(build_parser(), report, argv)
