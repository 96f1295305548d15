from .imagenet_c_loop import ImageNetCTestLoop
from .pass_prefetch import PassPrefetcher, prefetch_depth
from .resumable_loop import ResumableEpochBasedTrainLoop

__all__ = [
    'ImageNetCTestLoop', 'PassPrefetcher', 'ResumableEpochBasedTrainLoop',
    'prefetch_depth'
]
