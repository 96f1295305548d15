"""``tools/knn_eval.py``: weighted k-NN accuracy of a frozen backbone.

The DINO protocol (:mod:`mmbcssl.evaluation.knn`): features of the train
and val images (resize + centre crop), L2-normalised, k in {10, 20, 100,
200}, T = 0.07. The backbone (and neck) come from any config whose model has
them (a DINO pre-training config or a classifier config); weights from an
extracted ``backbone.*`` file or a full pre-training checkpoint (teacher).
Without ``--checkpoint`` the backbone keeps its random initialisation: the
baseline a pre-training run must beat.
"""
import argparse
import json
import os.path as osp
import sys
from typing import List, Optional

import torch
from mmengine import dist

from mmbcssl.apis import CheckpointMismatchError, init_backbone
from mmbcssl.evaluation.features import extract_features, knn_dataset
from mmbcssl.evaluation.knn import DEFAULT_KS, knn_evaluate
from mmbcssl.utils.distributed import cpu_only, init_cpu_process_group
from mmbcssl.utils.launch import UserError, run_cli


def init_launcher(launcher: str) -> None:
    """Open the process group of a ``tools/dist_knn_eval.sh`` (torchrun) or
    slurm run: NCCL with a GPU per process, gloo on CPU-only machines."""
    if launcher == 'none':
        return
    if launcher == 'pytorch' and cpu_only():
        init_cpu_process_group('gloo')
    else:
        from mmengine.dist import init_dist
        init_dist(launcher)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config with model.backbone')
    parser.add_argument('--checkpoint', help='weights (none: random init)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the random init (without --checkpoint)')
    parser.add_argument('--data-root', default='data/imagenet',
                        help='ImageNet layout: train/, val/ (+ meta/)')
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--resize', type=int, default=256,
                        help='short side before the centre crop')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--num-workers', type=int, default=4)
    parser.add_argument('--ks', type=int, nargs='+', default=DEFAULT_KS)
    parser.add_argument('--temperature', type=float, default=0.07)
    parser.add_argument(
        '--fp32-bank', action='store_true',
        help='keep the train features in float32 (default float16: an '
        'ImageNet bank is 1.97 GB instead of 3.9 GB)')
    parser.add_argument('--out', help='write the metrics as JSON')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm'],
                        help='tools/dist_knn_eval.sh uses pytorch')
    parser.add_argument('--local-rank', '--local_rank', type=int,
                        help=argparse.SUPPRESS)

    def _run() -> None:
        args = parser.parse_args(argv)
        for split in ('train', 'val'):
            if not osp.isdir(osp.join(args.data_root, split)):
                raise UserError(
                    f'{osp.join(args.data_root, split)!r} not found; '
                    'expected <root>/{train,val}/<class>/<image>')
        if args.checkpoint and not osp.isfile(args.checkpoint):
            raise UserError(f'checkpoint {args.checkpoint!r} not found')
        init_launcher(args.launcher)
        device = (torch.device('cuda', torch.cuda.current_device())
                  if torch.cuda.is_available() else torch.device('cpu'))
        try:
            model = init_backbone(args.config, args.checkpoint, args.seed,
                                  device)
        except CheckpointMismatchError as e:
            raise UserError(str(e)) from None
        train_ds = knn_dataset(args.data_root, 'train', args.img_size,
                               args.resize)
        val_ds = knn_dataset(args.data_root, 'val', args.img_size,
                             args.resize)
        # each process extracts its share; all end with the whole bank,
        # normalised and (by default) in float16 from the first batch
        dtype = torch.float32 if args.fp32_bank else torch.float16
        tr_f, tr_y, va_f, va_y = (
            t for ds in (train_ds, val_ds) for t in extract_features(
                model, ds, args.batch_size, args.num_workers,
                normalize=True, dtype=dtype))
        if not dist.is_main_process():
            return
        num_classes = int(max(tr_y.max(), va_y.max())) + 1
        metrics = knn_evaluate(tr_f.to(device), tr_y, va_f, va_y,
                               num_classes, ks=args.ks,
                               temperature=args.temperature,
                               bank_dtype=dtype, normalized=True)
        which = args.checkpoint or f'random init, seed {args.seed}'
        print(f'k-NN ({which}, {len(train_ds)} train / {len(val_ds)} val, '
              f'{dist.get_world_size()} process(es)):')
        for k in sorted(set(args.ks)):
            print(f'  k={k:<4d} top-1 {metrics[f"knn/k{k}_top1"]:6.2f}  '
                  f'top-5 {metrics[f"knn/k{k}_top5"]:6.2f}')
        if args.out:
            with open(args.out, 'w') as f:
                json.dump(metrics, f, indent=2)

    return run_cli(_run)


if __name__ == '__main__':
    sys.exit(main())
