"""ImageNet-A/R style data sets: wnid folders that are a subset of a larger
label space (ImageNet-1k by default).

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
from typing import List, Sequence, Union

from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from mmbcssl.utils.data_checks import DataLayoutError

# The ImageNet-1k class order (sorted wnids) as timm ships it.
IMAGENET_1K = 'imagenet-1k'


def load_wnids(classes: Union[str, Sequence[str]]) -> List[str]:
    """The base label space: ``'imagenet-1k'``, a file with one wnid per
    line, or a list of wnids; position = class index."""
    if not isinstance(classes, str):
        return list(classes)
    if classes == IMAGENET_1K:
        text = resources.files('timm.data._info').joinpath(
            'imagenet_synsets.txt').read_text()
    elif osp.isfile(classes):
        with open(classes) as f:
            text = f.read()
    else:
        raise DataLayoutError(
            f"base_classes {classes!r} is neither 'imagenet-1k' nor a file "
            'of wnids (one per line)')
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
        **kwargs: Passed to mmpretrain's ``CustomDataset`` (pipeline, ...).

    Raises:
        DataLayoutError: A folder is not a class of ``base_classes`` (e.g. a
            stray folder, or the wrong base label space).
    """

    def __init__(self,
                 data_root: str = '',
                 data_prefix: str = '',
                 base_classes: Union[str, Sequence[str]] = IMAGENET_1K,
                 **kwargs) -> None:
        self.base_classes = load_wnids(base_classes)
        self._base_name = base_classes if isinstance(base_classes,
                                                     str) else 'base_classes'
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
        self._metainfo['class_indices'] = tuple(position[w] for w in wnids)
        self._metainfo['num_base_classes'] = len(self.base_classes)
        return data_list
