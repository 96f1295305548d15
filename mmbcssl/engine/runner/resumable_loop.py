"""An epoch-based training loop that resumes in the middle of an epoch at
exactly the batch and random state where the checkpoint was taken."""
from typing import Any, Dict, Optional

from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import LOOPS

from mmbcssl.engine.hooks.rng_state_hook import set_rng_state


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that continues a mid-epoch checkpoint where
    it stopped.

    mmengine's loop restarts the epoch of a resumed checkpoint from its first
    batch: after a checkpoint at iteration ``k`` of an epoch (an
    iteration-interval ``CheckpointHook``) the run trains the first ``k``
    batches twice and ends ``k`` iterations late. Here the first ``k``
    batches of the resumed epoch are drawn from the data loader and dropped
    (so the sampler order and the data workers' random streams advance as
    they did), and then the random state the checkpoint carries
    (:class:`RNGStateHook`) is restored, so the next batch, its
    augmentation, drop path and everything after are those of the
    uninterrupted run.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # set by RNGStateHook.after_load_checkpoint
        self.resume_rng_state: Optional[Dict[str, Any]] = None

    def run_epoch(self) -> None:
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        done = self._iter - self._epoch * len(self.dataloader)
        batches = iter(self.dataloader)
        if done > 0:
            print_log(f'resuming epoch {self._epoch} after its first {done} '
                      'iterations', logger='current')
            for _ in range(done):
                next(batches)
        if self.resume_rng_state is not None:
            set_rng_state(self.resume_rng_state)
            self.resume_rng_state = None
        for idx, data_batch in enumerate(batches, start=max(done, 0)):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
