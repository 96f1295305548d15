"""Source networks in their published layouts, for the converter tests.

Each source network is built with its own implementation (torchvision,
timm), given random weights that make every tensor matter, and saved in the
layout and wrapper that the upstream code writes.
"""
import argparse
import re
from collections import OrderedDict

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmbcssl.fileio import safe_torch_load


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Perturb every parameter and BatchNorm statistic.

    Layer-scale gammas (1e-6 at init) become O(0.1), norm weights move off
    1 and biases off 0, so that a wrong mapping of any tensor changes the
    output by far more than the test tolerance; BN running statistics are
    random so that BN conversions (and folds) are really exercised.
    """
    gen = torch.Generator().manual_seed(seed)

    def noise(t, scale):
        return torch.randn(t.shape, generator=gen) * scale

    for name, p in model.named_parameters():
        p.add_(noise(p, 0.1 if p.dim() <= 1 else 0.02))
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            m.running_mean.copy_(noise(m.running_mean, 0.1))
            m.running_var.copy_(
                torch.rand(m.running_var.shape, generator=gen) + 0.5)
    model.eval()  # not `return model.eval()`: some train() return None
    return model


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def dino_args() -> argparse.Namespace:
    """What main_dino.py (and main_esvit.py, ConvNeXt's main.py) pickle under
    'args': the parser's Namespace, here a few fields of each kind those
    parsers give (``bool_flag`` bools, ``nargs='+'`` tuple defaults, None,
    paths as str)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--arch', default='resnet50', type=str)
    parser.add_argument('--out_dim', default=65536, type=int)
    parser.add_argument('--norm_last_layer', default=True,
                        type=lambda s: s.lower() in ('on', 'true', '1'))
    parser.add_argument('--teacher_temp', default=0.04, type=float)
    parser.add_argument('--global_crops_scale', type=float, nargs='+',
                        default=(0.4, 1.))
    parser.add_argument('--local_crops_scale', type=float, nargs='+',
                        default=(0.05, 0.4))
    parser.add_argument('--output_dir', default='.', type=str)
    parser.add_argument('--dist_url', default='env://', type=str)
    parser.add_argument('--local_rank', default=0, type=int)
    parser.add_argument('--clip_grad', type=float, default=None)
    args = parser.parse_args(['--local_crops_scale', '0.05', '0.4'])
    args.rank, args.world_size, args.gpu = 0, 1, 0  # set by init_distributed
    return args


def timm_train_args(model: str) -> argparse.Namespace:
    """What timm's train.py hands CheckpointSaver as ``args``: its parser's
    Namespace (a few fields) with what ``init_distributed_device`` adds."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--model', default='resnet50', type=str)
    parser.add_argument('--input-size', default=None, nargs=3, type=int)
    parser.add_argument('--mean', type=float, nargs='+', default=None)
    parser.add_argument('--lr', type=float, default=None)
    parser.add_argument('--sched', type=str, default='cosine')
    parser.add_argument('--amp', action='store_true', default=False)
    args = parser.parse_args(['--model', model, '--amp'])
    args.device, args.world_size, args.rank = 'cuda:0', 1, 0
    args.distributed = False
    return args


def grad_scaler_state() -> dict:
    """What ``torch.cuda.amp.GradScaler.state_dict()`` returns (DINO's
    ``fp16_scaler``, ConvNeXt's ``scaler``)."""
    return torch.amp.GradScaler('cpu', enabled=True).state_dict()


def dino_head_state(in_dim: int, prefix: str) -> 'OrderedDict':
    """The keys of DINO's projection head (MLP + weight-normed last
    layer), small widths."""
    return OrderedDict([
        (f'{prefix}mlp.0.weight', torch.randn(16, in_dim)),
        (f'{prefix}mlp.0.bias', torch.randn(16)),
        (f'{prefix}mlp.2.weight', torch.randn(8, 16)),
        (f'{prefix}mlp.2.bias', torch.randn(8)),
        (f'{prefix}last_layer.weight_g', torch.ones(32, 1)),
        (f'{prefix}last_layer.weight_v', torch.randn(32, 8)),
    ])


def dino_full_checkpoint(teacher: nn.Module, student: nn.Module,
                         embed_dim: int, teacher_ddp: bool) -> dict:
    """A main_dino.py checkpoint: both networks in a MultiCropWrapper
    (``backbone.*``, ``head.*``), the student under DDP (``module.``), the
    teacher under DDP only for networks with BatchNorm (as main_dino.py)."""

    def wrapped(net, ddp):
        pre = 'module.' if ddp else ''
        sd = OrderedDict((f'{pre}backbone.{k}', v)
                         for k, v in net.state_dict().items())
        sd.update(dino_head_state(embed_dim, f'{pre}head.'))
        return sd

    return dict(student=wrapped(student, True),
                teacher=wrapped(teacher, teacher_ddp),
                optimizer=dict(state={}, param_groups=[]),
                epoch=100,
                args=dino_args(),
                dino_loss=dict(center=torch.zeros(1, 32)),
                fp16_scaler=grad_scaler_state())


def swin_timm_to_original(model: nn.Module) -> 'OrderedDict':
    """A timm (>= 0.9) Swin's weights in the original layout of
    microsoft/Swin-Transformer and microsoft/esvit: merging at the end of
    stage i, ``head.*``, and the ``relative_position_index`` buffers that
    those files carry (timm keeps them out of its state dict)."""
    out = OrderedDict()
    for k, v in model.state_dict().items():
        k = re.sub(r'^layers\.(\d+)\.downsample\.',
                   lambda m: f'layers.{int(m.group(1)) - 1}.downsample.', k)
        out[re.sub(r'^head\.fc\.', 'head.', k)] = v
    for name, module in model.named_modules():
        index = getattr(module, 'relative_position_index', None)
        if isinstance(index, torch.Tensor):
            out[f'{name}.relative_position_index'] = index.clone()
    return out


def convnext_timm_to_fb(model: nn.Module) -> 'OrderedDict':
    """A timm ConvNeXt's weights in facebookresearch/ConvNeXt's layout."""
    out = OrderedDict()
    for k, v in model.state_dict().items():
        k = re.sub(r'^stem\.', 'downsample_layers.0.', k)
        k = re.sub(r'^stages\.(\d+)\.downsample\.', r'downsample_layers.\1.',
                   k)
        k = re.sub(r'^stages\.(\d+)\.blocks\.(\d+)\.', r'stages.\1.\2.', k)
        k = k.replace('conv_dw', 'dwconv').replace('mlp.fc', 'pwconv')
        k = re.sub(r'^head\.norm\.', 'norm.', k)
        out[re.sub(r'^head\.fc\.', 'head.', k)] = v
    return out


def load_as_pretrained(path: str) -> nn.Module:
    """The backbone the file's ``meta['backbone']`` names, loaded through
    ``init_cfg=dict(type='Pretrained', prefix='backbone.')`` after
    tools/train.py's pre-flight check."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    from mmbcssl.utils.pretrained_checks import check_pretrained
    backbone = dict(load_output(path)['meta']['backbone'])
    backbone['init_cfg'] = dict(type='Pretrained', checkpoint=path,
                                prefix='backbone.')
    check_pretrained(Config(dict(default_scope='mmpretrain',
                                 model=dict(backbone=backbone))))
    backbone = MODELS.build(backbone)
    backbone.init_weights()
    backbone.eval()  # not `return backbone.eval()`: ResNet.train is None
    return backbone


def config_backbone(config: str, path: str) -> nn.Module:
    """The backbone of ``config`` loaded the way downstream configs load
    converted weights, after tools/train.py's pre-flight check."""
    from mmengine.config import Config
    from mmpretrain.registry import MODELS

    from mmbcssl.utils.pretrained_checks import check_pretrained
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=path,
                                       prefix='backbone.')
    check_pretrained(cfg)
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    backbone.eval()
    return backbone


def load_output(path: str) -> dict:
    """A converted file, read as every consumer reads it (safe loader)."""
    return safe_torch_load(path, map_location='cpu')


def fit_to_config(fmt: str, state_dict: dict, config: str):
    """Convert ``state_dict`` (the source layout) with format ``fmt`` and
    sort its keys against ``config``'s backbone, in memory."""
    from mmbcssl.converters import build_backbone, get_format
    from mmbcssl.converters.targets import (backbone_cfg_from_config,
                                            check_against)
    converted = get_format(fmt).convert(state_dict)
    cfg, scope = backbone_cfg_from_config(config)
    report, _ = check_against(converted, build_backbone(cfg, scope))
    return report
