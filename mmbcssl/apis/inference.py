"""Build models from configs: the one way the tools, benchmarks,
visualisation and checks do it (:func:`build_from_config`), and a frozen
feature extractor with its checkpoint (:func:`init_backbone`)."""
import copy
import re
from collections import OrderedDict
from typing import Dict, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config

from mmbcssl.fileio import check_finite_weights, safe_torch_load

# Where a backbone's weights sit in the checkpoints this project reads, in
# the order they are tried: a whole DINO/EsViT checkpoint holds the teacher
# under ``teacher.backbone.`` (the k-NN protocol evaluates the teacher), an
# extracted file or a classifier under ``backbone.``.
BACKBONE_PREFIXES = ('teacher.backbone.', 'backbone.')

# The registry scope of a config that names none: every model this project
# builds is registered in (or reachable from) mmpretrain's registries.
DEFAULT_SCOPE = 'mmpretrain'


def load_model_config(config: Union[str, Config],
                      cfg_options: Optional[Mapping] = None) -> Config:
    """``config`` read (a path) or as it is (a Config), ``cfg_options``
    merged in."""
    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    return cfg


def use_config_scope(cfg: Config) -> str:
    """Make the config's ``default_scope`` (else :data:`DEFAULT_SCOPE`) the
    current registry scope, as mmengine's Runner does; returns it."""
    from mmengine.registry import DefaultScope, init_default_scope
    scope = cfg.get('default_scope') or DEFAULT_SCOPE
    current = DefaultScope.get_current_instance()
    if current is None or current.scope_name != scope:
        init_default_scope(scope)
    return scope


def build_from_config(cfg: Config, part: Optional[Mapping] = None
                      ) -> nn.Module:
    """Build ``part`` of ``cfg`` (default: ``cfg.model``) in the config's
    registry scope; ``part`` itself is left as it was."""
    from mmpretrain.registry import MODELS
    use_config_scope(cfg)
    return MODELS.build(copy.deepcopy(cfg.model if part is None else part))


class CheckpointMismatchError(ValueError):
    """A checkpoint does not hold weights for the backbone it is meant for."""


def strip_wrappers(state_dict: Dict[str, torch.Tensor]) -> OrderedDict:
    """Drop DDP's ``module.`` prefixes."""
    out = OrderedDict()
    for k, v in state_dict.items():
        while k.startswith('module.'):
            k = k[len('module.'):]
        out[k] = v
    return out


def state_dict_of(loaded, checkpoint: str) -> Dict:
    """What ``torch.load`` read from ``checkpoint``, as a state dict: its
    ``state_dict`` entry when it has one, else the dict itself.

    Raises:
        CheckpointMismatchError: it holds no dict of weights (e.g. a bare
            tensor saved with ``torch.save(tensor, path)``).
    """
    state = loaded.get('state_dict', loaded) \
        if isinstance(loaded, dict) else loaded
    if not isinstance(state, dict):
        what = type(state).__name__
        if isinstance(state, torch.Tensor):
            what += f' of shape {tuple(state.shape)}'
        raise CheckpointMismatchError(
            f'{checkpoint} holds a {what}, not a checkpoint; expected a dict '
            "of weights or one with a 'state_dict' entry (what mmengine, "
            'DINO and the tools of this project save)')
    return state


def read_state_dict(checkpoint: str) -> OrderedDict:
    """The state dict of a checkpoint file, read through the safe loader,
    out of its ``state_dict`` entry when it has one, DDP prefixes dropped.

    Raises:
        CheckpointMismatchError: the file holds no state dict.
    """
    loaded = safe_torch_load(checkpoint, map_location='cpu')
    return strip_wrappers(state_dict_of(loaded, checkpoint))


def sub_state(state: Dict, prefix: str) -> Dict:
    """The entries under ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items()
            if k.startswith(prefix)}


def first_shape_mismatch(module: nn.Module, state: Dict
                         ) -> Optional[Tuple[str, tuple, tuple]]:
    """The first key of ``state`` that ``module`` has with another shape,
    as (key, shape in ``state``, shape in ``module``); None when all fit.
    (load_state_dict reports these as one multi-line RuntimeError.)"""
    own = module.state_dict()
    for k, v in state.items():
        if k in own and own[k].shape != v.shape:
            return k, tuple(v.shape), tuple(own[k].shape)
    return None


# Backbone settings that add or remove parameters, by a pattern of the
# keys they own: the likely cause of keys that a checkpoint and a config do
# not share (mmpretrain's ConvNeXt, Swin and ViT, BC-SSL's block).
_KEY_SETTINGS = (
    (r'\.gamma\d?$', 'layer_scale_init_value (0 builds no layer scale)'),
    (r'\.dw_norm\.', 'dw_norm_cfg (None builds no norm after the '
     'depthwise conv) or deploy'),
    (r'\.small_(conv|norm)\.', 'small_kernel'),
    (r'\.grn\.', 'use_grn'),
    (r'^norm\d', 'out_indices (one output norm per output stage)'),
)


def _likely_setting(keys) -> str:
    for pattern, setting in _KEY_SETTINGS:
        if any(re.search(pattern, k) for k in keys):
            return f'; check model.backbone.{setting}'
    return ''


# The fix when no setting of _KEY_SETTINGS explains the extra weights.
_SMALLER = ('; the config builds fewer parameters than the model that was '
            'saved: compare its model.backbone with the training config')


class UnexpectedWeightsError(CheckpointMismatchError):
    """A checkpoint holds backbone weights that the backbone does not
    have: loading the rest would compute another function."""


def load_backbone_weights(backbone: nn.Module, checkpoint: str,
                          allow_partial: bool = False) -> str:
    """Load the backbone weights of ``checkpoint`` into ``backbone``.

    Args:
        backbone (nn.Module): The backbone to fill.
        checkpoint (str): A whole pre-training checkpoint (its teacher is
            loaded) or a file with ``backbone.*`` keys.
        allow_partial (bool): Load what fits and skip backbone weights that
            the backbone does not have (by default they are refused: a
            config that builds fewer parameters, e.g.
            ``layer_scale_init_value=0``, would silently compute another
            function). Missing and misshapen weights are always refused.
            Defaults to False.

    Returns:
        str: The prefix the weights were found under.

    Raises:
        CheckpointMismatchError: no backbone keys, keys of another shape,
            keys that leave backbone weights missing, or (without
            ``allow_partial``) backbone keys the backbone does not have.
        NonFiniteError: a backbone weight holds NaN or Inf.
    """
    state = read_state_dict(checkpoint)
    for prefix in BACKBONE_PREFIXES:
        sub = sub_state(state, prefix)
        if not sub:
            continue
        mismatch = first_shape_mismatch(backbone, sub)
        if mismatch:
            k, theirs, ours = mismatch
            raise CheckpointMismatchError(
                f'{checkpoint}: {prefix}{k} has shape {theirs}, this '
                f'{type(backbone).__name__} expects {ours}; it was trained '
                'with another architecture (kernel size, width, depth?)')
        check_finite_weights({prefix + k: v for k, v in sub.items()},
                             checkpoint)
        missing, unexpected = backbone.load_state_dict(sub, strict=False)
        if missing:
            raise CheckpointMismatchError(
                f'{checkpoint}: {len(missing)} backbone weights missing '
                f'(first: {", ".join(missing[:10])}); it does not match '
                f'this {type(backbone).__name__}{_likely_setting(missing)}')
        if unexpected and not allow_partial:
            raise UnexpectedWeightsError(
                f'{checkpoint}: {len(unexpected)} backbone weights that '
                f'this {type(backbone).__name__} does not have (first: '
                f'{", ".join(unexpected[:5])})'
                f'{_likely_setting(unexpected) or _SMALLER}')
        return prefix
    roots = sorted({k.split('.')[0] for k in state})
    raise CheckpointMismatchError(
        f'{checkpoint} has no backbone.* or teacher.backbone.* weights (its '
        f'top-level keys: {roots[:10]})')


def init_backbone(config: Union[str, Config],
                  checkpoint: Optional[str] = None,
                  seed: int = 0,
                  device: Union[str, torch.device] = 'cpu',
                  deploy: bool = False,
                  channels_last: bool = False,
                  allow_partial: bool = False) -> nn.ModuleDict:
    """The backbone (and neck) of ``config`` in eval mode, with weights.

    Args:
        config (str | Config): Any config whose ``model`` has a backbone: a
            DINO/EsViT pre-training config or a classifier config.
        checkpoint (str, optional): Weights (see
            :func:`load_backbone_weights`). Without one, the backbone keeps
            the random initialisation drawn under ``seed``, so that a
            random-init baseline is the same network in every run.
        seed (int): Seed of the random initialisation. The caller's random
            state is left as it was. Defaults to 0.
        device (str | torch.device): Defaults to 'cpu'.
        deploy (bool): Fold BatchNorms into the convolutions they follow
            (``switch_to_deploy()``, where the backbone has it): the same
            function, fewer operations. Defaults to False.
        channels_last (bool): Keep the weights in the channels-last layout
            (feed it channels-last images): the faster layout for the
            depthwise convolutions of BC-SSL on CPU and with cuDNN.
            Defaults to False.
        allow_partial (bool): Skip checkpoint weights the backbone does
            not have (see :func:`load_backbone_weights`). Defaults to False.

    Returns:
        nn.ModuleDict: ``backbone`` and, if the config has one, ``neck``.
    """
    cfg = load_model_config(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = build_from_config(cfg, cfg.model.backbone)
        neck = build_from_config(cfg, cfg.model.neck) \
            if cfg.model.get('neck') else None
        if checkpoint is None:
            backbone.init_weights()
    if checkpoint is not None:
        load_backbone_weights(backbone, checkpoint, allow_partial)
    if deploy and hasattr(backbone, 'switch_to_deploy'):
        backbone.switch_to_deploy()
    model = nn.ModuleDict(dict(backbone=backbone))
    if neck is not None:
        model['neck'] = neck
    model = model.to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model
