"""Model size, FLOPs and inference throughput, behind ``tools/analysis_tools``.

FLOPs are counted with mmengine's ``FlopAnalyzer`` (``mmengine.analysis``,
a port of fvcore's jit-trace counter). Its unit is the papers' convention:
one multiply-add is one FLOP. We add one op handle it lacks,
``aten::scaled_dot_product_attention`` (used by mmpretrain's ViT attention);
without it ViT-S/16 counts 4.25G instead of the 4.6G every paper reports.
"""
import copy
import re
import statistics
import time
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape
from mmengine.config import Config, DictAction

# Paper Table 5 (params in M, FLOPs in G, 224 px), REFERENCE.md section 2.
TABLE5 = {
    'bcssl-t_3x3': (28, 4.4),
    'bcssl-t_5x5': (28, 4.4),
    'bcssl-t_7x7': (29, 4.5),
    'bcssl-t_9x9': (29, 4.5),
    'bcssl-t_15x15': (30, 4.8),
    'swin-t': (28, 4.5),
    'vit-s16': (21, 4.6),
    'resnet50': (23, 4.1),
}


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """Multiply-adds of ``softmax(q k^T) v``: q k^T is ``B H Nq Nk D`` and
    the product with v ``B H Nq Nk Dv``."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    *batch, nq, d = q
    nk, dv = k[-2], v[-1]
    b = 1
    for s in batch:
        b *= s
    return b * nq * nk * (d + dv)


def parse_model_spec(spec: str):
    """``CONFIG[+deploy][,key=value...]`` -> (config, deploy, overrides).

    e.g. ``configs/_base_/models/convnext-t_7x7.py,model.backbone.
    kernel_size=9`` or ``configs/_base_/models/bcssl-t_9x9.py+deploy``.
    """
    # Split at commas that start a new `key=`, not inside `[1,2]`.
    path, *pairs = re.split(r',(?=[\w.]+=)', spec)
    deploy = path.endswith('+deploy')
    path = path[:-len('+deploy')] if deploy else path
    overrides = {}
    for pair in pairs:
        key, value = pair.split('=', 1)
        overrides[key] = DictAction._parse_iterable(value)
    return path, deploy, overrides


def build_model(config: str,
                cfg_options: Optional[Dict] = None,
                deploy: bool = False) -> nn.Module:
    """Build ``cfg.model`` with the config's registries, in eval mode."""
    from mmengine.registry import DefaultScope, init_default_scope
    from mmpretrain.registry import MODELS
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope', 'mmpretrain')
    if DefaultScope.get_current_instance() is None or \
            DefaultScope.get_current_instance().scope_name != scope:
        init_default_scope(scope)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.eval()
    backbone = getattr(model, 'backbone', model)
    if deploy:
        if not hasattr(backbone, 'switch_to_deploy'):
            raise ValueError(f'{config}: +deploy needs a backbone with '
                             'switch_to_deploy()')
        backbone.switch_to_deploy()
    return model


class _Forward(nn.Module):
    """What to count or time: the whole classifier, or backbone + neck."""

    def __init__(self, model: nn.Module, with_head: bool) -> None:
        super().__init__()
        self.model = model
        self.with_head = with_head

    def forward(self, x: torch.Tensor):
        if hasattr(self.model, 'extract_feat'):
            if self.with_head and hasattr(self.model, 'head'):
                return self.model(x, mode='tensor')
            return self.model.extract_feat(x)
        return self.model(x)


def complexity(model: nn.Module, img_size: int = 224) -> Dict[str, float]:
    """Params and multiply-add FLOPs, with and without the head."""
    x = torch.randn(1, 3, img_size, img_size)
    out = {}
    for with_head in (True, False):
        wrapped = _Forward(model, with_head).eval()
        analyzer = FlopAnalyzer(wrapped, (x, ))
        analyzer.set_op_handle(
            'aten::scaled_dot_product_attention', sdpa_flop_jit)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        key = 'head' if with_head else 'no_head'
        out[f'flops_{key}'] = analyzer.total() / 1e9
    out['params_head'] = sum(p.numel() for p in model.parameters()) / 1e6
    head = getattr(model, 'head', None)
    head_params = sum(p.numel() for p in head.parameters()) if head else 0
    out['params_no_head'] = out['params_head'] - head_params / 1e6
    return out


def _readings(value: float, digits: int):
    """The ways a table may have printed ``value``."""
    scale = 10**digits
    return {'rounded': round(value, digits),
            'truncated': int(value * scale) / scale}


def table5_match(name: str, result: Dict[str, float]) -> Optional[str]:
    """Which reading of our numbers reproduces the paper's row, if any.

    Table 5 is not consistent: most rows count the 1000-class head and
    round, ResNet-50 (23M) and ViT-S (21M) are backbone-only and truncated
    (the sizes the DINO paper lists), and k15's 4.85G is printed as 4.8.
    So we report, per quantity, the first reading that reproduces it.
    """
    if name not in TABLE5:
        return None
    params, flops = TABLE5[name]

    def find(kind: str, target: float, digits: int) -> Optional[str]:
        for part in ('head', 'no_head'):
            for how, v in _readings(result[f'{kind}_{part}'],
                                    digits).items():
                if v == target:
                    where = 'with head' if part == 'head' else 'backbone'
                    return f'{where}, {how}'
        return None

    p, f = find('params', params, 0), find('flops', flops, 1)
    if p and f:
        return f'= paper {params}M ({p}) / {flops}G ({f})'
    return (f'paper {params}M / {flops}G NOT reproduced '
            f'(params: {p or "no reading"}, FLOPs: {f or "no reading"})')


# ---------------------------------------------------------------------------
# Throughput
# ---------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def benchmark(models: Dict[str, nn.Module],
              batch_size: int = 32,
              img_size: int = 224,
              device: str = 'cpu',
              amp: bool = False,
              channels_last: bool = False,
              compile: bool = False,
              warmup: int = 2,
              repeats: int = 5,
              iters: int = 3,
              both_formats: bool = False) -> Dict[str, Dict[str, Any]]:
    """Inference images/s of several models, measured side by side.

    Each repeat times every model once, in turn (round-robin), so a noisy
    neighbour on a shared machine affects all models alike; the median and
    the spread over repeats are reported.

    Args:
        models (dict): name -> model (classifiers are run with the head).
        batch_size (int): Defaults to 32.
        img_size (int): Defaults to 224.
        device (str): ``'cpu'`` or ``'cuda'``. Defaults to 'cpu'.
        amp (bool): Autocast (fp16 on CUDA, bf16 on CPU). Defaults to False.
        channels_last (bool): Defaults to False.
        compile (bool): ``torch.compile`` each model (on CPU with inductor's
            weight freezing). Defaults to False.
        warmup (int): Untimed iterations per model. Defaults to 2.
        repeats (int): Timed rounds. Defaults to 5.
        iters (int): Forward passes per model per round. Defaults to 3.
        both_formats (bool): Time every model in NCHW and in channels_last
            (names get `` [nchw]`` / `` [channels_last]``), so that each
            model can be compared at its faster layout within one run;
            overrides ``channels_last``. Defaults to False.

    Returns:
        dict: name -> ``{'median', 'min', 'max', 'samples'}`` in images/s.
    """
    dev = torch.device(device)
    x = torch.randn(batch_size, 3, img_size, img_size, device=dev)
    if both_formats:
        formats = {' [nchw]': torch.contiguous_format,
                   ' [channels_last]': torch.channels_last}
    else:
        formats = {'': torch.channels_last if channels_last else
                   torch.contiguous_format}
    if compile and dev.type == 'cpu':
        # Inference-only graphs: let inductor constant-fold the weights and
        # use oneDNN's prepacked linear/conv with fused pointwise ops.
        import torch._inductor.config as inductor_config
        inductor_config.freezing = True
    runners, inputs = {}, {}
    for name, model in models.items():
        for suffix, fmt in formats.items():
            fn = _Forward(copy.deepcopy(model) if both_formats else model,
                          with_head=True).to(dev).eval()
            fn = fn.to(memory_format=fmt)
            runners[name + suffix] = torch.compile(fn) if compile else fn
            inputs[name + suffix] = x.to(memory_format=fmt)
    autocast = dict(device_type=dev.type,
                    dtype=torch.float16 if dev.type == 'cuda' else
                    torch.bfloat16, enabled=amp)
    samples = {name: [] for name in runners}
    with torch.inference_mode(), torch.autocast(**autocast):
        for name, fn in runners.items():
            for _ in range(warmup):
                fn(inputs[name])
        _sync(dev)
        for _ in range(repeats):
            for name, fn in runners.items():
                _sync(dev)
                start = time.perf_counter()
                for _ in range(iters):
                    fn(inputs[name])
                _sync(dev)
                samples[name].append(batch_size * iters /
                                     (time.perf_counter() - start))
    return {
        name: dict(median=statistics.median(s), min=min(s), max=max(s),
                   samples=s) for name, s in samples.items()
    }


def format_benchmark(results: Dict[str, Dict[str, Any]],
                     names: Sequence[str]) -> str:
    first = results[names[0]]['median']
    width = max(len(n) for n in names)
    lines = [f'{"model":<{width}}  img/s (median)  [min, max]      '
             f'vs {names[0]}']
    for n in names:
        r = results[n]
        lines.append(f'{n:<{width}}  {r["median"]:14.1f}  '
                     f'[{r["min"]:.1f}, {r["max"]:.1f}]  '
                     f'{r["median"] / first:6.3f}x')
    return '\n'.join(lines)
