"""What the benchmarks share: models from config specs, synchronised
timing, the round-robin median timer, peak memory, the table writer and
the command-line runner.

Results are written with :func:`mmbcssl.utils.outputs.write_json` (atomic,
like every result file of the package)."""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from typing import (Any, Callable, Dict, List, Mapping, Optional, Sequence,
                    Tuple, TypeVar, Union)

import torch
import torch.nn as nn
from mmengine.config import DictAction

from mmbcssl.utils.launch import UserError, run_cli
from mmbcssl.utils.outputs import refuse_existing

Device = Union[str, torch.device, None]
T = TypeVar('T')


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------
def parse_model_spec(spec: str) -> Tuple[str, bool, Dict[str, Any]]:
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
    """Build ``cfg.model`` with the config's registries, in eval mode.

    Args:
        config (str): Config file.
        cfg_options (dict, optional): Overrides merged into the config.
            Defaults to None.
        deploy (bool): Call the backbone's ``switch_to_deploy()`` (fold the
            BNs). Defaults to False.

    Returns:
        nn.Module: The model, in eval mode.
    """
    from mmbcssl.apis import build_from_config, load_model_config
    model = build_from_config(load_model_config(config, cfg_options))
    model.eval()
    backbone = getattr(model, 'backbone', model)
    if deploy:
        if not hasattr(backbone, 'switch_to_deploy'):
            raise ValueError(f'{config}: +deploy needs a backbone with '
                             'switch_to_deploy()')
        backbone.switch_to_deploy()
    return model


class ModelForward(nn.Module):
    """What to count or time: the whole classifier, or backbone + neck.

    Args:
        model (nn.Module): A classifier (``extract_feat`` and ``head``) or
            any module.
        with_head (bool): Run a classifier's head too.
    """

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


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------
def sync(device: Device) -> None:
    """Wait until ``device`` has run the work queued on it (CUDA kernels
    run asynchronously); a no-op on CPU and for None."""
    if device is not None and torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], T], device: Device = None) -> Tuple[float, T]:
    """Seconds of one call of ``fn``, synchronised with ``device`` before
    and after, and what it returned."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


def round_robin(fns: Mapping[str, Callable[[], Any]],
                repeats: int,
                warmup: int = 0,
                calls: int = 1,
                device: Device = None) -> Dict[str, List[float]]:
    """Seconds of each function per round, timed side by side.

    Every function is first called ``warmup`` times, untimed. Then each of
    the ``repeats`` rounds times ``calls`` calls of every function, one
    function after the other, so that a noisy neighbour on a shared machine
    slows all of them alike instead of the one that ran at a bad moment;
    report the median over the rounds (:func:`spread`).

    Args:
        fns (Mapping[str, Callable]): Name -> function of no arguments.
        repeats (int): Timed rounds.
        warmup (int): Untimed calls of each function first. Defaults to 0.
        calls (int): Calls of a function per round and time. Defaults to 1.
        device (str | torch.device, optional): Synchronised before and
            after each timed run (CUDA). Defaults to None.

    Returns:
        dict: Name -> the ``repeats`` times in seconds, in round order.
    """

    def repeated(fn: Callable[[], Any]) -> Callable[[], None]:

        def run() -> None:
            for _ in range(calls):
                fn()

        return run

    for fn in fns.values():
        for _ in range(warmup):
            fn()
    seconds: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            seconds[name].append(timed(repeated(fn), device)[0])
    return seconds


def spread(samples: Sequence[float]) -> Dict[str, Any]:
    """``median``, ``min`` and ``max`` of ``samples``, and the samples."""
    return dict(median=statistics.median(samples), min=min(samples),
                max=max(samples), samples=list(samples))


# ---------------------------------------------------------------------------
# Peak memory
# ---------------------------------------------------------------------------
def reset_peak_memory(device: Device) -> None:
    """Start a new CUDA peak-allocation count; a no-op elsewhere."""
    if device is not None and torch.device(device).type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: Device) -> Optional[float]:
    """CUDA memory allocated at the peak (MiB) since the last
    :func:`reset_peak_memory`; None off CUDA."""
    if device is None or torch.device(device).type != 'cuda':
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


_HWM = ('def _hwm():\n'
        '    for line in open("/proc/self/status"):\n'
        '        if line.startswith("VmHWM:"):\n'
        '            return int(line.split()[1])\n')


def subprocess_peak_mb(setup: str, work: str, what: str = 'the work') -> float:
    """Peak resident memory (MiB) of a fresh Python process while it runs
    ``work``, above its peak after ``setup`` (the imports, building what is
    not to be counted). Linux only.

    VmHWM (the resident high-water mark of this process image) rather than
    ``ru_maxrss``: on Linux the latter starts at the parent's peak. One
    process per measurement, because a high-water mark never goes down.

    glibc's mmap threshold is fixed at its starting value (128 KiB,
    ``mallopt(3)``). Left dynamic, it rises to the size of the first large
    buffer freed, and later buffers of that size come from the heap, where
    a freed one stays resident: the mark then counted whatever the heap
    had cached (a k-NN bounded at 53 MiB measured 56 to 133 MiB from run to
    run and machine to machine; with the threshold fixed, 55 MiB every
    time, 45 after the k-NN's warm-up).
    """
    code = (f'{_HWM}{setup}\n_base = _hwm()\n{work}\n'
            'import json\nprint(json.dumps(dict(peak=_hwm(), base=_base)))\n')
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(128 * 1024))
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f'memory run of {what} failed:\n'
                           f'{proc.stderr[-2000:]}')
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    return (last['peak'] - last['base']) / 1024.  # VmHWM is in KiB


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------
def format_table(header: Sequence[str],
                 rows: Sequence[Sequence[str]],
                 markdown: bool = False,
                 align: Optional[str] = None) -> str:
    """Rows of formatted cells as a table.

    Args:
        header (Sequence[str]): Column titles.
        rows (Sequence[Sequence[str]]): One sequence of cells per row.
        markdown (bool): A Markdown table (``| a | b |`` lines, a
            ``|---|`` rule under the header); else plain text in aligned
            columns, two spaces apart. Defaults to False.
        align (str, optional): Plain text: one ``'l'`` or ``'r'`` per
            column. Defaults to the first column left-aligned and the
            others right-aligned.

    Returns:
        str: The table, without a final newline.
    """
    lines = [[str(cell) for cell in row] for row in [header, *rows]]
    if markdown:
        text = ['| ' + ' | '.join(cells) + ' |' for cells in lines]
        text.insert(1, '|' + '---|' * len(header))
        return '\n'.join(text)
    align = align or 'l' + 'r' * (len(header) - 1)
    widths = [max(len(cells[i]) for cells in lines)
              for i in range(len(header))]
    return '\n'.join(
        '  '.join(
            cell.ljust(width) if side == 'l' else cell.rjust(width)
            for cell, width, side in zip(cells, widths, align)).rstrip()
        for cells in lines)


def machine_info() -> Dict[str, Any]:
    """The torch version, its CPU threads and the processor: what a
    timing depends on beyond the command line."""
    return dict(torch=torch.__version__, threads=torch.get_num_threads(),
                machine=platform.processor() or platform.machine())


def run_main(parser: argparse.ArgumentParser,
             report: Callable[[argparse.Namespace], None],
             argv: Optional[Sequence[str]] = None) -> int:
    """A benchmark's command line: parse ``argv``, check ``--device`` and
    that ``--out`` names no earlier result (unless ``--overwrite``, which
    this adds to every parser with ``--out``), then ``report`` (measure,
    print, write ``--out``).

    Returns:
        int: 0, or 2 after a one-line ``error:`` for bad input
        (:func:`mmbcssl.utils.launch.run_cli`).
    """
    writes_out = '--out' in parser._option_string_actions
    if writes_out and '--overwrite' not in parser._option_string_actions:
        parser.add_argument('--overwrite', action='store_true',
                            help='replace an existing --out file')
    args = parser.parse_args(argv)

    def checked() -> None:
        device = getattr(args, 'device', None)
        if device and torch.device(device).type == 'cuda' and \
                not torch.cuda.is_available():
            raise UserError(f'--device {device} but no CUDA device')
        if writes_out:
            refuse_existing([args.out], args.overwrite)
        report(args)

    return run_cli(checked)
