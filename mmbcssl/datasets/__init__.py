from . import transforms  # noqa: F401
from .imagenet_c import ImageNetC
from .imagenet_subset import ImageNetSubset

__all__ = ['ImageNetC', 'ImageNetSubset']
