"""Image loading that says which file is broken, with a skip policy."""
from typing import Optional

from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS


class CorruptImageError(OSError):
    """An image file that cannot be read or decoded."""


@TRANSFORMS.register_module()
class LoadImageFromFileSafe(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` with a policy for unreadable images.

    mmcv raises the decoder's own error (or an assertion) without saying
    which of a million files it was. Here:

    * ``on_error='raise'`` (default): :class:`CorruptImageError` naming the
      path and the two fixes;
    * ``on_error='skip'``: return None, which makes mmengine's training
      data sets draw another sample (``BaseDataset.__getitem__``); each skip
      is counted and logged with its path. Test-mode data sets cannot skip
      (mmengine raises for a None sample), so evaluation still fails loudly.

    Args:
        on_error (str): ``'raise'`` or ``'skip'``. Defaults to 'raise'.
        **kwargs: Passed to ``LoadImageFromFile``.
    """

    def __init__(self, on_error: str = 'raise', **kwargs) -> None:
        if on_error not in ('raise', 'skip'):
            raise ValueError(f"on_error must be 'raise' or 'skip', got "
                             f'{on_error!r}')
        super().__init__(**kwargs)
        self.on_error = on_error
        self.num_skipped = 0  # per worker process

    def transform(self, results: dict) -> Optional[dict]:
        path = results.get('img_path')
        try:
            out = super().transform(results)
            if out is None or out.get('img') is None:
                raise ValueError('decoded to nothing')
            return out
        except Exception as e:  # decoder errors have many types
            reason = f'{type(e).__name__}: {e}'.strip()
        if self.on_error == 'skip':
            self.num_skipped += 1
            print_log(
                f'skipping unreadable image {path} ({reason}); '
                f'{self.num_skipped} skipped so far in this worker',
                logger='current', level=30)
            return None
        raise CorruptImageError(
            f'cannot read image {path} ({reason}). Replace or remove the '
            "file, or set on_error='skip' on LoadImageFromFileSafe in the "
            'pipeline to train around it')
