"""A DINO training iteration: mmengine's Runner against a bare loop.

``tools/analysis_tools/benchmark_dino_iter.py``: one DINO training
iteration through mmengine's Runner against a bare PyTorch loop with the
same model, loss and optimiser, side by side in one process.

Both paths train a copy of the same model (built from the config) on the
same pre-cropped uint8 views held in memory, so neither data decoding nor
augmentation is timed (``benchmark_pipeline.py`` measures those):

* ``mmengine``: ``Runner.train()`` of the config (its optimiser wrapper,
  parameter schedulers, ``DINOTeacherHook`` and default hooks) over a
  DataLoader of those views; an iteration is the time between two
  consecutive ``after_train_iter`` calls, so the loop, every hook, the data
  preprocessor and the step are inside it.
* ``bare``: the loop of facebookresearch/dino ``main_dino.py`` written out
  with plain torch: normalise, teacher on the global views, student per
  resolution, the loss, backward, per-tensor clipping, last-layer freeze,
  AdamW with lr/wd set from their schedules, the EMA. It calls the same
  modules (``teacher``, ``student``, ``loss_module``) and takes its
  parameter groups from the config's ``DINOOptimWrapperConstructor``.

The bare loop runs half of its iterations before the Runner and half after,
so a drift of the machine shows up as a spread, not as a bias. Reported:
median images/s, the ratio mmengine / bare, and the peak memory of each path
(CUDA: peak allocated; CPU with ``--memory``: peak resident memory of each
path in a fresh process).
"""
import argparse
import copy
import math
import statistics
import time
from typing import Any, Dict, List, Optional

import torch

from mmbcssl.engine.optimizers import (DINOOptimWrapperConstructor,
                                       clip_per_tensor)
from mmbcssl.engine.schedules import cosine_schedule
from mmbcssl.utils.outputs import write_json
from .common import (peak_memory_mb, reset_peak_memory, run_main, spread,
                     subprocess_peak_mb, sync, timed)


def synthetic_views(batch_size: int, global_size: int, local_size: int,
                    num_local: int, seed: int = 0) -> List[torch.Tensor]:
    """``2 + num_local`` uint8 batches (B, 3, H, W), as the multi-crop
    pipeline's views after collation."""
    g = torch.Generator().manual_seed(seed)
    sizes = [global_size] * 2 + [local_size] * num_local
    return [
        torch.randint(0, 256, (batch_size, 3, s, s), generator=g,
                      dtype=torch.uint8) for s in sizes
    ]


def build_model(cfg, device: torch.device):
    from mmbcssl.apis import build_from_config
    model = build_from_config(cfg)
    model.init_weights()
    return model.to(device)


class _Timer:
    """Hook that stamps the end of every training iteration."""

    def __init__(self, device: torch.device) -> None:
        self.stamps: List[float] = []
        self.device = device

    def __call__(self) -> None:
        sync(self.device)
        self.stamps.append(time.perf_counter())


def run_mmengine(cfg, views: List[torch.Tensor], iters: int,
                 device: torch.device, work_dir: str) -> Dict[str, object]:
    """``iters`` (+ 1 warm-up) iterations of ``Runner.train()``."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    from mmpretrain.structures import DataSample

    batch = views[0].shape[0]
    samples = [
        dict(inputs=[v[i] for v in views], data_samples=DataSample())
        for i in range(batch)
    ] * (iters + 1)
    from mmengine.dataset import default_collate
    loader = torch.utils.data.DataLoader(samples, batch_size=batch,
                                         collate_fn=default_collate)
    timer = _Timer(device)

    class TimerHook(Hook):
        priority = 'LOWEST'  # after every other hook of the iteration

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            timer()

    cfg = copy.deepcopy(cfg)
    hooks = copy.deepcopy(cfg.default_hooks)
    hooks.checkpoint = dict(type='CheckpointHook', interval=-1,
                            save_last=False)
    hooks.logger = dict(type='LoggerHook', interval=10**6)
    # The Runner of the config, on an in-memory DataLoader (a built loader
    # cannot live in a Config, so the Runner is given its parts).
    runner = Runner(
        model=cfg.model,
        work_dir=work_dir,
        train_dataloader=loader,
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=cfg.optim_wrapper,
        param_scheduler=cfg.param_scheduler,
        default_hooks=hooks,
        custom_hooks=[h for h in cfg.get('custom_hooks', [])
                      if h['type'] == 'DINOTeacherHook'],
        env_cfg=cfg.get('env_cfg', dict(dist_cfg=dict(backend='nccl'))),
        default_scope=cfg.get('default_scope', 'mmpretrain'),
        randomness=cfg.get('randomness', dict(seed=None)),
        experiment_name=f'benchmark_dino_iter_{time.time_ns()}')
    runner.register_hook(TimerHook())
    reset_peak_memory(device)
    runner.train()
    times = [b - a for a, b in zip(timer.stamps, timer.stamps[1:])]
    return _with_peak(dict(times=times), device)


def _with_peak(out: Dict[str, Any], device: torch.device) -> Dict[str, Any]:
    """``out`` with ``peak_mb`` added on CUDA."""
    peak = peak_memory_mb(device)
    if peak is not None:
        out['peak_mb'] = peak
    return out


def run_bare(model, cfg, views: List[torch.Tensor], iters: int,
             device: torch.device, start_iter: int = 0,
             total_iters: int = 1) -> Dict[str, object]:
    """The reference loop in plain torch on ``model``'s modules, with the
    parameter groups of the config's optimiser constructor."""
    pre = cfg.model.data_preprocessor
    mean = torch.tensor(pre.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, device=device).view(1, 3, 1, 1)
    opt_cfg = cfg.optim_wrapper.optimizer
    wrapper_cfg = copy.deepcopy(cfg.optim_wrapper)
    wrapper_cfg.pop('constructor', None)
    paramwise_cfg = wrapper_cfg.pop('paramwise_cfg', None)
    # the groups (decay, no decay) and the last layer the Runner's
    # optimiser gets; only its plain AdamW is stepped below
    wrapper = DINOOptimWrapperConstructor(wrapper_cfg, paramwise_cfg)(model)
    optimizer, last = wrapper.optimizer, wrapper.last_layer_params
    clip = wrapper.per_tensor_clip
    hook = next(h for h in cfg.custom_hooks if h['type'] == 'DINOTeacherHook')
    n = model.num_global_views
    student, teacher = model.student, model.teacher

    def step(it: int) -> torch.Tensor:
        # lr: linear warm-up then cosine; wd: cosine 0.04 -> 0.4
        for g in optimizer.param_groups:
            g['lr'] = opt_cfg.lr * min(1.0, (it + 1) / total_iters)
        optimizer.param_groups[0]['weight_decay'] = cosine_schedule(
            opt_cfg.weight_decay, 10 * opt_cfg.weight_decay, it, total_iters)
        x = [((v.to(device).float().flip(1) - mean) / std) for v in views]
        with torch.no_grad():  # only the global views through the teacher
            t_out = teacher(torch.cat(x[:n])).chunk(n)
        s_out = list(student(torch.cat(x[:n])).chunk(n))
        s_out += list(student(torch.cat(x[n:])).chunk(len(x) - n))
        loss = model.loss_module(s_out, t_out, 0)
        optimizer.zero_grad()
        loss.backward()
        clip_per_tensor(
            [p for g in optimizer.param_groups for p in g['params']], clip)
        for p in last:  # epoch 0: the last layer does not move
            p.grad = None
        optimizer.step()
        m = cosine_schedule(hook.get('base_momentum', 0.996),
                            hook.get('final_momentum', 1.0), it, total_iters)
        with torch.no_grad():
            for p_s, p_t in zip(student.parameters(), teacher.parameters()):
                p_t.mul_(m).add_(p_s.detach(), alpha=1 - m)
        return loss

    times = []
    model.train()
    reset_peak_memory(device)
    for k in range(iters + 1):  # + 1 warm-up
        seconds, loss = timed(lambda: step(start_iter + k), device)
        if k:
            times.append(seconds)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f'bare loop: loss {loss.item()}')
    return _with_peak(dict(times=times), device)


def benchmark(config: str, batch_size: int, global_size: int,
              local_size: int, num_local: int, iters: int, device: str,
              work_dir: str) -> Dict[str, object]:
    """Bare (first half) -> mmengine -> bare (second half), one process."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    dev = torch.device(device)
    views = synthetic_views(batch_size, global_size, local_size, num_local)
    bare_model = build_model(cfg, dev)
    half = max(1, iters // 2)
    total = 2 * (half + 1)
    first = run_bare(bare_model, cfg, views, half, dev, 0, total)
    engine = run_mmengine(cfg, views, iters, dev, work_dir)
    second = run_bare(bare_model, cfg, views, iters - half, dev, half + 1,
                      total)
    result = dict(config=config, batch_size=batch_size,
                  views=f'2x{global_size} + {num_local}x{local_size}',
                  device=device, threads=torch.get_num_threads())
    for name, times in (('mmengine', engine['times']),
                        ('bare', first['times'] + second['times'])):
        s = spread(times)
        result[name] = dict(
            s_per_iter=s['median'], images_per_s=batch_size / s['median'],
            min=s['min'], max=s['max'], n=len(times))
    result['bare_first_half_s'] = statistics.median(first['times'])
    result['bare_second_half_s'] = statistics.median(second['times'])
    result['ratio_mmengine_over_bare'] = (result['mmengine']['images_per_s'] /
                                          result['bare']['images_per_s'])
    for name, part in (('mmengine', engine), ('bare', second)):
        if 'peak_mb' in part:
            result[name]['peak_mb'] = part['peak_mb']
    return result


def cpu_peak_mb(path: str, config: str, batch_size: int, global_size: int,
                local_size: int, num_local: int, work_dir: str) -> float:
    """Peak resident memory (MiB) of building the model and running 2
    iterations of one path, in a fresh process (a high-water mark cannot
    be reset, so the two paths cannot share one)."""
    setup = ('import torch\n'
             'from mmengine.config import Config\n'
             'import mmbcssl.benchmarks.dino_iter as b\n'
             f'cfg = Config.fromfile({config!r})\n'
             f'views = b.synthetic_views({batch_size}, {global_size}, '
             f'{local_size}, {num_local})\n'
             'dev = torch.device("cpu")')
    if path == 'mmengine':
        work = f'b.run_mmengine(cfg, views, 1, dev, {work_dir!r})'
    else:
        work = ('b.run_bare(b.build_model(cfg, dev), cfg, views, 1, dev, 0, '
                '2)')
    return subprocess_peak_mb(setup, work, f'the {path} path')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default='configs/dino/bcssl-t_9x9_100e.py')
    parser.add_argument('--batch-size', type=int, default=8,
                        help='images per iteration (the configs: 64 per GPU)')
    parser.add_argument('--global-size', type=int, default=224)
    parser.add_argument('--local-size', type=int, default=96)
    parser.add_argument('--num-local', type=int, default=8)
    parser.add_argument('--iters', type=int, default=10,
                        help='timed iterations per path (after 1 warm-up)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--work-dir', default='work_dirs/benchmark_dino_iter')
    parser.add_argument(
        '--memory', action='store_true',
        help='on CPU also measure each path\'s peak resident memory (model '
        'built + 2 iterations) in a fresh process')
    parser.add_argument('--out', help='write the result as JSON')
    return parser


def measure(args: argparse.Namespace) -> Dict[str, object]:
    """:func:`benchmark` with the options of :func:`build_parser`, and on CPU
    with ``--memory`` each path's peak resident memory."""
    result = benchmark(args.config, args.batch_size, args.global_size,
                       args.local_size, args.num_local, args.iters,
                       args.device, args.work_dir)
    if args.memory and args.device == 'cpu':
        for path in ('mmengine', 'bare'):
            result[path]['peak_mb'] = cpu_peak_mb(
                path, args.config, args.batch_size, args.global_size,
                args.local_size, args.num_local, args.work_dir)
    return result


def report(args: argparse.Namespace) -> None:
    result = measure(args)
    print(f'DINO iteration, {result["views"]} views, batch '
          f'{args.batch_size}, {args.device} ({result["threads"]} threads):')
    for name in ('mmengine', 'bare'):
        r = result[name]
        mem = f', peak {r["peak_mb"]:.0f} MiB' if 'peak_mb' in r else ''
        print(f'  {name:9s} {r["images_per_s"]:7.2f} img/s  '
              f'({r["s_per_iter"]:.3f} s/iter, range {r["min"]:.3f}-'
              f'{r["max"]:.3f}, n={r["n"]}{mem})')
    print(f'  mmengine / bare: {result["ratio_mmengine_over_bare"]:.3f}  '
          f'(bare halves: {result["bare_first_half_s"]:.3f} / '
          f'{result["bare_second_half_s"]:.3f} s/iter)')
    if args.out:
        write_json(args.out, result)


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(build_parser(), report, argv)
