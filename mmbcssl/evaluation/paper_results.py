"""Published numbers, read from the configs' metafiles.

Each ``configs/<folder>/metafile.yml`` lists its configs in OpenMMLab's
model-index format; a config's ``Results`` hold the numbers a paper reports
for it, each with its ``Source`` (paper and table) and its ``Protocol``: the
id of the column it belongs to (:data:`mmbcssl.evaluation.columns.
COLUMNS`). A number goes beside ours only under a column of the same
protocol, and only beside a run whose weights were made the same way
(:func:`made_the_same_way`).

Each published number carries a protocol record (:func:`published_protocol`)
in the fields of a measured cell's fingerprint: its column's
(:attr:`mmbcssl.evaluation.columns.Column.published`: data set, images,
image size, transform, k-NN k and T), with the entry's ``Protocol
Settings`` over it where a paper measured otherwise. The report compares
it with the measured cells beside it.
"""
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from mmbcssl.evaluation.columns import COLUMNS
from mmbcssl.evaluation.fingerprint import REPO_ROOT


@dataclass
class PaperEntry:
    """One config of a metafile and the published numbers for it."""
    name: str
    config: str
    collection: str
    metadata: Dict = field(default_factory=dict)
    # column id -> (value, source)
    results: Dict[str, tuple] = field(default_factory=dict)
    # column id -> the protocol record of its number (published_protocol)
    protocols: Dict[str, Dict] = field(default_factory=dict)

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


def published_protocol(column: str,
                       settings: Optional[Mapping] = None) -> Dict[str, Any]:
    """The protocol record of a published number of ``column``: the
    column's (:attr:`mmbcssl.evaluation.columns.Column.published`), with
    ``settings`` (a metafile result's ``Protocol Settings``) over it.

    Raises:
        ValueError: the column takes no published number, or ``settings``
            names a field the record does not have.
    """
    record = dict(COLUMNS[column].published)
    if not record:
        raise ValueError(f'column {column!r} takes no published number (it '
                         'has no published protocol record in '
                         'mmbcssl/evaluation/columns.py)')
    unknown = sorted(set(settings or {}) - set(record))
    if unknown:
        raise ValueError(f'Protocol Settings {", ".join(unknown)} are not '
                         f'fields of a {column} record; it has '
                         f'{", ".join(record)}')
    record.update(settings or {})
    return record


def metafiles(root: str = REPO_ROOT) -> List[str]:
    """The metafiles that ``model-index.yml`` imports, in its order."""
    import yaml
    with open(osp.join(root, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    return [osp.join(root, p) for p in index['Import']]


def load_entries(root: str = REPO_ROOT) -> List[PaperEntry]:
    """Every config entry of every metafile.

    Raises:
        ValueError: a result names an unknown column or one that takes no
            published number, lacks its source, or its ``Protocol
            Settings`` name a field its record does not have.
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
                try:
                    entry.protocols[column] = published_protocol(
                        column, result.get('Protocol Settings'))
                except ValueError as e:
                    raise ValueError(f'{path}: {model["Name"]}: {e}') from e
                (value, ) = result['Metrics'].values()
                entry.results[column] = (float(value), result['Source'])
            entries.append(entry)
    return entries


def published_values(entries: List[PaperEntry],
                     config: str) -> Tuple[Dict[str, float], List[str]]:
    """The published numbers of a pre-training config and of the
    downstream configs that start from it (the first entry's number where
    two give one column), with its params and FLOPs from the metadata;
    and the sorted sources of every number of those entries.

    Args:
        entries (list[PaperEntry]): :func:`load_entries`.
        config (str): The pre-training config, relative to the repo.
    """
    values: Dict[str, float] = {}
    sources = set()
    for e in entries:
        if e.config == config or e.metadata.get('Pre-training') == config:
            for column, (value, source) in e.results.items():
                values.setdefault(column, value)
                sources.add(source)
    pre = next((e for e in entries if e.config == config), None)
    for column, key, unit in (('params_m', 'Parameters', 'M'),
                              ('flops_g', 'FLOPs', 'G')):
        text = str(pre.metadata.get(key, '')) if pre else ''
        if text.endswith(unit):
            values[column] = float(text[:-1])
    return values, sorted(sources)


def published_protocols(entries: List[PaperEntry],
                        config: str) -> Dict[str, Dict]:
    """The protocol record of each of :func:`published_values`' numbers
    (column id -> record), taken from the same entries."""
    records: Dict[str, Dict] = {}
    for e in entries:
        if e.config == config or e.metadata.get('Pre-training') == config:
            for column, record in e.protocols.items():
                records.setdefault(column, record)
    for column in ('params_m', 'flops_g'):
        records.setdefault(column, published_protocol(column))
    return records


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
              [f'{COLUMNS[c].header} (published)' for c in columns] +
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
