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
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.config import Config

from mmbcssl.evaluation.transfer import (METRICS, holdout_split, summarise,
                                         transfer_one)
from mmbcssl.utils.launch import UserError, run_cli

LAYOUT = ('<data_root>/<root>/<split>/<class>/<image> with the same class '
          'folders in every split')


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


class FeatureCache:
    """Features of (root, split) for one model, extracted once."""

    def __init__(self, model, img_size: int, resize: int, batch_size: int,
                 num_workers: int) -> None:
        self.model = model
        self.kwargs = dict(img_size=img_size, resize=resize)
        self.batch_size, self.num_workers = batch_size, num_workers
        self._cache: Dict[Tuple[str, str], Tuple[np.ndarray,
                                                 np.ndarray]] = {}

    def __call__(self, root: str, split: str):
        from mmbcssl.evaluation.features import (extract_features,
                                                 knn_dataset)
        key = (root, split)
        if key not in self._cache:
            ds = knn_dataset(root, split, **self.kwargs)
            feats, labels = extract_features(self.model, ds,
                                             self.batch_size,
                                             self.num_workers)
            self._cache[key] = (feats.double().numpy(), labels.numpy())
        return self._cache[key]


def run_model(cache: FeatureCache, registry: Dict,
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
                   summary: Dict) -> str:
    header = '| data set | metric | ' + ' | '.join(models) + ' |'
    lines = [
        '# Linear transfer (L-BFGS logistic regression on frozen '
        'features; lambda searched on the validation split)', '', header,
        '|---|---|' + '---|' * len(models)
    ]
    flagged = False
    for name, entry in registry.items():
        cells = []
        for m in models:
            r = results[m][name]
            flagged |= not r['converged']
            cells.append(f'{r["score"]:.2f}{"" if r["converged"] else "*"}')
        lines.append(f'| {name} | {entry["metric"]} | ' + ' | '.join(cells) +
                     ' |')
    lines.append('| **average** | | ' + ' | '.join(
        f'**{summary["average"][m]:.2f}**' for m in models) + ' |')
    lines.append('')
    for other, v in summary['versus'].items():
        lines.append(f'{models[0]} against {other}: {v["wins"]} wins, '
                     f'{v["ties"]} ties, {v["losses"]} losses over '
                     f'{len(registry)} data sets.')
    if flagged:
        lines += ['', '\\* some L-BFGS fit stopped at the iteration limit '
                  '(1000) before converging.']
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
    parser.add_argument('--out-dir', required=True)
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
        names = list(args.name) + [
            osp.splitext(osp.basename(s[0]))[0]
            for s in args.model[len(args.name):]
        ]
        if len(args.name) > len(args.model) or len(set(names)) < len(names):
            raise UserError(f'--name: one distinct label per --model, got '
                            f'{names}')
        registry = read_registry(args.registry, args.sets)
        # every set's layout before any extraction
        classes = {n: check_layout(n, e) for n, e in registry.items()}
        device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
        results = {}
        for label, spec in zip(names, args.model):
            print_log(f'{label}:', logger='current')
            model = init_backbone(spec[0], spec[1] if len(spec) > 1
                                  else None, device=device)
            cache = FeatureCache(model, args.img_size, args.resize,
                                 args.batch_size, args.num_workers)
            results[label] = run_model(
                cache, registry, classes,
                lambda msg: print_log(msg, logger='current'))
        summary = summarise(results, names)
        os.makedirs(args.out_dir, exist_ok=True)
        with open(osp.join(args.out_dir, 'results.json'), 'w') as f:
            json.dump(dict(models=dict(zip(names, args.model)),
                           results=results, summary=summary), f, indent=2,
                      default=str)
        text = format_summary(results, names, registry, summary)
        with open(osp.join(args.out_dir, 'summary.md'), 'w') as f:
            f.write(text)
        print(text)

    return run_cli(_run)


if __name__ == '__main__':
    sys.exit(main())
