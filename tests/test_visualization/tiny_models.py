"""Configs and checkpoints shaped like the demo's, small enough for tests:
BC-SSL with one block per stage (16-16-32-32 channels) as an ImageClassifier
config, a DINO checkpoint (``teacher.backbone.*``) and a linear-probe
checkpoint (``backbone.*`` + ``head.*``)."""
import os.path as osp

import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

import mmbcssl  # noqa: F401
from tests.conftest import REPO_ROOT

BASE = osp.join(REPO_ROOT, 'configs', '_base_', 'models', 'bcssl-t_9x9.py')
TINY_ARCH = dict(depths=[1, 1, 1, 1], channels=[16, 16, 32, 32])


def tiny_config(folder, kernel_size: int = 9) -> str:
    """configs/_base_/models/bcssl-t_9x9.py with the tiny arch, 10
    classes."""
    cfg = Config.fromfile(BASE)
    cfg.model.backbone.arch = TINY_ARCH
    cfg.model.backbone.kernel_size = kernel_size
    cfg.model.head.update(in_channels=32, num_classes=10)
    path = osp.join(str(folder), f'tiny_bcssl_{kernel_size}x{kernel_size}.py')
    cfg.dump(path)
    return path


def _model(config: str, seed: int):
    cfg = Config.fromfile(config)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def dino_checkpoint(path, config: str, seed: int = 1) -> str:
    """The backbone as a DINO checkpoint holds its teacher."""
    backbone = _model(config, seed).backbone
    torch.save({'state_dict': {f'teacher.backbone.{k}': v
                               for k, v in backbone.state_dict().items()}},
               str(path))
    return str(path)


def probe_checkpoint(path, config: str, seed: int = 1) -> str:
    """A classifier (linear probe) checkpoint: backbone.* and head.*."""
    torch.save({'state_dict': _model(config, seed).state_dict()}, str(path))
    return str(path)
