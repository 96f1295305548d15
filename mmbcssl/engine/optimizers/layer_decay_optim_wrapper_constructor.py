"""Layer-wise learning-rate decay for detectors and segmentors.

Why not the upstream constructors: mmdet 3.3's
``LearningRateDecayOptimizerConstructor`` only accepts backbones whose class
name contains ``ConvNeXt`` (so BC-SSL and Swin are refused), and mmpretrain's
``LearningRateDecayOptimWrapperConstructor`` calls ``get_layer_depth`` on the
*whole model*, which mmdet detectors and mmseg segmentors do not have. This
one asks the backbone, so it works for any model with a ``backbone`` that
implements ``get_layer_depth(param_name, prefix)`` (BC-SSL, mmpretrain's
ConvNeXt and SwinTransformer).

Conventions (ConvNeXt's detection/segmentation code,
facebookresearch/ConvNeXt ``object_detection/mmcv_custom/
layer_decay_optimizer_constructor.py``, carried into mmdet 3.x):

* layer-wise: the id comes from ``backbone.get_layer_depth``; for
  ConvNeXt-style backbones stem 0, stage 0 -> 1, stage 1 -> 2, stage 2
  block j -> 3 + j // 3, stage 3 -> ``num_layers``, anything else
  ``num_layers + 1``. ``lr = base_lr * rate ** (num_layers + 1 - id)``.
* stage-wise: stem and downsampling layers 0, ``stages.i`` -> i + 1,
  anything else ``num_layers + 1`` (same scale formula).
* weight decay 0 for biases, every 1-D parameter (norms, layer scales) and
  the position/relative-position tables; ``weight_decay`` for the rest.
"""
from typing import Callable, Dict, List, Optional, Tuple

import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS, OPTIMIZERS
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS

from .guarded_optim_wrapper_constructor import GuardedOptimWrapperConstructor

DECAY_TYPES = ('layer_wise', 'stage_wise')
# Parameters with no weight decay although they are not 1-D (Swin/ViT
# tables, as in the Swin and ConvNeXt detection configs).
NO_DECAY_KEYS = ('absolute_pos_embed', 'relative_position_bias_table',
                 'pos_embed', 'cls_token', 'mask_token')
# First names of stem modules in the backbones we support (BC-SSL and
# ConvNeXt: downsample_layers.0; Swin and ViT: patch_embed).
STEM_NAMES = ('downsample_layers', 'patch_embed', 'stem', 'conv1', 'bn1')
# paramwise_cfg keys this constructor reads, and the names ConvNeXt's and
# mmdet's layer-decay constructors give them (they spell the rate
# ``decay_rate``); any other key is refused rather than ignored.
ACCEPTED_KEYS = ('layer_decay_rate', 'decay_type', 'num_layers',
                 'no_decay_keys')
ALIASES = {'decay_rate': 'layer_decay_rate'}


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(GuardedOptimWrapperConstructor):
    """Parameter groups with layer-wise (or stage-wise) LR decay.

    The wrapper is the guarded variant of the configured type
    (:class:`GuardedOptimWrapperConstructor`): a NaN/Inf loss stops
    training, or skips the step, instead of spreading into the weights.

    ``paramwise_cfg`` keys:

    - ``layer_decay_rate`` (float): the decay rate; ``decay_rate``, the
      name in ConvNeXt's and mmdet's constructors, is accepted too.
      Defaults to 1.0.
    - ``decay_type`` (str): ``'layer_wise'`` or ``'stage_wise'``. Defaults
      to ``'layer_wise'``.
    - ``num_layers`` (int): the number of backbone layers in mmdet's
      convention (6 for ConvNeXt/BC-SSL-T, 12 for -S/-B and for Swin-T's 12
      blocks). Layer-wise: optional, and checked against what the backbone
      defines, so a T config cannot silently run with an S setting.
      Stage-wise: required.
    - ``no_decay_keys`` (Sequence[str]): name fragments whose parameters get
      no weight decay on top of biases and 1-D parameters. Defaults to
      :data:`NO_DECAY_KEYS`.

    Any other key is an error that lists the accepted ones: a misspelt or
    foreign key would otherwise leave the run without the decay it asks
    for.

    The groups are logged once when the optimizer is built: one line per
    (layer, decay) group, then ``name: lr_scale, weight_decay`` for every
    parameter.

    Example::

        optim_wrapper = dict(
            type='OptimWrapper',
            constructor='mmpretrain.LayerDecayOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
            paramwise_cfg=dict(layer_decay_rate=0.95, num_layers=6))
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        if is_model_wrapper(model):
            model = model.module
        optimizer_cfg = self.optimizer_cfg.copy()
        optimizer_cfg['params'] = self.param_groups(model)
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        return OPTIM_WRAPPERS.build(
            self.optim_wrapper_cfg.copy(),
            default_args=dict(optimizer=optimizer))

    def param_groups(self, model: nn.Module) -> List[dict]:
        """One group per (layer id, decay or not), in layer order.

        Each group carries ``lr``, ``weight_decay`` and, for logging and
        tests, ``layer_id``, ``lr_scale`` and ``param_names``.
        """
        cfg = normalised_paramwise_cfg(self.paramwise_cfg)
        rate = float(cfg.get('layer_decay_rate', 1.0))
        decay_type = cfg.get('decay_type', 'layer_wise')
        if decay_type not in DECAY_TYPES:
            raise ValueError(f'paramwise_cfg.decay_type={decay_type!r}; '
                             f'choose one of {DECAY_TYPES}')
        depth_of = self._depth_function(model, decay_type,
                                        cfg.get('num_layers'))
        no_decay_keys = tuple(cfg.get('no_decay_keys', NO_DECAY_KEYS))
        base_wd = self.optimizer_cfg.get('weight_decay', 0.)

        groups: Dict[Tuple[int, bool], dict] = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue  # frozen stages keep no optimizer state
            layer_id, num_layers = depth_of(name)
            no_decay = (
                param.ndim <= 1 or name.endswith('.bias')
                or any(k in name for k in no_decay_keys))
            key = (layer_id, no_decay)
            if key not in groups:
                scale = rate**(num_layers - 1 - layer_id)
                groups[key] = dict(
                    params=[],
                    param_names=[],
                    layer_id=layer_id,
                    lr_scale=scale,
                    lr=self.base_lr * scale,
                    weight_decay=0. if no_decay else base_wd)
            groups[key]['params'].append(param)
            groups[key]['param_names'].append(name)
        ordered = [groups[k] for k in sorted(groups)]
        self._log_groups(ordered, decay_type, rate)
        return ordered

    @staticmethod
    def _depth_function(model: nn.Module, decay_type: str,
                        num_layers: Optional[int]) -> Callable:
        backbone = getattr(model, 'backbone', None)
        if backbone is None:
            raise TypeError(
                f'{type(model).__name__} has no `backbone`; layer-wise LR '
                'decay needs a detector, segmentor or classifier with one')
        if decay_type == 'stage_wise':
            if num_layers is None:
                raise ValueError('stage_wise decay needs '
                                 'paramwise_cfg.num_layers (6 for -T '
                                 'ConvNeXt-style backbones)')
            return lambda name: _stage_depth(name, int(num_layers))
        unsupported = TypeError(
            f'backbone {type(backbone).__name__} does not define '
            '`get_layer_depth(param_name, prefix)` for this architecture; '
            'layer-wise decay '
            'supports BCSSL, ConvNeXt and SwinTransformer (mmpretrain), '
            "or use decay_type='stage_wise'")
        if not hasattr(backbone, 'get_layer_depth'):
            raise unsupported
        # Backbones report num_layers + 2 (stem .. num_layers, then the rest).
        try:
            _, defined = backbone.get_layer_depth('backbone.', 'backbone.')
        except NotImplementedError:  # mmpretrain's ResNet has a stub
            raise unsupported from None
        if num_layers is not None and int(num_layers) + 2 != defined:
            raise ValueError(
                f'paramwise_cfg.num_layers={num_layers} but the backbone '
                f'{type(backbone).__name__} defines {defined - 2} layers; '
                f'set num_layers={defined - 2} (or leave it out)')
        return lambda name: backbone.get_layer_depth(name, 'backbone.')

    @staticmethod
    def _log_groups(groups: List[dict], decay_type: str, rate: float):
        logger = MMLogger.get_current_instance()
        lines = [
            f'{decay_type} LR decay, rate {rate}: '
            f'{len(groups)} parameter groups'
        ]
        for g in groups:
            lines.append(
                f'  layer {g["layer_id"]:>2} lr_scale {g["lr_scale"]:.4f} '
                f'lr {g["lr"]:.3g} weight_decay {g["weight_decay"]:.3g} '
                f'({len(g["params"])} tensors, first '
                f'{g["param_names"][0]})')
        lines.append('  parameter: lr_scale, weight_decay')
        lines.extend(f'  {n}: {g["lr_scale"]:.4f}, {g["weight_decay"]:.3g}'
                     for g in groups for n in g['param_names'])
        logger.info('\n'.join(lines))


def normalised_paramwise_cfg(cfg: Dict) -> Dict:
    """``cfg`` with aliases renamed; unknown keys refused.

    Raises:
        ValueError: a key that is neither accepted nor an alias, or a key
            given under both of its names.
    """
    out = {}
    for key, value in dict(cfg or {}).items():
        name = ALIASES.get(key, key)
        if name not in ACCEPTED_KEYS:
            raise ValueError(
                f'paramwise_cfg.{key} is not a LayerDecayOptimWrapper'
                f'Constructor setting; accepted: {", ".join(ACCEPTED_KEYS)} '
                f'(aliases: ' + ', '.join(
                    f'{a} = {b}' for a, b in ALIASES.items()) + ')')
        if name in out:
            raise ValueError(f'paramwise_cfg sets {name} twice (as {key} '
                             'and under its other name); keep one')
        out[name] = value
    return out


def _stage_depth(name: str, num_layers: int) -> Tuple[int, int]:
    """Stage-wise id: stem/downsampling 0, ``stages.i`` i + 1, rest on top."""
    top = num_layers + 1
    if not name.startswith('backbone.'):
        return top, num_layers + 2
    first, _, rest = name[len('backbone.'):].partition('.')
    if first in STEM_NAMES:
        return 0, num_layers + 2
    if first == 'stages':
        return int(rest.split('.')[0]) + 1, num_layers + 2
    return top, num_layers + 2
