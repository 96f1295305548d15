"""Every private upstream API that mmbcssl uses, with the shape it relies on.

Private names (a leading underscore, or module internals such as mmengine's
backend cache) can change in any release. Each test below names where the
package uses one; when an upgrade breaks one, it fails here first, in one
clear place. A new use of a private upstream API gets a test here.
"""
import argparse
import importlib
import inspect
import pickle
from importlib import resources

import numpy as np
import pytest
import torch
import torch.nn as nn

import mmbcssl  # noqa: F401


# --- mmengine ----------------------------------------------------------------
@pytest.mark.parametrize('text, value', [('[1,2]', [1, 2]), ('(1,2)', (1, 2)),
                                         ('0.5', 0.5), ('7', 7),
                                         ('True', True), ('None', None),
                                         ('abc', 'abc')])
def test_dict_action_parse_iterable(text, value):
    """suite/evaluations.py, benchmarks/common.py: ``key=value`` options
    parsed as ``--cfg-options`` parses them."""
    from mmengine.config import DictAction
    parsed = DictAction._parse_iterable(text)
    assert parsed == value and type(parsed) is type(value)


def test_mmlogger_instance_dict():
    """utils/launch.py, cli/vis_cam.py: whether any MMLogger exists yet."""
    from mmengine.logging import MMLogger
    assert isinstance(MMLogger._instance_dict, dict)
    logger = MMLogger.get_instance('mmbcssl_private_api_test')
    assert MMLogger._instance_dict['mmbcssl_private_api_test'] is logger


def test_file_backend_cache():
    """fileio.py: the backends ``get_file_backend(enable_singleton=True)``
    keeps, in ``mmengine.fileio.io.backend_instances``."""
    import mmengine.fileio.io as fileio_io
    from mmengine.fileio import get_file_backend
    backend = get_file_backend('x/y.pth', enable_singleton=True)
    assert isinstance(fileio_io.backend_instances, dict)
    assert any(b is backend for b in fileio_io.backend_instances.values())


def test_base_dataset_metainfo_and_serialize_data():
    """datasets/imagenet_subset.py writes ``_metainfo``;
    datasets/imagenet_c.py overrides ``_serialize_data() -> (data_bytes,
    data_address)``, which ``full_init`` calls."""
    from mmengine.dataset import BaseDataset
    calls = []

    class Tiny(BaseDataset):
        METAINFO = dict(classes=('a', 'b'))

        def load_data_list(self):
            return [dict(img_path='a.jpg', gt_label=0),
                    dict(img_path='b.jpg', gt_label=1)]

        def _serialize_data(self):
            calls.append(len(self.data_list))
            return super()._serialize_data()

    ds = Tiny(serialize_data=True, lazy_init=True)
    assert isinstance(ds._metainfo, dict)
    ds._metainfo['class_indices'] = (3, 4)
    assert ds.metainfo['class_indices'] == (3, 4)
    ds.full_init()
    assert calls == [2]
    assert isinstance(ds.data_bytes, np.ndarray)
    assert isinstance(ds.data_address, np.ndarray)
    assert ds[1]['img_path'] == 'b.jpg'


def test_checkpoint_hook_save_methods():
    """engine/hooks/safe_checkpoint_hook.py overrides both."""
    from mmengine.hooks import CheckpointHook
    assert list(inspect.signature(
        CheckpointHook._save_checkpoint_with_step).parameters) == [
            'self', 'runner', 'step', 'meta']
    assert list(inspect.signature(
        CheckpointHook._save_best_checkpoint).parameters) == [
            'self', 'runner', 'metrics']


def test_epoch_loop_epoch_and_iter():
    """engine/runner/resumable_loop.py reads and advances ``_epoch`` and
    reads ``_iter``: the attributes behind ``epoch`` and ``iter``."""
    from mmengine.runner import EpochBasedTrainLoop
    loop = EpochBasedTrainLoop.__new__(EpochBasedTrainLoop)
    loop._epoch, loop._iter = 2, 7
    assert (loop.epoch, loop.iter) == (2, 7)


def test_amp_optim_wrapper_scale_update_param(monkeypatch):
    """engine/optimizers/dino_optim_wrapper.py passes
    ``_scale_update_param`` to ``loss_scaler.update``, as mmengine's own
    ``AmpOptimWrapper.step`` does."""
    from mmengine.optim import AmpOptimWrapper
    from mmengine.optim.optimizer import amp_optimizer_wrapper

    # mmengine refuses to build the wrapper without a GPU; it is only
    # built here
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                        lambda: True)
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    assert AmpOptimWrapper(optimizer=optimizer,
                           loss_scale=8.0)._scale_update_param == 8.0
    assert AmpOptimWrapper(optimizer=optimizer,
                           loss_scale='dynamic')._scale_update_param is None
    assert 'self.loss_scaler.update(self._scale_update_param)' in \
        inspect.getsource(AmpOptimWrapper.step)


# --- mmpretrain ----------------------------------------------------------
def test_convnext_freeze_stages():
    """models/backbones/bcssl.py calls and extends ``_freeze_stages()``,
    which freezes the first ``frozen_stages`` stages."""
    from mmpretrain.models import ConvNeXt
    model = ConvNeXt(arch=dict(depths=[1, 1, 1, 1], channels=[8, 8, 8, 8]),
                     frozen_stages=0)
    assert list(inspect.signature(model._freeze_stages).parameters) == []
    model.frozen_stages = 1
    model._freeze_stages()
    assert not any(p.requires_grad
                   for p in model.downsample_layers[0].parameters())
    assert not any(p.requires_grad for p in model.stages[0].parameters())
    assert all(p.requires_grad for p in model.stages[1].parameters())


# --- torch ------------------------------------------------------------------
def test_batchnorm_base_class_checks_input_dim():
    """engine/model_wrappers/cpu_sync_batch_norm.py subclasses
    ``_BatchNorm`` and overrides ``_check_input_dim``."""
    from torch.nn.modules.batchnorm import _BatchNorm
    seen = []

    class BN(_BatchNorm):

        def _check_input_dim(self, input):
            seen.append(input.dim())

    BN(3)(torch.randn(2, 3, 4, 4))
    assert seen == [4]


def test_module_load_from_state_dict_signature():
    """models/backbones/swin_last_blocks.py overrides it."""
    assert list(inspect.signature(
        nn.Module._load_from_state_dict).parameters) == [
            'self', 'state_dict', 'prefix', 'local_metadata', 'strict',
            'missing_keys', 'unexpected_keys', 'error_msgs']


def test_weights_only_unpickler_allow_list():
    """compat.py, on torch 2.1 - 2.4, extends what
    ``_get_allowed_globals()`` returns (``{full name: object}``); the
    weights-only unpickler looks it up as a module global."""
    import torch._weights_only_unpickler as wou
    allowed = wou._get_allowed_globals()
    assert allowed['collections.OrderedDict'] is __import__(
        'collections').OrderedDict
    assert "_get_allowed_globals()" in inspect.getsource(wou.Unpickler)


def test_inductor_freezing_flag():
    """benchmarks/inference.py sets it for CPU inference graphs."""
    import torch._inductor.config as inductor_config
    assert isinstance(inductor_config.freezing, bool)


# --- numpy, timm, argparse ---------------------------------------------------
def test_numpy_reconstruct_globals():
    """fileio.py allow-lists ``multiarray._reconstruct`` and ``scalar``
    under numpy's private module path, the one pickles of arrays name."""
    data = pickle.dumps([np.arange(3), np.float64(1.5)], protocol=2)
    name = 'numpy._core.multiarray' if b'numpy._core.multiarray' in data \
        else 'numpy.core.multiarray'
    assert name.encode() in data
    multiarray = importlib.import_module(name)
    assert callable(multiarray._reconstruct) and callable(multiarray.scalar)


def test_timm_imagenet_synset_lists():
    """datasets/imagenet_subset.py and datasets/demo/make.py read timm's
    package data ``timm.data._info``."""
    info = resources.files('timm.data._info')
    sizes = {name: len(info.joinpath(name).read_text().split())
             for name in ('imagenet_synsets.txt', 'imagenet_a_synsets.txt',
                          'imagenet_r_synsets.txt')}
    assert sizes == {'imagenet_synsets.txt': 1000,
                     'imagenet_a_synsets.txt': 200,
                     'imagenet_r_synsets.txt': 200}


def test_argparse_option_string_actions():
    """benchmarks/common.py asks whether a parser has an option."""
    parser = argparse.ArgumentParser()
    action = parser.add_argument('--out')
    assert parser._option_string_actions['--out'] is action
    assert '--overwrite' not in parser._option_string_actions
