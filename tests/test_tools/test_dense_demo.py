"""Mask R-CNN and UperNet demo configs through the real entry points:
2-process torchrun/gloo training with pycocotools evaluation, and test.py
(with --tta for segmentation) on the demo sets."""
import os
import os.path as osp
import subprocess
import sys

from mmbcssl.cli import test as test_api
from mmbcssl.cli import train as train_api
from tests.conftest import REPO_ROOT, derived_config, free_port

DET_NAME = 'mask-rcnn_bcssl-t-9x9_dino-demo-pre_fpn_1xb4-20e_coco-demo.py'
DET = osp.join(REPO_ROOT, 'configs', 'mask_rcnn', DET_NAME)
SEG_NAME = 'upernet_bcssl-t-9x9_dino-demo-pre_1xb4-300iter_ade20k-demo.py'
SEG = osp.join(REPO_ROOT, 'configs', 'upernet', SEG_NAME)


# The demo recipes on a narrow BC-SSL (the same blocks, one per stage, 16-128
# channels) and necks/heads fed by it: launch, evaluation and test-time
# augmentation do not depend on the width.
NARROW_ARCH = ('arch=dict(_delete_=True, depths=[1, 1, 1, 1], '
               'channels=[16, 32, 64, 128])')


def _narrow(tmp_path, config, rest):
    return derived_config(
        tmp_path / f'narrow_{osp.basename(config)}', config,
        f'model = dict(backbone=dict({NARROW_ARCH}), {rest})\n')


def _narrow_det(tmp_path):
    return _narrow(tmp_path, DET, 'neck=dict(in_channels=[16, 32, 64, 128])')


def _narrow_seg(tmp_path):
    return _narrow(tmp_path, SEG,
                   'decode_head=dict(in_channels=[16, 32, 64, 128]), '
                   'auxiliary_head=dict(in_channels=64)')


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


def _reproduced(out, result, num_metrics):
    """The outcomes file of a tools/test.py result; each metric it
    names is recomputed from it, on the whole sample, to the result's
    number."""
    from mmbcssl.evaluation.outcomes import outcomes_path, read_outcomes
    from mmbcssl.evaluation.statistics import statistic
    assert osp.isfile(outcomes_path(str(out)))
    outcomes = read_outcomes(str(out), result['outcomes'])
    assert len(outcomes.images) == result['fingerprint']['protocol'][
        'images']
    assert len(outcomes.meta['metrics']) == num_metrics
    for key, entry in outcomes.meta['metrics'].items():
        entry = dict(entry)
        value = statistic(entry.pop('statistic'))(outcomes, None, **entry)
        assert value == result['metrics'][key], key
    return outcomes


def test_mask_rcnn_dist_train_two_processes_then_test(demo_data, tmp_path,
                                                      capsys):
    """tools/dist_train.sh -> torchrun -> 2 gloo processes; COCO bbox and
    segm AP gathered across both; then tools/test.py on the checkpoint."""
    root = osp.join(demo_data, 'coco')
    det = _narrow_det(tmp_path)
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
               OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), det, '2',
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
        det, ckpt, '--work-dir', str(tmp_path / 'test'), '--out', str(out),
        '--cfg-options', *_det_options(root)
    ])
    assert code == 0
    import json
    result = json.loads(out.read_text())
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert 0. <= result['metrics'][key] <= 1.
    proto = result['fingerprint']['protocol']
    assert proto['task'] == 'coco-detection'
    assert proto['metrics'] == ['bbox', 'segm']
    # per-image outcomes beside it reproduce the AP columns' numbers
    outcomes = _reproduced(out, result, 4)
    assert outcomes.images[0].startswith('val2017/')


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
    seg = _narrow_seg(tmp_path)
    assert train_api.main([seg, '--work-dir',
                           str(tmp_path), '--cfg-options', *opts]) == 0
    ckpt = osp.join(tmp_path, 'iter_2.pth')
    assert osp.isfile(ckpt)
    for extra in ([], ['--tta']):
        out = tmp_path / f'miou{len(extra)}.json'
        code = test_api.main([seg, ckpt, '--work-dir', str(tmp_path / 't'),
                              '--out', str(out), *extra, '--cfg-options',
                              *opts])
        assert code == 0
        import json
        result = json.loads(out.read_text())
        assert 0. <= result['metrics']['mIoU'] <= 100.
        proto = result['fingerprint']['protocol']
        assert proto['task'] == 'semantic-segmentation'
        assert proto.get('tta', False) == bool(extra)
        assert _reproduced(out, result, 1).kind == 'counts'


def test_missing_coco_and_ade_roots_name_the_tree(tmp_path, capsys):
    cases = [
        ('mask_rcnn/mask-rcnn_bcssl-t-9x9_dino-100e-pre_fpn_'
         '8xb2-amp-lrd-ms-crop-3x_coco.py',
         'annotations/instances_{train2017,val2017}.json'),
        ('upernet/upernet_bcssl-t-9x9_dino-100e-pre_'
         '8xb2-amp-lrd-160k_ade20k-512x512.py',
         'annotations/{training,validation}/*.png'),
        (f'upernet/{SEG_NAME}', '<data_prefix.seg_map_path>'),
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


def test_demo_runs_the_suite_on_the_pretrained_teacher(capsys):
    """bash tools/demo.sh: data, DINO pre-training, the demo suite on its
    last checkpoint (whose teacher the suite extracts), then the report."""
    from mmbcssl.cli import demo
    assert demo.main(['--dry-run', '--work-dir', 'w', '--data-root',
                      'd']) == 0
    out = capsys.readouterr().out
    steps = [out.index(s) for s in ('make_demo_data.py', 'train.py',
                                    'run_suite.py', 'report.py')]
    assert steps == sorted(steps)
    assert 'configs/dino/bcssl-t_9x9_100e_demo.py w/dino/' in out
    assert '--suite configs/suites/demo.py --work-dir w/suite' in out
    assert 'train_dataloader.dataset.data_root=d/imagenet' in out


def test_demo_evaluates_random_init_teacher_and_supervised_control(capsys):
    """Beside the teacher the demo trains the supervised ResNet-18 control,
    runs the control suite (k-NN, probe) on the random init and on it,
    draws the three in the CAM and ERF figures and reports three rows."""
    from mmbcssl.cli import demo
    assert demo.main(['--dry-run', '--work-dir', 'w', '--data-root',
                      'd']) == 0
    out = capsys.readouterr().out
    supervised = 'configs/supervised/resnet18_1xb32-adamw-8e_in1k-demo.py'
    assert f'train.py {supervised} --work-dir w/supervised' in out
    assert ('run_suite.py configs/dino/bcssl-t_9x9_100e_demo.py none '
            '--suite configs/suites/demo_control.py --work-dir '
            'w/suite_random-init') in out
    assert (f'run_suite.py {supervised} w/supervised/missing-checkpoint.pth'
            ' --suite configs/suites/demo_control.py --work-dir '
            'w/suite_supervised') in out
    figures = [line for line in out.splitlines()
               if 'vis_cam.py' in line or 'vis_erf.py' in line]
    assert len(figures) == 2
    for line in figures:
        assert line.count('--model') == 3
        assert f'--model {supervised} w/supervised/' in line
        assert ("--labels 'random init' 'demo DINO teacher' 'supervised "
                "control'") in line
    assert ('report.py w/suite_random-init w/suite w/suite_supervised '
            '--out w/report') in out


def test_demo_results_table_reads_the_suite_results(tmp_path):
    """The demo's closing table: k-NN (k=20) and linear top-1 of the random
    init, the teacher and the supervised control, each from its own suite;
    then the teacher's other lines, COCO AP scaled from pycocotools'
    fractions; a missing result as '–'."""
    import json
    from mmbcssl.cli import demo

    def result(suite, name, metrics):
        res = tmp_path / suite / 'results'
        res.mkdir(parents=True, exist_ok=True)
        (res / f'{name}.json').write_text(json.dumps(dict(metrics=metrics)))

    result('suite', 'knn', {'knn/k10_top1': 12.5, 'knn/k20_top1': 15.0})
    result('suite', 'mask_rcnn', {
        'coco/bbox_mAP': 0.034, 'coco/bbox_mAP_50': 0.081,
        'coco/segm_mAP': 0.029, 'coco/segm_mAP_50': 0.07})
    result('suite_random-init', 'knn', {'knn/k20_top1': 10.8})
    result('suite_random-init', 'linear', {'accuracy/top1': 9.2})
    result('suite_supervised', 'knn', {'knn/k20_top1': 55.0})
    result('suite_supervised', 'linear', {'accuracy/top1': 60.8})
    rows = {line.split('  ')[1]: line.rsplit('  ', 1)[1].strip()
            for line in demo.results_table(str(tmp_path)) if '  ' in line}
    assert rows['random init (BC-SSL-T 9x9)'] == '10.8 / 9.2'
    assert rows['DINO teacher (BC-SSL-T 9x9, 3 epochs)'] == '15.0 / –'
    assert rows['supervised control (ResNet-18, labels)'] == '55.0 / 60.8'
    assert rows['Mask R-CNN box AP / AP50, mask AP / AP50 (%)'] == \
        '3.4 / 8.1 / 2.9 / 7.0'
