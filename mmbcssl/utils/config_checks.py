"""Pre-flight checks of config values and ``--cfg-options`` keys.

Without them a bad value surfaces as a traceback seconds into building the
model (an even kernel size, an unknown arch), or not at all: mmengine
merges a misspelt ``--cfg-options trian_cfg.max_epochs=1`` as a new key
that nothing reads, and hands ``default_hooks.checkpoint.intervl=...`` to
the checkpoint hook, which fails at its first save, an epoch later. These
checks run before anything is built and raise :class:`ConfigError` with a
one-line message.
"""
import difflib
import importlib
import inspect
from typing import Any, Dict, Iterable, List, Optional, Tuple

from mmengine.config import Config, ConfigDict

# Top-level keys mmengine's Runner reads besides its __init__ arguments
# (Runner.wrap_model, Runner.setup_env, ...) and keys of the OpenMMLab
# tools.
EXTRA_TOP_LEVEL_KEYS = ('model_wrapper_cfg', 'sync_bn',
                        'find_unused_parameters', 'compile',
                        'activation_checkpointing', 'efficient_conv_bn_eval',
                        'runner_type', 'custom_imports', 'tta_model',
                        'tta_pipeline', 'launcher')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


class ConfigError(ValueError):
    """A config value or key that cannot work."""


def runner_keys() -> List[str]:
    """Top-level config keys that mmengine's Runner (or a tool) reads."""
    from mmengine.runner import Runner
    params = inspect.signature(Runner.__init__).parameters
    return sorted({*params, *EXTRA_TOP_LEVEL_KEYS} - {'self'})


def _component_params(type_: Any, scope: str) -> Tuple[List[str], bool]:
    """The keyword arguments the class registered as ``type_`` accepts, and
    whether it also takes ``**kwargs`` all the way up (then any key may be
    fine). ``([], True)`` when the class is not found."""
    cls = type_ if isinstance(type_, type) else _find_class(type_, scope)
    if cls is None:
        return [], True
    names: List[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return names, True
        names += [
            p.name for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name != 'self'
        ]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return names, False
    return names, True


def _find_class(name: Any, scope: str) -> Optional[type]:
    """The class registered as ``name`` in any registry of ``scope`` (or
    its parent, mmengine's)."""
    if not isinstance(name, str):
        return None
    from mmengine.registry import Registry
    try:
        module = importlib.import_module(f'{scope}.registry')
    except ImportError:
        return None
    for registry in vars(module).values():
        if not isinstance(registry, Registry):
            continue
        try:
            cls = registry.get(name)
        except (KeyError, ImportError):
            continue
        if isinstance(cls, type):
            return cls
    return None


def _suggest(key: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.8)
    return f" (did you mean '{close[0]}'?)" if close else ''


def check_cfg_options(cfg: Config, options: Optional[Dict[str, Any]]) -> None:
    """Refuse ``--cfg-options`` keys that nothing would read.

    An option that overrides a key of the config is fine. One that adds a
    key is refused when the key is close to an existing sibling or to an
    argument of the component it lands in (a misspelling); a new top-level
    key also when the runner does not read it; a key inside a component
    when the component's class takes no such argument (and no
    ``**kwargs``).

    Args:
        cfg (Config): The config before the options are merged.
        options (dict, optional): ``--cfg-options`` as parsed by mmengine's
            ``DictAction`` (dotted keys).

    Raises:
        ConfigError: naming the option and, where one is close, the key
            that was probably meant.
    """
    scope = cfg.get('default_scope') or 'mmengine'
    tree = cfg.to_dict() if isinstance(cfg, Config) else cfg
    for dotted in options or {}:
        parts = dotted.split('.')
        node: Any = tree
        for depth, part in enumerate(parts):
            if isinstance(node, (list, tuple)) and part.isdigit():
                if int(part) >= len(node):
                    raise ConfigError(
                        f'--cfg-options {dotted}: '
                        f"{'.'.join(parts[:depth]) or 'the config'} has "
                        f'{len(node)} entries; index {part} is out of range')
                node = node[int(part)]
                continue
            if isinstance(node, dict) and part in node:
                node = node[part]
                continue
            if not isinstance(node, dict):
                break  # replacing a value by a dict: mmengine's business
            _check_new_key(dotted, parts[:depth], part, node, scope)
            break


def _check_new_key(dotted: str, parents: List[str], key: str,
                   node: Dict[str, Any], scope: str) -> None:
    where = '.'.join(parents) or 'the config'
    siblings = [str(k) for k in node]
    if not parents:
        readers = runner_keys()
        if key in readers:
            return
        raise ConfigError(
            f'--cfg-options {dotted}: the config has no top-level key '
            f"'{key}' and nothing reads one{_suggest(key, siblings + readers)}"
            '; a misspelt key would be silently ignored')
    params, open_ = _component_params(_built_type(parents, node), scope) \
        if 'type' in node else ([], True)
    if key in params:
        return
    hint = _suggest(key, siblings + params)
    if hint or not open_:
        what = f"{node['type']}" if 'type' in node else where
        raise ConfigError(
            f"--cfg-options {dotted}: {where} has no key '{key}' and {what} "
            f'takes no such argument{hint}')


def _built_type(parents: List[str], node: Dict[str, Any]) -> Any:
    """The class a component config builds: its ``type``, except where an
    optim-wrapper constructor picks the variant of it (mmbcssl's guarded
    and DINO constructors)."""
    constructor = node.get('constructor')
    if parents == ['optim_wrapper'] and constructor:
        from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS
        cls = OPTIM_WRAPPER_CONSTRUCTORS.get(constructor)
        if hasattr(cls, 'variant_of'):
            try:
                return cls.variant_of(node['type'])
            except ValueError:  # reported when the constructor is built
                pass
    return node['type']


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) \
        and value > 0


def check_config_values(cfg: Config) -> None:
    """Values that would fail only once the model or the loaders are built.

    Checks every dataloader's ``batch_size`` (> 0) and ``num_workers``
    (>= 0), and the backbone's ``arch`` and (BC-SSL) ``kernel_size``.

    Raises:
        ConfigError: naming the key, the value and what is allowed.
    """
    for name in LOADERS:
        loader = cfg.get(name)
        if not isinstance(loader, (dict, ConfigDict)):
            continue
        batch = loader.get('batch_size', 1)
        if not _is_positive_int(batch):
            raise ConfigError(
                f'{name}.batch_size must be a positive integer (images per '
                f'process), got {batch!r}')
        workers = loader.get('num_workers', 0)
        if not (isinstance(workers, int) and workers >= 0):
            raise ConfigError(f'{name}.num_workers must be an integer >= 0, '
                              f'got {workers!r}')
    model = cfg.get('model')
    backbone = model.get('backbone') if isinstance(model, dict) else None
    if isinstance(backbone, dict) and 'type' in backbone:
        _check_backbone(backbone, cfg.get('default_scope') or 'mmengine')


def _check_backbone(backbone: Dict[str, Any], scope: str) -> None:
    from mmbcssl.models.backbones import BCSSL
    type_ = backbone['type']
    cls = type_ if isinstance(type_, type) else _find_class(type_, scope)
    if cls is None:
        return
    if issubclass(cls, BCSSL):
        try:
            arch = BCSSL._check_arch(backbone.get('arch', 'tiny'))
            BCSSL._check_kernels(
                backbone.get('kernel_size', 9), len(arch['depths']))
        except ValueError as e:
            raise ConfigError(f'model.backbone ({cls.__name__}): {e}') \
                from None
        return
    arch = backbone.get('arch')
    table = getattr(cls, 'arch_zoo', None) or getattr(cls, 'arch_settings',
                                                      None)
    if isinstance(arch, str) and isinstance(table, dict) and all(
            isinstance(k, str) for k in table):
        if arch.lower() not in {k.lower() for k in table}:
            raise ConfigError(
                f"model.backbone ({cls.__name__}): unknown arch '{arch}'"
                f"{_suggest(arch.lower(), table)}; choose one of "
                f'{sorted(table)} or give a dict of the arch settings')


def check_safe_training_parts(cfg: Config) -> None:
    """Refuse a training config that leaves out the project's safe parts.

    A config states its checkpoint hook and optim wrapper constructor; no
    tool swaps them, so ``tools/train.py`` and ``Runner.from_cfg`` train
    the same thing. Refused: mmengine's plain ``CheckpointHook`` (it deletes
    the oldest checkpoint before the new one is written) and an
    ``optim_wrapper`` without a ``constructor`` (mmengine's default builds
    an unguarded wrapper).
    """
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if isinstance(checkpoint, dict) and str(checkpoint.get('type')).rsplit(
            '.', 1)[-1] == 'CheckpointHook':
        raise ConfigError(
            f"default_hooks.checkpoint is {checkpoint.get('type')}: name "
            "type='mmpretrain.SafeCheckpointHook' (it deletes old "
            'checkpoints only after the new one is written), as '
            'configs/_base_/runtime.py does')
    wrapper = cfg.get('optim_wrapper')
    if isinstance(wrapper, dict) and 'constructor' not in wrapper and \
            'optimizer' in wrapper:
        raise ConfigError(
            'optim_wrapper names no constructor: add constructor='
            "'mmpretrain.GuardedOptimWrapperConstructor' (it builds the "
            'wrappers that stop on a non-finite loss)')
