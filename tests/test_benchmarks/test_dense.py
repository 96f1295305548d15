"""The dense benchmark trains/infers real detectors and segmentors on
synthetic batches of the requested size, and measures memory."""
import json
import os.path as osp

import pytest
import torch

import mmbcssl  # noqa: F401
from mmbcssl.benchmarks.common import parse_model_spec
from mmbcssl.benchmarks.dense import build_step, cpu_peak_memory, main
from tests.conftest import REPO_ROOT

DET = osp.join(REPO_ROOT, 'configs', 'mask_rcnn',
               'mask-rcnn_bcssl-t-9x9_dino-demo-pre_fpn_1xb4-20e_coco-demo.py')
SEG = osp.join(REPO_ROOT, 'configs', 'upernet',
               'upernet_bcssl-t-9x9_dino-demo-pre_1xb4-300iter_ade20k-demo.py')


# The segmentor pads to its crop size (128 in the demo config) and needs 2
# images for the BN after its 1 x 1 pyramid pooling.
@pytest.mark.parametrize('config,batch,shape', [(DET, 1, (96, 128)),
                                                (SEG, 2, (128, 128))],
                         ids=['det', 'seg'])
def test_train_step_updates_weights_at_the_requested_size(
        config, batch, shape):
    step = build_step(parse_model_spec(config), batch, shape, 'train',
                      'cpu')
    assert tuple(step.data['inputs'].shape[-2:]) == shape
    # SyncBN would need a process group: the benchmark runs it as BN
    assert not any(isinstance(m, torch.nn.SyncBatchNorm)
                   for m in step.model.modules())
    before = step.model.backbone.stages[0][0].depthwise_conv.weight.clone()
    step()
    after = step.model.backbone.stages[0][0].depthwise_conv.weight
    assert not torch.equal(before, after)


def test_deploy_spec_runs_the_folded_backbone():
    """``CONFIG+deploy`` (the detection-FPS comparison) folds every BN."""
    step = build_step(parse_model_spec(DET + '+deploy'), 1, (64, 64),
                      'infer', 'cpu')
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for m in step.model.backbone.modules())
    step()
    with pytest.raises(ValueError, match='deploy mode is for inference'):
        build_step(parse_model_spec(DET + '+deploy'), 1, (64, 64), 'train',
                   'cpu')


def test_tool_writes_a_side_by_side_table(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    code = main([
        SEG, SEG + ',model.backbone.kernel_size=3', '--img-shape', '64',
        '64', '--repeats', '2', '--warmup', '1', '--no-memory', '--out',
        str(out)
    ])
    assert code == 0
    table = capsys.readouterr().out
    assert 'vs ' in table and '1.000x' in table
    res = json.loads(out.read_text())['results']
    assert len(res) == 2
    for r in res.values():
        assert len(r['samples']) == 2 and r['median'] > 0
        assert r['img_per_s'] == pytest.approx(2 * r['median'])


def test_cpu_peak_memory_grows_with_the_image():
    # each size is measured in its own process; the two run side by side
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:
        small, large = pool.map(
            lambda size: cpu_peak_memory(DET, 1, size, 'train'),
            [(64, 64), (320, 320)])
    assert 0 < small < large
