"""timm ``convnext_*`` and ``swin_*`` weights.

Read: a plain state dict (timm's hub files, ``.pth``/``.bin`` or
``.safetensors``, or ``model.state_dict()``), or a checkpoint of timm's
``train.py`` (``{'state_dict', 'state_dict_ema', 'optimizer', 'args', ...}``;
``args`` is a pickled ``argparse.Namespace``, allowed by the safe
loader), whose ``state_dict`` is taken (as timm's
``validate.py`` does without ``--use-ema``).

Layouts (``timm/models/convnext.py`` and ``swin_transformer.py``; their
``checkpoint_filter_fn`` maps the original layouts to these):

* ConvNeXt: ``stem.{0,1}`` and ``stages.i.downsample.{0,1}`` ->
  ``downsample_layers.i.{0,1}``; ``stages.i.blocks.j.{conv_dw, norm,
  mlp.fc1, mlp.fc2, gamma}`` -> ``stages.i.j.{depthwise_conv, norm,
  pointwise_conv1, pointwise_conv2, gamma}`` (the 1x1 convolutions of
  ``conv_mlp`` models become the equal Linear weights); ``head.norm`` ->
  the last stage's ``norm{i}``; the classifier ``head.fc`` (and
  ``head.pre_logits``) is dropped. ``convnextv2_*`` (GRN) and
  ``head_norm_first`` models have no counterpart and stay unrecognised.
* Swin (timm >= 0.9): the patch merging sits at the start of the next stage
  (``layers.{i+1}.downsample``), where the original layout has it at the end
  of stage i; it is moved back and the file then converts as an original
  Swin (:mod:`mmbcssl.converters.esvit`). Files of older timm versions are
  already in the original layout.
"""
import re
from collections import OrderedDict
from typing import Any, Iterable, Optional

import torch

from .base import (ConversionError, Converted, Rule, Selected, SourceFormat,
                   StateDict, apply_rules, count_indices, head_keys,
                   is_state_dict, other_entries, register_format, strip_ddp)
from .esvit import convert_swin, is_swin_layout

_PARAM = r'(weight|bias)'
_BLOCK = r'stages\.(\d+)\.blocks\.(\d+)'
# timm/models/swin_transformer.py: norm_layer=nn.LayerNorm
TIMM_SWIN_LAYER_NORM_EPS = 1e-5


def conv1x1_as_linear(value: torch.Tensor) -> torch.Tensor:
    """``[out, in, 1, 1]`` -> ``[out, in]`` (Linear weights stay)."""
    if value.dim() == 4:
        if value.shape[-2:] != (1, 1):
            raise ConversionError('a ConvNeXt MLP convolution is not 1x1: '
                                  f'{tuple(value.shape)}')
        return value.flatten(1)
    return value


def timm_convnext_rules(num_stages: int):
    """timm ConvNeXt -> mmpretrain ConvNeXt / BCSSL rules."""
    last = num_stages - 1
    return (
        Rule(rf'stem\.([01])\.{_PARAM}', r'downsample_layers.0.\1.\2'),
        Rule(rf'stages\.(\d+)\.downsample\.([01])\.{_PARAM}',
             r'downsample_layers.\1.\2.\3'),
        Rule(rf'{_BLOCK}\.conv_dw\.{_PARAM}',
             r'stages.\1.\2.depthwise_conv.\3'),
        Rule(rf'{_BLOCK}\.norm\.{_PARAM}', r'stages.\1.\2.norm.\3'),
        Rule(rf'{_BLOCK}\.mlp\.fc([12])\.{_PARAM}',
             r'stages.\1.\2.pointwise_conv\3.\4', conv1x1_as_linear),
        Rule(rf'{_BLOCK}\.gamma', r'stages.\1.\2.gamma'),
        Rule(rf'head\.norm\.{_PARAM}', rf'norm{last}.\1'),
    )


TIMM_CONVNEXT_DROP = (r'head\.fc\..*', r'head\.pre_logits\..*')


def is_timm_convnext_layout(keys: Iterable[str]) -> bool:
    keys = set(keys)
    return 'stem.0.weight' in keys and \
        'stages.0.blocks.0.conv_dw.weight' in keys


def is_timm_swin_layout(keys: Iterable[str]) -> bool:
    """timm >= 0.9 Swin (merging at the start of stages 1, 2, ...)."""
    keys = set(keys)
    return 'patch_embed.proj.weight' in keys and \
        'layers.0.blocks.0.attn.qkv.weight' in keys and \
        'layers.1.downsample.reduction.weight' in keys and \
        'layers.0.downsample.reduction.weight' not in keys


def swin_to_original(state_dict: StateDict) -> 'OrderedDict[str, Any]':
    """timm >= 0.9 Swin keys -> the original layout (the reverse of the
    renames in timm's ``swin_transformer.checkpoint_filter_fn``)."""
    out = OrderedDict()
    for k, v in state_dict.items():
        k = re.sub(r'^layers\.(\d+)\.downsample\.',
                   lambda m: f'layers.{int(m.group(1)) - 1}.downsample.', k)
        k = re.sub(r'^head\.fc\.', 'head.', k)
        out[k] = v
    return out


def convert_timm_convnext(state_dict: StateDict) -> Converted:
    depths = count_indices(state_dict, _BLOCK)
    return apply_rules(state_dict, timm_convnext_rules(len(depths)),
                       TIMM_CONVNEXT_DROP)


@register_format
class TimmFormat(SourceFormat):
    """timm ConvNeXt (``convnext_*``) and Swin (``swin_*``) weights."""
    name = 'timm'
    description = ('timm convnext_* / swin_*: state dict (.pth, .bin, '
                   '.safetensors) or train.py checkpoint')

    @staticmethod
    def _network(ckpt: Any) -> Optional[StateDict]:
        if isinstance(ckpt, dict) and is_state_dict(ckpt.get('state_dict')):
            return ckpt['state_dict']
        return ckpt if is_state_dict(ckpt) else None

    def detect(self, ckpt: Any) -> bool:
        state = self._network(ckpt)
        if state is None:
            return False
        keys = strip_ddp(state)
        return is_timm_convnext_layout(keys) or is_timm_swin_layout(keys) \
            or is_swin_layout(keys)  # timm < 0.9

    def select(self, ckpt: Any, weights: Optional[str]) -> Selected:
        self._check_weights(weights)
        state = self._network(ckpt)
        if state is None:
            raise ConversionError(
                "not a timm checkpoint: no 'state_dict' and not a plain "
                'state dict')
        left_out = other_entries(ckpt, ['state_dict']) \
            if state is not ckpt else []
        return Selected(strip_ddp(state), None, left_out)

    def convert(self, state_dict: StateDict) -> Converted:
        if is_timm_convnext_layout(state_dict):
            return convert_timm_convnext(state_dict)
        # timm builds Swin's LayerNorms with nn.LayerNorm's default eps
        if is_timm_swin_layout(state_dict):
            return convert_swin(swin_to_original(state_dict),
                                TIMM_SWIN_LAYER_NORM_EPS)
        if is_swin_layout(state_dict):  # timm < 0.9
            return convert_swin(state_dict, TIMM_SWIN_LAYER_NORM_EPS)
        raise ConversionError(
            'not a timm ConvNeXt or Swin: expected '
            "'stem.0.weight' + 'stages.0.blocks.0.conv_dw.weight' or "
            "'patch_embed.proj.weight' + 'layers.0.blocks.0.attn.qkv.weight';"
            f' first keys: {head_keys(state_dict)}')
