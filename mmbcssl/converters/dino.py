"""facebookresearch/dino checkpoints: ResNet-50 and ViT (e.g. ViT-S/16).

DINO publishes two kinds of file per model (its README, "Pretrained
models"):

* *backbone only* (``dino_resnet50_pretrain.pth``,
  ``dino_deitsmall16_pretrain.pth``): the plain state dict of the backbone;
* *full checkpoint* (``..._full_checkpoint.pth``, also what ``main_dino.py``
  writes): ``{'student', 'teacher', 'optimizer', 'epoch', 'args',
  'dino_loss'[, 'fp16_scaler']}``. Both networks are a ``MultiCropWrapper``
  (``backbone.*`` and the projection ``head.*``); the student is wrapped in
  DistributedDataParallel (``module.``), and so is the teacher of a network
  with BatchNorm (ResNet-50). ``args`` is a pickled ``argparse.Namespace``,
  which the safe loader allows (:mod:`mmbcssl.fileio`).

Layouts (``main_dino.py`` and ``vision_transformer.py`` of the DINO repo):
ResNet-50 is torchvision's ``resnet50`` with ``fc`` replaced by an identity,
which mmpretrain's ``ResNet`` (style ``'pytorch'``) names the same way. The
ViT is timm's layout (``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,
mlp.fc2}``, ``norm``, ``cls_token``, ``pos_embed``), renamed here to
mmpretrain's ``VisionTransformer`` (``layers.N.{ln1,attn,ln2,ffn}``, ``ln1``).
Any state dict in torchvision's ResNet or timm's ViT layout converts the same
way.
"""
from typing import Any, Dict, Iterable, Optional

from .base import (ConversionError, Converted, Rule, Selected, SourceFormat,
                   StateDict, apply_rules, describe_groups, head_keys,
                   is_state_dict, other_entries, register_format, strip_ddp,
                   strip_prefix, tensor_dicts)

_PARAM = r'(weight|bias)'
_BN = r'(weight|bias|running_mean|running_var|num_batches_tracked)'

# torchvision ResNet -> mmpretrain ResNet: the same names.
RESNET_RULES = (
    Rule(r'conv1\.weight', r'conv1.weight'),
    Rule(rf'bn1\.{_BN}', r'bn1.\1'),
    Rule(r'(layer[1-4]\.\d+\.conv[1-3])\.weight', r'\1.weight'),
    Rule(rf'(layer[1-4]\.\d+\.bn[1-3])\.{_BN}', r'\1.\2'),
    Rule(r'(layer[1-4]\.\d+\.downsample\.0)\.weight', r'\1.weight'),
    Rule(rf'(layer[1-4]\.\d+\.downsample\.1)\.{_BN}', r'\1.\2'),
)
# The ImageNet classifier of a torchvision ResNet (absent from DINO files).
RESNET_DROP = (r'fc\..*', )

# DINO / timm ViT -> mmpretrain VisionTransformer.
VIT_RULES = (
    Rule(r'cls_token', r'cls_token'),
    Rule(r'pos_embed', r'pos_embed'),
    Rule(rf'patch_embed\.proj\.{_PARAM}', r'patch_embed.projection.\1'),
    Rule(rf'blocks\.(\d+)\.norm1\.{_PARAM}', r'layers.\1.ln1.\2'),
    Rule(rf'blocks\.(\d+)\.attn\.(qkv|proj)\.{_PARAM}',
         r'layers.\1.attn.\2.\3'),
    Rule(rf'blocks\.(\d+)\.norm2\.{_PARAM}', r'layers.\1.ln2.\2'),
    Rule(rf'blocks\.(\d+)\.mlp\.fc1\.{_PARAM}',
         r'layers.\1.ffn.layers.0.0.\2'),
    Rule(rf'blocks\.(\d+)\.mlp\.fc2\.{_PARAM}', r'layers.\1.ffn.layers.1.\2'),
    Rule(rf'norm\.{_PARAM}', r'ln1.\1'),
)
# A classifier head (timm); DINO's backbone has none.
VIT_DROP = (r'head\..*', )
# DINO's vision_transformer.py (vit_small/base: partial(nn.LayerNorm,
# eps=1e-6)) and timm's VisionTransformer alike.
VIT_LAYER_NORM_EPS = 1e-6


def is_resnet_layout(keys: Iterable[str]) -> bool:
    keys = set(keys)
    return 'conv1.weight' in keys and 'layer1.0.conv1.weight' in keys


def is_vit_layout(keys: Iterable[str]) -> bool:
    keys = set(keys)
    return 'cls_token' in keys and 'blocks.0.attn.qkv.weight' in keys


def _backbone_layout(state_dict: StateDict) -> Optional[str]:
    if is_resnet_layout(state_dict):
        return 'resnet'
    if is_vit_layout(state_dict):
        return 'vit'
    return None


def select_multicrop(ckpt: Dict[str, Any], networks: Dict[str, StateDict],
                     part: str, prefix: str) -> Selected:
    """The backbone of ``networks[part]`` of a DINO-style full checkpoint.

    Args:
        ckpt: The whole file (for the report of what is left out).
        networks: ``'teacher'``/``'student'`` state dicts in it.
        part: Which one to take.
        prefix: Where the backbone sits after ``module.`` is removed
            (``'backbone.'`` in DINO's MultiCropWrapper, ``''`` for EsViT's
            Swin, which carries its heads as attributes).
    """
    if part not in networks:
        raise ConversionError(
            f'no {part!r} state dict in this checkpoint (it has '
            f'{", ".join(sorted(networks))})')
    state = strip_ddp(networks[part])
    backbone = strip_prefix(state, prefix) if prefix else state
    if not backbone:
        raise ConversionError(
            f'the {part} holds no {prefix}* keys (first keys: '
            f'{head_keys(state)})')
    rest = [k for k in state if not k.startswith(prefix)] if prefix else []
    left_out = other_entries(ckpt, [part]) + [
        f'{part} {g}' for g in describe_groups(rest)
    ]
    return Selected(backbone, part, left_out)


@register_format
class DINOFormat(SourceFormat):
    """facebookresearch/dino full checkpoints and backbone-only releases."""
    name = 'dino'
    description = ('facebookresearch/dino: full checkpoint (teacher or '
                   'student) or backbone-only release; ResNet-50, ViT')
    weights = ('teacher', 'student')

    def detect(self, ckpt: Any) -> bool:
        networks = tensor_dicts(ckpt, ('teacher', 'student'))
        if networks:
            state = strip_ddp(next(iter(networks.values())))
            return _backbone_layout(strip_prefix(state, 'backbone.')) \
                is not None
        return is_state_dict(ckpt) and _backbone_layout(ckpt) is not None

    def select(self, ckpt: Any, weights: Optional[str]) -> Selected:
        self._check_weights(weights)
        networks = tensor_dicts(ckpt, self.weights)
        if not networks:
            if not is_state_dict(ckpt):
                raise ConversionError(
                    'not a DINO checkpoint: neither a full checkpoint '
                    "('teacher'/'student' state dicts) nor a plain state "
                    'dict')
            if weights is not None:
                raise ConversionError(
                    f'--weights {weights}: this is a backbone-only release '
                    '(one network, no teacher/student)')
            return Selected(strip_ddp(ckpt))
        # DINO evaluates the teacher (eval_knn.py / eval_linear.py default
        # --checkpoint_key teacher).
        return select_multicrop(ckpt, networks, weights or 'teacher',
                                prefix='backbone.')

    def convert(self, state_dict: StateDict) -> Converted:
        layout = _backbone_layout(state_dict)
        if layout == 'resnet':
            return apply_rules(state_dict, RESNET_RULES, RESNET_DROP)
        if layout == 'vit':
            converted = apply_rules(state_dict, VIT_RULES, VIT_DROP)
            converted.layer_norm_eps = VIT_LAYER_NORM_EPS
            return converted
        raise ConversionError(
            'not a DINO ResNet or ViT backbone: expected torchvision ResNet '
            "keys ('conv1.weight', 'layer1.0.conv1.weight', ...) or DINO "
            "ViT keys ('cls_token', 'blocks.0.attn.qkv.weight', ...); "
            f'first keys: {head_keys(state_dict)}')
