"""Overrides of a downstream config computed from the loaded config.

A suite entry says *what* it changes (``epochs=4``,
``train_scales=[(320, 160), (320, 192)]``); these functions find *where*
in the config it goes (each scheduler, the resize transform, by type), so
an entry never names a list position that a later edit of the config
could move. Each returns ``key=value`` strings for ``--cfg-options``.
"""
from typing import List, Sequence, Tuple

# epoch-valued keys of the schedulers below; any other scheduler type,
# when epoch-based, is refused (e.g. StepLR's step_size, CosineRestartLR's
# periods: their scaling is not a rule of this module)
_EPOCH_KEYS = ('begin', 'end', 'T_max')
_SCALABLE = ('CosineAnnealing', 'MultiStep', 'Linear', 'Constant', 'Poly',
             'Exponential')
_SUFFIXES = ('LR', 'Momentum', 'ParamScheduler')


def list_index_key(option: str) -> bool:
    """Whether a ``key=value`` option's key names a list position: a part
    that is an integer (``param_scheduler.0.T_max``)."""
    key = option.partition('=')[0]
    return any(part.strip().isdigit() for part in key.split('.'))


def refuse_list_indices(options: Sequence[str]) -> None:
    """Raise on an option that names a list position.

    Raises:
        ValueError: the first such option, and what to use instead.
    """
    for option in options:
        if list_index_key(option):
            raise ValueError(
                f'cfg_options {option!r} names a list position, '
                'which an edit of the config can move; use epochs= or '
                'train_scales= (found by type), or a config that states the '
                'value in full (config=...)')


def _scalable(scheduler: dict) -> bool:
    name = str(scheduler.get('type', '')).split('.')[-1]
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[:-len(suffix)] in _SCALABLE
    return False


def shorten_schedule(cfg, epochs: int) -> List[str]:
    """Overrides that train ``cfg`` for ``epochs`` epochs with the same
    schedule shape: every epoch-based scheduler's ``begin``, ``end`` and
    ``T_max`` scaled by ``epochs / max_epochs`` (rounded; ends at least 1),
    its ``milestones`` scaled likewise (those at or past the new end
    dropped, repeats merged); iteration-based schedulers (warm-ups) as
    they are; validation and the checkpoint hook at least once, at the
    end. E.g. a cosine over 20 epochs -> over 4; MultiStepLR [16, 19] of
    20 -> [2] of 3.

    Raises:
        ValueError: ``cfg`` is not epoch-based, ``epochs`` is not in
            [1, max_epochs], or an epoch-based scheduler of another type.
    """
    total = cfg.get('train_cfg', {}).get('max_epochs')
    if not isinstance(total, int):
        raise ValueError('epochs= shortens an epoch-based train_cfg '
                         '(max_epochs); this config has none: give the '
                         'schedule in cfg_options or another config')
    if not 1 <= epochs <= total:
        raise ValueError(f'epochs={epochs} must be in [1, {total}] (the '
                         "config's max_epochs)")

    def scale(value, least=0):
        return max(least, round(value * epochs / total))

    opts = [f'train_cfg.max_epochs={epochs}']
    schedulers = cfg.get('param_scheduler') or []
    if isinstance(schedulers, dict):
        schedulers = [schedulers]
        where = ['param_scheduler']
    else:
        where = [f'param_scheduler.{i}' for i in range(len(schedulers))]
    for key, sched in zip(where, schedulers):
        if not sched.get('by_epoch', True):
            continue
        if not _scalable(sched):
            raise ValueError(
                f'epochs= cannot shorten a {sched.get("type")} scheduler '
                f'(scales {", ".join(_EPOCH_KEYS)} and milestones of '
                f'{", ".join(s + "LR" for s in _SCALABLE)}); give a config '
                'with the short schedule (config=...)')
        for name in _EPOCH_KEYS:
            value = sched.get(name)
            if isinstance(value, int) and value <= total:
                least = 0 if name == 'begin' else 1
                opts.append(f'{key}.{name}={scale(value, least)}')
        if 'milestones' in sched:
            kept = sorted({scale(m) for m in sched['milestones']
                           if 0 < scale(m) < epochs})
            opts.append(f'{key}.milestones={kept}')
    val_interval = cfg.train_cfg.get('val_interval', 1)
    if val_interval > epochs:
        opts.append(f'train_cfg.val_interval={epochs}')
    checkpoint = cfg.get('default_hooks', {}).get('checkpoint')
    if checkpoint and checkpoint.get('by_epoch', True) and checkpoint.get(
            'interval', -1) > epochs:
        opts.append(f'default_hooks.checkpoint.interval={epochs}')
    return opts


def set_train_scales(cfg, scales: Sequence[Tuple[int, int]]) -> List[str]:
    """The override that gives the training pipeline's
    ``RandomChoiceResize`` (found by type) the ``scales`` to choose from.

    Raises:
        ValueError: the training pipeline has no such transform, or
            several.
    """
    pipeline = cfg.train_dataloader.dataset.get('pipeline') or []
    found = [i for i, t in enumerate(pipeline)
             if str(t.get('type', '')).split('.')[-1] == 'RandomChoiceResize']
    if len(found) != 1:
        raise ValueError(
            'train_scales= sets the RandomChoiceResize of '
            'train_dataloader.dataset.pipeline; this config has '
            f'{len(found)} there: give a config with the scales '
            '(config=...)')
    scales = '[' + ','.join(f'({w},{h})' for w, h in scales) + ']'
    return [f'train_dataloader.dataset.pipeline.{found[0]}.scales={scales}']
