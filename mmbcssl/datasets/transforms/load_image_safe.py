"""Image loading that says which file is broken, with a skip policy."""
import logging
from typing import Optional

from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log
from mmpretrain.registry import TRANSFORMS


class CorruptImageError(OSError):
    """An image file that cannot be read or decoded."""


def _worker_name() -> str:
    """'data worker 3' inside a DataLoader worker, else 'main process'."""
    try:
        from torch.utils.data import get_worker_info
    except ImportError:  # pragma: no cover - torch is a requirement
        return 'main process'
    info = get_worker_info()
    return 'main process' if info is None else f'data worker {info.id}'


@TRANSFORMS.register_module()
class LoadImageFromFileSafe(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` with a policy for unreadable images.

    mmcv raises the decoder's own error (or a bare assertion) and, inside a
    DataLoader worker, the traceback rarely shows which of a million files
    it was. Here:

    * ``on_error='raise'`` (default): :class:`CorruptImageError` naming the
      path, the decoder's reason and the two fixes;
    * ``on_error='skip'``: return None, which makes mmengine's
      ``BaseDataset.__getitem__`` draw a random other index
      (``_rand_another``, at most ``max_refetch`` times, 1000 by default).
      Each skip is counted in :attr:`num_skipped` and logged at WARNING
      level through the mmengine logger with its path and running count.
      When more than ``max_bad_share`` of the images this process has read
      (after ``min_images``) were unreadable, the data set is taken to be
      broken and :class:`CorruptImageError` stops the run.
      Test-mode data sets cannot skip (mmengine raises for a None sample),
      so evaluation still fails loudly - after the path has been logged:
      an accuracy is never reported over a silently smaller set.

    Note:
        The count is per process: every DataLoader worker has its own copy
        of the pipeline, so each log line says which worker it comes from.
        cv2 (mmcv's default decoder) decodes a truncated JPEG into a
        partly grey image without an error; such a file is not detected.

    Args:
        on_error (str): ``'raise'`` or ``'skip'``. Defaults to 'raise'.
        max_bad_share (float): With ``'skip'``, the largest share of
            unreadable images tolerated. Defaults to 0.01.
        min_images (int): Images read before the share is checked.
            Defaults to 100.
        **kwargs: Passed to mmcv's ``LoadImageFromFile`` (``to_float32``,
            ``color_type``, ``imdecode_backend``, ``backend_args`` ...).
    """

    def __init__(self,
                 on_error: str = 'raise',
                 max_bad_share: float = 0.01,
                 min_images: int = 100,
                 **kwargs) -> None:
        if on_error not in ('raise', 'skip'):
            raise ValueError(f"on_error must be 'raise' or 'skip', got "
                             f'{on_error!r}')
        if not 0 <= max_bad_share <= 1:
            raise ValueError(f'max_bad_share must be in [0, 1], got '
                             f'{max_bad_share}')
        super().__init__(**kwargs)
        self.on_error = on_error
        self.max_bad_share = max_bad_share
        self.min_images = min_images
        self.num_skipped = 0  # in this process
        self.num_read = 0

    def transform(self, results: dict) -> Optional[dict]:
        """Load ``results['img_path']``; see the class docstring for errors.

        Args:
            results (dict): Needs ``img_path``.

        Returns:
            dict | None: ``results`` with ``img``, ``img_shape`` and
            ``ori_shape``; None for a skipped image.
        """
        path = results.get('img_path')
        self.num_read += 1
        try:
            out = super().transform(results)
            if out is None or out.get('img') is None:
                raise ValueError('decoded to nothing')
            return out
        except Exception as e:  # decoders raise many types
            reason = f'{type(e).__name__}: {e}'.strip()
        if self.on_error == 'skip':
            self.num_skipped += 1
            print_log(
                f'skipping unreadable image {path} ({reason}); '
                f'{self.num_skipped} skipped so far in {_worker_name()}',
                logger='current', level=logging.WARNING)
            if (self.num_read >= self.min_images and
                    self.num_skipped > self.max_bad_share * self.num_read):
                raise CorruptImageError(
                    f'{self.num_skipped} of the {self.num_read} images read '
                    f'by the {_worker_name()} were unreadable (the last: '
                    f'{path}), more than max_bad_share='
                    f'{self.max_bad_share}: the data set looks broken. '
                    'Check the files, or raise max_bad_share on '
                    'LoadImageFromFileSafe if this share is expected')
            return None
        raise CorruptImageError(
            f'cannot read image {path} ({reason}). Replace or remove the '
            "file, or set on_error='skip' on LoadImageFromFileSafe in the "
            'pipeline to train around it')

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", on_error='{self.on_error}')"
