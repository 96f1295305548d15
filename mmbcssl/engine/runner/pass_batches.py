"""Many evaluation passes through one data loader.

ImageNet-C is 75 passes (15 corruptions x 5 severities), each scored on its
own. With one loader per pass, the data workers start again at every pass
boundary (fork, import, first decodes) while the model waits; with two
workers on a small tree that made the run slower than no workers at all.
Here every pass's data set sits behind one index space
(:class:`PassConcatDataset`) and one batch sampler
(:class:`PassBatchSampler`) hands out batches that never cross a pass, so
one loader, and one set of workers, serves the whole run, and the batches of
the next pass are already being decoded while the current one ends.

Each process gets every pass's share as mmengine's ``DefaultSampler`` would
give it (``shuffle=False``, ``round_up=True``: indices padded to a multiple
of the world size by repeating the first ones, process ``r`` taking
``r, r + world, ...``), so mmengine's evaluator gathers and truncates each
pass's results exactly as with a loader per pass.
"""
import math
from functools import partial
from typing import Dict, Iterator, List, Sequence, Tuple

from torch.utils.data import DataLoader, Dataset, Sampler


class PassConcatDataset(Dataset):
    """The data sets of several passes behind one index space.

    Args:
        datasets (Sequence[Dataset]): One per pass, in order.
    """

    def __init__(self, datasets: Sequence[Dataset]) -> None:
        self.datasets = list(datasets)
        self.offsets = [0]
        for d in self.datasets:
            self.offsets.append(self.offsets[-1] + len(d))

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, index: int) -> Tuple[int, int]:
        """``(pass, index within the pass)`` of a global index."""
        lo, hi = 0, len(self.datasets)
        while hi - lo > 1:  # binary search over the offsets
            mid = (lo + hi) // 2
            if self.offsets[mid] <= index:
                lo = mid
            else:
                hi = mid
        return lo, index - self.offsets[lo]

    def __getitem__(self, index: int):
        k, i = self.locate(index)
        return self.datasets[k][i]


class PassBatchSampler(Sampler):
    """Batches of global indices of a :class:`PassConcatDataset`, pass by
    pass, each batch within one pass.

    Args:
        lengths (Sequence[int]): Images of each pass.
        batch_size (int): Images per batch.
        rank (int): This process. Defaults to 0.
        world_size (int): Processes. Defaults to 1.
    """

    def __init__(self,
                 lengths: Sequence[int],
                 batch_size: int,
                 rank: int = 0,
                 world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f'batch_size must be positive, got {batch_size}')
        self.batches: List[List[int]] = []
        self.pass_of_batch: List[int] = []
        offset = 0
        for k, n in enumerate(lengths):
            per_rank = math.ceil(n / world_size)
            padded = list(range(n)) * math.ceil(per_rank * world_size /
                                                max(n, 1))
            mine = padded[:per_rank * world_size][rank::world_size]
            for start in range(0, len(mine), batch_size):
                self.batches.append(
                    [offset + i for i in mine[start:start + batch_size]])
                self.pass_of_batch.append(k)
            offset += n

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def all_passes_loader(datasets: Sequence[Dataset], loader_cfg: Dict,
                      seed: int) -> Tuple[PassBatchSampler, DataLoader]:
    """One loader over every pass's data set, with a loader config's
    ``batch_size``, ``num_workers``, ``pin_memory`` and ``collate_fn``
    (mmengine's worker seeding included); the sampler says which pass each
    batch is of (``pass_of_batch``)."""
    from mmengine.dataset.utils import worker_init_fn
    from mmengine.dist import get_dist_info
    from mmengine.registry import FUNCTIONS
    rank, world = get_dist_info()
    sampler = PassBatchSampler([len(d) for d in datasets],
                               loader_cfg.get('batch_size', 1), rank, world)
    collate = dict(loader_cfg.get('collate_fn') or
                   dict(type='pseudo_collate'))
    collate_fn = FUNCTIONS.get(collate.pop('type'))
    workers = loader_cfg.get('num_workers', 0)
    loader = DataLoader(
        PassConcatDataset(datasets), batch_sampler=sampler,
        num_workers=workers, pin_memory=loader_cfg.get('pin_memory', False),
        collate_fn=partial(collate_fn, **collate),
        worker_init_fn=partial(worker_init_fn, num_workers=workers,
                               rank=rank, seed=seed) if workers else None)
    return sampler, loader
