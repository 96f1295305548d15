"""The backbone weights of a self-supervised (DINO / EsViT) checkpoint.

The file :func:`save_backbone_weights` writes holds ``backbone.*`` keys, so
it loads with ``init_cfg=dict(type='Pretrained', checkpoint=OUT,
prefix='backbone.')`` in mmpretrain classifiers, mmdet detectors and mmseg
segmentors, and with ``load_from`` into an mmpretrain ``ImageClassifier``.
"""
import io
from collections import OrderedDict
from typing import Dict, List, Tuple

import torch

from mmbcssl.fileio import atomic_write, check_finite_weights
from mmbcssl.utils.launch import UserError
from .inference import strip_wrappers, sub_state

# Where the backbone lives in each algorithm's state dict.
SOURCES = {'teacher': 'teacher.backbone.', 'student': 'backbone.'}


def extract_backbone(state_dict: Dict[str, torch.Tensor],
                     source: str = 'teacher'
                     ) -> Tuple[OrderedDict, List[str]]:
    """``backbone.*`` weights of ``source``, and the key groups dropped.

    Args:
        state_dict (dict): A pre-training state dict (DDP's ``module.``
            prefixes are dropped).
        source (str): ``'teacher'`` or ``'student'``. Defaults to
            ``'teacher'``.

    Returns:
        tuple: The weights under ``backbone.``, and the sorted top-level
        names of the keys left out.

    Raises:
        UserError: the state dict has no weights of ``source``.
    """
    state_dict = strip_wrappers(state_dict)
    prefix = SOURCES[source]
    kept = OrderedDict((f'backbone.{k}', v)
                       for k, v in sub_state(state_dict, prefix).items())
    if not kept:
        found = sorted({k.split('.')[0] for k in state_dict})
        raise UserError(
            f'no {source} backbone weights (keys starting with {prefix!r}) '
            f'in this checkpoint; its top-level keys are {found}. Is it a '
            'DINO/EsViT pre-training checkpoint?')
    dropped = sorted({k.split('.')[0] for k in state_dict
                      if not k.startswith(prefix)})
    return kept, dropped


def save_backbone_weights(weights: Dict[str, torch.Tensor], out: str,
                          meta: Dict) -> None:
    """Write ``dict(state_dict=weights, meta=meta)`` to ``out`` atomically
    (an interrupted write leaves no partial file); weights holding NaN
    or Inf are refused (:class:`~mmbcssl.fileio.NonFiniteError`) and
    nothing is written."""
    check_finite_weights(weights, f'backbone weights for {out}')
    buf = io.BytesIO()
    torch.save(dict(state_dict=weights, meta=meta), buf)
    atomic_write(buf.getvalue(), out)
