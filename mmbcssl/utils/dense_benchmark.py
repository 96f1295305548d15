"""Training and inference speed of detectors and segmentors, side by side.

Synthetic batches at a fixed size (1333 x 800 by default, the COCO test
scale) so that only the model differs: random images with a few random
boxes and masks (mmdet's own ``demo_mm_inputs``), or random label maps for
segmentors. Timing is round-robin over the models, as in
:func:`mmbcssl.utils.analysis.benchmark`. Peak memory: on CUDA the peak
allocated per model in this process; on CPU the peak resident memory of a
fresh subprocess that runs the same steps for one model (the process-wide
peak cannot be split between models).
"""
import statistics
import time
from typing import Any, Dict, Sequence, Tuple

import torch
import torch.nn as nn

from .analysis import _sync, build_model


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


class _Step:
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
               channels_last: bool = False, amp: bool = False) -> _Step:
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
    return _Step(model, batch, mode, torch.device(device), channels_last,
                 amp)


def benchmark_dense(steps: Dict[str, _Step],
                    batch_size: int,
                    warmup: int = 1,
                    repeats: int = 3) -> Dict[str, Dict[str, Any]]:
    """Iterations/s (and images/s) of each step, round-robin.

    Returns:
        dict: name -> ``{'median', 'min', 'max', 'samples', 'img_per_s',
        'peak_mem_mb'}`` (iterations/s; peak memory on CUDA only).
    """
    cuda = any(next(s.model.parameters()).is_cuda for s in steps.values())
    peaks = {}
    for name, step in steps.items():
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        for _ in range(warmup):
            step()
        _sync(torch.device('cuda' if cuda else 'cpu'))
        if cuda:
            peaks[name] = torch.cuda.max_memory_allocated() / 2**20
    samples = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            dev = torch.device('cuda' if cuda else 'cpu')
            _sync(dev)
            start = time.perf_counter()
            step()
            _sync(dev)
            samples[name].append(1. / (time.perf_counter() - start))
    out = {}
    for name, s in samples.items():
        med = statistics.median(s)
        out[name] = dict(median=med, min=min(s), max=max(s), samples=s,
                         img_per_s=med * batch_size,
                         peak_mem_mb=peaks.get(name))
    return out


def cpu_peak_memory(spec_text: str, batch_size: int,
                    img_shape: Tuple[int, int], mode: str,
                    steps: int = 1) -> float:
    """Peak resident memory (MiB) of a fresh process building
    ``spec_text`` and running ``steps`` steps, minus its peak before the
    model was built (Linux only)."""
    from mmbcssl.utils.memory import subprocess_peak_mb
    work = (f'step = build_step(parse_model_spec({spec_text!r}), '
            f'{batch_size}, {tuple(img_shape)!r}, {mode!r}, "cpu")\n'
            f'for _ in range({steps}): step()')
    return subprocess_peak_mb(
        'import mmbcssl\n'
        'from mmbcssl.utils.analysis import parse_model_spec\n'
        'from mmbcssl.utils.dense_benchmark import build_step', work,
        spec_text)


def format_dense(results: Dict[str, Dict[str, Any]], names: Sequence[str],
                 mode: str) -> str:
    first = results[names[0]]['median']
    width = max(len(n) for n in names)
    lines = [f'{"model":<{width}}  {mode} it/s  [min, max]        img/s  '
             f'peak MiB  vs {names[0]}']
    for n in names:
        r = results[n]
        mem = r.get('peak_mem_mb')
        mem = f'{mem:8.0f}' if mem is not None else '       -'
        lines.append(f'{n:<{width}}  {r["median"]:9.3f}  '
                     f'[{r["min"]:.3f}, {r["max"]:.3f}]  '
                     f'{r["img_per_s"]:7.2f}  {mem}  '
                     f'{r["median"] / first:6.3f}x')
    return '\n'.join(lines)
