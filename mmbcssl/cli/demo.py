"""The demo pipeline behind ``bash tools/demo.sh``.

It makes the built-in demo data and runs, on it and through the same entry
points a user runs (``tools/train.py``, ``tools/test.py``, ...), every stage
of the study that the project has so far: each stage names the files it
needs and is skipped, with the reason, when they are not there. The summary
at the end says what ran, how long it took and where its outputs are.
"""
import argparse
import os.path as osp
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@dataclass
class Stage:
    """One step of the demo.

    Args:
        name (str): Short name shown in the summary.
        needs (list[str]): Repo-relative files the stage needs.
        command (callable): Builds the command line (called when the stage
            runs, so it can use what earlier stages produced).
        output (str): What the stage leaves behind, for the summary.
    """
    name: str
    needs: List[str]
    command: Callable[[], List[str]]
    output: str = ''
    status: str = field(default='not run', init=False)
    seconds: float = field(default=0., init=False)


def _tool(name: str) -> str:
    return osp.join(REPO, 'tools', name)


def build_stages(args: argparse.Namespace) -> List[Stage]:
    work = args.work_dir
    data = args.data_root
    dino_cfg = 'configs/dino/bcssl-t_9x9_100e_demo.py'
    dino_dir = osp.join(work, 'dino_bcssl-t_9x9')
    backbone = osp.join(work, 'bcssl-t_9x9.pth')
    knn_cfg = 'configs/_base_/models/bcssl-t_9x9.py'
    det_cfg = 'configs/mask_rcnn/bcssl-t_9x9_100e_fpn_demo.py'
    # Demo images are 96 px: centre crops of 64 after a 73 px resize (the
    # 224 / 256 ratio of the real protocol).
    knn_args = ['--data-root', f'{data}/imagenet', '--img-size', '64',
                '--resize', '73', '--ks', '10', '20']
    py = sys.executable
    return [
        Stage('make demo data', ['tools/misc/make_demo_data.py'],
              lambda: [py, _tool('misc/make_demo_data.py'), '--out', data],
              output=data),
        Stage('train and validate a tiny classifier (entry-tool smoke run)',
              ['tests/data/configs/tiny_classifier.py'],
              lambda: [
                  py, _tool('train.py'),
                  'tests/data/configs/tiny_classifier.py', '--work-dir',
                  osp.join(work, 'smoke'), '--cfg-options',
                  *_roots(data + '/imagenet')
              ],
              output=osp.join(work, 'smoke')),
        Stage('DINO pre-training of BC-SSL-T 9x9 (demo size)', [dino_cfg],
              lambda: [
                  py, _tool('train.py'), dino_cfg, '--work-dir', dino_dir,
                  '--cfg-options',
                  f'train_dataloader.dataset.data_root={data}/imagenet'
              ],
              output=dino_dir),
        Stage('extract the teacher backbone',
              ['tools/model_converters/extract_backbone.py', dino_cfg],
              lambda: [
                  py, _tool('model_converters/extract_backbone.py'),
                  _latest(dino_dir), backbone
              ],
              output=backbone),
        Stage('k-NN of BC-SSL-T 9x9 at random initialisation (baseline)',
              ['tools/knn_eval.py', knn_cfg],
              lambda: [
                  py, _tool('knn_eval.py'), knn_cfg, *knn_args, '--out',
                  osp.join(work, 'knn_random.json')
              ],
              output=osp.join(work, 'knn_random.json')),
        Stage('k-NN of the pre-trained teacher',
              ['tools/knn_eval.py', knn_cfg, dino_cfg],
              lambda: [
                  py, _tool('knn_eval.py'), knn_cfg, '--checkpoint',
                  backbone, *knn_args, '--out',
                  osp.join(work, 'knn_dino.json')
              ],
              output=osp.join(work, 'knn_dino.json')),
        Stage('Mask R-CNN from the pre-trained teacher (COCO-style demo)',
              ['tools/train.py', det_cfg, dino_cfg],
              lambda: [
                  py, _tool('train.py'), det_cfg, '--work-dir',
                  osp.join(work, 'mask_rcnn'), '--cfg-options',
                  f'model.backbone.init_cfg.checkpoint={backbone}',
                  *_coco_roots(f'{data}/coco')
              ],
              output=osp.join(work, 'mask_rcnn')),
    ]


def _roots(root: str) -> List[str]:
    return [f'{k}_dataloader.dataset.data_root={root}'
            for k in ('train', 'val', 'test')]


def _coco_roots(root: str) -> List[str]:
    ann = f'{root}/annotations/instances_val2017.json'
    return [f'{k}_dataloader.dataset.data_root={root}/'
            for k in ('train', 'val', 'test')] + [
                f'val_evaluator.ann_file={ann}',
                f'test_evaluator.ann_file={ann}'
            ]


def _latest(work_dir: str) -> str:
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return osp.join(work_dir, 'missing-checkpoint.pth')
    with open(path) as f:
        return f.read().strip()


def run_stages(stages: List[Stage], dry_run: bool = False) -> int:
    failed = 0
    for stage in stages:
        missing = [p for p in stage.needs if not osp.exists(osp.join(REPO, p))]
        if missing:
            stage.status = f'skipped: not in the project yet ({missing[0]})'
            continue
        if failed:
            stage.status = 'skipped: an earlier stage failed'
            continue
        cmd = stage.command()
        print(f'\n==> {stage.name}\n    $ {" ".join(cmd)}', flush=True)
        if dry_run:
            stage.status = 'dry run'
            continue
        start = time.time()
        code = subprocess.call(cmd, cwd=REPO)
        stage.seconds = time.time() - start
        stage.status = 'ok' if code == 0 else f'FAILED (exit {code})'
        failed += code != 0
    return failed


def print_summary(stages: List[Stage]) -> None:
    print('\nDemo summary')
    width = max(len(s.name) for s in stages)
    for s in stages:
        took = f'{s.seconds:6.0f}s' if s.seconds else ' ' * 7
        where = f'  -> {s.output}' if s.status == 'ok' and s.output else ''
        print(f'  {s.name:<{width}}  {took}  {s.status}{where}')


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default='data/demo')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument(
        '--dry-run', action='store_true', help='print the commands only')
    args = parser.parse_args(argv)
    stages = build_stages(args)
    failed = run_stages(stages, args.dry_run)
    print_summary(stages)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
