"""Export a BC-SSL (or ConvNeXt) backbone to timm's ConvNeXt layout.

BC-SSL's BatchNorm after each depthwise convolution (and a RepLKNet-style
small kernel, if any) folds into the convolution for inference
(:meth:`mmbcssl.models.BCSSL.switch_to_deploy`); what is left is exactly a
ConvNeXt block with a large kernel, which timm builds with
``kernel_sizes``, e.g. ``timm.create_model('convnext_tiny', kernel_sizes=9,
num_classes=0)`` for BC-SSL-T 9x9. The eval-mode outputs are equal (the BN
uses its running statistics, as in any frozen evaluation).

Renames (the reverse of :mod:`mmbcssl.converters.timm`):
``downsample_layers.0.{0,1}`` -> ``stem.{0,1}``,
``downsample_layers.i.{0,1}`` -> ``stages.i.downsample.{0,1}``,
``stages.i.j.{depthwise_conv, norm, pointwise_conv1, pointwise_conv2,
gamma}`` -> ``stages.i.blocks.j.{conv_dw, norm, mlp.fc1, mlp.fc2, gamma}``,
the last stage's ``norm{i}`` -> ``head.norm``. There is no classifier: the
timm model is built with ``num_classes=0``.
"""
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional

import torch

from .base import ConversionError, Rule, apply_rules
from .targets import KeyReport, build_backbone, check_against
from .timm import conv1x1_as_linear

_PARAM = r'(weight|bias)'
_BLOCK = r'stages\.(\d+)\.(\d+)'

# (depths, dims) of timm's ConvNeXt variants with Linear MLPs
# (timm/models/convnext.py; atto .. nano use 1x1 convolutions instead).
TIMM_VARIANTS = {
    ((3, 3, 9, 3), (96, 192, 384, 768)): 'convnext_tiny',
    ((3, 3, 27, 3), (96, 192, 384, 768)): 'convnext_small',
    ((3, 3, 27, 3), (128, 256, 512, 1024)): 'convnext_base',
    ((3, 3, 27, 3), (192, 384, 768, 1536)): 'convnext_large',
    ((3, 3, 27, 3), (256, 512, 1024, 2048)): 'convnext_xlarge',
}


@dataclass
class TimmExport:
    """Weights for timm's ``ConvNeXt`` and how to build it.

    Attributes:
        state_dict: timm keys.
        model_kwargs: ``timm.models.convnext.ConvNeXt`` arguments.
        model_name: The ``timm.create_model`` name with the same depths and
            widths, or None.
        report: How the keys fit the timm model built from
            ``model_kwargs``.
    """
    state_dict: Dict[str, torch.Tensor]
    model_kwargs: Dict[str, Any]
    model_name: Optional[str]
    report: KeyReport

    def create_model_call(self, path: str) -> str:
        """The Python line that builds the timm model with these weights."""
        if self.model_name:
            extra = {k: v for k, v in self.model_kwargs.items()
                     if k not in ('depths', 'dims')}
            args = ''.join(f', {k}={v!r}' for k, v in extra.items())
            return (f'timm.create_model({self.model_name!r}{args}, '
                    f'pretrained=True, pretrained_cfg_overlay=dict('
                    f'file={path!r}))')
        args = ', '.join(f'{k}={v!r}' for k, v in self.model_kwargs.items())
        return (f'm = timm.models.convnext.ConvNeXt({args}); '
                f'timm.models.load_checkpoint(m, {path!r})')


def timm_rules(last_stage: int):
    """mmpretrain ConvNeXt / deployed BCSSL -> timm ConvNeXt rules."""
    return (
        Rule(rf'downsample_layers\.0\.([01])\.{_PARAM}', r'stem.\1.\2'),
        Rule(rf'downsample_layers\.(\d+)\.([01])\.{_PARAM}',
             r'stages.\1.downsample.\2.\3'),
        Rule(rf'{_BLOCK}\.depthwise_conv\.{_PARAM}',
             r'stages.\1.blocks.\2.conv_dw.\3'),
        Rule(rf'{_BLOCK}\.norm\.{_PARAM}', r'stages.\1.blocks.\2.norm.\3'),
        Rule(rf'{_BLOCK}\.pointwise_conv([12])\.{_PARAM}',
             r'stages.\1.blocks.\2.mlp.fc\3.\4', conv1x1_as_linear),
        Rule(rf'{_BLOCK}\.gamma', r'stages.\1.blocks.\2.gamma'),
        Rule(rf'norm{last_stage}\.{_PARAM}', r'head.norm.\1'),
    )


def _timm_kwargs(backbone: torch.nn.Module,
                 state: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    kernels = list(backbone.kernel_sizes)
    kwargs = dict(
        depths=tuple(backbone.depths),
        dims=tuple(backbone.channels),
        kernel_sizes=kernels[0] if len(set(kernels)) == 1 else
        tuple(kernels),
        num_classes=0)
    if 'stages.0.0.gamma' not in state:
        kwargs['ls_init_value'] = None
    stem = state['downsample_layers.0.0.weight'].shape[-1]
    if stem != 4:
        kwargs['patch_size'] = stem
    return kwargs


def export_to_timm(state_dict: Mapping[str, torch.Tensor],
                   backbone_cfg: dict,
                   backbone: Optional[torch.nn.Module] = None) -> TimmExport:
    """Fold and rename BCSSL weights into timm's ConvNeXt layout.

    Args:
        state_dict: Weights of the backbone ``backbone_cfg`` describes
            (mmpretrain layout, no ``backbone.`` prefix).
        backbone_cfg: A ``BCSSL`` config (with or without ``dw_norm_cfg``).
        backbone: That backbone already built, to be filled and folded
            (it is modified). Defaults to None (built here).

    Returns:
        TimmExport: timm weights, the model arguments and the key report.

    Raises:
        ConversionError: Not a ``BCSSL`` backbone, or weights missing.
    """
    import timm.models.convnext as timm_convnext
    if backbone_cfg.get('type') not in ('BCSSL', 'mmpretrain.BCSSL'):
        raise ConversionError(
            '--to timm exports ConvNeXt-family backbones (BC-SSL, '
            f'ConvNeXt), not {backbone_cfg.get("type")}')
    if backbone is None:
        backbone = build_backbone(backbone_cfg)
    missing, _ = backbone.load_state_dict(state_dict, strict=False)
    missing = [k for k in missing if not k.endswith('num_batches_tracked')]
    if missing:
        raise ConversionError(
            f'cannot export to timm with {len(missing)} backbone weights '
            f'missing (first: {", ".join(missing[:10])})')
    backbone.eval()
    backbone.switch_to_deploy()  # dw BN (and small kernel) -> dw conv
    folded = backbone.state_dict()
    last = len(backbone.depths) - 1
    # Extra output norms of dense-prediction configs have no timm place.
    converted = apply_rules(folded, timm_rules(last),
                            drop=[rf'norm(?!{last}\.)\d+\..*'])
    kwargs = _timm_kwargs(backbone, folded)
    # Only the key names and shapes of the timm model are needed.
    with torch.device('meta'):
        model = timm_convnext.ConvNeXt(**kwargs)
    report, out = check_against(converted, model)
    if report.unmatched:
        raise ConversionError(
            'the folded backbone does not fit timm\'s ConvNeXt('
            f'{kwargs}): {", ".join(report.differing()[:10])}')
    name = TIMM_VARIANTS.get((kwargs['depths'], kwargs['dims'])) \
        if kwargs.get('patch_size', 4) == 4 and \
        'ls_init_value' not in kwargs else None
    return TimmExport(dict(out), kwargs, name, report)
