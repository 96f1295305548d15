"""Every linear-probe and robustness config builds; a probe really freezes
its backbone (parameters, BN statistics, output norm) and trains only the
head."""
import glob
import os.path as osp

import pytest
import torch
from mmpretrain.registry import MODELS

import mmbcssl  # noqa: F401  (registers the project's modules)
from tests.conftest import REPO_ROOT, load_config

LINEAR = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'linear', '*.py')))
ROBUST = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', 'robustness', '*.py')))


@pytest.mark.parametrize('path', LINEAR, ids=osp.basename)
def test_linear_probe_freezes_backbone(path):
    cfg = load_config(path)
    # the recipe: SGD momentum 0.9, no weight decay, cosine, 100 epochs
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.momentum, opt.weight_decay) == ('SGD', 0.9, 0.)
    if not path.endswith('-demo.py'):
        assert opt.lr == pytest.approx(0.001 * 1024 / 256)
        assert cfg.train_cfg.max_epochs == 100
        assert cfg.model.backbone.init_cfg.prefix == 'backbone.'
    cfg.model.backbone.init_cfg = None  # no checkpoint in the test
    model = MODELS.build(cfg.model)
    model.init_weights()
    bn_stats = {
        k: v.clone()
        for k, v in model.backbone.state_dict().items()
        if 'running_' in k
    }
    model.train()
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith('head.') for n in trainable), \
        trainable
    # A training-mode forward leaves the BN statistics untouched.
    size = 224 if 'vit' in path or 'swin' in path else 64
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size), mode='tensor')
    assert out.shape == (2, cfg.model.head.num_classes)
    for k, v in model.backbone.state_dict().items():
        if k in bn_stats:
            torch.testing.assert_close(v, bn_stats[k], rtol=0, atol=0)


@pytest.mark.parametrize('path', ROBUST, ids=osp.basename)
def test_robustness_configs(path):
    cfg = load_config(path)
    assert cfg.test_evaluator.type == 'SubsetAccuracy'
    dataset = cfg.test_dataloader.dataset
    if 'imagenet-c' in path:
        assert dataset.type == 'ImageNetC'
        assert dataset.get('subset_classes', 'unset') is None
        assert cfg.test_cfg.type == 'ImageNetCTestLoop'
        assert not cfg.test_cfg.allow_partial
    else:
        assert dataset.type == 'ImageNetSubset'
        # A and R: the official fixed 200-wnid list, not the folders found
        stem = osp.basename(path).split('_')[0].split('.')[0]
        expected = None if stem == 'imagenet-sketch' else stem
        assert dataset.get('subset_classes', 'unset') == expected
    if path.endswith('_demo.py'):  # robustness demo configs
        assert dataset.base_classes.endswith('meta/classes.txt')
        assert cfg.model.head.num_classes == 10
    else:
        assert dataset.base_classes == 'imagenet-1k'
        assert cfg.model.head.num_classes == 1000
        if 'imagenet-c' not in path:
            # resize 256 + centre crop 224, as the clean val set
            assert cfg.test_dataloader.dataset.pipeline[-2] == dict(
                type='CenterCrop', crop_size=224)
    assert MODELS.build(cfg.model) is not None


@pytest.mark.parametrize('path', LINEAR, ids=osp.basename)
def test_linear_probe_validates_every_epoch_and_crops_as_eval_linear(path):
    """DINO's eval_linear.py (and the BC-SSL authors' copy) validates after
    every epoch and reports the best one; its train crop is torchvision's
    RandomResizedCrop(224) with the default (bilinear) interpolation."""
    import inspect

    from torchvision import transforms
    cfg = load_config(path)
    assert cfg.train_cfg.val_interval == 1
    checkpoint = cfg.default_hooks.checkpoint
    assert (checkpoint.save_best, checkpoint.rule) == ('accuracy/top1',
                                                       'greater')
    default = inspect.signature(transforms.RandomResizedCrop).parameters[
        'interpolation'].default
    (crop, ) = [t for t in cfg.train_dataloader.dataset.pipeline
                if t.type == 'RandomResizedCrop']
    assert crop.interpolation == default.value == 'bilinear'
    # the val resize stays bicubic (eval_linear.py: interpolation=3)
    (resize, ) = [t for t in cfg.val_dataloader.dataset.pipeline
                  if t.type == 'ResizeEdge']
    assert resize.interpolation == 'bicubic'
