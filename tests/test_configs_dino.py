"""Every DINO config builds its model; the demo config trains."""
import glob
import os
import os.path as osp

import pytest
import torch

import mmbcssl  # noqa: F401
from mmbcssl.cli import train as train_api
from mmbcssl.models.heads import WeightNormLinear
from mmpretrain.registry import MODELS
from tests.conftest import REPO_ROOT, derived_config, load_config

CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', 'dino', '*.py')) +
    glob.glob(osp.join(REPO_ROOT, 'configs', 'esvit', '*.py')))


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_dino_config_builds_and_runs_its_crop_sizes(path):
    cfg = load_config(path)
    model = MODELS.build(cfg.model)
    model.init_weights()
    esvit = osp.basename(osp.dirname(path)) == 'esvit'
    assert type(model).__name__ == ('EsViT' if esvit else 'DINO')
    # The student runs on one crop of each size the pipeline makes (Swin's
    # window must fit the local crops' small maps).
    crop = cfg.train_dataloader.dataset.pipeline[1]
    with torch.no_grad():
        for size in (crop.global_crop_size, crop.local_crop_size):
            out = model.student(torch.randn(2, 3, size, size))
            view = out[0] if esvit else out
            assert view.shape == (2, cfg.model.head.out_channels), size
    head = cfg.model.head
    assert head.out_channels == cfg.model.loss.out_channels
    # The teacher starts as the student and gets no gradients.
    for s, t in zip(model.student.parameters(), model.teacher.parameters()):
        assert torch.equal(s, t) and not t.requires_grad
    assert any(h.type == 'DINOTeacherHook' for h in cfg.custom_hooks)
    name = osp.basename(path)
    if '_demo' not in name:
        # 8 GPUs x 64 = 512 (the authors' Swin-T 100-epoch run: 4 x 64);
        # lr = 0.0005 * batch / 256.
        batch = 256 if '_4xb64_' in name else 512
        assert cfg.train_dataloader.batch_size == 64
        assert cfg.auto_scale_lr.base_batch_size == batch
        assert cfg.optim_wrapper.optimizer.lr == pytest.approx(
            0.0005 * batch / 256)
        assert cfg.train_cfg.max_epochs == (300 if '300e' in name else 100)
        crop = cfg.train_dataloader.dataset.pipeline[1]
        assert (crop.global_crop_size, crop.local_crop_size,
                crop.num_local_crops) == (224, 96, 8)
    else:  # one process: --auto-scale-lr scales from the demo's own batch
        assert cfg.auto_scale_lr.base_batch_size == \
            cfg.train_dataloader.batch_size == 32
    # The prototypes layer's weight-norm gain: fixed at 1 in the 100-epoch
    # recipes, trained in the 300-epoch ones (paper section 4; EsViT's
    # README command frees both heads), except our ResNet-50 300-epoch
    # recipe (DINO's README: a free last layer is safe only with ViT-S).
    last_layers = [m for m in model.student.modules()
                   if isinstance(m, WeightNormLinear)]
    assert len(last_layers) == (2 if esvit else 1)
    free = '300e' in name and not name.startswith('resnet50')
    for layer in last_layers:
        assert layer.weight_g.requires_grad == free, name


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_teacher_temperature_follows_the_schedule_length(path):
    """100 epochs (paper section 3.2, "vanilla" DINO, and the demo that
    runs that recipe): 0.04 at every epoch. 300 epochs (paper section 4.1;
    EsViT's README command): 0.04 -> 0.07 over the first 30 epochs."""
    from mmbcssl.models.losses import teacher_temperature
    loss = load_config(path).model.loss
    name = osp.basename(path)
    temps = [teacher_temperature(e, loss.teacher_temp,
                                 loss.warmup_teacher_temp,
                                 loss.warmup_teacher_temp_epochs)
             for e in range(300)]
    if '300e' in name:
        assert temps[0] == pytest.approx(0.04)
        assert temps[15] == pytest.approx(0.04 + 0.03 * 15 / 29)
        assert temps[29:] == pytest.approx([0.07] * 271)
    elif name == 'esvit_swin-t_demo.py':  # EsViT's warm-up, in 1 epoch
        assert temps[:2] == pytest.approx([0.04, 0.07])
    else:
        assert temps == pytest.approx([0.04] * 300)


def test_named_options_build_what_their_names_say():
    """The options for where the authors' code differs from the paper's
    text: a teacher with active stochastic depth 0.1, and the Swin-T
    100-epoch batch of 4 x 64 = 256 (lr 0.0005 by DINO's scaling rule);
    each differs from its paper-text config in that setting alone."""
    def cfg(name):
        return load_config(osp.join(REPO_ROOT, 'configs', 'dino', name))

    for epochs in (100, 300):
        paper = cfg(f'bcssl-t_9x9_{epochs}e.py')
        option = cfg(f'bcssl-t_9x9_teacher-droppath_{epochs}e.py')
        assert not paper.model.get('teacher_drop_path', False)
        assert option.model.teacher_drop_path is True
        assert option.model.backbone.drop_path_rate == 0.1
        model = MODELS.build(option.model)
        assert max(m.drop_prob for m in model.teacher.modules()
                   if hasattr(m, 'drop_prob')) == pytest.approx(0.1)
        option.model.pop('teacher_drop_path')
        assert option.model == paper.model
    paper, option = cfg('swin-t_100e.py'), cfg('swin-t_4xb64_100e.py')
    assert paper.auto_scale_lr.base_batch_size == 512
    assert option.auto_scale_lr.base_batch_size == 256
    assert option.optim_wrapper.optimizer.lr == pytest.approx(0.0005)
    assert option.model == paper.model
    assert option.train_dataloader == paper.train_dataloader


def test_amp_switches_dino_wrapper():
    cfg = load_config(osp.join(REPO_ROOT, 'configs', 'dino',
                               'bcssl-t_9x9_100e.py'))
    train_api.enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'DINOAmpOptimWrapper'


def test_demo_config_trains_through_the_tool(demo_data, tmp_path):
    # the demo recipe on a narrow BC-SSL: its saved state has the same parts
    config = osp.join(REPO_ROOT, 'tests', 'data', 'configs',
                      'narrow_dino_demo.py')
    code = train_api.main([
        config, '--work-dir', str(tmp_path), '--cfg-options',
        f'train_dataloader.dataset.data_root={demo_data}/imagenet',
        # two steps of 8 images: what is tested is the saved state
        'train_dataloader.dataset.indices=16',
        'train_dataloader.batch_size=8',
        'train_cfg.max_epochs=1', 'train_dataloader.num_workers=0',
        'default_hooks.checkpoint.interval=1'
    ])
    assert code == 0
    from mmengine.runner.checkpoint import _load_checkpoint
    ckpt = _load_checkpoint(str(tmp_path / 'epoch_1.pth'))
    sd = ckpt['state_dict']
    # Teacher and centre are saved; the teacher moved away from its copy.
    assert 'loss_module.center' in sd and sd['teacher_updates'] > 0
    assert sd['loss_module.center'].abs().sum() > 0
    assert not torch.equal(sd['teacher.backbone.stages.2.0.gamma'],
                           sd['backbone.stages.2.0.gamma'])


def test_esvit_demo_trains_through_the_tool(demo_data, tmp_path):
    """Two EsViT steps on 16 demo images: both heads, both centres, the
    teacher's region head saved; the loss terms are logged."""
    # the demo recipe on a narrow Swin: its saved state has the same parts
    config = derived_config(
        tmp_path / 'narrow_esvit.py',
        osp.join(REPO_ROOT, 'configs', 'esvit', 'esvit_swin-t_demo.py'),
        'model = dict(backbone=dict(arch=dict(_delete_=True, embed_dims=16, '
        'depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8])), '
        'head=dict(in_channels=128), region_head=dict(in_channels=128))\n')
    code = train_api.main([
        config, '--work-dir', str(tmp_path), '--cfg-options',
        f'train_dataloader.dataset.data_root={demo_data}/imagenet',
        'train_dataloader.dataset.indices=16',
        'train_dataloader.batch_size=8', 'train_cfg.max_epochs=1',
        'train_dataloader.num_workers=0', 'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=1'
    ])
    assert code == 0
    from mmengine.runner.checkpoint import _load_checkpoint
    sd = _load_checkpoint(str(tmp_path / 'epoch_1.pth'))['state_dict']
    assert int(sd['teacher_updates']) == 2
    for key in ('loss_module.center', 'loss_module.region_center'):
        assert sd[key].abs().sum() > 0, key
    assert 'teacher.region_head.last_layer.weight_v' in sd
    logs = open(next(
        osp.join(root, f) for root, _, files in os.walk(tmp_path)
        for f in files if f.endswith('.log'))).read()
    assert 'region: ' in logs and 'view: ' in logs


SUPERVISED_CHECKS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', 'dino', 'supervised_check',
                       '*.py')))


@pytest.mark.parametrize('path', SUPERVISED_CHECKS, ids=osp.basename)
def test_supervised_check_config_trains_everything_from_scratch(path):
    """The trainability check of configs/dino/README.md: a classifier on
    the 10 demo classes whose backbone starts random and is not frozen,
    fed 48-px crops."""
    cfg = load_config(path)
    assert cfg.model.backbone.get('init_cfg') is None
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert type(model).__name__ == 'ImageClassifier'
    assert all(p.requires_grad for p in model.parameters())
    crop = cfg.train_dataloader.dataset.pipeline[1]
    assert crop.type == 'RandomResizedCrop' and crop.scale == 48
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 48, 48), mode='tensor')
    assert logits.shape == (2, 10)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'


def test_supervised_checks_cover_bcssl_and_resnet():
    names = {osp.basename(p) for p in SUPERVISED_CHECKS}
    assert names == {'bcssl-narrow_demo.py', 'resnet18_demo.py'}
