"""Pre-flight checks of the data a config points at.

A missing data root or a wrong folder layout otherwise surfaces deep inside a
dataset constructor (or, worse, as a silently smaller data set). These checks
run before the runner is built and raise :class:`DataLayoutError` with a
one-line message naming the path, what was expected and how to fix it.
"""
import os
import os.path as osp
from typing import Any, Dict, Iterator, List, Optional, Tuple

from mmengine.config import Config, ConfigDict

# Expected trees of the real benchmarks (README, "Data preparation").
EXPECTED_LAYOUTS: Dict[str, str] = {
    'ImageNet': '<root>/{train,val}/<wnid>/*.JPEG, optionally with '
    'meta/{train,val}.txt ("<wnid>/<file> <label>" lines)',
    'CustomDataset': '<root>/<data_prefix>/<class>/<image> or an ann_file '
    'of "<relative path> <label>" lines',
    'CocoDataset': '<root>/{train2017,val2017}/*.jpg and '
    '<root>/annotations/instances_{train2017,val2017}.json',
    'ADE20KDataset': '<root>/images/{training,validation}/*.jpg and '
    '<root>/annotations/{training,validation}/*.png',
    'ImageNetSubset': '<root>/<wnid>/<image> folders named after ImageNet '
    'wnids (ImageNet-A/R; ImageNet-Sketch: <root>/sketch/<wnid>/)',
    'ImageNetC': '<root>/<corruption>/<severity 1-5>/<wnid>/<image> (or '
    '<root>/<category>/<corruption>/<severity>/<wnid>/)',
    'BaseSegDataset': '<root>/<data_prefix.img_path>/*<img_suffix> and '
    '<root>/<data_prefix.seg_map_path>/*<seg_map_suffix> (the ADE20K '
    'layout: images/ and annotations/, each with training/ and '
    'validation/)',
}
# Dataset types whose class folders must match the class list.
FOLDER_CLASSIFICATION = ('ImageNet', 'CustomDataset')
IMAGENET_NUM_CLASSES = 1000
WRAPPERS = ('RepeatDataset', 'ClassBalancedDataset', 'KFoldDataset')


class DataLayoutError(ValueError):
    """The data a config needs is missing or laid out wrongly."""


def _type_name(dataset: Dict[str, Any]) -> str:
    t = dataset.get('type', '')
    # Cross-scope references look like 'mmpretrain.ImageNet'.
    return t.rsplit('.', 1)[-1] if isinstance(t, str) else t.__name__


def _iter_datasets(dataset: Dict[str, Any]) -> Iterator[Dict[str, Any]]:
    if _type_name(dataset) in WRAPPERS:
        yield from _iter_datasets(dataset['dataset'])
    elif 'datasets' in dataset:  # ConcatDataset
        for d in dataset['datasets']:
            yield from _iter_datasets(d)
    else:
        yield dataset


def _join(root: str, path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def _prefix_paths(dataset: Dict[str, Any]) -> List[Tuple[str, str]]:
    prefix = dataset.get('data_prefix')
    if prefix is None:
        return []
    if isinstance(prefix, str):
        return [('data_prefix', prefix)]
    return [(f'data_prefix.{k}', v) for k, v in prefix.items()
            if isinstance(v, str) and v]


def _class_folders(folder: str) -> List[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir())


def _expected_classes(dataset: Dict[str, Any],
                      type_name: str) -> Optional[int]:
    classes = dataset.get('classes')
    if classes is None:
        classes = (dataset.get('metainfo') or {}).get('classes')
    if isinstance(classes, str):
        if not osp.isfile(classes):
            return None  # reported by the caller as a missing file
        with open(classes) as f:
            return sum(1 for line in f if line.strip())
    if classes is not None:
        return len(classes)
    return IMAGENET_NUM_CLASSES if type_name == 'ImageNet' else None


def check_dataset(dataset: Dict[str, Any], where: str) -> None:
    """Check one dataset config (wrappers are unwrapped).

    Args:
        dataset (dict): The dataset config.
        where (str): Its place in the config, for messages, e.g.
            ``'train_dataloader.dataset'``.

    Raises:
        DataLayoutError: A path is missing or a class-folder count is wrong.
    """
    for ds in _iter_datasets(dataset):
        type_name = _type_name(ds)
        layout = EXPECTED_LAYOUTS.get(
            type_name, f'the layout {type_name} reads (see the README)')
        root = ds.get('data_root') or ''
        hint = (f'expected {layout}. Prepare it as the README says '
                f'("Data preparation") or point --cfg-options '
                f'{where}.data_root=PATH at it')
        if root and not osp.isdir(root):
            raise DataLayoutError(
                f'{where}: data root {root!r} does not exist; {hint}')
        ann_file = ds.get('ann_file') or ''
        if ann_file and not osp.isfile(_join(root, ann_file)):
            raise DataLayoutError(f'{where}: annotation file '
                                  f'{_join(root, ann_file)!r} not found; '
                                  f'{hint}')
        classes = ds.get('classes')
        if isinstance(classes, str) and not osp.isfile(classes):
            raise DataLayoutError(
                f'{where}: class list {classes!r} not found (paths in '
                '`classes` are relative to the working directory)')
        for key, rel in _prefix_paths(ds):
            path = _join(root, rel)
            if not osp.isdir(path):
                raise DataLayoutError(
                    f'{where}: {key} folder {path!r} not found; {hint}')
        if type_name in FOLDER_CLASSIFICATION and not ann_file:
            _check_class_folders(ds, type_name, root, where, hint)


def _check_class_folders(ds: Dict[str, Any], type_name: str, root: str,
                         where: str, hint: str) -> None:
    prefix = ds.get('data_prefix') or ''
    if isinstance(prefix, dict):
        prefix = prefix.get('img_path', '')
    if not prefix and type_name == 'ImageNet' and ds.get('split'):
        prefix = ds['split']
    folder = _join(root, prefix)
    if not osp.isdir(folder):
        return
    found = _class_folders(folder)
    expected = _expected_classes(ds, type_name)
    if not found:
        raise DataLayoutError(f'{where}: {folder!r} has no class folders; '
                              f'{hint}')
    if expected is not None and len(found) != expected:
        raise DataLayoutError(
            f'{where}: {folder!r} has {len(found)} class folders but the '
            f'config expects {expected} classes; {hint}')


def check_data(cfg: Config, phases=('train', 'val', 'test')) -> None:
    """Check every dataloader of ``cfg`` used by ``phases``."""
    for phase in phases:
        loader = cfg.get(f'{phase}_dataloader')
        if not isinstance(loader, (dict, ConfigDict)):
            continue
        if loader.get('dataset') is not None:
            check_dataset(loader['dataset'], f'{phase}_dataloader.dataset')


def _head_classes(cfg: Config) -> Optional[int]:
    model = cfg.get('model')
    head = model.get('head') if isinstance(model, dict) else None
    num = head.get('num_classes') if isinstance(head, dict) else None
    return num if isinstance(num, int) and num > 0 else None


def _largest_label(ann_file: str) -> Optional[Tuple[int, int, str]]:
    """``(label, line number, line)`` of the largest label in an annotation
    file of ``<path> <label>`` lines (mmpretrain's ``CustomDataset``)."""
    best = None
    with open(ann_file) as f:
        for number, line in enumerate(f, 1):
            parts = line.strip().rsplit(' ', 1)
            if len(parts) < 2:
                continue  # blank, or a file without labels
            try:
                label = int(parts[1])
            except ValueError:
                raise DataLayoutError(
                    f'{ann_file} line {number}: {line.strip()!r} does not '
                    'end with an integer label; expected "<relative path> '
                    '<label>" lines') from None
            if best is None or label > best[0]:
                best = (label, number, line.strip())
    return best


def check_labels(cfg: Config, phases=('train', 'val', 'test')) -> None:
    """Check the classification labels against ``model.head.num_classes``.

    A label >= the head's class count otherwise stops training at its first
    batch with ``IndexError: Target 15 is out of bounds``, naming neither
    the file nor the line. Labels come from the annotation file, or are the
    indices of the class folders.

    Raises:
        DataLayoutError: naming the file, the line and both fixes.
    """
    num_classes = _head_classes(cfg)
    if num_classes is None:
        return
    fix = f'model.head.num_classes is {num_classes} (labels 0-' \
        f'{num_classes - 1})'
    for phase in phases:
        loader = cfg.get(f'{phase}_dataloader')
        if not isinstance(loader, (dict, ConfigDict)) or \
                loader.get('dataset') is None:
            continue
        where = f'{phase}_dataloader.dataset'
        for ds in _iter_datasets(loader['dataset']):
            if _type_name(ds) not in FOLDER_CLASSIFICATION or \
                    ds.get('with_label', True) is False:
                continue
            root = ds.get('data_root') or ''
            ann_file = ds.get('ann_file') or ''
            if ann_file:
                path = _join(root, ann_file)
                found = _largest_label(path) if osp.isfile(path) else None
                if found and found[0] >= num_classes:
                    label, number, line = found
                    raise DataLayoutError(
                        f'{where}: {path} line {number} ({line!r}) has label '
                        f'{label}, but {fix}. Fix the annotation file, or '
                        f'set --cfg-options model.head.num_classes='
                        f'{label + 1} if the data really has that many '
                        'classes')
                continue
            prefix = ds.get('data_prefix') or ''
            if isinstance(prefix, dict):
                prefix = prefix.get('img_path', '')
            folder = _join(root, prefix)
            if ds.get('classes') is None and osp.isdir(folder):
                count = len(_class_folders(folder))
                if count > num_classes:
                    raise DataLayoutError(
                        f'{where}: {folder!r} has {count} class folders '
                        f'(labels 0-{count - 1}), but {fix}; remove the '
                        'extra folders or set --cfg-options '
                        f'model.head.num_classes={count}')
