"""mmengine's checkpoint hook without its data-loss window."""
import contextlib
import difflib
import inspect
from typing import Iterator, List

import torch
from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from mmbcssl.fileio import remove_stale_temp_files
from mmbcssl.utils.config_checks import ConfigError
from mmbcssl.utils.loss_terms import TrainingDivergedError


class _DeferredRemovals:
    """A file backend whose ``remove``/``rmtree`` only note the path."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.pending: List[str] = []

    def remove(self, path) -> None:
        self.pending.append(path)

    def rmtree(self, path) -> None:
        self.pending.append(path)

    def __getattr__(self, name: str):
        return getattr(self.backend, name)


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` that never leaves fewer checkpoints
    than it should.

    mmengine 0.10.7 deletes the outdated checkpoint (``max_keep_ckpts``) and
    the previous ``best_*.pth`` *before* it writes the new one, so a save
    that is killed or runs out of disk leaves ``max_keep_ckpts - 1`` of
    them: none with ``max_keep_ckpts=1``, and ``last_checkpoint`` points at
    a deleted file. Here:

    * the deletions the parent asks for are held back until the new file
      is complete and renamed into place (:func:`mmbcssl.fileio.atomic_write`
      writes it), and dropped if the save fails. The disk needs room for one
      checkpoint more than ``max_keep_ckpts`` during a save;
    * temporary ``.*.part`` files that a killed save left in the checkpoint
      folder are removed when training starts and before every save;
    * a checkpoint whose weights or buffers hold NaN/Inf is not written:
      :class:`TrainingDivergedError` stops training instead, and the last
      checkpoint on disk stays the last good one;
    * an argument the hook does not know (``intervl=...``) is refused when
      the hook is built: mmengine passes unknown ones to
      ``runner.save_checkpoint``, which fails only at the first save;
    * hooks that need every process's data in the checkpoint get to collect
      it first: ``runner.save_checkpoint`` and its ``before_save_checkpoint``
      calls run on rank 0 only, where a collective operation would wait
      forever for the other ranks. Just before each save, on every rank,
      this hook calls ``collect_for_checkpoint(runner)`` of each hook that
      has one (:class:`~mmbcssl.engine.hooks.RNGStateHook` does).

    Args:
        **kwargs: The arguments of mmengine's ``CheckpointHook``.
    """

    def __init__(self, **kwargs) -> None:
        known = [
            name for name, p in inspect.signature(
                CheckpointHook.__init__).parameters.items()
            if name != 'self' and p.kind != p.VAR_KEYWORD
        ]
        for name in kwargs:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ''
                raise ConfigError(
                    f"default_hooks.checkpoint: unknown argument '{name}'"
                    f'{hint}; CheckpointHook takes {", ".join(known)}')
        super().__init__(**kwargs)
        self._saving = False

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self._remove_stale_temp_files()

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        with self._removals_after_save(runner):
            super()._save_checkpoint_with_step(runner, step, meta)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not self.save_best:
            return
        with self._removals_after_save(runner):
            super()._save_best_checkpoint(runner, metrics)

    def _remove_stale_temp_files(self) -> None:
        if is_main_process() and isinstance(self.file_backend, LocalBackend):
            for path in remove_stale_temp_files(str(self.out_dir)):
                print_log(f'removed {path}, left by an interrupted save',
                          logger='current')

    @contextlib.contextmanager
    def _removals_after_save(self, runner) -> Iterator[None]:
        """Run a save of the parent class with its deletions held back."""
        if self._saving:  # the best-checkpoint save re-enters
            yield
            return
        check_finite(runner.model)
        for hook in runner.hooks:
            collect = getattr(hook, 'collect_for_checkpoint', None)
            if collect is not None:
                collect(runner)
        self._remove_stale_temp_files()
        backend = self.file_backend
        deferred = self.file_backend = _DeferredRemovals(backend)
        self._saving = True
        try:
            yield
        finally:
            self.file_backend = backend
            self._saving = False
        # only reached when every file of this save is in place
        written = {self.last_ckpt, getattr(self, 'best_ckpt_path', None)}
        written.update(getattr(self, 'best_ckpt_path_dict', {}).values())
        for path in deferred.pending:
            if path in written:
                continue
            if backend.isfile(path):
                backend.remove(path)
            elif backend.isdir(path):  # deepspeed checkpoints
                backend.rmtree(path)


def check_finite(model: torch.nn.Module) -> None:
    """Raise :class:`TrainingDivergedError` if a floating-point weight or
    buffer of ``model`` holds NaN/Inf (one host sync in all)."""
    if is_model_wrapper(model):
        model = model.module
    tensors = {
        k: v
        for k, v in model.state_dict().items()
        if isinstance(v, torch.Tensor) and v.is_floating_point()
    }
    if not tensors:
        return
    finite = torch.stack([v.isfinite().all() for v in tensors.values()])
    if bool(finite.all()):
        return
    bad = [k for k, ok in zip(tensors, finite.tolist()) if not ok]
    raise TrainingDivergedError(
        f'the model holds NaN/Inf in {len(bad)} tensors (first: {bad[0]}), '
        'so no checkpoint was written; the last checkpoint in the work dir '
        'is the last good one. Resume from it with a lower lr, or set '
        "optim_wrapper.nonfinite_loss='skip' to drop NaN/Inf steps.")
