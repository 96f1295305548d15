"""Published numbers, read from the configs' metafiles.

Each ``configs/<folder>/metafile.yml`` lists its configs in OpenMMLab's
model-index format; a config's ``Results`` hold the numbers a paper reports
for it, each with its ``Source`` (paper and table) and its ``Protocol``: the
id of the column it belongs to (:data:`COLUMNS`). A number goes beside ours
only under a column of the same protocol, and only beside a run whose
weights were made the same way (:func:`made_the_same_way`).
"""
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

from mmbcssl.evaluation.fingerprint import REPO_ROOT

# Column id -> (short header, protocol). The header names the protocol, so
# that a column never mixes ways of measuring.
COLUMNS: Dict[str, tuple] = {
    'knn_top1': ('k-NN top-1', 'weighted k-NN, k=20, T=0.07, L2-normalised '
                 'teacher features; resize 256 + centre crop 224'),
    'knn_random_init': ('k-NN top-1, random init', 'the same k-NN on the '
                        'randomly initialised backbone (seed 0): the '
                        'baseline pre-training must beat'),
    'linear_top1': ('Linear top-1 (last epoch)',
                    'linear probe on frozen features after its last epoch; '
                    'val: resize 256 + centre crop 224'),
    'linear_top1_best': ('Linear top-1 (best epoch)',
                         'the same probe validated after every epoch, the '
                         'highest val top-1 (chosen on val, as DINO\'s '
                         'eval_linear.py reports; the published linear '
                         'numbers)'),
    'c_mce': ('IN-C mCE (AlexNet-norm., crop 224)',
              'mean over 15 corruptions of the error summed over severities '
              "divided by AlexNet's; centre crop 224 of the 224-px images"),
    'c_rel_mce': ('IN-C rel. mCE (crop 224)',
                  'relative mCE: errors minus the clean error, AlexNet-'
                  'normalised; centre crop 224'),
    'c_mean_error': ('IN-C mean error (unnorm., crop 224)',
                     'plain mean of the 75 top-1 errors; centre crop 224'),
    'c_mce_resize256': ('IN-C mCE (AlexNet-norm., resize 256 + crop 224)',
                        'mCE with the clean val transform (resize 256, '
                        'centre crop 224)'),
    'c_mean_error_resize256': (
        'IN-C mean error (unnorm., resize 256 + crop 224)',
        'plain mean of the 75 top-1 errors with the clean val transform: '
        "the BC-SSL authors' robustness script"),
    'sketch_top1': ('Sketch top-1', '1000 classes; resize 256 + centre crop '
                    '224'),
    'r_top1': ('IN-R top-1 (200-class)', 'logits restricted to the 200 '
               'classes (official)'),
    'r_top1_1000way': ('IN-R top-1 (1000-way)', "argmax over 1000 classes "
                       "(the BC-SSL authors' script)"),
    'a_top1': ('IN-A top-1 (200-class)', 'logits restricted to the 200 '
               'classes (official)'),
    'a_top1_1000way': ('IN-A top-1 (1000-way)', "argmax over 1000 classes "
                       "(the BC-SSL authors' script)"),
    'coco_box_ap': ('COCO box AP', 'pycocotools bbox mAP@[.5:.95], val2017'),
    'coco_mask_ap': ('COCO mask AP', 'pycocotools segm mAP@[.5:.95], '
                     'val2017'),
    'ade20k_miou': ('ADE20K mIoU', 'single-scale mIoU, 150 classes'),
    'transfer_mean': ('Transfer mean', 'mean over the preset\'s sets of the '
                      'L-BFGS logistic-regression score (CLIP protocol)'),
    'params_m': ('Params (M)', 'with the 1000-class linear head'),
    'flops_g': ('FLOPs (G)', 'multiply-adds at 224 x 224, with the head'),
    'throughput': ('img/s', 'inference images per second'),
}


@dataclass
class PaperEntry:
    """One config of a metafile and the published numbers for it."""
    name: str
    config: str
    collection: str
    metadata: Dict = field(default_factory=dict)
    # column id -> (value, source)
    results: Dict[str, tuple] = field(default_factory=dict)

    @property
    def published_weights(self) -> Optional[str]:
        """The released checkpoint the published numbers were measured on
        (the metafile's ``Published Weights``: its file name), or None when
        they come from training with the config's recipe."""
        return self.metadata.get('Published Weights')


def made_the_same_way(entry: PaperEntry, pretraining: Mapping) -> bool:
    """Whether the published numbers of a pre-training entry (and of the
    downstream entries that start from it) may sit beside a run whose
    weights :func:`mmbcssl.evaluation.fingerprint.pretraining_record`
    describes.

    Numbers measured on a released checkpoint sit beside that checkpoint,
    converted, only; the others beside a run of this code with the
    entry's config only (a converted file, random weights or another
    config's run were made another way).
    """
    weights = pretraining.get('weights')
    if entry.published_weights:
        return weights == f'converted from {entry.published_weights}'
    return (weights == 'a run of this code'
            and pretraining.get('config') == entry.config)


def metafiles(root: str = REPO_ROOT) -> List[str]:
    """The metafiles that ``model-index.yml`` imports, in its order."""
    import yaml
    with open(osp.join(root, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    return [osp.join(root, p) for p in index['Import']]


def load_entries(root: str = REPO_ROOT) -> List[PaperEntry]:
    """Every config entry of every metafile.

    Raises:
        ValueError: a result names an unknown column or lacks its source.
    """
    import yaml
    entries = []
    for path in metafiles(root):
        with open(path) as f:
            doc = yaml.safe_load(f)
        for model in doc.get('Models', []):
            entry = PaperEntry(model['Name'], model['Config'],
                               model.get('In Collection', ''),
                               dict(model.get('Metadata') or {}))
            for result in model.get('Results') or []:
                column = result.get('Protocol')
                if column not in COLUMNS or not result.get('Source'):
                    raise ValueError(
                        f'{path}: {model["Name"]}: a result needs a Source '
                        f'and a Protocol among {sorted(COLUMNS)}, got '
                        f'{column!r}')
                (value, ) = result['Metrics'].values()
                entry.results[column] = (float(value), result['Source'])
            entries.append(entry)
    return entries


def paper_rows(root: str = REPO_ROOT) -> Dict[str, Dict[str, tuple]]:
    """Config path -> {column id: (value, source)} for the configs that
    have published numbers."""
    return {e.config: e.results for e in load_entries(root) if e.results}


def paper_value(config: str, column: str,
                root: str = REPO_ROOT) -> Optional[float]:
    """The published number of ``config`` under ``column``, if any."""
    found = paper_rows(root).get(config, {}).get(column)
    return None if found is None else found[0]


# The README tables rendered from the metafiles: per config folder, the
# published columns it shows.
README_TABLES = {
    'dino': ('knn_top1', ),
    'esvit': ('knn_top1', ),
    'linear': ('linear_top1_best', 'c_mean_error_resize256', 'sketch_top1',
               'r_top1_1000way', 'a_top1_1000way'),
    'mask_rcnn': ('coco_box_ap', 'coco_mask_ap'),
    'upernet': ('ade20k_miou', ),
}
TABLE_START = '<!-- paper-table: rendered from metafile.yml -->'
TABLE_END = '<!-- /paper-table -->'


def render_table(folder: str, root: str = REPO_ROOT) -> str:
    """The Markdown table of one config folder: every config of its
    metafile with its metadata and the published numbers, each column
    header naming the protocol and marking the numbers as published."""
    columns = README_TABLES[folder]
    entries = [e for e in load_entries(root)
               if e.config.startswith(f'configs/{folder}/')]
    meta_keys = ('Epochs', 'Iterations', 'Batch Size', 'Parameters',
                 'Parameters (backbone only)', 'FLOPs', 'Pre-training Epochs')
    shown = [k for k in meta_keys if any(k in e.metadata for e in entries)]
    header = (['Config'] + shown +
              [f'{COLUMNS[c][0]} (published)' for c in columns] +
              ['Source'])
    lines = ['| ' + ' | '.join(header) + ' |',
             '|---' * len(header) + '|']
    for e in entries:
        name = f'`{osp.basename(e.config)}`'
        if e.metadata.get('Demo'):
            name += ' (demo)'
        cells = [name] + [str(e.metadata.get(k, '–')) for k in shown]
        cells += [str(e.results[c][0]) if c in e.results else '–'
                  for c in columns]
        sources = sorted({e.results[c][1] for c in columns
                          if c in e.results})
        cells.append('; '.join(sources) or '–')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def render_readme(text: str, folder: str, root: str = REPO_ROOT) -> str:
    """``text`` with its block between :data:`TABLE_START` and
    :data:`TABLE_END` replaced by :func:`render_table`.

    Raises:
        ValueError: the README has no such block.
    """
    start, end = text.find(TABLE_START), text.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f'configs/{folder}/README.md has no '
                         f'{TABLE_START} ... {TABLE_END} block')
    return (text[:start + len(TABLE_START)] + '\n' +
            render_table(folder, root) + '\n' + text[end:])
