"""``tools/run_suite.py``: every evaluation of a suite for one backbone.

    python tools/run_suite.py <backbone config> <checkpoint> \\
        --suite configs/suites/paper.py --work-dir work_dirs/suite/<name>

The backbone config is a pre-training config (``configs/dino/*.py``,
``configs/esvit/*.py``): its backbone (and neck) give the k-NN features, and
its metafile entry names the linear-probe, Mask R-CNN and UperNet configs
that start from it. The checkpoint is a whole pre-training checkpoint (the
teacher is evaluated), an extracted ``backbone.*`` file, a converted
published checkpoint, or ``none`` for the random initialisation.

A re-run skips every evaluation whose result is there with the same request
(``--force NAME`` re-runs one, keeping the old result), resumes interrupted
training runs, ImageNet-C passes and feature shards, and reports an
evaluation that cannot run (missing data) or failed as such, with the
command that produces it; the exit status is 1 when any did.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from mmbcssl.utils.launch import UserError, require_file, run_cli


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the backbone\'s pre-training config')
    parser.add_argument('checkpoint',
                        help='its weights, or "none" for random init')
    parser.add_argument('--suite', required=True,
                        help='suite config, e.g. configs/suites/paper.py')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--gpus', type=int, default=1,
                        help='processes per evaluation (tools/dist_*.sh '
                        'when more than 1)')
    parser.add_argument('--force', nargs='+', default=[], metavar='NAME',
                        help='re-run these evaluations')
    parser.add_argument('--only', nargs='+', metavar='NAME',
                        help='run only these evaluations')
    parser.add_argument('--no-cache', action='store_true',
                        help='extract features afresh, without the cache')
    parser.add_argument(
        '--trust-checkpoint', action='store_true',
        help='allow checkpoints that pickle arbitrary objects (only for '
        'files from a source you trust)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    status = {}

    def _run() -> None:
        import os

        from mmbcssl.fileio import TRUST_ENV
        from mmbcssl.suite import (SuiteContext, SuiteRunner,
                                   build_evaluations)
        from mmbcssl.suite.report import summary_lines
        args = parse_args(argv)
        if args.trust_checkpoint:
            os.environ[TRUST_ENV] = '1'
        checkpoint = None if args.checkpoint == 'none' else args.checkpoint
        require_file(args.config, 'config file', 'a config (.py)')
        if checkpoint:
            require_file(checkpoint)
        if args.gpus < 1:
            raise UserError('--gpus must be a positive integer')
        evaluations = build_evaluations(args.suite)
        ctx = SuiteContext(args.config, checkpoint, args.work_dir,
                           gpus=args.gpus, use_cache=not args.no_cache)
        _check_checkpoint(ctx)
        runner = SuiteRunner(ctx, evaluations, args.force, args.only)
        results = runner.run()
        print('\n'.join(summary_lines(results)))
        cache = ctx.feature_cache
        if cache and osp.isdir(cache):
            from mmbcssl.evaluation.feature_cache import FeatureCache
            size = FeatureCache(cache).size_bytes() / 2**20
            print(f'feature cache: {cache} ({size:.1f} MiB)')
        status['bad'] = [n for n, r in results.items()
                         if r.get('status') in ('missing', 'failed')]

    code = run_cli(_run)
    if code == 0 and status.get('bad'):
        return 1
    return code


def _check_checkpoint(ctx) -> None:
    """The weights must fit the backbone before anything runs: an unknown
    format or another architecture is refused here, naming the converter
    format the file looks like when it is a published one."""
    if ctx.checkpoint is None:
        return
    from mmbcssl.apis import CheckpointMismatchError, init_backbone
    try:
        init_backbone(ctx.config, ctx.backbone_weights())
    except CheckpointMismatchError as e:
        raise UserError(f'{e}. {_conversion_hint(ctx.checkpoint)}') from None


def _conversion_hint(checkpoint: str) -> str:
    """How to convert ``checkpoint``: the exact command when its keys match
    one registered upstream format, else the list of known formats."""
    from mmbcssl.converters import (ConversionError, detect_format,
                                    known_formats, load_source)
    command = f'python tools/model_converters/convert.py {checkpoint} <out>'
    try:
        fmt = detect_format(load_source(checkpoint))
    except ConversionError:
        return ('If it is a published checkpoint of one of the formats '
                f'{", ".join(known_formats())}, convert it first: {command} '
                '--from <format>')
    return (f'It looks like a {fmt.name} checkpoint; convert it first: '
            f'{command} --from {fmt.name}')


if __name__ == '__main__':
    sys.exit(main())
