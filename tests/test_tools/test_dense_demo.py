"""Mask R-CNN and UperNet demo configs through the real entry points:
2-process torchrun/gloo training with pycocotools evaluation, and test.py
(with --tta for segmentation) on the demo sets."""
import os
import os.path as osp
import socket
import subprocess
import sys

from mmbcssl.cli import test as test_api
from mmbcssl.cli import train as train_api
from tests.conftest import REPO_ROOT

DET = osp.join(REPO_ROOT, 'configs', 'mask_rcnn',
               'bcssl-t_9x9_100e_fpn_demo.py')
SEG = osp.join(REPO_ROOT, 'configs', 'upernet',
               'bcssl-t_9x9_100e_upernet_demo.py')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _det_options(root):
    return [
        # no SSL checkpoint in the test: random initialisation
        'model.backbone.init_cfg=None',
        f'train_dataloader.dataset.data_root={root}/',
        f'val_dataloader.dataset.data_root={root}/',
        f'test_dataloader.dataset.data_root={root}/',
        f'val_evaluator.ann_file={root}/annotations/instances_val2017.json',
        f'test_evaluator.ann_file={root}/annotations/instances_val2017.json',
        'train_dataloader.batch_size=2', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0'
    ]


def test_mask_rcnn_dist_train_two_processes_then_test(demo_data, tmp_path,
                                                      capsys):
    """tools/dist_train.sh -> torchrun -> 2 gloo processes; COCO bbox and
    segm AP gathered across both; then tools/test.py on the checkpoint."""
    root = osp.join(demo_data, 'coco')
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(_free_port()),
               OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), DET, '2',
         '--work-dir', str(tmp_path), '--cfg-options', *_det_options(root)],
        capture_output=True, text=True, timeout=900, cwd=REPO_ROOT, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'GPU number: 2' in log
    assert 'layer_wise LR decay, rate 0.95' in log
    # every parameter's lr scale is logged once: the stem's is 0.95^7
    assert 'backbone.downsample_layers.0.0.weight: 0.6983, 0.05' in log
    assert 'coco/bbox_mAP' in log and 'coco/segm_mAP' in log
    ckpt = osp.join(tmp_path, 'epoch_1.pth')
    assert osp.isfile(ckpt)

    out = tmp_path / 'metrics.json'
    code = test_api.main([
        DET, ckpt, '--work-dir', str(tmp_path / 'test'), '--out', str(out),
        '--cfg-options', *_det_options(root)
    ])
    assert code == 0
    import json
    metrics = json.loads(out.read_text())
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert 0. <= metrics[key] <= 1.


def test_upernet_demo_trains_and_tests_with_tta(demo_data, tmp_path):
    root = osp.join(demo_data, 'seg')
    opts = [
        'model.backbone.init_cfg=None',
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0'
    ]
    assert train_api.main([SEG, '--work-dir',
                           str(tmp_path), '--cfg-options', *opts]) == 0
    ckpt = osp.join(tmp_path, 'iter_2.pth')
    assert osp.isfile(ckpt)
    for extra in ([], ['--tta']):
        out = tmp_path / f'miou{len(extra)}.json'
        code = test_api.main([SEG, ckpt, '--work-dir', str(tmp_path / 't'),
                              '--out', str(out), *extra, '--cfg-options',
                              *opts])
        assert code == 0
        import json
        assert 0. <= json.loads(out.read_text())['mIoU'] <= 100.


def test_missing_coco_and_ade_roots_name_the_tree(tmp_path, capsys):
    cases = [
        ('mask_rcnn/bcssl-t_9x9_100e_fpn_3x_coco.py',
         'annotations/instances_{train2017,val2017}.json'),
        ('upernet/bcssl-t_9x9_100e_upernet_160k_ade20k.py',
         'annotations/{training,validation}/*.png'),
        ('upernet/bcssl-t_9x9_100e_upernet_demo.py',
         '<data_prefix.seg_map_path>'),
    ]
    for config, tree in cases:
        code = train_api.main([
            osp.join(REPO_ROOT, 'configs', config), '--work-dir',
            str(tmp_path), '--cfg-options',
            f'train_dataloader.dataset.data_root={tmp_path}/none'
        ])
        err = capsys.readouterr().err
        assert code == 2, config
        assert f"data root '{tmp_path}/none' does not exist" in err
        assert tree in err


def test_demo_detects_from_the_extracted_teacher(capsys):
    """bash tools/demo.sh: the Mask R-CNN stage starts from the backbone the
    extraction stage wrote, on the demo COCO set."""
    from mmbcssl.cli import demo
    assert demo.main(['--dry-run', '--work-dir', 'w', '--data-root',
                      'd']) == 0
    out = capsys.readouterr().out
    extract = out.index('extract_backbone.py')
    det = out.index('configs/mask_rcnn/bcssl-t_9x9_100e_fpn_demo.py')
    assert extract < det
    assert 'model.backbone.init_cfg.checkpoint=w/bcssl-t_9x9.pth' in out
    assert 'val_evaluator.ann_file=d/coco/annotations/' in out
