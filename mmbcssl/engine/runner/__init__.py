from .imagenet_c_loop import ImageNetCTestLoop
from .pass_batches import PassBatchSampler, PassConcatDataset
from .resumable_loop import ResumableEpochBasedTrainLoop

__all__ = [
    'ImageNetCTestLoop', 'PassBatchSampler', 'PassConcatDataset',
    'ResumableEpochBasedTrainLoop'
]
