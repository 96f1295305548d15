"""Inference API: build a backbone from a config and a checkpoint, and
extract its features (as OpenMMLab's ``apis`` packages do for their
models)."""
from mmbcssl.evaluation.features import extract_features
from .inference import (DEFAULT_SCOPE, CheckpointMismatchError,
                        build_from_config, init_backbone,
                        load_backbone_weights, load_model_config,
                        use_config_scope)

__all__ = [
    'CheckpointMismatchError', 'DEFAULT_SCOPE', 'build_from_config',
    'extract_features', 'init_backbone', 'load_backbone_weights',
    'load_model_config', 'use_config_scope'
]
