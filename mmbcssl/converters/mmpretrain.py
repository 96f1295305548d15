"""mmpretrain's own checkpoints (and this project's, which are the same).

An mmengine checkpoint holds the whole model under ``state_dict`` (with
``meta``, ``optimizer``, ``message_hub``, ...; extracted or published files
only ``state_dict`` and ``meta``). The backbone keys are already in the
layout of the backbone class, so nothing is renamed: the format only picks
the network.

* ``--weights student`` (or a classifier): ``backbone.*``, the online
  network;
* ``--weights teacher``: the momentum network, under ``teacher.backbone.``
  (this project's DINO and EsViT), ``momentum_encoder.module.0.`` (MoCo v3),
  ``target_net.module.0.`` (BYOL) or ``encoder_k.module.0.`` (MoCo v2,
  DenseCL).

Without ``--weights`` a checkpoint with a ``teacher.backbone`` gives its
teacher (the DINO evaluation protocol, and what
``tools/model_converters/extract_backbone.py`` takes), any other the
``backbone.*`` that mmpretrain's downstream configs load.
"""
from collections import OrderedDict
from typing import Any, Optional

from .base import (ConversionError, Converted, Selected, SourceFormat,
                   StateDict, describe_groups, is_state_dict, other_entries,
                   register_format, strip_ddp, strip_prefix)
from .targets import target_family

STUDENT_PREFIX = 'backbone.'
TEACHER_PREFIXES = ('teacher.backbone.', 'momentum_encoder.module.0.',
                    'target_net.module.0.', 'encoder_k.module.0.')


def _model_state(ckpt: Any) -> Optional[StateDict]:
    if isinstance(ckpt, dict) and is_state_dict(ckpt.get('state_dict')):
        return strip_ddp(ckpt['state_dict'])
    return strip_ddp(ckpt) if is_state_dict(ckpt) else None


def _teacher_prefix(state: StateDict) -> Optional[str]:
    for prefix in TEACHER_PREFIXES:
        if any(k.startswith(prefix) for k in state):
            return prefix
    return None


@register_format
class MMPretrainFormat(SourceFormat):
    """mmpretrain / mmengine checkpoints of a classifier or self-supervised
    algorithm (``backbone.*`` keys)."""
    name = 'mmpretrain'
    description = ('mmpretrain (and this project): classifier or '
                   'self-supervised checkpoint with backbone.* keys')
    weights = ('teacher', 'student')

    def detect(self, ckpt: Any) -> bool:
        state = _model_state(ckpt)
        if state is None:
            return False
        prefix = _teacher_prefix(state) or STUDENT_PREFIX
        return target_family(strip_prefix(state, prefix)) is not None

    def select(self, ckpt: Any, weights: Optional[str]) -> Selected:
        self._check_weights(weights)
        state = _model_state(ckpt)
        if state is None:
            raise ConversionError(
                "not an mmpretrain checkpoint: no 'state_dict' and not a "
                'plain state dict')
        teacher = _teacher_prefix(state)
        part = weights or ('teacher' if teacher == 'teacher.backbone.' else
                           'student')
        prefix = STUDENT_PREFIX if part == 'student' else teacher
        if prefix is None:
            raise ConversionError(
                'no teacher in this checkpoint (none of '
                f'{", ".join(p + "*" for p in TEACHER_PREFIXES)}); its '
                f'top-level keys: {", ".join(describe_groups(state))}')
        backbone = strip_prefix(state, prefix)
        if not backbone:
            raise ConversionError(
                f'no {prefix}* keys in this checkpoint; its top-level keys: '
                f'{", ".join(describe_groups(state))}')
        rest = [k for k in state if not k.startswith(prefix)]
        left_out = other_entries(ckpt, ['state_dict']) \
            if isinstance(ckpt, dict) and 'state_dict' in ckpt else []
        return Selected(backbone, part, left_out + describe_groups(rest))

    def convert(self, state_dict: StateDict) -> Converted:
        # Already the backbone's own layout.
        return Converted(state_dict=OrderedDict(state_dict))
