"""An epoch-based training loop that resumes in the middle of an epoch at
exactly the batch and random state where the checkpoint was taken."""
import multiprocessing
import random
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop
from mmpretrain.registry import LOOPS

from mmbcssl.engine.hooks.rng_state_hook import set_rng_state


class SampleSeededPipeline:
    """A data pipeline whose randomness is a function of (seed, epoch,
    sample index) alone.

    Each call seeds Python's, numpy's and torch's CPU generators from
    ``SeedSequence([seed, epoch, results['sample_idx']])``, runs the
    pipeline and puts the caller's generator states back. So a sample's
    augmentation does not depend on which data-loader worker draws it, on
    how many samples that worker drew before, or on whether the worker was
    started at the beginning of the run or by a resume (persistent workers
    keep their streams across epochs, and a resumed run's fresh workers
    would otherwise start those streams again from the seed). In the main
    process (no workers) the caller's streams are left as they were.

    Args:
        pipeline (Callable): The data set's pipeline (``dataset.pipeline``).
        seed (int): The run's seed.
        epoch: A ``multiprocessing`` shared integer holding the epoch,
            visible to worker processes started before it changes.
    """

    def __init__(self, pipeline: Callable, seed: int, epoch) -> None:
        self.pipeline = pipeline
        self.seed = int(seed)
        self.epoch = epoch

    def __call__(self, results: dict) -> Any:
        index = results.get('sample_idx')
        if index is None:
            raise KeyError('SampleSeededPipeline needs results[\'sample_idx\']'
                           ' (mmengine BaseDataset sets it)')
        words = np.random.SeedSequence(
            [self.seed, int(self.epoch.value), int(index)]).generate_state(3)
        saved = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            random.seed(int(words[0]))
            np.random.seed(int(words[1]))
            torch.random.default_generator.manual_seed(int(words[2]))
            try:
                return self.pipeline(results)
            finally:
                random.setstate(saved[0])
                np.random.set_state(saved[1])

    def __getattr__(self, name: str) -> Any:
        # ``transforms`` and friends of the wrapped Compose
        if name == 'pipeline':
            raise AttributeError(name)
        return getattr(self.pipeline, name)

    def __repr__(self) -> str:
        return f'SampleSeededPipeline(seed={self.seed}, {self.pipeline!r})'


def _pipeline_owner(dataset) -> Optional[Any]:
    """The data set object whose ``pipeline`` builds the samples (wrappers
    such as ``RepeatDataset`` are looked through)."""
    while dataset is not None:
        if hasattr(dataset, 'pipeline'):
            return dataset
        dataset = getattr(dataset, 'dataset', None)
    return None


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that continues a mid-epoch checkpoint where
    it stopped.

    mmengine's loop restarts the epoch of a resumed checkpoint from its first
    batch: after a checkpoint at iteration ``k`` of an epoch (an
    iteration-interval ``CheckpointHook``) the run trains the first ``k``
    batches twice and ends ``k`` iterations late. Here the first ``k``
    batches of the resumed epoch are drawn from the data loader and dropped
    (so the sampler order advances as it did), and then the random state the
    checkpoint carries (:class:`RNGStateHook`) is restored, so the next
    batch, its augmentation, drop path and everything after are those of the
    uninterrupted run.

    The augmentation of every sample is seeded by (seed, epoch, sample
    index) (:class:`SampleSeededPipeline`), so the data workers hold no
    random state that a checkpoint would have to carry: the continuation is
    exact with any number of workers, persistent or not.

    Args:
        seed_samples (bool): Seed each sample's augmentation as above.
            Defaults to True.
        *args, **kwargs: ``EpochBasedTrainLoop`` arguments.
    """

    def __init__(self, *args, seed_samples: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # set by RNGStateHook.after_load_checkpoint
        self.resume_rng_state: Optional[Dict[str, Any]] = None
        # shared with data workers (they are started by the first
        # iter(dataloader), after this)
        self.shared_epoch = multiprocessing.RawValue('q', 0)
        if seed_samples:
            self._seed_samples()

    def _seed_samples(self) -> None:
        owner = _pipeline_owner(self.dataloader.dataset)
        if owner is None:
            print_log(
                'ResumableEpochBasedTrainLoop: the training data set has no '
                'pipeline to seed; a resumed run with data workers may draw '
                'other augmentations than the uninterrupted one',
                logger='current', level=30)
            return
        if not isinstance(owner.pipeline, SampleSeededPipeline):
            owner.pipeline = SampleSeededPipeline(
                owner.pipeline, self.runner.seed, self.shared_epoch)

    def run_epoch(self) -> None:
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        # before iter(): workers fetch this epoch's samples only after it
        self.shared_epoch.value = self._epoch
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
