"""mmengine's checkpoint hook without its data-loss window."""
import contextlib
import difflib
import inspect
import os
import os.path as osp
import re
from typing import Iterator, List, Tuple

import torch
from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapperDict
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
    * after each save, outdated checkpoints are removed by what is on disk,
      not only by the steps this run recorded: a process killed between the
      rename of a new checkpoint and the deletion of the old one leaves the
      old file, which the resumed run no longer lists. Only files named by
      ``filename_tmpl`` (``epoch_N.pth`` / ``iter_N.pth``) in the
      checkpoint folder with ``N`` up to the step just saved are candidates;
      the newest ``max_keep_ckpts`` of them by ``N`` stay, and so do
      ``best_*`` files and the file ``last_checkpoint`` names. Each removal
      is logged;
    * an epoch in which every step was skipped for a NaN/Inf loss
      (``optim_wrapper.nonfinite_loss='skip'``) stops training with
      :class:`TrainingDivergedError` before its checkpoint is saved, so a
      model that trained on nothing is never saved as latest or best. An
      epoch with at least one step taken goes on as usual;
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
        self._epoch_start: Tuple[int, int, int] = (0, 0, 0)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        self._remove_stale_temp_files()

    def before_train_epoch(self, runner) -> None:
        self._epoch_start = (*_guarded_step_counts(runner), runner.iter)

    def after_train_epoch(self, runner) -> None:
        self._check_epoch_trained(runner)
        super().after_train_epoch(runner)

    def _check_epoch_trained(self, runner) -> None:
        """Raise :class:`TrainingDivergedError` if the optim wrappers
        skipped every step of this epoch."""
        taken, skipped = _guarded_step_counts(runner)
        taken -= self._epoch_start[0]
        skipped -= self._epoch_start[1]
        if taken or not skipped:
            return
        if getattr(runner.train_loop, 'max_epochs', None) is not None:
            what = (f'epoch {runner.epoch + 1} trained on nothing: all '
                    f'{skipped} of its steps were skipped')
        else:
            what = (f'iterations {self._epoch_start[2] + 1}-{runner.iter} '
                    f'trained on nothing: all {skipped} steps were skipped')
        raise TrainingDivergedError(
            f"{what} for a NaN/Inf loss (optim_wrapper.nonfinite_loss="
            "'skip'), so no checkpoint of it was saved. Lower the lr, run "
            'with --amp if it was off or without it if it was on, and check '
            'the data for broken images or labels.')

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        with self._removals_after_save(runner):
            super()._save_checkpoint_with_step(runner, step, meta)
        self._remove_outdated_on_disk(runner, step)

    def _remove_outdated_on_disk(self, runner, step: int) -> List[str]:
        """Remove the checkpoints of this run's name pattern in the
        checkpoint folder beyond the newest ``max_keep_ckpts`` up to
        ``step``; return their paths."""
        if self.max_keep_ckpts <= 0 or not is_main_process() or \
                not isinstance(self.file_backend, LocalBackend):
            return []
        head, sep, tail = self.filename_tmpl.partition('{}')
        if not sep or '{' in head + tail or '}' in head + tail:
            return []
        pattern = re.compile(re.escape(head) + r'(\d+)' + re.escape(tail))
        out_dir = str(self.out_dir)
        keep = {osp.abspath(p) for p in (self.last_ckpt,
                                         _last_checkpoint(runner)) if p}
        found = []
        for name in os.listdir(out_dir):
            match = pattern.fullmatch(name)
            path = osp.join(out_dir, name)
            if match and int(match.group(1)) <= step and osp.isfile(path) \
                    and not name.startswith('best_'):
                found.append((int(match.group(1)), path))
        found.sort(reverse=True)
        removed = []
        for _, path in found[self.max_keep_ckpts:]:
            if osp.abspath(path) in keep:
                continue
            os.remove(path)
            removed.append(path)
            print_log(
                f'removed {path}: older than the newest '
                f'{self.max_keep_ckpts} checkpoints (max_keep_ckpts), left '
                'by an interrupted run', logger='current')
        return removed

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


def _guarded_step_counts(runner) -> Tuple[int, int]:
    """Steps taken and skipped so far by the runner's optim wrappers that
    guard against NaN/Inf losses (none: ``(0, 0)``)."""
    wrapper = getattr(runner, 'optim_wrapper', None)
    wrappers = wrapper.values() if isinstance(wrapper, OptimWrapperDict) \
        else [wrapper]
    guarded = [w for w in wrappers if hasattr(w, 'taken_steps')]
    return (sum(w.taken_steps for w in guarded),
            sum(w.skipped_steps for w in guarded))


def _last_checkpoint(runner) -> str:
    """The path the work dir's ``last_checkpoint`` file names, or ''."""
    path = osp.join(runner.work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return ''
    with open(path) as f:
        return f.read().strip()


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
