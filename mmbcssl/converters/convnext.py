"""facebookresearch/ConvNeXt checkpoints.

The released ImageNet weights are ``{'model': state_dict}``; training
checkpoints (``utils.save_model`` of the ConvNeXt repo) add ``optimizer``,
``epoch``, ``scaler``, ``args`` (a pickled ``argparse.Namespace``, allowed
by the safe loader) and, with EMA, ``model_ema``. ``model`` is taken.

The layout (``models/convnext.py``) is almost mmpretrain's ``ConvNeXt``,
whose names this project's ``BCSSL`` keeps (``configs/_base_/models/
convnext-t_7x7.py`` builds ConvNeXt-T as ``BCSSL`` without the depthwise
BatchNorm): ``dwconv`` -> ``depthwise_conv``, ``pwconv1/2`` ->
``pointwise_conv1/2``, and the final ``norm`` (applied to the pooled
feature, as mmpretrain's with ``gap_before_final_norm``) -> the last stage's
``norm{i}``. ``downsample_layers`` and ``gamma`` keep their names. The
ImageNet classifier ``head`` is dropped.
"""
from typing import Any, Iterable, Optional

from .base import (ConversionError, Converted, Rule, Selected, SourceFormat,
                   StateDict, apply_rules, count_indices, head_keys,
                   is_state_dict, other_entries, register_format, strip_ddp)

_PARAM = r'(weight|bias)'
_BLOCK = r'stages\.(\d+)\.(\d+)'


def convnext_rules(num_stages: int):
    """facebookresearch ConvNeXt -> mmpretrain ConvNeXt / BCSSL rules."""
    last = num_stages - 1
    return (
        Rule(rf'downsample_layers\.(\d+)\.([01])\.{_PARAM}',
             r'downsample_layers.\1.\2.\3'),
        Rule(rf'{_BLOCK}\.dwconv\.{_PARAM}',
             r'stages.\1.\2.depthwise_conv.\3'),
        Rule(rf'{_BLOCK}\.norm\.{_PARAM}', r'stages.\1.\2.norm.\3'),
        Rule(rf'{_BLOCK}\.pwconv([12])\.{_PARAM}',
             r'stages.\1.\2.pointwise_conv\3.\4'),
        Rule(rf'{_BLOCK}\.gamma', r'stages.\1.\2.gamma'),
        Rule(rf'norm\.{_PARAM}', rf'norm{last}.\1'),
    )


CONVNEXT_DROP = (r'head\..*', )


def is_convnext_layout(keys: Iterable[str]) -> bool:
    keys = set(keys)
    return 'downsample_layers.0.0.weight' in keys and \
        'stages.0.0.dwconv.weight' in keys


def convert_convnext(state_dict: StateDict) -> Converted:
    """facebookresearch-layout ConvNeXt -> mmpretrain ConvNeXt keys."""
    if not is_convnext_layout(state_dict):
        raise ConversionError(
            'not a ConvNeXt backbone in the facebookresearch layout: '
            "expected 'downsample_layers.0.0.weight' and "
            f"'stages.0.0.dwconv.weight'; first keys: "
            f'{head_keys(state_dict)}')
    depths = count_indices(state_dict, _BLOCK)
    return apply_rules(state_dict, convnext_rules(len(depths)),
                       CONVNEXT_DROP)


@register_format
class ConvNeXtFormat(SourceFormat):
    """facebookresearch/ConvNeXt released weights and training checkpoints."""
    name = 'convnext'
    description = ("facebookresearch/ConvNeXt: {'model': ...} release or "
                   'training checkpoint')

    @staticmethod
    def _network(ckpt: Any) -> Optional[StateDict]:
        if isinstance(ckpt, dict) and is_state_dict(ckpt.get('model')):
            return ckpt['model']
        return ckpt if is_state_dict(ckpt) else None

    def detect(self, ckpt: Any) -> bool:
        state = self._network(ckpt)
        return state is not None and is_convnext_layout(strip_ddp(state))

    def select(self, ckpt: Any, weights: Optional[str]) -> Selected:
        self._check_weights(weights)
        state = self._network(ckpt)
        if state is None:
            raise ConversionError(
                "not a ConvNeXt checkpoint: no 'model' state dict and not a "
                'plain state dict')
        left_out = other_entries(ckpt, ['model']) \
            if state is not ckpt else []
        return Selected(strip_ddp(state), None, left_out)

    def convert(self, state_dict: StateDict) -> Converted:
        return convert_convnext(state_dict)
