"""Training or inference speed and peak memory of dense models, side by side.

``tools/analysis_tools/benchmark_dense.py``: detectors and segmentors on
synthetic batches at a fixed size (1333 x 800 by default, the COCO test
scale) so that only the model differs: random images with a few random
boxes and masks (mmdet's own ``demo_mm_inputs``), or random label maps for
segmentors. Timing is round-robin over the models
(:func:`~.common.round_robin`). Peak memory: on CUDA the peak allocated per
model in this process; on CPU the peak resident memory of a fresh
subprocess that runs the same steps for one model (the process-wide peak
cannot be split between models). SyncBN layers run as plain BN (one
process): what each GPU computes locally, without the all-reduce.

Models are configs as in ``benchmark.py`` (``CONFIG[+deploy][,key=value
...]``), e.g. Mask R-CNN with BC-SSL-T vs Swin-T at 1333 x 800 (the
``mask-rcnn_bcssl-t-9x9_dino-100e-pre_...`` and
``mask-rcnn_swin-t_dino-300e-pre_...`` configs of ``configs/mask_rcnn``;
its README, "Speed", has the full commands)::

    python tools/analysis_tools/benchmark_dense.py $BCSSL_T $SWIN_T \\
        --mode train --batch-size 2 --out bench_det.json
"""
import argparse
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmbcssl.utils.outputs import write_json
from .common import (build_model, format_table, machine_info,
                     parse_model_spec, peak_memory_mb, reset_peak_memory,
                     round_robin, run_main, spread, subprocess_peak_mb,
                     sync)


def synthetic_batch(model: nn.Module, batch_size: int,
                    img_shape: Tuple[int, int], seed: int = 0) -> dict:
    """A data batch in the model's own format (before preprocessing)."""
    torch.manual_seed(seed)
    h, w = img_shape
    if hasattr(model, 'roi_head') or hasattr(model, 'rpn_head'):
        from mmdet.testing import demo_mm_inputs
        num_classes = model.roi_head.bbox_head.num_classes
        return demo_mm_inputs(
            batch_size=batch_size, image_shapes=[(3, h, w)] * batch_size,
            num_items=[5] * batch_size, num_classes=num_classes,
            with_mask=True)
    # segmentor: random images and label maps
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    num_classes = model.decode_head.num_classes
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8))
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                        pad_shape=(h, w)))
        s.gt_sem_seg = PixelData(
            data=torch.randint(0, num_classes, (1, h, w)))
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


class DenseStep:
    """One training step (forward, loss, backward, optimizer) or one
    inference pass of ``model`` on a fixed batch."""

    def __init__(self, model: nn.Module, batch: dict, mode: str,
                 device: torch.device, channels_last: bool, amp: bool):
        self.model = model.to(device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.mode = mode
        self.amp = dict(device_type=device.type, enabled=amp,
                        dtype=torch.float16 if device.type == 'cuda' else
                        torch.bfloat16)
        self.data = self.model.data_preprocessor(batch, mode == 'train')
        if channels_last:
            self.data['inputs'] = self.data['inputs'].contiguous(
                memory_format=torch.channels_last)
        if mode == 'train':
            self.model.train()
            self.optimizer = torch.optim.AdamW(self.model.parameters(), 1e-4)
            self.scaler = torch.amp.GradScaler(
                device.type, enabled=amp and device.type == 'cuda')
        else:
            self.model.eval()

    def __call__(self) -> None:
        if self.mode == 'train':
            with torch.autocast(**self.amp):
                losses = self.model(**self.data, mode='loss')
                loss, _ = self.model.parse_losses(losses)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode(), torch.autocast(**self.amp):
                self.model(**self.data, mode='predict')


def build_step(spec: Tuple[str, bool, dict], batch_size: int,
               img_shape: Tuple[int, int], mode: str, device: str,
               channels_last: bool = False, amp: bool = False) -> DenseStep:
    config, deploy, overrides = spec
    if mode == 'train' and deploy:
        raise ValueError(f'{config}+deploy: deploy mode is for inference '
                         '(--mode infer)')
    from mmengine.model import revert_sync_batchnorm
    # one process: SyncBN as BN (what each GPU computes before the
    # all-reduce)
    torch.manual_seed(0)  # the same heads for models that share them
    model = revert_sync_batchnorm(build_model(config, overrides, deploy))
    roi_head = getattr(model, 'roi_head', None)
    if mode == 'infer' and roi_head is not None:
        # Untrained weights give few, weight-dependent detections above the
        # score threshold, and the mask head's cost follows that count. With
        # no threshold every model keeps max_per_img (100) per image, so all
        # do the same head work and only the backbone differs.
        roi_head.test_cfg.score_thr = 0.
    batch = synthetic_batch(model, batch_size, img_shape)
    return DenseStep(model, batch, mode, torch.device(device),
                     channels_last, amp)


def benchmark_dense(steps: Dict[str, DenseStep],
                    batch_size: int,
                    warmup: int = 1,
                    repeats: int = 3) -> Dict[str, Dict[str, Any]]:
    """Iterations/s (and images/s) of each step, round-robin.

    Returns:
        dict: name -> ``{'median', 'min', 'max', 'samples', 'img_per_s',
        'peak_mem_mb'}`` (iterations/s; peak memory on CUDA only).
    """
    cuda = any(next(s.model.parameters()).is_cuda for s in steps.values())
    dev = torch.device('cuda' if cuda else 'cpu')
    peaks = {}
    for name, step in steps.items():  # the warm-up holds each one's peak
        reset_peak_memory(dev)
        for _ in range(warmup):
            step()
        sync(dev)
        peaks[name] = peak_memory_mb(dev)
    seconds = round_robin(steps, repeats, device=dev)
    out = {}
    for name, s in seconds.items():
        out[name] = spread([1. / t for t in s])
        out[name].update(img_per_s=out[name]['median'] * batch_size,
                         peak_mem_mb=peaks[name])
    return out


def cpu_peak_memory(spec_text: str, batch_size: int,
                    img_shape: Tuple[int, int], mode: str,
                    steps: int = 1) -> float:
    """Peak resident memory (MiB) of a fresh process building
    ``spec_text`` and running ``steps`` steps, minus its peak before the
    model was built (Linux only)."""
    work = (f'step = build_step(parse_model_spec({spec_text!r}), '
            f'{batch_size}, {tuple(img_shape)!r}, {mode!r}, "cpu")\n'
            f'for _ in range({steps}): step()')
    return subprocess_peak_mb(
        'import mmbcssl\n'
        'from mmbcssl.benchmarks.common import parse_model_spec\n'
        'from mmbcssl.benchmarks.dense import build_step', work, spec_text)


def format_dense(results: Dict[str, Dict[str, Any]], names: Sequence[str],
                 mode: str) -> str:
    """The results of :func:`benchmark_dense` as a table, with each
    model's speed relative to the first of ``names``."""
    first = results[names[0]]['median']
    rows = []
    for n in names:
        r = results[n]
        mem = r.get('peak_mem_mb')
        rows.append([
            n, f'{r["median"]:.3f}', f'[{r["min"]:.3f}, {r["max"]:.3f}]',
            f'{r["img_per_s"]:.2f}', '-' if mem is None else f'{mem:.0f}',
            f'{r["median"] / first:.3f}x'
        ])
    return format_table([
        'model', f'{mode} it/s', '[min, max]', 'img/s', 'peak MiB',
        f'vs {names[0]}'
    ], rows, align='lrrrrl')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('models', nargs='+', help='CONFIG[+deploy][,k=v...]')
    parser.add_argument('--mode', choices=['train', 'infer'],
                        default='train')
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--img-shape', type=int, nargs=2,
                        default=[800, 1333], metavar=('H', 'W'))
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument('--amp', action='store_true')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--no-memory', action='store_true',
                        help='CPU: skip the per-model peak-memory runs')
    parser.add_argument('--out', help='write the results as JSON')
    return parser


def report(args: argparse.Namespace) -> None:
    shape = tuple(args.img_shape)
    steps = {
        text: build_step(parse_model_spec(text), args.batch_size, shape,
                         args.mode, args.device, args.channels_last,
                         args.amp)
        for text in args.models
    }
    results = benchmark_dense(steps, args.batch_size, args.warmup,
                              args.repeats)
    if args.device == 'cpu' and not args.no_memory:
        for text in args.models:
            results[text]['peak_mem_mb'] = cpu_peak_memory(
                text, args.batch_size, shape, args.mode)
    print(format_dense(results, args.models, args.mode))
    if args.out:
        write_json(args.out, dict(meta=dict(vars(args), **machine_info()),
                                  results=results))


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(build_parser(), report, argv)
