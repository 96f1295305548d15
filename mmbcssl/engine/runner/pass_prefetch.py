"""Many evaluation passes in a row without a stall at each boundary.

ImageNet-C is 75 passes (15 corruptions x 5 severities, 50,000 images
each), one data loader per pass. Between two passes the model waits while
the next data set is built (its folders scanned, 50,000 entries indexed and
serialised) and its workers are forked and decode the first batches; a GPU
idles at every boundary. Here the next pass's loader is built in a
background thread while the current pass runs, and its iterator is started
(workers forked, prefetch begun) as soon as the current pass has handed out
its last batch indices, so that both overlap the current pass. Results are
unchanged: each pass still has its own data set, sampler and evaluator, in
the same order.

PyTorch's ``DataLoader`` cannot chain data sets without merging their
samplers (which would mix the per-pass padding of distributed samplers),
and mmengine's loops run one loader each, hence this module.
"""
import threading
from typing import Callable, Iterator, Optional

from torch.utils.data import DataLoader


def prefetch_depth(loader: DataLoader) -> int:
    """Batches a loader's workers are asked for ahead of the consumer
    (PyTorch's ``num_workers * prefetch_factor``); 0 without workers."""
    if not loader.num_workers:
        return 0
    return loader.num_workers * (loader.prefetch_factor or 2)


class PassPrefetcher:
    """Iterate ``num_passes`` loaders, starting each one early.

    Args:
        build (Callable[[int], DataLoader]): Builds the loader of pass k.
            Use ``persistent_workers=False`` loaders: a one-pass loader has
            nothing to persist, and its workers then exit with the pass.
        num_passes (int): Number of passes.
        overlap (bool): Start pass k+1 while pass k drains. False gives
            the plain one-after-the-other behaviour (for benchmarks).
            Defaults to True.

    Example:
        >>> for k, loader, batches in PassPrefetcher(build, 75):
        ...     for batch in batches:
        ...         ...
    """

    def __init__(self,
                 build: Callable[[int], DataLoader],
                 num_passes: int,
                 overlap: bool = True) -> None:
        if num_passes < 1:
            raise ValueError(f'num_passes must be >= 1, got {num_passes}')
        self.build = build
        self.num_passes = num_passes
        self.overlap = overlap
        # (pass, batch index) at which each pass after the first had its
        # workers started early; for tests and benchmarks
        self.started_at = []

    def _build_in_background(self, k: int) -> Callable[[], DataLoader]:
        """Build loader ``k`` in a thread; the returned call waits for it
        (and re-raises what the build raised, e.g. a missing folder)."""
        box: dict = {}

        def target():
            try:
                box['loader'] = self.build(k)
            except BaseException as e:  # re-raised in the caller's thread
                box['error'] = e

        thread = threading.Thread(target=target, name=f'build-pass-{k}',
                                  daemon=True)
        thread.start()

        def result() -> DataLoader:
            thread.join()
            if 'error' in box:
                raise box['error']
            return box['loader']

        return result

    def _batches(self, k: int, loader: DataLoader, it: Iterator,
                 upcoming: Optional[Callable[[], DataLoader]],
                 started: list) -> Iterator:
        depth = prefetch_depth(loader)
        # Once batch n - depth is handed out, every remaining index is
        # already with a worker: fork the next pass's workers then (in
        # this thread; forking from a helper thread is not safe).
        start = max(len(loader) - depth, 0)
        for idx, batch in enumerate(it):
            if upcoming is not None and depth and idx == start:
                next_loader = upcoming()
                started.append((next_loader, iter(next_loader)))
                self.started_at.append((k, idx))
            yield batch

    def __iter__(self):
        loader = self.build(0)
        it = iter(loader)
        for k in range(self.num_passes):
            last = k + 1 == self.num_passes
            upcoming = None if last or not self.overlap else \
                self._build_in_background(k + 1)
            started: list = []  # filled by _batches if it starts pass k+1
            yield k, loader, self._batches(k, loader, it, upcoming, started)
            if last:
                return
            if started:
                loader, it = started[0]
            else:  # no overlap, no workers, or a pass shorter than depth
                loader = upcoming() if upcoming else self.build(k + 1)
                it = iter(loader)
