"""Per-image outcomes of an evaluation, kept beside its result.

A result JSON holds one number per metric; the outcomes file beside it
holds what the number was computed from, image by image: which test
images each pass got right (k-NN at each k, the linear probe, each
ImageNet-C corruption and severity, ...), per-image intersection and union
counts (segmentation), or per-image detection matches (COCO). Intervals and
paired comparisons (:mod:`mmbcssl.evaluation.statistics`) are computed from
these files alone, with no second pass over the data.

The file is ``<result>.outcomes.npz`` (``results/knn.json`` ->
``results/knn.outcomes.npz``): a numpy archive read with
``allow_pickle=False``, holding

- ``__images__``: the ordered image keys (paths relative to the data set's
  root), whose SHA-256 (:func:`image_list_sha256`) keys the file: two runs
  pair only when they were made on the same image list;
- ``__meta__``: a JSON object (``kind``, ``format`` and what the writer
  adds, such as class names);
- one array per pass, of ``len(images)`` rows: boolean for ``kind
  'correct'``, integer or float otherwise. A ragged per-image array (a
  varying number of detections per image) is stored as ``<name>.values``
  with ``<name>.offsets`` (``len(images) + 1`` row offsets).

The result JSON names the file by its SHA-256 (:func:`write_outcomes`
returns that record), so an outcomes file of another run, or changed
bytes, is refused when read (:func:`read_outcomes`).
"""
import hashlib
import io
import json
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np

from mmbcssl.fileio import atomic_write

OUTCOMES_SUFFIX = '.outcomes.npz'
FORMAT = 1
KINDS = ('correct', 'counts', 'coco', 'scores')
_IMAGES, _META = '__images__', '__meta__'


class OutcomesError(ValueError):
    """An outcomes file is missing, changed, or not the result's own."""


def outcomes_path(result_path: str) -> str:
    """The outcomes file of a result file (``x.json`` -> ``x.outcomes.npz``).
    """
    stem = result_path[:-len('.json')] if result_path.endswith('.json') \
        else result_path
    return stem + OUTCOMES_SUFFIX


def image_list_sha256(images: Sequence[str]) -> str:
    """SHA-256 of an ordered image list (its keys joined by newlines)."""
    return hashlib.sha256('\n'.join(images).encode()).hexdigest()


def image_key(path: str, root: str) -> str:
    """The key of the image at ``path`` in a data set whose ``data_root``
    is ``root``: its path relative to ``root``; its absolute path when it
    lies elsewhere or the data set has no root."""
    path = osp.abspath(path)
    if not root:
        return path
    root = osp.abspath(root)
    return osp.relpath(path, root) if path.startswith(root + osp.sep) \
        else path


def dataset_image_keys(dataset) -> List[str]:
    """The image keys of an mmengine/mmpretrain data set, in its order
    (:func:`image_key`)."""
    root = getattr(dataset, 'data_root', '') or ''
    return [image_key(dataset.get_data_info(i)['img_path'], root)
            for i in range(len(dataset))]


@dataclass
class Outcomes:
    """Per-image outcomes of one result.

    Args:
        images (list[str]): Image keys, in the order of the arrays' rows.
        arrays (dict[str, np.ndarray]): Pass name -> per-image array (first
            dimension ``len(images)``), or a ragged pair
            ``<name>.values`` / ``<name>.offsets``.
        kind (str): ``'correct'`` (booleans: the image's top-1 was right),
            ``'counts'`` (per-image counts, e.g. intersection and union per
            class), ``'coco'`` (per-image detection matches) or
            ``'scores'`` (per-image labels, predicted classes and class
            scores, for metrics that rank the images, e.g. ROC-AUC).
        meta (dict): JSON-serialisable facts the statistics need (class
            names, which array holds what).
    """
    images: List[str]
    arrays: Dict[str, np.ndarray]
    kind: str = 'correct'
    meta: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f'outcomes kind must be one of {KINDS}, got '
                             f'{self.kind!r}')
        self.images = [str(i) for i in self.images]
        n = len(self.images)
        for name, array in self.arrays.items():
            if name.startswith('__'):
                raise ValueError(f'array name {name!r} is reserved')
            if name.endswith('.values'):
                offsets = self.arrays.get(name[:-len('.values')] + '.offsets')
                if offsets is None or len(offsets) != n + 1 or \
                        offsets[-1] != len(array):
                    raise ValueError(f'ragged array {name!r} needs offsets '
                                     f'of {n + 1} rows ending at its length')
            elif not name.endswith('.offsets') and len(array) != n:
                raise ValueError(f'array {name!r} has {len(array)} rows for '
                                 f'{n} images')
            if self.kind == 'correct' and array.dtype != np.bool_:
                raise ValueError(f"a 'correct' outcome is boolean; {name!r} "
                                 f'is {array.dtype}')

    @property
    def images_sha256(self) -> str:
        return image_list_sha256(self.images)

    def ragged(self, name: str, image: int) -> np.ndarray:
        """The rows of ragged array ``name`` that belong to one image."""
        start, end = self.arrays[name + '.offsets'][image:image + 2]
        return self.arrays[name + '.values'][start:end]

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        meta = dict(self.meta, kind=self.kind, format=FORMAT)
        np.savez_compressed(
            buffer, **{_IMAGES: np.array(self.images, dtype=str),
                       _META: np.array(json.dumps(meta, sort_keys=True))},
            **self.arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> 'Outcomes':
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta = json.loads(str(npz[_META]))
            images = [str(i) for i in npz[_IMAGES]]
            arrays = {k: npz[k] for k in npz.files
                      if k not in (_IMAGES, _META)}
        if meta.pop('format', None) != FORMAT:
            raise OutcomesError('unknown outcomes format')
        return cls(images, arrays, meta.pop('kind'), meta)


def write_outcomes(result_path: str, outcomes: Outcomes) -> Dict[str, Any]:
    """Write the outcomes of the result at ``result_path`` beside it,
    atomically, and return the record the result JSON keeps under
    ``outcomes`` (the file's name and SHA-256, the image list's SHA-256,
    the number of images, the kind and the arrays)."""
    data = outcomes.to_bytes()
    path = outcomes_path(result_path)
    atomic_write(data, path)
    return dict(file=osp.basename(path),
                sha256=hashlib.sha256(data).hexdigest(),
                images_sha256=outcomes.images_sha256,
                num_images=len(outcomes.images), kind=outcomes.kind,
                arrays=sorted(outcomes.arrays))


def read_outcomes(result_path: str, record: Mapping[str, Any]) -> Outcomes:
    """The outcomes of the result at ``result_path``, whose JSON holds
    ``record`` (:func:`write_outcomes`).

    Raises:
        OutcomesError: the file is missing, its bytes are not the ones the
            result recorded, or its image list is another.
    """
    path = osp.join(osp.dirname(result_path), record['file'])
    if not osp.isfile(path):
        raise OutcomesError(
            f'{path} is missing: the per-image outcomes of {result_path} '
            'were removed; re-run the evaluation (--force) to make them')
    with open(path, 'rb') as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != record['sha256']:
        raise OutcomesError(
            f'{path} is not the outcomes file {result_path} was written '
            'with (its SHA-256 differs): it was changed or copied from '
            'another run; re-run the evaluation (--force) to make it anew')
    try:
        outcomes = Outcomes.from_bytes(data)
    except (ValueError, KeyError, OSError) as e:
        raise OutcomesError(f'{path} cannot be read ({e}); re-run the '
                            'evaluation (--force)') from None
    if outcomes.images_sha256 != record['images_sha256']:
        raise OutcomesError(f'{path}: its image list is not the one '
                            f'{result_path} records')
    return outcomes
