"""microsoft/esvit checkpoints of Swin (e.g. EsViT Swin-T, W=7).

EsViT publishes full checkpoints only (its README, "Pretrained models"),
written by ``main_esvit.py`` as ``{'student', 'teacher', 'optimizer',
'epoch', 'args', 'dino_loss'[, 'fp16_scaler']}``; ``args`` is a pickled
``argparse.Namespace`` (allowed by the safe loader). For Swin the
projection heads are attributes of the backbone itself (``head.*`` and, with
the region-level task, ``head_dense.*``), not a wrapper: the teacher's keys
are ``patch_embed.*``, ``layers.*``, ``norm.*``, ``head.*``, and the
student's the same under DistributedDataParallel's ``module.``.

The backbone is the original Swin Transformer layout (microsoft/esvit
``models/swin_transformer.py``, as in microsoft/Swin-Transformer), which
this module renames to mmpretrain's ``SwinTransformer``:

* ``layers.i`` -> ``stages.i``, ``attn.*`` -> ``attn.w_msa.*``, ``mlp.fc1``
  / ``mlp.fc2`` -> ``ffn.layers.0.0`` / ``ffn.layers.1``, ``norm`` -> the
  last stage's ``norm{i}``;
* the patch merging of stage i (after its blocks in both layouts) has its
  ``4C`` input channels in another order: the original concatenates the
  four 2x2 neighbours as ``[(h0, w0), (h1, w0), (h0, w1), (h1, w1)]`` along
  the channels (index ``(2 w + h) C + c``), mmcv's ``PatchMerging``
  (``nn.Unfold``) keeps each channel's four neighbours together (index
  ``4 c + 2 h + w``), so its norm and reduction are permuted accordingly;
* ``relative_position_index`` is dropped: the target computes the same
  buffer itself.

The network is the reference's, not only its weights: the target is
:class:`mmbcssl.models.backbones.OriginalSwinTransformer`, whose windows
and shifts are decided for the 224-px input as the reference decides them,
with every LayerNorm at EsViT's eps 1e-6 (``get_cls_model``:
``norm_layer=partial(nn.LayerNorm, eps=1e-6)``).
"""
from typing import Any, Iterable, Optional

import torch

from .base import (ConversionError, Converted, Rule, Selected, SourceFormat,
                   StateDict, apply_rules, count_indices, head_keys,
                   register_format, strip_ddp, tensor_dicts)
from .dino import select_multicrop

_PARAM = r'(weight|bias)'
_BLOCK = r'layers\.(\d+)\.blocks\.(\d+)'
_STAGE_OUT = r'stages.\1.blocks.\2'


def merge_order(num_channels: int) -> torch.Tensor:
    """Index that reorders original-Swin patch-merging channels for mmcv.

    Args:
        num_channels: ``4 C``, the input width of the merging layer.

    Returns:
        torch.Tensor: ``perm`` with ``mmcv_value[t] = original[perm[t]]``.
    """
    if num_channels % 4:
        raise ConversionError(f'a patch-merging layer has {num_channels} '
                              'input channels, not a multiple of 4')
    c = num_channels // 4
    t = torch.arange(num_channels)
    ch, h, w = t // 4, (t % 4) // 2, t % 2  # mmcv: index 4c + 2h + w
    return (2 * w + h) * c + ch  # original: index (2w + h)C + c


def reorder_merge(value: torch.Tensor) -> torch.Tensor:
    """Permute the last dimension (the ``4C`` inputs) for mmcv's order."""
    return value[..., merge_order(value.shape[-1])].contiguous()


def swin_rules(num_stages: int):
    """Original Swin -> mmpretrain ``SwinTransformer`` rename rules."""
    last = num_stages - 1
    return (
        Rule(rf'patch_embed\.proj\.{_PARAM}', r'patch_embed.projection.\1'),
        Rule(rf'patch_embed\.norm\.{_PARAM}', r'patch_embed.norm.\1'),
        Rule(r'absolute_pos_embed', r'absolute_pos_embed'),
        Rule(rf'{_BLOCK}\.norm([12])\.{_PARAM}', _STAGE_OUT + r'.norm\3.\4'),
        Rule(rf'{_BLOCK}\.attn\.(qkv|proj)\.{_PARAM}',
             _STAGE_OUT + r'.attn.w_msa.\3.\4'),
        Rule(rf'{_BLOCK}\.attn\.relative_position_bias_table',
             _STAGE_OUT + r'.attn.w_msa.relative_position_bias_table'),
        Rule(rf'{_BLOCK}\.mlp\.fc1\.{_PARAM}',
             _STAGE_OUT + r'.ffn.layers.0.0.\3'),
        Rule(rf'{_BLOCK}\.mlp\.fc2\.{_PARAM}',
             _STAGE_OUT + r'.ffn.layers.1.\3'),
        Rule(r'layers\.(\d+)\.downsample\.reduction\.weight',
             r'stages.\1.downsample.reduction.weight', reorder_merge),
        Rule(rf'layers\.(\d+)\.downsample\.norm\.{_PARAM}',
             r'stages.\1.downsample.norm.\2', reorder_merge),
        Rule(rf'norm\.{_PARAM}', rf'norm{last}.\1'),
    )


# Projection heads (EsViT: head, head_dense; a classifier: head) and the
# buffers that mmpretrain's Swin computes itself (attn_mask is in some
# original-Swin files).
SWIN_DROP = (r'head\..*', r'head_dense\..*',
             r'.*\.relative_position_index', r'.*\.attn_mask')


def is_swin_layout(keys: Iterable[str]) -> bool:
    """Original Swin keys (downsampling after the blocks of a stage)."""
    keys = set(keys)
    return 'patch_embed.proj.weight' in keys and \
        'layers.0.blocks.0.attn.qkv.weight' in keys and \
        'layers.0.downsample.reduction.weight' in keys


# microsoft/esvit models/swin_transformer.py, get_cls_model
ESVIT_LAYER_NORM_EPS = 1e-6


def convert_swin(state_dict: StateDict,
                 layer_norm_eps: Optional[float] = None) -> Converted:
    """Original-layout Swin -> mmpretrain ``SwinTransformer`` keys.

    Args:
        state_dict: The source tensors.
        layer_norm_eps: The eps of the source network's LayerNorms, if
            known. Defaults to None.
    """
    if not is_swin_layout(state_dict):
        raise ConversionError(
            'not a Swin backbone in the original layout: expected '
            "'patch_embed.proj.weight', 'layers.0.blocks.0.attn.qkv.weight' "
            "and 'layers.0.downsample.reduction.weight'; first keys: "
            f'{head_keys(state_dict)}')
    depths = count_indices(state_dict, _BLOCK)
    converted = apply_rules(state_dict, swin_rules(len(depths)), SWIN_DROP)
    converted.layer_norm_eps = layer_norm_eps
    return converted


@register_format
class EsViTFormat(SourceFormat):
    """microsoft/esvit full checkpoints of Swin."""
    name = 'esvit'
    description = ('microsoft/esvit: full checkpoint of Swin (teacher or '
                   'student)')
    weights = ('teacher', 'student')

    def detect(self, ckpt: Any) -> bool:
        networks = tensor_dicts(ckpt, self.weights)
        return bool(networks) and is_swin_layout(
            strip_ddp(next(iter(networks.values()))))

    def select(self, ckpt: Any, weights: Optional[str]) -> Selected:
        self._check_weights(weights)
        networks = tensor_dicts(ckpt, self.weights)
        if not networks:
            raise ConversionError(
                "not an EsViT checkpoint: no 'teacher'/'student' state dicts"
                ' (a plain Swin state dict in the original layout converts '
                'with --from timm)')
        # As DINO, EsViT evaluates the teacher (eval_knn.py / eval_linear.py
        # default --checkpoint_key teacher).
        return select_multicrop(ckpt, networks, weights or 'teacher',
                                prefix='')

    def convert(self, state_dict: StateDict) -> Converted:
        return convert_swin(state_dict, ESVIT_LAYER_NORM_EPS)
