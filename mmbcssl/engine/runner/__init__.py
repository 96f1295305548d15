from .imagenet_c_loop import ImageNetCTestLoop
from .resumable_loop import ResumableEpochBasedTrainLoop

__all__ = ['ImageNetCTestLoop', 'ResumableEpochBasedTrainLoop']
