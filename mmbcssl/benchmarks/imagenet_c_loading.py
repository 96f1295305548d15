"""How fast the ImageNet-C evaluation can be fed: data loading alone.

``tools/analysis_tools/benchmark_imagenet_c.py``. ImageNet-C is 75 passes
over 50,000 images. This measures the loading side of
:class:`mmbcssl.engine.runner.ImageNetCTestLoop` with the robustness
config's own dataset, pipeline and loader settings, and a stand-in for the
model (a fixed time per batch, or nothing), in two modes measured side by
side: a loader per pass, one after the other (``per-pass``: the workers
start again at every pass), and the loop's single loader over every pass
(``one-loader``: :func:`~mmbcssl.engine.runner.pass_batches.
all_passes_loader`, the workers start once).

Reported per mode: images/s over all passes, and the stall at each pass
boundary (how long the consumer waited for the first batch of a pass).
``per-worker`` is the in-process decode rate of the pipeline (no workers):
a GPU that evaluates ``G`` images/s needs about ``G / per-worker``
workers. Without ``--root`` a synthetic ImageNet-C-style tree of 224-px
JPEGs is made in a temporary folder (smooth colour images, about as costly
to decode as the benchmark's).

    python tools/analysis_tools/benchmark_imagenet_c.py --passes 8 \\
        --images 512 --workers 2 --batch-size 64 [--model-ms 20] \\
        [--root data/imagenet-c] [--device cuda] [--out c_loading.json]

``--loop`` measures the whole loop instead: ``ImageNetCTestLoop`` with the
model of ``--model-from`` (random weights) on the tree, timed by a hook: the
wall time of the run against the summed time of the model's test steps
(the loop's overhead is their ratio), for each ``--workers`` value given.

    python tools/analysis_tools/benchmark_imagenet_c.py --loop \\
        --config configs/robustness/imagenet-c_demo.py \\
        --model-from configs/linear/<demo probe>.py \\
        --root data/demo/imagenet-c --loop-workers 0 2
"""
import argparse
import os
import os.path as osp
import statistics
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from mmbcssl.apis import load_model_config, use_config_scope
from mmbcssl.datasets.imagenet_c import scan_tree
from mmbcssl.engine.runner.imagenet_c_loop import pass_loader_cfg
from mmbcssl.engine.runner.pass_batches import all_passes_loader
from mmbcssl.evaluation.robustness import BENCHMARK_CORRUPTIONS, SEVERITIES
from mmbcssl.utils.launch import UserError, take_model_from
from mmbcssl.utils.outputs import write_json
from .common import format_table, round_robin, run_main, sync, timed

CONFIG = 'configs/robustness/imagenet-c.py'
MODES = ('per-pass', 'one-loader')


def make_tree(root: str, passes: int, images: int, classes: int = 10,
              size: int = 224, seed: int = 0) -> List[Tuple[str, int]]:
    """An ImageNet-C-style tree of ``passes`` (corruption, severity)
    folders with ``images`` JPEGs each over ``classes`` wnid folders; the
    images are the same in every pass (decoding cost is what is timed)."""
    import cv2

    from mmbcssl.datasets.imagenet_subset import IMAGENET_1K, load_wnids
    from .pipeline import synthetic_images
    plan = [(c, s) for c in BENCHMARK_CORRUPTIONS for s in SEVERITIES]
    if not 1 <= passes <= len(plan):
        raise ValueError(f'passes must be in [1, {len(plan)}], got {passes}')
    wnids = load_wnids(IMAGENET_1K)[:classes]
    encoded = [
        cv2.imencode('.JPEG', img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]
        for img in synthetic_images(images, size, size, seed)
    ]
    for corruption, severity in plan[:passes]:
        for i, data in enumerate(encoded):
            folder = osp.join(root, corruption, str(severity),
                              wnids[i % classes])
            os.makedirs(folder, exist_ok=True)
            data.tofile(osp.join(folder, f'img_{i:05d}.JPEG'))
    return plan[:passes]


def _template(config: Config, root: str, batch_size: int, workers: int,
              pin_memory: bool) -> Dict:
    """The loop's per-pass loader config, with this run's settings."""
    template = dict(config.test_dataloader)
    template.update(batch_size=batch_size, num_workers=workers,
                    pin_memory=pin_memory)
    template['dataset'] = dict(template['dataset'], data_root=root)
    if not workers:
        template.pop('prefetch_factor', None)
    return template


def _loader_builder(config: Config, root: str, plan, batch_size: int,
                    workers: int, pin_memory: bool):
    template = _template(config, root, batch_size, workers, pin_memory)

    def build(k):
        return Runner.build_dataloader(pass_loader_cfg(template, *plan[k]),
                                       seed=0)

    return build


def _batches(mode: str, build, plan, template: Dict):
    """``(pass, batch)`` of every pass, through a loader per pass or the
    loop's one loader."""
    if mode == 'per-pass':
        for k in range(len(plan)):
            for batch in build(k):
                yield k, batch
        return
    datasets = [build(k).dataset for k in range(len(plan))]
    sampler, loader = all_passes_loader(datasets, template, seed=0)
    for b, batch in enumerate(loader):
        yield sampler.pass_of_batch[b], batch


def _consume(batches, device: torch.device,
             model_s: float) -> Tuple[int, List[float]]:
    """Images, and, per pass boundary, the time from the end of the last
    batch of a pass to the arrival of the next pass's first batch."""
    count, stalls = 0, []
    done, current = None, 0  # when the previous batch was finished
    for k, batch in batches:
        if k != current and done is not None:
            stalls.append(time.perf_counter() - done)
        current = k
        inputs = torch.stack(batch['inputs']) if isinstance(
            batch['inputs'], list) else batch['inputs']
        inputs = inputs.to(device, non_blocking=True)
        if model_s:
            time.sleep(model_s)
        sync(device)
        count += inputs.shape[0]
        done = time.perf_counter()
    return count, stalls


def per_worker_rate(build) -> Tuple[float, int]:
    """Images/s of the dataset + pipeline in this process (one worker's
    rate) over every image of the first pass, and that pass's size."""
    dataset = build(0).dataset

    def load_all() -> None:
        for i in range(len(dataset)):
            dataset[i]

    seconds, _ = timed(load_all)
    return len(dataset) / seconds, len(dataset)


def run(root: Optional[str], passes: int, images: int, batch_size: int,
        workers: int, model_ms: float, device: str, repeats: int,
        config_path: str = CONFIG) -> Dict:
    config = load_model_config(config_path)
    use_config_scope(config)
    dev = torch.device(device)
    synthetic = root is None
    with tempfile.TemporaryDirectory() as tmp:
        if synthetic:
            root = osp.join(tmp, 'imagenet-c')
            plan = make_tree(root, passes, images)
        else:
            found, _ = scan_tree(root, BENCHMARK_CORRUPTIONS, SEVERITIES)
            plan = sorted(found)[:passes]
            if not plan:
                raise FileNotFoundError(f'no corruption folders in {root}')
        build = _loader_builder(config, root, plan, batch_size, workers,
                                pin_memory=dev.type == 'cuda')
        template = _template(config, root, batch_size, workers,
                             dev.type == 'cuda')
        rate, n_images = per_worker_rate(build)
        counts: Dict[str, int] = {}
        stalls: Dict[str, List[float]] = {m: [] for m in MODES}

        def all_passes(mode: str):

            def consume() -> None:
                counts[mode], s = _consume(
                    _batches(mode, build, plan, template), dev,
                    model_ms / 1000)
                stalls[mode].extend(s)

            return consume

        # interleaved: noise hits both modes
        seconds = round_robin({m: all_passes(m) for m in MODES}, repeats)
        samples = {m: [counts[m] / t for t in seconds[m]] for m in MODES}
    results = {
        mode: dict(images_per_s=statistics.median(samples[mode]),
                   samples=samples[mode],
                   boundary_stall_s=statistics.median(stalls[mode])
                   if stalls[mode] else 0.0)
        for mode in MODES
    }
    return dict(
        setting=dict(passes=len(plan), images_per_pass=n_images,
                     batch_size=batch_size, workers=workers,
                     model_ms_per_batch=model_ms, device=device,
                     repeats=repeats, synthetic=synthetic,
                     torch=torch.__version__, cpu_count=os.cpu_count()),
        per_worker_images_per_s=rate,
        results=results,
        one_loader_vs_per_pass=results['one-loader']['images_per_s'] /
        results['per-pass']['images_per_s'])


class _StepTimer:
    """A hook timing each test step (model forward and metric update)."""
    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self.step_s = 0.0
        self._start = None

    def before_test_iter(self, runner, batch_idx, data_batch=None):
        self._start = time.perf_counter()

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None):
        self.step_s += time.perf_counter() - self._start


def loop_overhead(config_path: str, model_from: str, root: str,
                  workers: int, batch_size: Optional[int] = None,
                  cfg_options: Optional[Dict] = None) -> Dict:
    """Wall time of :class:`ImageNetCTestLoop` over a tree against the
    summed time of its model steps, with random weights."""
    from mmengine.hooks import Hook
    config = load_model_config(config_path)
    take_model_from(config, model_from)
    config.model.backbone.init_cfg = None
    config.test_dataloader.dataset.data_root = root
    config.test_dataloader.num_workers = workers
    config.test_dataloader.persistent_workers = False
    if batch_size:
        config.test_dataloader.batch_size = batch_size
    if cfg_options:
        config.merge_from_dict(cfg_options)
    config.work_dir = tempfile.mkdtemp(prefix='c_loop_')
    config.log_level = 'WARNING'
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper',
                'val_dataloader', 'val_cfg', 'val_evaluator',
                'param_scheduler', 'load_from'):
        config.pop(key, None)
    timer = type('StepTimerHook', (_StepTimer, Hook), {})()
    runner = Runner.from_cfg(config)
    runner.register_hook(timer)
    start = time.perf_counter()
    runner.test()
    wall = time.perf_counter() - start
    return dict(workers=workers, wall_s=wall, model_steps_s=timer.step_s,
                passes=len(runner.test_loop.plan),
                images=runner.test_loop.images_evaluated,
                ratio=wall / timer.step_s)


def format_result(out: Dict) -> str:
    """The result of :func:`run` as a Markdown table and a summary line."""
    rows = [[
        mode, f"{out['results'][mode]['images_per_s']:.1f}",
        f"{out['results'][mode]['boundary_stall_s']:.3f}"
    ] for mode in MODES]
    table = format_table(
        ['mode', 'img/s (median)', 'stall at a pass boundary (s)'], rows,
        markdown=True)
    return (f"{table}\none loader / a loader per pass: "
            f"{out['one_loader_vs_per_pass']:.3f}x; one worker "
            f"decodes {out['per_worker_images_per_s']:.0f} img/s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description='ImageNet-C loading throughput, sequential vs '
        'overlapped passes')
    parser.add_argument('--root', help='an ImageNet-C tree (default: a '
                        'synthetic one in a temporary folder)')
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--passes', type=int, default=8)
    parser.add_argument('--images', type=int, default=512,
                        help='images per pass of the synthetic tree')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--model-ms', type=float, default=0.0,
                        help='stand-in model time per batch')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument(
        '--loop', action='store_true',
        help='time the whole ImageNetCTestLoop (with --model-from\'s model '
        'and --root) against its model steps instead')
    parser.add_argument('--model-from', help='--loop: the model config')
    parser.add_argument('--loop-workers', type=int, nargs='+', default=[0],
                        help='--loop: data workers, one run each')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='--loop: overrides of the config')
    parser.add_argument('--out', help='write the result as JSON')
    return parser


def report(args: argparse.Namespace) -> None:
    if args.workers < 0 or args.batch_size < 1 or args.repeats < 1:
        raise UserError('--workers >= 0, --batch-size >= 1, --repeats >= 1')
    if args.loop:
        if not (args.model_from and args.root):
            raise UserError('--loop needs --model-from and --root')
        runs = [loop_overhead(args.config, args.model_from, args.root, w,
                              args.batch_size, args.cfg_options)
                for w in args.loop_workers]
        print(format_table(
            ['workers', 'passes', 'images', 'wall (s)', 'model steps (s)',
             'wall / model'],
            [[r['workers'], r['passes'], r['images'], f"{r['wall_s']:.1f}",
              f"{r['model_steps_s']:.1f}", f"{r['ratio']:.3f}"]
             for r in runs], markdown=True))
        if args.out:
            write_json(args.out, dict(loop=runs))
        return
    out = run(args.root, args.passes, args.images, args.batch_size,
              args.workers, args.model_ms, args.device, args.repeats,
              args.config)
    print(format_result(out))
    if args.out:
        write_json(args.out, out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_main(build_parser(), report, argv)
