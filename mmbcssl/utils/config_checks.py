"""Pre-flight checks of config values and ``--cfg-options`` keys.

Without them a bad value surfaces as a traceback seconds into building the
model (an even kernel size, an unknown arch, a negative lr), or not at all:
mmengine merges a misspelt ``--cfg-options trian_cfg.max_epochs=1`` as a
new key that nothing reads, hands ``default_hooks.checkpoint.intervl=...``
to the checkpoint hook, which fails at its first save, an epoch later, and
accepts ``data_root=...``, a variable of the config file whose value was
copied into the data sets when the file was read. These checks run before
anything is built and raise :class:`ConfigError` with a one-line message.
"""
import ast
import difflib
import importlib
import inspect
import numbers
import os.path as osp
import re
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


def _loop_class(parents: List[str], node: Dict[str, Any]) -> Optional[type]:
    """The loop class mmengine's Runner builds from a ``train_cfg``,
    ``val_cfg`` or ``test_cfg`` without a ``type`` (``Runner.build_*_loop``:
    ``by_epoch`` picks the epoch- or the iteration-based train loop)."""
    if 'type' in node or len(parents) != 1:
        return None
    from mmengine.runner import (EpochBasedTrainLoop, IterBasedTrainLoop,
                                 TestLoop, ValLoop)
    if parents[0] == 'train_cfg':
        return EpochBasedTrainLoop if node.get('by_epoch', True) \
            else IterBasedTrainLoop
    return dict(val_cfg=ValLoop, test_cfg=TestLoop).get(parents[0])


def _loop_keys(parents: List[str], loop: type) -> List[str]:
    """The keys a type-less loop config may hold: the loop's arguments but
    those the runner passes itself, and ``by_epoch`` for ``train_cfg``."""
    params, _ = _component_params(loop, 'mmengine')
    keys = [p for p in params if p not in ('runner', 'dataloader',
                                           'evaluator')]
    return keys + ['by_epoch'] if parents == ['train_cfg'] else keys


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

    Also refused: an option that sets an existing top-level key nothing
    reads (a variable of the config file such as ``data_root`` or
    ``max_epochs``: its value was copied into other keys when the file was
    read, so setting it changes nothing), and a ``dict(...)`` inside a
    list, which mmengine's ``DictAction`` reads as a string.

    Args:
        cfg (Config): The config before the options are merged.
        options (dict, optional): ``--cfg-options`` as parsed by mmengine's
            ``DictAction`` (dotted keys).

    Raises:
        ConfigError: naming the option and, where one is close, the key
            that was probably meant, or the keys that hold a variable's
            value.
    """
    scope = cfg.get('default_scope') or 'mmengine'
    tree = cfg.to_dict() if isinstance(cfg, Config) else cfg
    readers = runner_keys()
    for dotted, value in (options or {}).items():
        _check_no_dict_strings(dotted, value)
        parts = dotted.split('.')
        if parts[0] in tree and parts[0] not in readers:
            raise ConfigError(_unread_variable(dotted, parts, tree, readers))
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


def _check_no_dict_strings(dotted: str, value: Any) -> None:
    """mmengine's ``DictAction`` parses lists and tuples of plain values;
    a ``dict(...)`` inside one becomes a string (two of them without a
    comma, one string), which fails once the part is built."""
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_no_dict_strings(dotted, item)
    elif isinstance(value, str) and re.match(r'\s*dict\(', value):
        raise ConfigError(
            f'--cfg-options {dotted}: {value[:40]!r} would be a string, not '
            'a dict (--cfg-options reads plain values and lists of them); '
            'set the '
            f'keys one by one ({dotted}.0.type=...) or put the list in a '
            'config file')


def _copied(value: Any, node: Any) -> bool:
    """Whether ``node`` holds ``value`` as a config file's variable puts
    it there: the same value (of the same type), or a string that starts
    with it (``data_root + 'annotations/...'``). Never for None and
    booleans, which say nothing of where they came from."""
    if value is None or isinstance(value, bool) or value == '':
        return False
    if isinstance(value, str):
        return isinstance(node, str) and node.startswith(value)
    return type(node) is type(value) and node == value


def _copies(value: Any, tree: Dict[str, Any],
            readers: List[str]) -> List[str]:
    """The dotted keys under the keys the runner reads whose value is
    (or starts with) ``value``."""
    found: List[str] = []

    def walk(node: Any, path: str) -> None:
        if _copied(value, node):
            found.append(path)
        elif isinstance(node, dict):
            for key, child in node.items():
                walk(child, f'{path}.{key}')
        elif isinstance(node, (list, tuple)):
            for i, child in enumerate(node):
                walk(child, f'{path}.{i}')

    for key, node in tree.items():
        if key in readers:
            walk(node, key)
    return found


def _unread_variable(dotted: str, parts: List[str], tree: Dict[str, Any],
                     readers: List[str]) -> str:
    """The message for an option that sets a variable of the config file:
    the keys where its value was copied, to set instead."""
    name, rest = parts[0], ''.join(f'.{p}' for p in parts[1:])
    value = tree[name]
    head = (f"--cfg-options {dotted}: '{name}' is a variable of the config "
            'file, used when the file was read; nothing reads it later, so '
            'setting it changes nothing.')
    keys = [k + rest for k in _copies(value, tree, readers)]
    if not keys:
        return (f'{head} Set the keys computed from it instead (its value '
                f'{_short(value)} appears in none as it is)')
    more = f' and {len(keys) - 6} more' if len(keys) > 6 else ''
    return (f'{head} Set the keys that hold its value {_short(value)} '
            f"instead: {', '.join(keys[:6])}{more}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + '...'


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
    loop = _loop_class(parents, node)
    if loop is not None:
        params, open_ = _loop_keys(parents, loop), False
    elif 'type' in node:
        params, open_ = _component_params(_built_type(parents, node), scope)
    else:
        params, open_ = [], True
    if key in params:
        return
    hint = _suggest(key, siblings + params)
    if hint or not open_:
        what = loop.__name__ if loop else \
            f"{node['type']}" if 'type' in node else where
        accepted = '' if hint or not params else \
            f"; it takes {', '.join(params)}"
        raise ConfigError(
            f"--cfg-options {dotted}: {where} has no key '{key}' and {what} "
            f'takes no such argument{hint}{accepted}')


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
    (>= 0), the keys of a loop config without a ``type``
    (:func:`check_loop_keys`), the optimizer's numbers
    (:func:`check_optimizer_values`), and the backbone's ``arch`` and
    (BC-SSL) ``kernel_size``.

    Raises:
        ConfigError: naming the key, the value and what is allowed.
    """
    check_loop_keys(cfg)
    check_optimizer_values(cfg)
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


def check_loop_keys(cfg: Config) -> None:
    """Refuse a key of ``train_cfg``, ``val_cfg`` or ``test_cfg`` (without
    a ``type``) that the loop mmengine's Runner builds from it does not
    take: the runner passes the dict on as keyword arguments, after the
    model is built."""
    for name in ('train_cfg', 'val_cfg', 'test_cfg'):
        node = cfg.get(name)
        if not isinstance(node, dict):
            continue
        loop = _loop_class([name], node)
        if loop is None:
            continue
        accepted = _loop_keys([name], loop)
        for key in node:
            if key not in accepted:
                raise ConfigError(
                    f"{name} has no key '{key}': {loop.__name__} takes "
                    f"{', '.join(accepted)}{_suggest(key, accepted)}")


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _optimizers(cfg: Config) -> List[Tuple[str, Dict[str, Any]]]:
    """``(dotted key, optimizer config)`` of every optim wrapper: one, or
    one per wrapper of a dict of wrappers."""
    wrapper = cfg.get('optim_wrapper')
    if not isinstance(wrapper, dict):
        return []
    if isinstance(wrapper.get('optimizer'), dict):
        return [('optim_wrapper.optimizer', wrapper['optimizer'])]
    return [(f'optim_wrapper.{name}.optimizer', sub['optimizer'])
            for name, sub in wrapper.items()
            if isinstance(sub, dict) and isinstance(sub.get('optimizer'),
                                                    dict)]


def check_optimizer_values(cfg: Config) -> None:
    """Optimizer numbers that torch refuses (or that cannot train) once
    the optimizer is built, at the start of ``runner.train()``: ``lr``,
    ``weight_decay`` and ``eps`` below 0, ``momentum`` outside [0, 1) (at
    1 the velocity never decays) and Adam's ``betas`` outside [0, 1)
    (``torch.optim.SGD``/``Adam`` check the same ranges but ``momentum <
    1``)."""
    for where, optimizer in _optimizers(cfg):
        for key in ('lr', 'weight_decay', 'eps'):
            value = optimizer.get(key)
            if _number(value) and value < 0:
                raise ConfigError(f'{where}.{key} must be >= 0, got {value}')
        momentum = optimizer.get('momentum')
        if _number(momentum) and not 0 <= momentum < 1:
            raise ConfigError(f'{where}.momentum must be in [0, 1) (e.g. '
                              f'0.9), got {momentum}')
        betas = optimizer.get('betas')
        if isinstance(betas, (list, tuple)) and not all(
                _number(b) and 0 <= b < 1 for b in betas):
            raise ConfigError(f'{where}.betas must each be in [0, 1) (e.g. '
                              f'(0.9, 0.999)), got {tuple(betas)}')


def syntax_error(path: str, error: SyntaxError) -> ConfigError:
    """A one-line error for a config file (or one of its ``_base_`` files)
    that is not valid Python, naming the file, the line and Python's
    reading of it (``Perhaps you forgot a comma?`` for a list of dicts
    without its comma).

    mmengine parses the files without their names, so the file is found
    again here: the first of ``path`` and its ``_base_`` files (depth
    first, as mmengine reads them) that does not parse.
    """
    found = _first_syntax_error(path, set())
    where, error = found if found else (f'{path} (or a _base_ file)', error)
    text = (error.text or '').strip()
    text = f' ({text[:40]}...)' if len(text) > 40 else \
        f' ({text})' if text else ''
    return ConfigError(f'config file {where} line {error.lineno}: '
                       f'{error.msg}{text}; fix it and run again')


def _first_syntax_error(path: str,
                        seen: set) -> Optional[Tuple[str, SyntaxError]]:
    path = osp.abspath(path)
    if path in seen or not osp.isfile(path):
        return None
    seen.add(path)
    try:
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), filename=path)
    except SyntaxError as e:
        return path, e
    for node in tree.body:
        targets = getattr(node, 'targets', [])
        if not any(getattr(t, 'id', None) == '_base_' for t in targets):
            continue
        value = node.value
        items = value.elts if isinstance(value, (ast.List, ast.Tuple)) \
            else [value]
        for item in items:
            if isinstance(item, ast.Constant) and isinstance(
                    item.value, str) and '::' not in item.value:
                found = _first_syntax_error(
                    osp.join(osp.dirname(path), item.value), seen)
                if found:
                    return found
    return None
