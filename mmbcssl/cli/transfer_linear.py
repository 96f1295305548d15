"""``tools/transfer_linear.py``: linear transfer of frozen backbones to any
number of small folder-format data sets (the CLIP/EsViT suite).

For every model (a config with a backbone, plus weights) and every data set
of a registry file (``configs/transfer/datasets.py``): features of the
train/val/test images (short side ``--resize``, centre crop ``--img-size``,
as the k-NN protocol), then L-BFGS logistic regression, lambda searched on
the validation split, the set's metric on test: the protocol is
:func:`mmbcssl.evaluation.transfer.transfer_model`. Writes ``results.json``
and ``summary.md`` (a table with the average and the first model's wins
against each other model), and per model ``results.<name>.outcomes.npz``:
each test image's label, predicted class and (for the sets scored by
ranking, mAP and ROC-AUC) class probabilities, which ``results.json``
names under ``outcomes`` (:func:`mmbcssl.evaluation.transfer.
transfer_outcomes`).
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

from mmengine.config import Config

from mmbcssl.evaluation.feature_cache import FeatureCache
from mmbcssl.evaluation.fingerprint import flag_mixed
from mmbcssl.evaluation.outcomes import write_outcomes
from mmbcssl.evaluation.transfer import (TransferProtocol, check_layout,
                                         check_last_layer_feature,
                                         read_registry, select_sets,
                                         summarise, transfer_model)
from mmbcssl.fileio import atomic_write
from mmbcssl.utils.launch import UserError, require_file, run_cli
from mmbcssl.utils.outputs import refuse_existing, write_json


def format_summary(results: Dict, models: List[str], registry: Dict,
                   summary: Dict, preset: str = '') -> str:
    header = '| data set | metric | ' + ' | '.join(models) + ' |'
    lines = [
        '# Linear transfer (L-BFGS logistic regression on frozen '
        'features; lambda searched on the validation split)', '', header,
        '|---|---|' + '---|' * len(models)
    ]
    flagged, mixed = False, []
    for name, entry in registry.items():
        # one data set, several models: their protocols must agree
        odd = flag_mixed({m: results[m][name].get('fingerprint')
                          for m in models})
        cells = []
        for m in models:
            r = results[m][name]
            flagged |= not r['converged']
            mark = '' if r['converged'] else '*'
            if m in odd:
                mark += '†'
                mixed.append(f'{name} / {m}: {odd[m]}')
            cells.append(f'{r["score"]:.2f}{mark}')
        lines.append(f'| {name} | {entry["metric"]} | ' + ' | '.join(cells) +
                     ' |')
    lines.append(f'| **average over {preset or "these sets"}** | | ' +
                 ' | '.join(f'**{summary["average"][m]:.2f}**'
                            for m in models) + ' |')
    lines.append('')
    for other, v in summary['versus'].items():
        lines.append(f'{models[0]} against {other}: {v["wins"]} wins, '
                     f'{v["ties"]} ties, {v["losses"]} losses over '
                     f'{len(registry)} data sets.')
    if flagged:
        lines += ['', '\\* some L-BFGS fit stopped at the iteration limit '
                  '(1000) before converging.']
    if mixed:
        lines += ['', '† measured with another protocol than the rest of '
                  'its row (not comparable): ' + '; '.join(mixed)]
    return '\n'.join(lines) + '\n'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('registry', help='data-set registry, e.g. '
                        'configs/transfer/datasets.py')
    parser.add_argument(
        '--model', nargs='+', action='append', required=True,
        metavar='CONFIG [CHECKPOINT]',
        help='a model: config with a backbone and its weights (extracted '
        'backbone or pre-training checkpoint; none: random init); repeat '
        'for more models, the first is compared with the others')
    parser.add_argument('--name', action='append', default=[],
                        help='label of each --model, in order')
    parser.add_argument('--sets', nargs='+', help='only these data sets')
    parser.add_argument(
        '--preset', help='a named list of the registry\'s `presets` '
        '(configs/transfer/datasets.py: clip23, esvit18); the mean is '
        'labelled with it')
    parser.add_argument('--out-dir', required=True)
    parser.add_argument(
        '--feature-cache', metavar='DIR',
        help='keep the features on disk here, shared with tools/knn_eval.py '
        'and later runs of the same weights and data')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the results of an earlier run in '
                        '--out-dir')
    # the protocol's defaults, stated once (TransferProtocol)
    parser.add_argument('--img-size', type=int,
                        default=TransferProtocol.img_size)
    parser.add_argument('--resize', type=int,
                        default=TransferProtocol.resize)
    parser.add_argument('--batch-size', type=int,
                        default=TransferProtocol.batch_size)
    parser.add_argument('--num-workers', type=int,
                        default=TransferProtocol.num_workers)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:

    def _run() -> None:
        from mmengine.logging import print_log
        args = parse_args(argv)
        for spec in args.model:
            if len(spec) > 2:
                raise UserError(f'--model {" ".join(spec)}: expected CONFIG '
                                '[CHECKPOINT]')
            require_file(spec[0], '--model: config file', 'a config (.py)')
            if len(spec) == 2:
                require_file(spec[1], '--model: checkpoint')
            try:
                check_last_layer_feature(Config.fromfile(spec[0]).model,
                                         f'--model {spec[0]}')
            except ValueError as e:
                raise UserError(str(e)) from None
        names = list(args.name) + [
            osp.splitext(osp.basename(s[0]))[0]
            for s in args.model[len(args.name):]
        ]
        if len(args.name) > len(args.model) or len(set(names)) < len(names):
            raise UserError(f'--name: one distinct label per --model, got '
                            f'{names}')
        for label in names:  # it names the model's outcomes file
            if osp.basename(label) != label or label.startswith('.'):
                raise UserError(f'--name {label!r}: a label is part of a '
                                'file name; use one without "/" or a '
                                'leading "."')
        only, preset = select_sets(args.registry, args.preset, args.sets)
        registry = read_registry(args.registry, only)
        refuse_existing([osp.join(args.out_dir, f)
                         for f in ('results.json', 'summary.md')],
                        args.overwrite, '--out-dir')
        # every set's layout before any extraction
        classes = {n: check_layout(n, e) for n, e in registry.items()}
        disk = FeatureCache(args.feature_cache) if args.feature_cache \
            else None
        protocol = TransferProtocol(args.img_size, args.resize,
                                    args.batch_size, args.num_workers)
        results, outcomes = {}, {}
        for label, spec in zip(names, args.model):
            print_log(f'{label}:', logger='current')
            results[label], outcomes[label] = transfer_model(
                protocol, spec[0], spec[1] if len(spec) > 1 else None,
                registry, classes, preset, disk)
        summary = summarise(results, names)
        summary['preset'] = preset
        os.makedirs(args.out_dir, exist_ok=True)
        out = osp.join(args.out_dir, 'results.json')
        # the outcomes first: a run stopped before results.json leaves no
        # result that names them
        records = {
            label: write_outcomes(
                osp.join(args.out_dir, f'results.{label}.json'), o)
            for label, o in outcomes.items()
        }
        write_json(out, dict(models=dict(zip(names, args.model)),
                             preset=preset, results=results,
                             summary=summary, outcomes=records))
        text = format_summary(results, names, registry, summary, preset)
        atomic_write(text, osp.join(args.out_dir, 'summary.md'))
        print(text)

    return run_cli(_run)


if __name__ == '__main__':
    sys.exit(main())
