"""The backbone converted weights are for, and the report of how they fit.

Every converter writes keys of one of four mmpretrain-registered backbones:
``ResNet``, ``VisionTransformer``, ``SwinTransformer`` (built as this
project's ``OriginalSwinTransformer``, the reference network in the same
layout) or this project's ``BCSSL`` (ConvNeXt with or without the depthwise
BatchNorm). Without a config, :func:`infer_backbone_cfg` reads the
architecture off the converted tensors (stage depths, widths, kernel and
window sizes) and takes the LayerNorm eps from the source format; with
one, the config's ``model.backbone`` is the target.
:func:`check_against` sorts every key into matched, missing and
unexpected; :func:`layer_norm_eps_mismatches` finds LayerNorms of the target
that are not built as the source's.
"""
import copy
import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from mmbcssl.apis.inference import DEFAULT_SCOPE
from .base import ConversionError, Converted, count_indices, head_keys

# Buffers a backbone computes itself from its architecture (Swin's
# relative-position index) or that no eval-mode forward reads (BatchNorm's
# update counter); when a source lacks them the target keeps its own.
RECOMPUTED_BUFFERS = ('relative_position_index', 'num_batches_tracked')
# Output norms of extra out_indices (dense prediction): they are not part of
# pre-training and start fresh, as in mmdet's own ConvNeXt and Swin configs.
_OUT_NORM = re.compile(r'^norm(\d+)\.')


def target_family(keys) -> Optional[str]:
    """Which mmpretrain backbone a target-layout state dict is for."""
    keys = set(keys)
    if 'layer1.0.conv1.weight' in keys:
        return 'resnet'
    if 'layers.0.attn.qkv.weight' in keys:
        return 'vit'
    if 'stages.0.blocks.0.attn.w_msa.qkv.weight' in keys:
        return 'swin'
    if 'stages.0.0.depthwise_conv.weight' in keys:
        return 'bcssl'
    return None


def _arch_name(zoo: Mapping[str, dict], settings: dict) -> Optional[str]:
    """The name of the first ``zoo`` entry whose settings equal
    ``settings``, spelled out (``'deit-small'`` for ``'deit-s'``, ``'tiny'``
    for ``'t'``; not a later family with equal settings such as
    ``'dinov2-small'``), or None."""
    names = [n for n, s in zoo.items() if dict(s) == settings]
    if not names:
        return None
    family = names[0].split('-')[0]
    return max((n for n in names if n.split('-')[0].startswith(family)),
               key=len)


def _has(sd: Mapping[str, torch.Tensor], prefix: str) -> bool:
    """Whether any key starts with ``prefix`` (a module that is there even
    if one of its tensors is not)."""
    return any(k.startswith(prefix) for k in sd)


def _out_indices(sd: Mapping[str, torch.Tensor],
                 num_stages: int) -> Tuple[int, ...]:
    found = sorted({int(m.group(1)) for m in map(_OUT_NORM.match, sd) if m})
    return tuple(found) if found else (num_stages - 1, )


def _resnet_cfg(sd: Mapping[str, torch.Tensor],
                layer_norm_eps: Optional[float]) -> dict:
    from mmpretrain.models.backbones.resnet import Bottleneck, ResNet
    depths = tuple(count_indices(sd, r'layer(\d+)\.(\d+)\.conv1\.weight'))
    depths = depths[1:]  # layer1 .. layer4 (index 0 never occurs)
    bottleneck = 'layer1.0.conv3.weight' in sd
    for depth, (block, stages) in ResNet.arch_settings.items():
        if (block is Bottleneck) == bottleneck and tuple(stages) == depths:
            return dict(type='ResNet', depth=depth, out_indices=(3, ))
    raise ConversionError(
        f'a ResNet with {depths} {"bottleneck" if bottleneck else "basic"} '
        'blocks per stage is none of mmpretrain\'s depths '
        f'{sorted(ResNet.arch_settings)}')


def _vit_cfg(sd: Mapping[str, torch.Tensor],
             layer_norm_eps: Optional[float]) -> dict:
    from mmpretrain.models.backbones import VisionTransformer
    dims = sd['layers.0.attn.qkv.weight'].shape[1]
    patch = sd['patch_embed.projection.weight'].shape[-1]
    extra = 1 if 'cls_token' in sd else 0
    tokens = sd['pos_embed'].shape[1] - extra
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise ConversionError(f'pos_embed holds {tokens} patch positions, '
                              'not a square grid')
    # The head count is not stored in the weights; DINO, DeiT and timm use
    # 64 channels per head (ViT-S/16: 384 / 64 = 6 heads).
    layers = {int(m.group(1)) for m in
              map(re.compile(r'layers\.(\d+)\.').match, sd) if m}
    settings = dict(
        embed_dims=dims,
        num_layers=max(layers) + 1,
        num_heads=max(dims // 64, 1),
        feedforward_channels=sd['layers.0.ffn.layers.0.0.weight'].shape[0])
    cfg = dict(
        type='VisionTransformer',
        arch=_arch_name(VisionTransformer.arch_zoo, settings) or settings,
        img_size=grid * patch,
        patch_size=patch,
        qkv_bias='layers.0.attn.qkv.bias' in sd,
        final_norm=_has(sd, 'ln1.'),
        with_cls_token=bool(extra),
        out_type='cls_token' if extra else 'avg_featmap')
    if layer_norm_eps is not None:  # reaches every norm of mmpretrain's ViT
        cfg['norm_cfg'] = dict(type='LN', eps=layer_norm_eps)
    return cfg


def _swin_cfg(sd: Mapping[str, torch.Tensor],
              layer_norm_eps: Optional[float]) -> dict:
    """``OriginalSwinTransformer`` with every LayerNorm at the source's eps
    (nn.LayerNorm's 1e-5 where the source format does not say) and the
    windows the reference decides for its input size.

    The position tables give each stage's window at build time, not the
    input size: a last stage with a smaller table than the first stage's
    had that map side (EsViT W=14 at 224 px: 7), one with the full window
    is taken to be exactly one window, as in every size Swin is released
    at (224 px for window 7, 384 for window 12). An absolute position
    embedding gives the size outright.
    """
    from mmpretrain.models.backbones import SwinTransformer
    block = r'stages\.(\d+)\.blocks\.(\d+)\.norm1\.weight'
    depths = count_indices(sd, block)
    tables = [sd[f'stages.{i}.blocks.0.attn.w_msa.relative_position_bias_'
                 'table'] for i in range(len(depths))]
    # (2 W - 1) ** 2 rows for a W x W window
    windows = [(math.isqrt(t.shape[0]) + 1) // 2 for t in tables]
    proj = sd['patch_embed.projection.weight']
    patch = proj.shape[-1]
    settings = dict(embed_dims=proj.shape[0], depths=depths,
                    num_heads=[t.shape[1] for t in tables])
    cfg = dict(
        type='OriginalSwinTransformer',
        arch=_arch_name(SwinTransformer.arch_zoo, settings) or settings,
        img_size=windows[-1] * patch * 2**(len(depths) - 1),
        patch_size=patch,
        window_size=windows[0],
        windows_at_img_size=True,
        norm_cfg=dict(type='LN', eps=layer_norm_eps or 1e-5),
        out_indices=_out_indices(sd, len(depths)))
    if 'absolute_pos_embed' in sd:
        grid = math.isqrt(sd['absolute_pos_embed'].shape[1])
        cfg.update(use_abs_pos_embed=True, img_size=grid * patch)
    return cfg


def _bcssl_cfg(sd: Mapping[str, torch.Tensor],
               layer_norm_eps: Optional[float]) -> dict:
    from mmpretrain.models.backbones import ConvNeXt
    depths = count_indices(sd, r'stages\.(\d+)\.(\d+)\.depthwise_conv\.'
                           r'weight')
    dw = [sd[f'stages.{i}.0.depthwise_conv.weight'] for i in
          range(len(depths))]
    kernels = [w.shape[-1] for w in dw]
    settings = dict(depths=depths, channels=[w.shape[0] for w in dw])
    cfg = dict(
        type='BCSSL',
        arch=_arch_name(ConvNeXt.arch_settings, settings) or settings,
        kernel_size=kernels[0] if len(set(kernels)) == 1 else kernels,
        dw_norm_cfg=dict(type='BN') if _has(sd, 'stages.0.0.dw_norm.') else
        None,
        out_indices=_out_indices(sd, len(depths)))
    if _has(sd, 'stages.0.0.small_conv.'):
        cfg['small_kernel'] = sd['stages.0.0.small_conv.weight'].shape[-1]
    if 'stages.0.0.gamma' not in sd:
        cfg['layer_scale_init_value'] = 0.
    if sd['stages.0.0.pointwise_conv1.weight'].dim() == 4:
        cfg['linear_pw_conv'] = False
    stem = sd['downsample_layers.0.0.weight'].shape[-1]
    if stem != 4:
        cfg['stem_patch_size'] = stem
    return cfg


_INFER = dict(resnet=_resnet_cfg, vit=_vit_cfg, swin=_swin_cfg,
              bcssl=_bcssl_cfg)


def infer_backbone_cfg(state_dict: Mapping[str, torch.Tensor],
                       layer_norm_eps: Optional[float] = None) -> dict:
    """The mmpretrain backbone config that ``state_dict`` (target layout)
    fits, read off the tensors.

    Args:
        state_dict: Converted tensors.
        layer_norm_eps: The eps of the source network's LayerNorms
            (:attr:`Converted.layer_norm_eps`), which the tensors do not
            tell. Defaults to None (the target's default).

    Raises:
        ConversionError: None of the four families, or an architecture they
            cannot build.
    """
    family = target_family(state_dict)
    if family is None:
        raise ConversionError(
            'cannot tell which backbone these weights are for (first keys: '
            f'{head_keys(state_dict)}); pass --config <a config whose '
            'model.backbone they fit>')
    try:
        return _INFER[family](state_dict, layer_norm_eps)
    except KeyError as e:
        raise ConversionError(
            f'incomplete {family} weights: {e.args[0]!r} is missing') from None


def backbone_cfg_from_config(path: str) -> Tuple[dict, Optional[str]]:
    """``model.backbone`` of a config (without ``init_cfg``) and the
    config's default scope."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    backbone = cfg.get('model', {}).get('backbone')
    if not isinstance(backbone, Mapping):
        raise ConversionError(f'{path} has no model.backbone')
    backbone = copy.deepcopy(dict(backbone.to_dict() if hasattr(
        backbone, 'to_dict') else backbone))
    backbone.pop('init_cfg', None)
    return backbone, cfg.get('default_scope') or DEFAULT_SCOPE


def build_backbone(cfg: dict, scope: Optional[str] = None) -> nn.Module:
    """Build ``cfg`` in ``scope`` (mmpretrain's registry by default)
    without touching the caller's random state."""
    from mmengine.registry import MODELS, DefaultScope

    import mmbcssl  # noqa: F401  (registers BCSSL)
    cfg = copy.deepcopy(cfg)
    cfg.pop('init_cfg', None)
    with torch.random.fork_rng(devices=[]), \
            DefaultScope.overwrite_default_scope(scope or DEFAULT_SCOPE):
        model = MODELS.build(cfg)
    model.eval()  # some mmpretrain backbones' train() returns None
    return model


@dataclass
class KeyReport:
    """How converted weights fit their target backbone.

    Attributes:
        matched: Target keys given with the right shape.
        missing: Target keys no source tensor fills.
        unexpected: Source keys that no rule knows, and converted keys the
            target does not have.
        mismatched: ``'key: source (..) vs target (..)'`` shape conflicts.
        fresh: Output norms of extra ``out_indices`` (start fresh).
        filled: Buffers the target computes itself (see
            ``RECOMPUTED_BUFFERS``), kept from the target.
        dropped: Source keys left out on purpose (heads, buffers).
        left_out: Other entries of the file (the other network, optimizer,
            ``args``, ...).
    """
    matched: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[str] = field(default_factory=list)
    fresh: List[str] = field(default_factory=list)
    filled: List[str] = field(default_factory=list)
    dropped: List[str] = field(default_factory=list)
    left_out: List[str] = field(default_factory=list)

    @property
    def unmatched(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)

    def differing(self) -> List[str]:
        """Every key that does not fit, shape conflicts first."""
        return self.mismatched + [f'{k} (missing)' for k in self.missing] + \
            [f'{k} (unexpected)' for k in self.unexpected]

    def summary(self) -> str:
        """Counts, and the first keys of every group except the matched."""
        lines = [f'matched: {len(self.matched)} tensors']
        for name, shown in (('missing', 10), ('unexpected', 10),
                            ('mismatched', 10), ('fresh', 4), ('filled', 2),
                            ('dropped', 4), ('left_out', 10)):
            keys = getattr(self, name)
            if keys:
                lines.append(f'{name.replace("_", " ")}: {len(keys)} '
                             f'({head_keys(keys, shown)})')
        return '\n'.join(lines)


def check_against(converted: Converted, backbone: nn.Module
                  ) -> Tuple[KeyReport, 'OrderedDict[str, torch.Tensor]']:
    """Sort the keys of ``converted`` against ``backbone``'s state dict.

    Returns:
        tuple: The report, and the weights to save: the matched tensors in
        the target's key order, plus the target's own recomputed buffers
        where the source had none.
    """
    expected = backbone.state_dict()
    given = converted.state_dict
    num_stages = len(getattr(backbone, 'stages', ()))
    report = KeyReport(dropped=list(converted.dropped))
    out = OrderedDict()
    for key, target in expected.items():
        if key in given:
            src = tuple(given[key].shape)
            if src == tuple(target.shape):
                report.matched.append(key)
                out[key] = given[key].to(target.dtype)
            else:
                report.mismatched.append(
                    f'{key}: source {src} vs target {tuple(target.shape)}')
        elif key.rsplit('.', 1)[-1] in RECOMPUTED_BUFFERS:
            report.filled.append(key)
            out[key] = target.clone()
        elif _is_fresh_norm(key, num_stages):
            report.fresh.append(key)
        else:
            report.missing.append(key)
    report.unexpected = list(converted.unrecognised) + [
        k for k in given if k not in expected
    ]
    return report, out


def layer_norm_eps_mismatches(backbone: nn.Module,
                              eps: float) -> List[str]:
    """``'name (eps=...)'`` of every LayerNorm of ``backbone`` (mmcv's
    ``LayerNorm2d`` included) whose eps is not ``eps``."""
    return [
        f'{name} (eps={m.eps:g})' for name, m in backbone.named_modules()
        if isinstance(m, nn.LayerNorm) and not math.isclose(
            m.eps, eps, rel_tol=1e-9)
    ]


def _is_fresh_norm(key: str, num_stages: int) -> bool:
    m = _OUT_NORM.match(key)
    return m is not None and int(m.group(1)) < num_stages - 1


def describe_cfg(cfg: Dict[str, Any]) -> str:
    """``SwinTransformer(arch='tiny', window_size=7, ...)`` for messages."""
    args = ', '.join(f'{k}={v!r}' for k, v in cfg.items() if k != 'type')
    return f'{cfg.get("type")}({args})'
