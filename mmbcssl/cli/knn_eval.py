"""``tools/knn_eval.py``: weighted k-NN accuracy of a frozen backbone.

Parses, calls :func:`mmbcssl.evaluation.knn.run_knn` (the protocol: DINO's
weighted k-NN, defaults in :class:`~mmbcssl.evaluation.knn.KNNProtocol`),
prints. The backbone (and neck) come from any config whose model has them
(a DINO pre-training config or a classifier config), and so does the input
(``data_preprocessor`` mean/std/to_rgb, the test pipeline's resize/crop);
weights from an extracted ``backbone.*`` file or a full pre-training
checkpoint (teacher). Without ``--checkpoint`` the backbone keeps its random
initialisation: the baseline a pre-training run must beat.
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional

import torch
from mmengine import dist

from mmbcssl.apis import (CheckpointMismatchError, init_backbone,
                          load_model_config)
from mmbcssl.datasets.transforms.load_image_safe import CorruptImageError
from mmbcssl.evaluation.feature_cache import FeatureCache
from mmbcssl.evaluation.features import FeatureTransform, knn_dataset_cfg
from mmbcssl.evaluation.fingerprint import checkpoint_record, model_record
from mmbcssl.evaluation.knn import (BANK_DTYPES, KNNProtocol,
                                    TooManyUnreadableImages, bank_classes,
                                    query_dataset, run_knn)
from mmbcssl.evaluation.outcomes import write_outcomes
from mmbcssl.fileio import TRUST_ENV
from mmbcssl.utils.data_checks import check_dataset
from mmbcssl.utils.distributed import cpu_only, init_cpu_process_group
from mmbcssl.utils.launch import UserError, require_file, run_cli
from mmbcssl.utils.outputs import refuse_existing, write_json

DEFAULTS = KNNProtocol()


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


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='config with model.backbone')
    parser.add_argument('--checkpoint', help='weights (none: random init)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the random init (without --checkpoint)')
    parser.add_argument('--data-root', default='data/imagenet',
                        help='ImageNet layout: train/, val/ (+ meta/)')
    parser.add_argument('--img-size', type=int,
                        help='centre crop (default: the config\'s test '
                        f'pipeline, else {FeatureTransform.crop})')
    parser.add_argument('--resize', type=int,
                        help='short side before the centre crop (default: '
                        'the config\'s test pipeline, else '
                        f'{FeatureTransform.resize})')
    parser.add_argument('--batch-size', type=int,
                        default=DEFAULTS.batch_size,
                        help='images per forward, per process')
    parser.add_argument('--num-workers', type=int, default=4)
    parser.add_argument('--ks', type=int, nargs='+', default=DEFAULTS.ks)
    parser.add_argument('--temperature', type=float,
                        default=DEFAULTS.temperature)
    parser.add_argument(
        '--bank-dtype', choices=sorted(BANK_DTYPES),
        default=DEFAULTS.bank_dtype,
        help='storage type of the train features (float16: an ImageNet '
        'bank is 1.97 GB instead of 3.9 GB)')
    parser.add_argument(
        '--skip-bad-images', action='store_true',
        help='leave unreadable images out (each is reported, and the '
        'result records how many) instead of stopping at the first')
    parser.add_argument(
        '--max-bad-share', type=float, default=0.01,
        help='with --skip-bad-images, stop when more than this share of '
        'the images is unreadable (default 0.01)')
    parser.add_argument(
        '--feature-cache', metavar='DIR',
        help='keep the features on disk here (keyed by checkpoint, data, '
        'transform and features), shared with later runs and resumable '
        'shard by shard')
    parser.add_argument('--shard-size', type=int, default=8192,
                        help='images per cached feature file')
    parser.add_argument(
        '--deploy', action='store_true',
        help='fold the BatchNorms into their convolutions first (the same '
        'function, faster)')
    parser.add_argument('--channels-last', action='store_true',
                        help='run in the channels-last layout (faster for '
                        'large depthwise kernels on CPU and cuDNN)')
    parser.add_argument(
        '--query', metavar='ROOT',
        help='classify the images of this robustness set instead of '
        '<data-root>/val: <ROOT>/<wnid>/ folders (ImageNet-A/R, '
        '<ROOT>/sketch for Sketch with --query-prefix sketch) or an '
        'ImageNet-C tree (with --corruption and --severity); the votes are '
        'restricted to the set\'s classes')
    parser.add_argument('--query-prefix', default='',
                        help='sub-folder of --query holding the classes')
    parser.add_argument(
        '--query-classes', metavar='LIST',
        help="the query set's fixed class list: imagenet-a or imagenet-r "
        '(the official 200 wnids) or a file of wnids; every one of them '
        'that the train bank has must have its folder. Default: the '
        'folders found')
    parser.add_argument('--corruption', help='ImageNet-C corruption')
    parser.add_argument('--severity', type=int, help='ImageNet-C severity')
    parser.add_argument('--max-queries', type=int,
                        help='at most this many query images, evenly '
                        'spaced through the set')
    parser.add_argument('--out', help='write the metrics and their protocol '
                        'fingerprint as JSON (refused if it exists), and '
                        'which query images each k got right beside it '
                        '(x.json -> x.outcomes.npz)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing --out file')
    parser.add_argument(
        '--trust-checkpoint', action='store_true',
        help='allow checkpoints that pickle arbitrary objects (only for '
        'files from a source you trust)')
    parser.add_argument('--launcher', default='none',
                        choices=['none', 'pytorch', 'slurm'],
                        help='tools/dist_knn_eval.sh uses pytorch')
    parser.add_argument('--local-rank', '--local_rank', type=int,
                        help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def preflight(args: argparse.Namespace) -> None:
    """Everything that can be checked before a model is built."""
    for split in ('train', ) if args.query else ('train', 'val'):
        check_dataset(knn_dataset_cfg(args.data_root, split),
                      f'--data-root ({split})')
    if args.query and not osp.isdir(osp.join(args.query, args.query_prefix)):
        raise UserError(f'--query {args.query!r}: no such folder')
    if (args.corruption is None) != (args.severity is None):
        raise UserError('--corruption and --severity go together')
    if args.checkpoint:
        require_file(args.checkpoint)
    require_file(args.config, 'config file', 'a config (.py)')
    refuse_existing([args.out], args.overwrite, '--out')


def protocol_of(args: argparse.Namespace) -> KNNProtocol:
    try:
        return KNNProtocol(ks=args.ks, temperature=args.temperature,
                           bank_dtype=args.bank_dtype,
                           batch_size=args.batch_size)
    except ValueError as e:
        raise UserError(f'{e} (--ks, --temperature, --batch-size)') from None


def transform_of(args: argparse.Namespace, cfg) -> FeatureTransform:
    try:
        return FeatureTransform.from_config(cfg, args.resize, args.img_size)
    except ValueError as e:
        raise UserError(f'{args.config}: {e}') from None


def main(argv: Optional[List[str]] = None) -> int:

    def _run() -> None:
        args = parse_args(argv)
        if args.trust_checkpoint:
            os.environ[TRUST_ENV] = '1'  # data workers inherit it
        preflight(args)
        protocol = protocol_of(args)
        cfg = load_model_config(args.config)
        transform = transform_of(args, cfg)
        init_launcher(args.launcher)
        try:
            _evaluate(args, protocol, cfg, transform)
        except CorruptImageError as e:
            raise UserError(f'{e} (or pass --skip-bad-images to leave '
                            'unreadable images out, counted)') from None
        except TooManyUnreadableImages as e:
            raise UserError(str(e)) from None

    def _evaluate(args, protocol, cfg, transform) -> None:
        device = (torch.device('cuda', torch.cuda.current_device())
                  if torch.cuda.is_available() else torch.device('cpu'))
        try:
            model = init_backbone(cfg, args.checkpoint, args.seed, device,
                                  deploy=args.deploy,
                                  channels_last=args.channels_last)
        except CheckpointMismatchError as e:
            raise UserError(str(e)) from None
        bank = transform.dataset(args.data_root, 'train')
        classes = bank_classes(bank)
        query = transform.dataset(args.data_root, 'val') if not args.query \
            else query_dataset(args.query, transform, classes,
                               args.query_prefix, args.query_classes,
                               args.corruption, args.severity,
                               args.max_queries)
        weights = (checkpoint_record(args.checkpoint)['sha256']
                   if args.checkpoint else f'random init, seed {args.seed}')
        # the model's input is part of what it is
        model_rec = dict(model_record(cfg.model),
                         input=transform.input_record())
        cache = FeatureCache(args.feature_cache, args.shard_size) \
            if args.feature_cache else None
        result = run_knn(
            model, protocol, transform, bank, query,
            num_classes=len(classes) if args.query else None,
            class_indices=(query.metainfo['class_indices']
                           if args.query else None),
            num_workers=args.num_workers,
            skip_bad_images=args.skip_bad_images,
            max_bad_share=args.max_bad_share, cache=cache,
            # the same function, but not the same float rounding
            cache_key=dict(weights=weights, model=model_rec, inference=dict(
                deploy=args.deploy, channels_last=args.channels_last)),
            progress=True, channels_last=args.channels_last)
        if not dist.is_main_process():
            return
        if args.query:
            name = osp.basename(osp.abspath(args.query))
            if args.corruption:
                name += f' {args.corruption}/{args.severity}'
            result.protocol.update(
                query=name, max_queries=args.max_queries,
                query_classes=args.query_classes or 'the folders found')
        if cache is not None:
            print(f'feature cache {args.feature_cache}: '
                  f'{cache.size_bytes() / 2**20:.1f} MiB, {cache.hits} '
                  f'shards reused, {cache.misses} extracted')
        _print(args, result)
        if args.out:
            # the outcomes first: a run stopped between the two leaves no
            # result that names them
            record = write_outcomes(args.out, result.outcomes())
            write_json(args.out, dict(
                metrics=result.metrics,
                fingerprint=result.fingerprint(
                    checkpoint_record(args.checkpoint), model_rec,
                    _run_record(args)),
                skipped=result.skipped, outcomes=record))

    return run_cli(_run)


def _run_record(args: argparse.Namespace) -> dict:
    return dict(seed=args.seed, data_root=args.data_root,
                deploy=args.deploy, channels_last=args.channels_last)


def _print(args: argparse.Namespace, result) -> None:
    m, images = result.metrics, result.protocol['images']
    n_train, n_query = images['train'], images.get('val', images.get('query'))
    which = args.checkpoint or f'random init, seed {args.seed}'
    print(f'\nk-NN ({which}, {n_train} train / {n_query} val, '
          f'{result.world_size} process(es)):')
    for k in result.protocol['ks']:
        print(f'  k={k:<4d} top-1 {m[f"knn/k{k}_top1"]:6.2f}  '
              f'top-5 {m[f"knn/k{k}_top5"]:6.2f}')
    if result.skipped:
        print(f'  {len(result.skipped)} unreadable images left out '
              f'(accuracy is over the {n_query} readable val images): '
              f'{"; ".join(result.skipped[:3])}')


if __name__ == '__main__':
    sys.exit(main())
