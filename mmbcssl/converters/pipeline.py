"""Read a published checkpoint, convert it, check it, write it.

:func:`convert_checkpoint` is what ``tools/model_converters/convert.py``
runs: load the file safely, find its format, pick the network, rename,
check every key against the target backbone, and refuse (write nothing)
when the weights belong to another architecture or leave parameters
unmatched. :func:`save_backbone` writes the result in the layout of
``tools/model_converters/extract_backbone.py`` (``backbone.*`` keys plus
``meta``), which ``init_cfg=dict(type='Pretrained', prefix='backbone.')``
and ``tools/knn_eval.py --checkpoint`` read.
"""
import contextlib
import io
import os.path as osp
import pickle
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import torch

from mmbcssl.fileio import (CorruptCheckpointError, UnsafeCheckpointError,
                            atomic_write, check_finite_weights,
                            missing_file_message, safe_torch_load,
                            trusted_checkpoints)
from mmbcssl.version import __version__
from .base import (ConversionError, Converted, SourceFormat, detect_format,
                   get_format, head_keys)
from .export_timm import TimmExport, export_to_timm
from .targets import (KeyReport, backbone_cfg_from_config, build_backbone,
                      check_against, describe_cfg, infer_backbone_cfg,
                      layer_norm_eps_mismatches)


@dataclass
class ConversionResult:
    """Backbone weights ready to save.

    Attributes:
        state_dict: Target-layout keys, without the ``backbone.`` prefix.
        backbone_cfg: The mmpretrain backbone config they fit.
        report: Matched / missing / unexpected keys.
        format: The source format's name.
        part: ``'teacher'``, ``'student'`` or None.
        source: The source file.
        timm: The timm export (``to='timm'``), else None.
    """
    state_dict: 'OrderedDict[str, torch.Tensor]'
    backbone_cfg: Dict[str, Any]
    report: KeyReport
    format: str
    part: Optional[str]
    source: str
    timm: Optional[TimmExport] = field(default=None)


def _is_safetensors(path: str, head: bytes) -> bool:
    # A safetensors file starts with the 8-byte length of its JSON header.
    return path.endswith('.safetensors') or (len(head) == 9
                                             and head[8:9] == b'{')


def load_source(path: str, trust: bool = False) -> Any:
    """Load a checkpoint file without running code from it.

    PyTorch files go through :func:`mmbcssl.fileio.safe_torch_load` (an
    allow-list of tensor and numpy types and ``argparse.Namespace``, which
    the published full DINO, EsViT, ConvNeXt and timm training checkpoints
    pickle as ``args``; ``trust=True`` lifts it for this call only).
    ``.safetensors`` files (timm's hub weights) hold no pickle and are
    read with the ``safetensors`` package.

    Raises:
        ConversionError: Missing file, not a checkpoint (text, truncated or
            damaged archive, a record failing its CRC), or pickled objects
            outside the allow-list.
    """
    problem = missing_file_message(
        path, 'checkpoint', 'the checkpoint file (.pth, .pth.tar, .pt, '
        '.bin or .safetensors)')
    if problem:
        raise ConversionError(problem)
    with open(path, 'rb') as f:
        head = f.read(9)
    if _is_safetensors(path, head):
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(path, device='cpu')
        except (SafetensorError, OSError, ValueError) as e:
            raise ConversionError(
                f'{path} is not a readable safetensors file ({e})') from None
    if zipfile.is_zipfile(path):
        pass  # torch >= 1.6 format
    elif head[:2] == b'PK':
        raise ConversionError(
            f'{path} is a truncated or damaged zip archive (no end-of-'
            'archive record), not a complete PyTorch checkpoint; '
            'download or copy it again')
    elif head[:1] != b'\x80':  # legacy torch files start with a pickle
        raise ConversionError(
            f'{path} is not a PyTorch checkpoint (neither a zip archive '
            f'nor a pickle; it starts with {head[:8]!r})')
    trusted = trusted_checkpoints() if trust else contextlib.nullcontext()
    try:
        with trusted:
            return safe_torch_load(path, map_location='cpu')
    except UnsafeCheckpointError as e:
        found = re.search(r"pickled global '([^']+)'", str(e))
        what = found.group(1) if found else 'objects besides tensors'
        raise ConversionError(
            f'refused to load {path}: it pickles {what}, which is not on '
            "mmbcssl's allow-list, and unpickling it can run arbitrary code. "
            'If you trust the file, re-run with --trust-checkpoint') from None
    except CorruptCheckpointError as e:  # a record failing its CRC
        raise ConversionError(str(e)) from None
    except (RuntimeError, EOFError, pickle.UnpicklingError, OSError,
            ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else \
            type(e).__name__
        raise ConversionError(
            f'{path} could not be read as a PyTorch checkpoint ({reason}); '
            'is the file complete?') from None


def convert_checkpoint(path: str,
                       fmt: str = 'auto',
                       weights: Optional[str] = None,
                       config: Optional[str] = None,
                       to: str = 'mmpretrain',
                       allow_unmatched: bool = False,
                       trust: bool = False) -> ConversionResult:
    """Convert the backbone of a published checkpoint.

    Args:
        path: Source file.
        fmt: A registered format name, or ``'auto'`` to detect it from the
            keys. Defaults to 'auto'.
        weights: ``'teacher'`` or ``'student'`` for files with both;
            None takes the format's default (the teacher of DINO and EsViT
            checkpoints). Defaults to None.
        config: A config whose ``model.backbone`` the weights must fit;
            None reads the architecture off the weights. Defaults to None.
        to: ``'mmpretrain'`` (this project's and mmpretrain's backbones) or
            ``'timm'`` (BC-SSL / ConvNeXt to timm's ConvNeXt, deploy-folded).
            Defaults to 'mmpretrain'.
        allow_unmatched: Return the matched weights even when some target
            keys stay missing or source keys unused. Defaults to False.
        trust: Unpickle arbitrary objects (trusted files only). Defaults to
            False.

    Raises:
        ConversionError: See :func:`load_source`; unknown or undetectable
            format; weights of another architecture (shapes that differ or
            nothing that matches); unmatched keys without
            ``allow_unmatched``.
    """
    if to not in ('mmpretrain', 'timm'):
        raise ConversionError(f"--to must be 'mmpretrain' or 'timm', got "
                              f'{to!r}')
    source_format = get_format(fmt) if fmt != 'auto' else None
    ckpt = load_source(path, trust)
    if source_format is None:
        source_format = detect_format(ckpt, path)
    selected = source_format.select(ckpt, weights)
    converted = source_format.convert(selected.state_dict)
    if config:
        backbone_cfg, scope = backbone_cfg_from_config(config)
    else:
        backbone_cfg = infer_backbone_cfg(converted.state_dict,
                                          converted.layer_norm_eps)
        scope = None
    backbone = build_backbone(backbone_cfg, scope)
    report, state = check_against(converted, backbone)
    report.left_out = list(selected.left_out)
    _refuse_unfit(report, path, source_format, backbone_cfg, allow_unmatched)
    _refuse_other_norms(converted, backbone, path, source_format,
                        backbone_cfg)
    result = ConversionResult(state, backbone_cfg, report,
                              source_format.name, selected.part,
                              osp.abspath(path))
    if to == 'timm':
        result.timm = export_to_timm(state, backbone_cfg, backbone)
    return result


def _refuse_unfit(report: KeyReport, path: str, source: SourceFormat,
                  backbone_cfg: dict, allow_unmatched: bool) -> None:
    target = describe_cfg(backbone_cfg)
    differing = report.differing()
    if report.mismatched or not report.matched:
        raise ConversionError(
            f'{path} ({source.name}) does not fit {target}: '
            f'{len(differing)} keys differ, first 10: '
            f'{head_keys(differing)}; no file written. Is it a checkpoint '
            'of another architecture?')
    if (report.missing or report.unexpected) and not allow_unmatched:
        raise ConversionError(
            f'converting {path} ({source.name}) to {target} leaves '
            f'{len(report.missing)} target keys missing and '
            f'{len(report.unexpected)} source keys unused, first 10: '
            f'{head_keys(differing)}; no file written. Pass '
            '--allow-unmatched to write the matched weights anyway')


def _refuse_other_norms(converted: Converted, backbone: torch.nn.Module,
                        path: str, source: SourceFormat,
                        backbone_cfg: dict) -> None:
    """The same weights under another LayerNorm eps are another function
    (measurably so where a norm's input variance is small)."""
    eps = converted.layer_norm_eps
    if eps is None:
        return
    other = layer_norm_eps_mismatches(backbone, eps)
    if other:
        raise ConversionError(
            f'{path} ({source.name}) is a network whose LayerNorms have eps '
            f'{eps:g}, but {len(other)} of {describe_cfg(backbone_cfg)} do '
            f'not: {head_keys(other, 3)}; no file written. Set '
            f"model.backbone.norm_cfg=dict(type='LN', eps={eps:g}) (it "
            'reaches every norm of OriginalSwinTransformer and '
            'VisionTransformer)')


def save_backbone(result: ConversionResult, out: str,
                  overwrite: bool = False) -> None:
    """Write ``result`` atomically.

    ``to='mmpretrain'``: ``{'state_dict': {'backbone.<key>': tensor},
    'meta': {...}}``, the layout of ``extract_backbone.py``. ``to='timm'``:
    ``{'state_dict': {<timm key>: tensor}, 'meta': {...}}``, which timm's
    ``load_checkpoint`` and ``pretrained_cfg_overlay=dict(file=...)`` read.

    Raises:
        ConversionError: ``out`` exists and ``overwrite`` is False.
        NonFiniteError: a weight holds NaN or Inf (nothing is written).
    """
    if osp.exists(out) and not overwrite:
        raise ConversionError(f'{out} exists; pass --overwrite to replace it')
    meta = dict(source=result.source, format=result.format,
                weights=result.part, backbone=result.backbone_cfg,
                converted_by=f'mmbcssl {__version__}')
    if result.timm is not None:
        state = OrderedDict(result.timm.state_dict)
        meta['timm'] = dict(model_name=result.timm.model_name,
                            model_kwargs=result.timm.model_kwargs)
    else:
        state = OrderedDict(
            (f'backbone.{k}', v) for k, v in result.state_dict.items())
    check_finite_weights(state, f'converted {result.source}')
    buf = io.BytesIO()
    torch.save(dict(state_dict=state, meta=meta), buf)
    atomic_write(buf.getvalue(), out)
