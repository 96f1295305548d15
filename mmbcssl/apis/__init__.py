"""Inference API: build a backbone from a config and a checkpoint, and
extract its features (as OpenMMLab's ``apis`` packages do for their
models)."""
from mmbcssl.evaluation.features import extract_features
from .inference import (CheckpointMismatchError, init_backbone,
                        load_backbone_weights)

__all__ = [
    'CheckpointMismatchError', 'init_backbone', 'load_backbone_weights',
    'extract_features'
]
