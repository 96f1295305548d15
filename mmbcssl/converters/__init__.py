"""Converters of published checkpoints to this project's backbones.

Each source format has a module (:mod:`.dino`, :mod:`.esvit`,
:mod:`.convnext`, :mod:`.timm`, :mod:`.mmpretrain`) that registers it in
:data:`FORMATS`; :func:`convert_checkpoint` detects the format, converts,
checks every key against the target backbone and :func:`save_backbone`
writes the file that ``init_cfg=dict(type='Pretrained', prefix='backbone.')``
and ``tools/knn_eval.py --checkpoint`` load. :func:`export_to_timm` goes the
other way, from BC-SSL to timm's ConvNeXt.
"""
from . import convnext, dino, esvit, mmpretrain, timm  # noqa: F401
from .base import (FORMATS, ConversionError, Converted, SourceFormat,
                   detect_format, get_format, known_formats)
from .export_timm import TimmExport, export_to_timm
from .pipeline import (ConversionResult, convert_checkpoint, load_source,
                       save_backbone)
from .targets import KeyReport, build_backbone, infer_backbone_cfg

__all__ = [
    'FORMATS', 'ConversionError', 'ConversionResult', 'Converted',
    'KeyReport', 'SourceFormat', 'TimmExport', 'build_backbone',
    'convert_checkpoint', 'detect_format', 'export_to_timm', 'get_format',
    'infer_backbone_cfg', 'known_formats', 'load_source', 'save_backbone'
]
