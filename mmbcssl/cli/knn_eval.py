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
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

import torch
from mmengine import dist

from mmbcssl.apis import CheckpointMismatchError, init_backbone
from mmbcssl.datasets.transforms.load_image_safe import CorruptImageError
from mmbcssl.evaluation.feature_cache import FeatureCache, dataset_identity
from mmbcssl.evaluation.features import (extract_features, knn_dataset,
                                         knn_dataset_cfg)
from mmbcssl.evaluation.fingerprint import (checkpoint_record,
                                            make_fingerprint, model_record,
                                            transform_record)
from mmbcssl.evaluation.knn import DEFAULT_KS, knn_evaluate
from mmbcssl.fileio import TRUST_ENV
from mmbcssl.utils.data_checks import check_dataset
from mmbcssl.utils.distributed import cpu_only, init_cpu_process_group
from mmbcssl.utils.launch import UserError, run_cli
from mmbcssl.utils.outputs import refuse_existing, write_json


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
                        'fingerprint as JSON (refused if it exists)')
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
    if args.checkpoint and not osp.isfile(args.checkpoint):
        raise UserError(f'checkpoint {args.checkpoint!r} not found')
    if not osp.isfile(args.config):
        raise UserError(f'config file {args.config!r} not found')
    if min(args.ks) < 1 or args.batch_size < 1 or args.temperature <= 0:
        raise UserError('--ks and --batch-size must be positive integers '
                        'and --temperature positive')
    refuse_existing([args.out], args.overwrite, '--out')


def bank_classes(root: str, dataset) -> List[str]:
    """The train bank's class wnids in label order: the data set's
    classes, or (annotation-file mode, which does not name them) the
    sorted class folders of ``<root>/train``, the order in which
    mmpretrain numbers them and ImageNet's ``meta/train.txt`` labels them.
    """
    classes = dataset.metainfo.get('classes')
    if classes:
        return list(classes)
    folder = osp.join(root, 'train')
    return sorted(d for d in os.listdir(folder)
                  if osp.isdir(osp.join(folder, d)))


def query_dataset(args: argparse.Namespace, classes: List[str]):
    """The robustness set of ``--query`` in the label space of the train
    bank (its class folders), with the k-NN transform; ``--max-queries``
    keeps evenly spaced images."""
    from mmbcssl.datasets import ImageNetC, ImageNetSubset
    pipeline = knn_dataset_cfg('', '', args.img_size,
                               args.resize)['pipeline']

    def build(**kwargs):
        if args.corruption:
            return ImageNetC(args.query, args.corruption, args.severity,
                             base_classes=classes, pipeline=pipeline,
                             **kwargs)
        return ImageNetSubset(data_root=args.query,
                              data_prefix=args.query_prefix,
                              base_classes=classes,
                              subset_classes=args.query_classes,
                              pipeline=pipeline, **kwargs)

    ds = build()
    if args.max_queries and args.max_queries < len(ds):
        step = len(ds) / args.max_queries
        ds = build(indices=sorted(
            {int(i * step) for i in range(args.max_queries)}))
    return ds


def knn_subset_evaluate(bank, bank_labels, queries, labels,
                        num_classes: int, class_indices, args,
                        dtype) -> Dict[str, float]:
    """k-NN top-1/top-5 with the votes restricted to the query set's
    classes (the ImageNet-A/R protocol applied to k-NN votes)."""
    from mmbcssl.evaluation.knn import knn_classify, topk_accuracy
    from mmbcssl.evaluation.robustness import restrict_logits
    scores = knn_classify(bank, bank_labels, queries, num_classes,
                          ks=args.ks, temperature=args.temperature,
                          bank_dtype=dtype, normalized=True)
    metrics = {}
    for k, s in scores.items():
        acc = topk_accuracy(restrict_logits(s, class_indices), labels,
                            (1, 5))
        metrics[f'knn/k{k}_top1'], metrics[f'knn/k{k}_top5'] = acc[1], acc[5]
    return metrics


def feature_key(args: argparse.Namespace, dataset, split: str) -> Dict:
    """What makes cached features of this run the same as another's."""
    from mmengine.config import Config
    weights = (checkpoint_record(args.checkpoint)['sha256']
               if args.checkpoint else f'random init, seed {args.seed}')
    return dict(
        weights=weights,
        data=dataset_identity(dataset, args.data_root, split),
        transform=transform_record(
            knn_dataset_cfg(args.data_root, split, args.img_size,
                            args.resize)['pipeline']),
        model=model_record(Config.fromfile(args.config).model),
        # the same function, but not the same float rounding
        inference=dict(deploy=args.deploy, channels_last=args.channels_last))


def knn_fingerprint(args: argparse.Namespace, n_train: int, n_val: int,
                    skipped: List[str]) -> Dict:
    """The protocol fingerprint of one k-NN result."""
    from mmengine.config import Config
    transform = transform_record(
        knn_dataset_cfg(args.data_root, 'val', args.img_size,
                        args.resize)['pipeline'])
    protocol = dict(
        task='knn',
        dataset=f'folder {osp.basename(osp.abspath(args.data_root))}',
        transform=transform, ks=sorted(set(args.ks)),
        temperature=args.temperature, normalisation='L2',
        bank_dtype='float32' if args.fp32_bank else 'float16',
        class_restriction='none', images=dict(train=n_train, val=n_val),
        skipped_images=len(skipped))
    if args.query:
        name = osp.basename(osp.abspath(args.query))
        if args.corruption:
            name += f' {args.corruption}/{args.severity}'
        protocol.update(
            query=name, max_queries=args.max_queries,
            class_restriction='votes restricted to the classes of the set',
            query_classes=args.query_classes or 'the folders found',
            images=dict(train=n_train, query=n_val))
    world = dist.get_world_size()
    run = dict(global_batch=args.batch_size * world, world_size=world,
               seed=args.seed, data_root=args.data_root,
               deploy=args.deploy, channels_last=args.channels_last)
    return make_fingerprint(
        protocol, checkpoint_record(args.checkpoint),
        model_record(Config.fromfile(args.config).model), run)


def main(argv: Optional[List[str]] = None) -> int:

    def _run() -> None:
        args = parse_args(argv)
        if args.trust_checkpoint:
            os.environ[TRUST_ENV] = '1'  # data workers inherit it
        preflight(args)
        init_launcher(args.launcher)
        try:
            _evaluate(args)
        except CorruptImageError as e:
            raise UserError(f'{e} (or pass --skip-bad-images to leave '
                            'unreadable images out, counted)') from None

    def _evaluate(args) -> None:
        device = (torch.device('cuda', torch.cuda.current_device())
                  if torch.cuda.is_available() else torch.device('cpu'))
        try:
            model = init_backbone(args.config, args.checkpoint, args.seed,
                                  device, deploy=args.deploy,
                                  channels_last=args.channels_last)
        except CheckpointMismatchError as e:
            raise UserError(str(e)) from None
        # each process extracts its share; all end with the whole bank,
        # normalised and (by default) in float16 from the first batch
        dtype = torch.float32 if args.fp32_bank else torch.float16
        skipped: Optional[List[str]] = [] if args.skip_bad_images else None
        cache = FeatureCache(args.feature_cache, args.shard_size) \
            if args.feature_cache else None
        banks, banks_classes = [], []
        for split in ('train', 'query' if args.query else 'val'):
            ds = knn_dataset(args.data_root, split, args.img_size,
                             args.resize) if split != 'query' else \
                query_dataset(args, banks_classes)
            if split == 'train':
                banks_classes = bank_classes(args.data_root, ds)
            if dist.is_main_process():
                print(f'extracting {split} features ({len(ds)} images)',
                      flush=True)
            if cache is None:
                banks += extract_features(model, ds, args.batch_size,
                                          args.num_workers, normalize=True,
                                          dtype=dtype, skipped=skipped,
                                          progress=True,
                                          channels_last=args.channels_last)
            else:
                banks += cache.extract(
                    model, ds, feature_key(args, ds, split),
                    args.batch_size, args.num_workers, normalize=True,
                    dtype=dtype, skipped=skipped, progress=True,
                    channels_last=args.channels_last)
        if cache is not None and dist.is_main_process():
            print(f'feature cache {args.feature_cache}: '
                  f'{cache.size_bytes() / 2**20:.1f} MiB, {cache.hits} '
                  f'shards reused, {cache.misses} extracted')
        if not dist.is_main_process():
            return
        tr_f, tr_y, va_f, va_y = banks
        skipped = skipped or []
        total = len(tr_y) + len(va_y) + len(skipped)
        if len(skipped) > args.max_bad_share * total:
            raise UserError(
                f'{len(skipped)} of {total} images are unreadable, more '
                f'than --max-bad-share {args.max_bad_share} (first: '
                f'{skipped[0]}): the data set looks broken')
        if args.query:
            metrics = knn_subset_evaluate(
                tr_f.to(device), tr_y, va_f, va_y, len(banks_classes),
                ds.metainfo['class_indices'], args, dtype)
        else:
            num_classes = int(max(tr_y.max(), va_y.max())) + 1
            metrics = knn_evaluate(tr_f.to(device), tr_y, va_f, va_y,
                                   num_classes, ks=args.ks,
                                   temperature=args.temperature,
                                   bank_dtype=dtype, normalized=True)
        which = args.checkpoint or f'random init, seed {args.seed}'
        print(f'\nk-NN ({which}, {len(tr_y)} train / {len(va_y)} val, '
              f'{dist.get_world_size()} process(es)):')
        for k in sorted(set(args.ks)):
            print(f'  k={k:<4d} top-1 {metrics[f"knn/k{k}_top1"]:6.2f}  '
                  f'top-5 {metrics[f"knn/k{k}_top5"]:6.2f}')
        if skipped:
            print(f'  {len(skipped)} unreadable images left out '
                  f'(accuracy is over the {len(va_y)} readable val '
                  f'images): {"; ".join(skipped[:3])}')
        if args.out:
            fingerprint = knn_fingerprint(args, len(tr_y), len(va_y),
                                          skipped)
            write_json(args.out, dict(metrics=metrics,
                                      fingerprint=fingerprint,
                                      skipped=skipped))

    return run_cli(_run)


if __name__ == '__main__':
    sys.exit(main())
