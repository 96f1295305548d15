"""Every training path stops (or skips the step) on a NaN/Inf loss, naming
the iteration and the loss term, and never writes a NaN checkpoint; DINO's
gradient treatment survives a launcher's ``--amp``."""
import glob
import os
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import AmpOptimWrapper, build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

from mmbcssl.cli import train as train_api
from mmbcssl.engine.optimizers import (DINOAmpOptimWrapper, DINOOptimWrapper,
                                       GuardedOptimWrapperConstructor,
                                       NonFiniteLossGuard)
from mmbcssl.utils.loss_terms import TrainingDivergedError
from tests.conftest import REPO_ROOT, load_config

# the training configs of every kind (pre-training, linear probe,
# detection, segmentation); their full-size siblings share the optimizer
# settings through the same bases
CONFIGS = {
    'dino': 'configs/dino/bcssl-t_9x9_100e_demo.py',
    'esvit': 'configs/esvit/esvit_swin-t_demo.py',
    'linear': 'configs/linear/linear_bcssl-t-9x9_dino-demo-pre_1xb32-coslr-'
    '20e_in1k-demo.py',
    'mask_rcnn': 'configs/mask_rcnn/mask-rcnn_bcssl-t-9x9_dino-demo-pre_fpn_'
    '1xb4-20e_coco-demo.py',
    'upernet': 'configs/upernet/upernet_bcssl-t-9x9_dino-demo-pre_1xb4-'
    '300iter_ade20k-demo.py',
}
_models = {}


def _model(kind):
    """The config's model (built once per test session)."""
    cfg = load_config(osp.join(REPO_ROOT, CONFIGS[kind]))
    if kind not in _models:
        init_default_scope(cfg.default_scope)
        _models[kind] = MODELS.build(cfg.model)
    return cfg, _models[kind]


def mim_amp(cfg):
    """What mmpretrain 1.2's tools/train.py (run by `mim train`) does for
    --amp, whatever the wrapper type was."""
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


@pytest.mark.parametrize('amp', ['none', 'tools/train.py', 'mim'])
@pytest.mark.parametrize('kind', sorted(CONFIGS))
def test_every_training_config_builds_a_guarded_wrapper(kind, amp,
                                                        monkeypatch):
    cfg, model = _model(kind)
    if amp != 'none' and not torch.cuda.is_available():
        # mmengine's AmpOptimWrapper refuses to be built without a GPU; the
        # wrapper is built here, not run
        from mmengine.optim.optimizer import amp_optimizer_wrapper
        monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                            lambda: True)
    if amp == 'tools/train.py':
        train_api.enable_amp(cfg)
    elif amp == 'mim':
        mim_amp(cfg)
    init_default_scope(cfg.default_scope)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert isinstance(wrapper, NonFiniteLossGuard)
    assert isinstance(wrapper, AmpOptimWrapper) == (amp != 'none')
    if kind in ('dino', 'esvit'):
        assert isinstance(wrapper, DINOAmpOptimWrapper if amp != 'none'
                          else DINOOptimWrapper)
        assert wrapper.per_tensor_clip == 3.0
        assert wrapper.freeze_last_layer_epochs == 1
        assert wrapper.last_layer_params  # the head's last layer
    params = [p for g in wrapper.optimizer.param_groups
              for p in g['params']][:4]
    before = [p.detach().clone() for p in params]
    with pytest.raises(TrainingDivergedError, match='the loss is nan'):
        wrapper.update_params(
            sum(p.sum() for p in params) * float('nan'))
    assert all(torch.equal(p, b) for p, b in zip(params, before))


def test_every_config_names_the_guarded_parts():
    """All training configs (not only the demos): a constructor that builds
    guarded wrappers, and the checkpoint hook that keeps old checkpoints
    until the new one is written (mim/mmpretrain's tools/train.py use the
    config as it is)."""
    from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS
    paths = [p for folder in ('dino', 'dino/supervised_check', 'esvit',
                              'linear', 'mask_rcnn', 'upernet')
             for p in glob.glob(osp.join(REPO_ROOT, 'configs', folder,
                                         '*.py'))]
    assert len(paths) > 40
    for path in paths:
        cfg = load_config(path)
        constructor = OPTIM_WRAPPER_CONSTRUCTORS.get(
            cfg.optim_wrapper.constructor)
        assert issubclass(constructor, GuardedOptimWrapperConstructor), path
        assert cfg.default_hooks.checkpoint.type.endswith(
            'SafeCheckpointHook'), path


class TwoHeads(BaseModel):
    """An mmdet-like model: a loss per head, one of them per level."""

    def __init__(self):
        super().__init__()
        self.cls, self.box = nn.Linear(3, 1), nn.Linear(3, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        box = self.box(inputs).mean()
        return dict(loss_cls=self.cls(inputs).mean().abs(),
                    loss_bbox=[box.abs(), box * inputs.sum().log()],
                    acc=torch.tensor(50.))


def _guarded(model, **kw):
    cfg = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1))
    return GuardedOptimWrapperConstructor(dict(cfg, **kw))(model)


def test_message_names_iteration_and_term_for_any_model():
    model = TwoHeads()
    wrapper = _guarded(model)
    hub = MessageHub.get_current_instance()
    hub.update_info('iter', 7)
    try:
        weights = model.box.weight.detach().clone()
        good = dict(inputs=torch.ones(2, 3))
        model.train_step(good, wrapper)  # finite: a step
        assert not torch.equal(model.box.weight, weights)
        weights = model.box.weight.detach().clone()
        bad = dict(inputs=-torch.ones(2, 3))  # log of a negative sum: NaN
        with pytest.raises(TrainingDivergedError) as info:
            model.train_step(bad, wrapper)
        assert torch.equal(model.box.weight, weights)
    finally:
        hub.update_info('iter', 0)
    msg = str(info.value)
    assert 'iteration 7' in msg
    assert msg.count('non-finite loss terms: loss_bbox;') == 1
    assert 'last checkpoint in the work dir is intact' in msg


def test_skip_policy_for_any_model():
    model = TwoHeads()
    wrapper = _guarded(model, nonfinite_loss='skip', max_consecutive_skips=1)
    weights = model.box.weight.detach().clone()
    model.train_step(dict(inputs=-torch.ones(2, 3)), wrapper)
    assert torch.equal(model.box.weight, weights)
    assert wrapper.skipped_steps == 1
    with pytest.raises(TrainingDivergedError):  # a second in a row
        model.train_step(dict(inputs=-torch.ones(2, 3)), wrapper)
    model.train_step(dict(inputs=torch.ones(2, 3)), wrapper)
    assert not torch.equal(model.box.weight, weights)


def test_unknown_wrapper_type_is_refused():
    with pytest.raises(ValueError, match="no variant of optim_wrapper type "
                       "'ApexOptimWrapper'"):
        _guarded(TwoHeads(), type='ApexOptimWrapper')


def test_linear_probe_on_nan_weights_stops_without_checkpoints(
        demo_data, tmp_path, capsys):
    """The linear probe (mmpretrain's classifier, a frozen backbone) from a
    pre-trained file that holds a NaN: the first loss is NaN."""
    arch = dict(depths=[1, 1, 1, 1], channels=[8, 8, 16, 16])
    backbone = MODELS.build(dict(type='mmpretrain.BCSSL', arch=arch,
                                 kernel_size=9))
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['backbone.downsample_layers.0.0.weight'][0, 0, 0, 0] = float('nan')
    pretrained = str(tmp_path / 'nan_backbone.pth')
    torch.save(dict(state_dict=state), pretrained)
    config = tmp_path / 'linear_nan.py'
    config.write_text(
        f"_base_ = {osp.join(REPO_ROOT, CONFIGS['linear'])!r}\n"
        f'model = dict(backbone=dict(arch=dict(_delete_=True, **{arch!r}), '
        f'init_cfg=dict('
        f'checkpoint={pretrained!r})), head=dict(in_channels=16))\n'
        'train_cfg = dict(max_epochs=1, val_interval=1)\n'
        'default_hooks = dict(checkpoint=dict(interval=1))\n')
    root = osp.join(demo_data, 'imagenet')
    work = str(tmp_path / 'work')
    code = train_api.main([
        str(config), '--work-dir', work, '--cfg-options',
        *[f'{s}_dataloader.{k}' for s in ('train', 'val')
          for k in (f'dataset.data_root={root}', 'num_workers=0')]])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.splitlines() == [err]
    assert err.startswith('error: the loss is nan at iteration 0 (epoch 0); '
                          'non-finite loss terms: loss;')
    assert not [f for f in os.listdir(work) if f.endswith('.pth')]


def test_an_epoch_of_only_skipped_steps_stops_a_partial_one_goes_on():
    """SafeCheckpointHook counts the steps the guarded wrapper took in the
    epoch: none (all skipped) stops training, one is enough to go on."""
    from types import SimpleNamespace

    from mmbcssl.engine.hooks import SafeCheckpointHook
    model = TwoHeads()
    wrapper = _guarded(model, nonfinite_loss='skip')
    runner = SimpleNamespace(optim_wrapper=wrapper, epoch=0, iter=0,
                             train_loop=SimpleNamespace(max_epochs=3))
    hook = SafeCheckpointHook(interval=1)
    good, bad = dict(inputs=torch.ones(2, 3)), dict(inputs=-torch.ones(2, 3))
    hook.before_train_epoch(runner)
    for data in (bad, good, bad):  # partly skipped: goes on
        model.train_step(data, wrapper)
    hook._check_epoch_trained(runner)
    runner.epoch = 1
    hook.before_train_epoch(runner)
    for data in (bad, bad, bad):
        model.train_step(data, wrapper)
    with pytest.raises(TrainingDivergedError,
                       match='epoch 2 trained on nothing: all 3 of its '
                       'steps were skipped'):
        hook._check_epoch_trained(runner)


def test_training_on_only_nan_losses_with_skip_stops_unsaved(
        demo_data, tmp_path, capsys):
    """A real run whose every loss is NaN (the head's loss weight is NaN;
    the weights and BN statistics stay finite) with nonfinite_loss='skip':
    every step is skipped, and the first epoch stops training before
    anything is saved as latest or best."""
    tiny = osp.join(REPO_ROOT, 'tests', 'data', 'configs',
                    'tiny_classifier.py')
    config = tmp_path / 'tiny_nan_loss.py'
    config.write_text(
        f'_base_ = {tiny!r}\n'
        "model = dict(head=dict(loss=dict(loss_weight=float('nan'))))\n"
        "optim_wrapper = dict(nonfinite_loss='skip')\n"
        'train_cfg = dict(_delete_=True, by_epoch=True, max_epochs=2, '
        'val_interval=1)\n'
        'default_hooks = dict(checkpoint=dict(by_epoch=True, interval=1, '
        "save_best='auto'))\n")
    root = osp.join(demo_data, 'imagenet')
    work = str(tmp_path / 'work')
    code = train_api.main([
        str(config), '--work-dir', work, '--cfg-options',
        *[f'{s}_dataloader.dataset.data_root={root}'
          for s in ('train', 'val', 'test')]])
    err = capsys.readouterr().err.strip()
    assert code == 1, err[-3000:]
    assert err.splitlines() == [err]
    # 80 images in batches of 8
    assert err.startswith('error: epoch 1 trained on nothing: all 10 of its '
                          'steps were skipped for a NaN/Inf loss')
    assert 'Lower the lr, run with --amp' in err
    assert 'check the data' in err
    assert not [f for f in os.listdir(work) if f.endswith('.pth')]
    assert not osp.exists(osp.join(work, 'last_checkpoint'))
