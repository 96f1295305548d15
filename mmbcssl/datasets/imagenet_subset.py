"""ImageNet-A/R style data sets: wnid folders that are a subset of a larger
label space (ImageNet-1k by default).

ImageNet-A and ImageNet-R each have a fixed list of 200 wnids (Hendrycks et
al.: ``indices_in_1k`` of natural-adv-examples' ``eval.py``, and the
imagenet-r README), which timm ships as package data
(``timm/data/_info/imagenet_{a,r}_synsets.txt``). Given one
(``subset_classes``), a copy without some of its folders is refused with
the missing wnids named: taking the classes from the folders on disk would
silently score a partial copy on fewer classes.

mmpretrain's ``ImageNet`` asserts 1000 class folders and refuses the
200-folder ImageNet-A/R roots, and its ``CustomDataset`` numbers whatever
folders it finds from 0, losing where each class sits in the model's
1000-way output. This class keeps both: ``gt_label`` is the index among the
subset's folders (sorted wnids, as the official evaluation code does) and
``metainfo['class_indices'][j]`` is the column of subset class ``j`` in the
full model's output, so a metric can restrict the logits before the argmax
(:func:`mmbcssl.evaluation.robustness.restrict_logits`).
"""
import os.path as osp
from importlib import resources
from typing import List, Optional, Sequence, Union

from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from mmbcssl.utils.data_checks import DataLayoutError

# The ImageNet-1k class order (sorted wnids) as timm ships it.
IMAGENET_1K = 'imagenet-1k'
# Named wnid lists -> timm's package data (timm/data/_info/): ImageNet-1k's
# 1000 sorted wnids and the official 200 of ImageNet-A and ImageNet-R.
TIMM_WNID_LISTS = {
    IMAGENET_1K: 'imagenet_synsets.txt',
    'imagenet-a': 'imagenet_a_synsets.txt',
    'imagenet-r': 'imagenet_r_synsets.txt',
}


def load_wnids(classes: Union[str, Sequence[str]],
               arg: str = 'base_classes') -> List[str]:
    """A wnid list: a name of :data:`TIMM_WNID_LISTS` (``'imagenet-1k'``,
    ``'imagenet-a'``, ``'imagenet-r'``), a file with one wnid per line, or a
    list of wnids; position = class index. ``arg`` names the argument in
    the error message."""
    if not isinstance(classes, str):
        return list(classes)
    if classes in TIMM_WNID_LISTS:
        text = resources.files('timm.data._info').joinpath(
            TIMM_WNID_LISTS[classes]).read_text()
    elif osp.isfile(classes):
        with open(classes) as f:
            text = f.read()
    else:
        raise DataLayoutError(
            f'{arg} {classes!r} is neither one of '
            f'{", ".join(map(repr, TIMM_WNID_LISTS))} nor a file of wnids '
            '(one per line)')
    return [line.strip() for line in text.splitlines() if line.strip()]


@DATASETS.register_module()
class ImageNetSubset(CustomDataset):
    """A folder-per-wnid data set whose classes are a subset of a larger
    label space.

    Args:
        data_root (str): Root holding ``<wnid>/<image>`` folders.
        data_prefix (str): Sub-folder of ``data_root`` with the class
            folders. Defaults to ''.
        base_classes (str | Sequence[str]): The label space of the model
            being evaluated, in its output order: ``'imagenet-1k'`` (timm's
            list of the 1000 sorted wnids), a file of wnids or a list.
            Defaults to 'imagenet-1k'.
        subset_classes (str | Sequence[str], optional): The set's fixed
            class list: ``'imagenet-a'`` or ``'imagenet-r'`` (the official
            200 wnids, timm's package data), a file of wnids or a list.
            Every one of them that is a class of ``base_classes`` (all 200
            for ImageNet-1k) must have its folder, and no other folder may
            be there. None: the classes are the folders found (ImageNet-C,
            Sketch). Defaults to None.
        **kwargs: Passed to mmpretrain's ``CustomDataset`` (pipeline, ...).

    Raises:
        DataLayoutError: A folder is not a class of ``base_classes`` (e.g. a
            stray folder, or the wrong base label space) or of
            ``subset_classes``, or a class of ``subset_classes`` has no
            folder (a partial copy).
    """

    def __init__(self,
                 data_root: str = '',
                 data_prefix: str = '',
                 base_classes: Union[str, Sequence[str]] = IMAGENET_1K,
                 subset_classes: Optional[Union[str, Sequence[str]]] = None,
                 **kwargs) -> None:
        self.base_classes = load_wnids(base_classes)
        self._base_name = base_classes if isinstance(base_classes,
                                                     str) else 'base_classes'
        self.subset_classes = None if subset_classes is None else \
            load_wnids(subset_classes, 'subset_classes')
        self._subset_name = subset_classes if isinstance(
            subset_classes, str) else 'subset_classes'
        root = osp.join(data_root, data_prefix) if data_prefix else data_root
        if not osp.isdir(root):
            raise DataLayoutError(
                f'{type(self).__name__}: {root!r} does not exist; expected '
                '<root>/<wnid>/<image> folders')
        super().__init__(
            data_root=data_root, data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        # Folder mode of CustomDataset: labels = index among sorted folders.
        data_list = super().load_data_list()
        wnids = list(self._metainfo['classes'])
        position = {w: i for i, w in enumerate(self.base_classes)}
        unknown = [w for w in wnids if w not in position]
        if unknown:
            raise DataLayoutError(
                f'{self.img_prefix!r}: folder(s) {", ".join(unknown[:5])}'
                f'{" ..." if len(unknown) > 5 else ""} are not classes of '
                f'{self._base_name} ({len(self.base_classes)} classes); each '
                'folder must be named after a wnid of the model\'s classes')
        if self.subset_classes is not None:
            self._check_subset(wnids, position)
        self._metainfo['class_indices'] = tuple(position[w] for w in wnids)
        self._metainfo['num_base_classes'] = len(self.base_classes)
        return data_list

    def _check_subset(self, wnids: List[str], position: dict) -> None:
        """The folders are exactly the classes of ``subset_classes`` that
        the model can output (all of them for ImageNet-1k)."""
        listed = set(self.subset_classes)
        expected = [w for w in self.subset_classes if w in position]
        outside = [w for w in wnids if w not in listed]
        if outside:
            raise DataLayoutError(
                f'{self.img_prefix!r}: folder(s) {", ".join(outside)} are '
                f'not classes of {self._subset_name} '
                f'({len(self.subset_classes)} wnids)')
        missing = sorted(set(expected) - set(wnids))
        if missing:
            raise DataLayoutError(
                f'{self.img_prefix!r}: {len(missing)} of the '
                f'{len(expected)} classes of {self._subset_name} have no '
                f'folder: {", ".join(missing)}; a partial copy would be '
                'scored on fewer classes. Restore them, or pass '
                'subset_classes=None to score only the folders present')
