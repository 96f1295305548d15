"""Dense-transfer configs: every Mask R-CNN and UperNet config builds its model
and its layer-decay optimizer; SSL-extracted weights load into them with no
backbone key missing."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

import mmbcssl  # noqa: F401
from mmbcssl.apis.backbone_weights import extract_backbone
from mmbcssl.utils.pretrained_checks import check_pretrained
from tests.conftest import REPO_ROOT, load_config

DET = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'mask_rcnn', '*.py')))
SEG = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'upernet', '*.py')))


def _build(path):
    cfg = load_config(path)
    init_default_scope(cfg.default_scope)
    return cfg, MODELS.build(cfg.model)


@pytest.mark.parametrize('path', DET + SEG, ids=osp.basename)
def test_dense_config_builds(path):
    cfg, model = _build(path)
    name = osp.basename(path)
    backbone = cfg.model.backbone
    assert backbone.init_cfg.type == 'Pretrained'
    assert backbone.init_cfg.prefix == 'backbone.'
    assert backbone.init_cfg.checkpoint  # a default path, overridable
    assert tuple(backbone.out_indices) == (0, 1, 2, 3)
    # the name says the recipe: '-lrd' = ConvNeXt's layer decay, none =
    # Swin's own (AdamW with no decay on position tables and norms)
    layer_decay = '-lrd-' in name or name.endswith('-demo.py')
    if layer_decay:
        assert cfg.optim_wrapper.constructor == \
            'mmpretrain.LayerDecayOptimWrapperConstructor'
    else:
        assert cfg.optim_wrapper.constructor == \
            'mmpretrain.GuardedOptimWrapperConstructor'
        keys = cfg.optim_wrapper.paramwise_cfg.custom_keys
        assert {k: v.decay_mult for k, v in keys.items()} == {
            'absolute_pos_embed': 0., 'relative_position_bias_table': 0.,
            'norm': 0.}
    # fp32 here (AMP needs a GPU): same constructor, plain wrapper
    wrapper_cfg = {
        k: v
        for k, v in cfg.optim_wrapper.items() if k != 'loss_scale'
    }
    wrapper_cfg['type'] = 'OptimWrapper'
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    groups = wrapper.optimizer.param_groups
    assert sum(len(g['params'])
               for g in groups) == sum(p.requires_grad
                                       for p in model.parameters())
    if not layer_decay:
        # every norm weight and position table gets no weight decay
        decay = {id(p): g['weight_decay'] for g in groups
                 for p in g['params']}
        for n, p in model.backbone.named_parameters():
            if 'norm' in n or 'relative_position_bias_table' in n:
                assert decay[id(p)] == 0., n
    if '_demo' in name or name.endswith('-demo.py'):
        return
    # the published recipes
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'AdamW' and opt.betas == (0.9, 0.999)
    assert cfg.train_dataloader.batch_size == 2  # x 8 GPUs = 16
    if 'BCSSL' in backbone.type:
        assert backbone.norm_eval is False
        assert (backbone.dw_norm_cfg is None
                or backbone.dw_norm_cfg.type == 'SyncBN')
    if path in DET:
        assert opt.lr == 1e-4 and opt.weight_decay == 0.05
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
        assert cfg.train_cfg.max_epochs == 36
        steps = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR']
        assert steps[0].milestones == [27, 33]
        # ConvNeXt's and Swin's own 3x configs keep mmdet 2's warm-up
        # (schedule_1x.py: linear, warmup_iters=500, warmup_ratio=0.001)
        warmup = cfg.param_scheduler[0]
        assert (warmup.type, warmup.by_epoch, warmup.begin, warmup.end,
                warmup.start_factor) == ('LinearLR', False, 0, 500, 0.001)
        if layer_decay:
            assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.95
            assert backbone.drop_path_rate == (0.6 if 'bcssl-s' in name
                                               else 0.4)
        else:
            assert backbone.drop_path_rate == 0.2
    else:
        assert cfg.train_cfg.max_iters == 160000
        assert 'tta_model' in cfg and 'tta_pipeline' in cfg
        if layer_decay:
            assert opt.lr == 1e-4 and opt.weight_decay == 0.05
            assert cfg.optim_wrapper.paramwise_cfg.decay_type == \
                'stage_wise'
        else:
            # Swin's: lr 6e-5, wd 0.01, 1500-iteration warm-up, poly 1.0
            assert opt.lr == 6e-5 and opt.weight_decay == 0.01
            warmup, poly = cfg.param_scheduler
            assert (warmup.type, warmup.end) == ('LinearLR', 1500)
            assert (poly.type, poly.power) == ('PolyLR', 1.0)
            assert backbone.drop_path_rate == 0.3


def _ssl_checkpoint(tmp_path, dino_config, seed=0):
    """A DINO model with a teacher that differs from its student, saved as
    an mmengine checkpoint, then extracted as the tools do."""
    cfg = load_config(dino_config)
    init_default_scope('mmpretrain')
    torch.manual_seed(seed)
    dino = MODELS.build(cfg.model)
    dino.init_weights()
    with torch.no_grad():
        for p in dino.teacher.parameters():
            p.add_(torch.randn_like(p))
    teacher = {
        f'backbone.{k}': v.clone()
        for k, v in dino.teacher.backbone.state_dict().items()
    }
    kept, _ = extract_backbone(dino.state_dict(), 'teacher')
    full = tmp_path / 'epoch_100.pth'
    out = tmp_path / 'backbone.pth'
    torch.save(dict(state_dict=dino.state_dict()), full)
    torch.save(dict(state_dict=kept), out)
    return str(full), str(out), teacher


@pytest.mark.parametrize('dino,dense', [
    ('bcssl-t_9x9_100e.py', 'mask_rcnn/mask-rcnn_bcssl-t-9x9_dino-100e-pre'
     '_fpn_8xb2-amp-lrd-ms-crop-3x_coco.py'),
    ('swin-t_300e.py', 'mask_rcnn/mask-rcnn_swin-t_dino-300e-pre'
     '_fpn_8xb2-amp-ms-crop-3x_coco.py'),
    ('convnext-t_7x7_100e.py', 'upernet/upernet_convnext-t-7x7_dino-100e-pre'
     '_8xb2-amp-lrd-160k_ade20k-512x512.py'),
])
def test_extracted_teacher_loads_into_dense_model(tmp_path, dino, dense):
    full, extracted, teacher = _ssl_checkpoint(
        tmp_path, osp.join(REPO_ROOT, 'configs', 'dino', dino))
    cfg = load_config(osp.join(REPO_ROOT, 'configs', dense))
    cfg.model.backbone.init_cfg.checkpoint = extracted
    check_pretrained(cfg)  # no missing keys, no shape mismatch
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    model.init_weights()
    loaded = model.backbone.state_dict()
    fresh = [k for k in loaded if f'backbone.{k}' not in teacher]
    # only the output norms that pre-training does not have start fresh
    assert all(k.startswith(('norm0.', 'norm1.', 'norm2.')) for k in fresh)
    for k, v in loaded.items():
        if k not in fresh:
            assert torch.equal(v, teacher[f'backbone.{k}']), k

    # the whole pre-training checkpoint is refused, naming the converter
    cfg.model.backbone.init_cfg.checkpoint = full
    with pytest.raises(
            ValueError,
            match='whole pre-training checkpoint.*'
            'extract_backbone.py'):
        check_pretrained(cfg)


def test_detection_warmup_follows_mmdet_2_linear_warmup():
    """The 3x configs' LinearLR against mmdet 2's linear warm-up (mmcv 1
    LrUpdaterHook: lr * (1 - (1 - i / 500) * (1 - 0.001)) for i < 500,
    then lr). Written as mmdet 3 translates warmup_iters=500 (its
    schedule_1x.py: LinearLR begin=0, end=500), it starts at 0.001 x lr and
    reaches the full lr one iteration earlier (at 499), so it stays within
    0.2 % of lr of mmdet 2's at every iteration."""
    from mmengine.optim import OptimWrapper
    from mmengine.optim.scheduler import LinearLR
    cfg = load_config(osp.join(
        REPO_ROOT, 'configs', 'mask_rcnn',
        'mask-rcnn_bcssl-t-9x9_dino-100e-pre_fpn_8xb2-amp-lrd-ms-crop-3x_'
        'coco.py'))
    warmup = dict(cfg.param_scheduler[0])
    warmup.pop('type')
    lr = 1e-4
    param = torch.nn.Parameter(torch.zeros(1))
    optim = OptimWrapper(torch.optim.SGD([param], lr=lr))
    scheduler = LinearLR(optim, **warmup)
    ours = []
    for i in range(600):
        ours.append(optim.get_lr()['lr'][0])
        optim.step()
        scheduler.step()
    mmdet2 = [lr * (1 - (1 - i / 500) * (1 - 0.001)) if i < 500 else lr
              for i in range(600)]
    assert ours[0] == pytest.approx(0.001 * lr, rel=1e-9) == mmdet2[0]
    assert all(v < lr * (1 - 1e-9) for v in ours[:499])
    assert ours[499:] == pytest.approx([lr] * 101, rel=1e-9)
    assert max(abs(a - b) for a, b in zip(ours, mmdet2)) < 0.002 * lr
    # the 1000-iteration warm-up of mmdet 3's ports is far from it
    assert mmdet2[500] - (0.001 + 0.999 * 500 / 999) * lr > 0.4 * lr
