"""``tools/transfer_linear.py``: linear transfer of frozen backbones to any
number of small folder-format data sets (the CLIP/EsViT suite).

For every model (a config with a backbone, plus weights) and every data set
of a registry file (``configs/transfer/datasets.py``): features of the
train/val/test images (short side ``--resize``, centre crop ``--img-size``,
as the k-NN protocol), then :func:`mmbcssl.evaluation.transfer.transfer_one`
(L-BFGS logistic regression, lambda searched on the validation split, the
set's metric on test). Writes ``results.json`` and ``summary.md`` (a table
with the average and the first model's wins against each other model).
"""
import argparse
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.config import Config

from mmbcssl.evaluation.feature_cache import FeatureCache
from mmbcssl.evaluation.features import FeatureTransform
from mmbcssl.evaluation.fingerprint import (checkpoint_record, flag_mixed,
                                            make_fingerprint, model_record,
                                            transform_record)
from mmbcssl.evaluation.transfer import (METRICS, check_last_layer_feature,
                                         holdout_split, summarise,
                                         transfer_one)
from mmbcssl.fileio import atomic_write
from mmbcssl.utils.launch import UserError, run_cli
from mmbcssl.utils.outputs import refuse_existing, write_json

LAYOUT = ('<data_root>/<root>/<split>/<class>/<image> with the same class '
          'folders in every split')


def select_sets(path: str, preset: Optional[str],
                only: Optional[List[str]]) -> Tuple[Optional[List[str]], str]:
    """The set names to run and how the mean over them is labelled: a
    preset of the registry (``presets = dict(clip23=[...], ...)``), an
    explicit ``--sets`` list, or every set of the registry."""
    if preset and only:
        raise UserError('--preset and --sets: give one of them')
    if not only and not preset:
        return None, f'every set of {osp.basename(path)}'
    if only:
        return only, f'custom: {len(only)} sets'
    presets = dict(Config.fromfile(path).get('presets') or {})
    if preset not in presets:
        raise UserError(f'unknown preset {preset!r}; {path} has: '
                        f'{", ".join(presets) or "none"}')
    return list(presets[preset]), f'{preset} ({len(presets[preset])} sets)'


def read_registry(path: str, only: Optional[List[str]] = None) -> Dict:
    """``{name: entry}`` of the registry file, each entry with ``root``
    (joined to ``data_root``), ``metric``, ``train``, ``val`` (None: a
    stratified hold-out of ``val_fraction`` of train) and ``test``."""
    if not osp.isfile(path):
        raise UserError(f'registry {path!r} not found (see '
                        'configs/transfer/datasets.py)')
    cfg = Config.fromfile(path)
    sets = cfg.get('datasets')
    if not isinstance(sets, dict) or not sets:
        raise UserError(f'{path}: expected a non-empty `datasets` dict')
    names = list(sets) if not only else only
    unknown = [n for n in names if n not in sets]
    if unknown:
        raise UserError(f'unknown data set(s) {", ".join(unknown)}; '
                        f'{path} has: {", ".join(sets)}')
    out = {}
    for name in names:
        entry = dict(train='train', val=None, test='test', val_fraction=0.2)
        entry.update(sets[name])
        if entry.get('metric') not in METRICS:
            raise UserError(f'{path}: {name}.metric must be one of '
                            f'{", ".join(METRICS)}, got '
                            f'{entry.get("metric")!r}')
        entry['root'] = osp.join(cfg.get('data_root', ''), entry['root'])
        out[name] = entry
    return out


def check_layout(name: str, entry: Dict) -> List[str]:
    """The class folders (sorted, as the labels are numbered), the same in
    every split; else a message naming what is missing where."""
    splits = [s for s in (entry['train'], entry['val'], entry['test']) if s]
    classes = {}
    for split in splits:
        folder = osp.join(entry['root'], split)
        if not osp.isdir(folder):
            raise UserError(f'{name}: {folder!r} not found; expected '
                            f'{LAYOUT}')
        classes[split] = sorted(
            d for d in os.listdir(folder)
            if osp.isdir(osp.join(folder, d)))
    ref = classes[entry['train']]
    for split, found in classes.items():
        if found != ref:
            missing = sorted(set(ref) - set(found))
            extra = sorted(set(found) - set(ref))
            raise UserError(
                f'{name}: the class folders of {split!r} differ from '
                f'{entry["train"]!r} (missing {missing[:5]}, extra '
                f'{extra[:5]}); labels would not match. Expected {LAYOUT}')
    if len(ref) < 2:
        raise UserError(f'{name}: {len(ref)} class folder(s) in '
                        f'{osp.join(entry["root"], entry["train"])}; a '
                        'classifier needs at least 2')
    return ref


class SetFeatures:
    """Features of (root, split) for one model, extracted once per run, and
    kept on disk across runs when given a :class:`FeatureCache` (shared
    with k-NN and later evaluations of the same weights)."""

    def __init__(self, model, img_size: int, resize: int, batch_size: int,
                 num_workers: int, disk=None, key: Optional[Dict] = None,
                 *, transform) -> None:
        self.model, self.transform = model, transform  # FeatureTransform
        self.kwargs = dict(img_size=img_size, resize=resize)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.disk, self.key = disk, dict(key or {})
        self._cache: Dict[Tuple[str, str], Tuple[np.ndarray,
                                                 np.ndarray]] = {}

    def __call__(self, root: str, split: str):
        from mmbcssl.evaluation.feature_cache import dataset_identity
        from mmbcssl.evaluation.features import (extract_features,
                                                 knn_dataset, knn_dataset_cfg)
        key = (root, split)
        if key not in self._cache:
            ds = knn_dataset(root, split, **self.kwargs)
            if self.disk is None:
                feats, labels = extract_features(self.model, ds,
                                                 self.batch_size,
                                                 self.num_workers,
                                                 transform=self.transform)
            else:
                fields = dict(
                    self.key, data=dataset_identity(ds, root, split),
                    transform=transform_record(
                        knn_dataset_cfg(root, split,
                                        **self.kwargs)['pipeline']))
                feats, labels = self.disk.extract(
                    self.model, ds, fields, self.batch_size,
                    self.num_workers, transform=self.transform)
            self._cache[key] = (feats.double().numpy(), labels.numpy())
        return self._cache[key]


def run_model(cache: SetFeatures, registry: Dict,
              classes: Dict[str, List[str]], log) -> Dict:
    """``{set: transfer_one result}`` for one model; ``classes`` are each
    set's class folders (:func:`check_layout`)."""
    results = {}
    for name, entry in registry.items():
        train = cache(entry['root'], entry['train'])
        if entry['val']:
            val = cache(entry['root'], entry['val'])
        else:
            try:
                tr, va = holdout_split(train[1], entry['val_fraction'])
            except ValueError as e:
                raise UserError(f'{name}: {e}') from None
            train, val = (train[0][tr], train[1][tr]), (train[0][va],
                                                        train[1][va])
        test = cache(entry['root'], entry['test'])
        num_classes = len(classes[name])
        res = transfer_one(train, val, test, num_classes, entry['metric'])
        res.update(num_classes=num_classes, num_train=len(train[1]),
                   num_val=len(val[1]), num_test=len(test[1]))
        log(f'  {name}: {entry["metric"]} {res["score"]:.2f} '
            f'(lambda {res["lam"]:.3g}'
            f'{"" if res["converged"] else ", not converged"})')
        results[name] = res
    return results


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


def transfer_fingerprint(args: argparse.Namespace, spec: List[str],
                         name: str, entry: Dict, result: Dict,
                         preset: str) -> Dict:
    """The protocol fingerprint of one (model, data set) result."""
    from mmbcssl.evaluation.features import knn_dataset_cfg
    transform = transform_record(
        knn_dataset_cfg('', '', args.img_size, args.resize)['pipeline'])
    protocol = dict(
        task='transfer-linear', dataset=name, metric=entry['metric'],
        transform=transform, features_normalised=False,
        classifier='L-BFGS logistic regression, at most 1000 iterations; '
        'lambda by CLIP\'s binary search on the validation split',
        images=dict(train=result['num_train'], val=result['num_val'],
                    test=result['num_test']))
    checkpoint = spec[1] if len(spec) > 1 else None
    return make_fingerprint(
        protocol, checkpoint_record(checkpoint),
        model_record(Config.fromfile(spec[0]).model),
        dict(global_batch=args.batch_size, world_size=1, preset=preset))


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
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--resize', type=int, default=256)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--num-workers', type=int, default=4)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:

    def _run() -> None:
        from mmengine.logging import print_log

        from mmbcssl.apis import init_backbone
        args = parse_args(argv)
        for spec in args.model:
            if len(spec) > 2:
                raise UserError(f'--model {" ".join(spec)}: expected CONFIG '
                                '[CHECKPOINT]')
            for path in spec:
                if not osp.isfile(path):
                    raise UserError(f'--model: {path!r} not found')
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
        only, preset = select_sets(args.registry, args.preset, args.sets)
        registry = read_registry(args.registry, only)
        refuse_existing([osp.join(args.out_dir, f)
                         for f in ('results.json', 'summary.md')],
                        args.overwrite, '--out-dir')
        # every set's layout before any extraction
        classes = {n: check_layout(n, e) for n, e in registry.items()}
        device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
        disk = FeatureCache(args.feature_cache) if args.feature_cache \
            else None
        results = {}
        for label, spec in zip(names, args.model):
            print_log(f'{label}:', logger='current')
            model = init_backbone(spec[0], spec[1] if len(spec) > 1
                                  else None, device=device)
            weights = spec[1] if len(spec) > 1 else None
            transform = FeatureTransform.from_config(
                Config.fromfile(spec[0]), args.resize, args.img_size)
            cache = SetFeatures(
                model, args.img_size, args.resize, args.batch_size,
                args.num_workers, disk, key=dict(
                    weights=checkpoint_record(weights)['sha256']
                    or 'random init, seed 0',
                    model=model_record(Config.fromfile(spec[0]).model),
                    input=transform.input_record()), transform=transform)
            results[label] = run_model(
                cache, registry, classes,
                lambda msg: print_log(msg, logger='current'))
            for name, res in results[label].items():
                res['fingerprint'] = transfer_fingerprint(
                    args, spec, name, registry[name], res, preset)
        summary = summarise(results, names)
        summary['preset'] = preset
        os.makedirs(args.out_dir, exist_ok=True)
        write_json(osp.join(args.out_dir, 'results.json'),
                   dict(models=dict(zip(names, args.model)),
                        preset=preset, results=results, summary=summary))
        text = format_summary(results, names, registry, summary, preset)
        atomic_write(text, osp.join(args.out_dir, 'summary.md'))
        print(text)

    return run_cli(_run)


if __name__ == '__main__':
    sys.exit(main())
