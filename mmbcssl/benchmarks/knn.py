"""Time and peak memory of the weighted k-NN on a synthetic feature bank.

``tools/analysis_tools/benchmark_knn.py``: the weighted k-NN
(:func:`mmbcssl.evaluation.knn.knn_classify`) on a synthetic feature bank,
e.g. 100k x 768 or the ImageNet-size 1.28M x 768.

Time: the median over repeats of classifying ``--queries`` queries, given
per 10k queries. Memory: on CPU the peak resident memory of a fresh
process, above what it held after the imports and a warm-up call on a
tiny bank (Linux ``VmHWM``); on CUDA
the peak of allocated memory. Both are printed next to the bound the
chunking promises: bank + queries + one similarity chunk + the running
top-k + one vote matrix per k.
"""
import argparse
from typing import List, Optional

import torch
import torch.nn.functional as F

from mmbcssl.evaluation.knn import BANK_DTYPES, KNNProtocol, knn_classify
from mmbcssl.utils.outputs import write_json
from .common import (peak_memory_mb, reset_peak_memory, round_robin,
                     run_main, spread, subprocess_peak_mb, sync)


def memory_bound_mb(bank: int, dim: int, queries: int, classes: int,
                    ks, half: bool, chunk: int, bank_chunk: int) -> float:
    """Bytes the algorithm needs at its peak (MiB), by construction."""
    m = min(chunk, queries)
    k = max(ks)
    total = bank * dim * (2 if half else 4) + bank * 8  # bank + labels
    total += queries * dim * 4  # query features
    total += m * min(bank_chunk, bank) * 4 * 2  # similarities + topk input
    total += bank_chunk * dim * 4 if half else 0  # chunk cast to float32
    total += m * 2 * k * 12  # running top-k values + indices, merged
    total += len(ks) * queries * classes * 4  # the returned scores
    return total / 2**20


def run(bank: int, dim: int, queries: int, classes: int, ks, half: bool,
        chunk: int, bank_chunk: int, repeats: int,
        device: str = 'cpu') -> dict:
    """Time ``repeats`` classifications in this process (CUDA timings
    synchronised; on CUDA also the peak of allocated memory)."""
    device = torch.device(device)
    cuda = device.type == 'cuda'
    gen = torch.Generator().manual_seed(0)
    # The bank as tools/knn_eval.py holds it: normalised rows in the
    # storage type, written a chunk at a time (no float32 copy).
    dtype = torch.float16 if half else torch.float32
    feats = torch.empty(bank, dim, dtype=dtype)
    for start in range(0, bank, bank_chunk):
        rows = torch.randn(min(bank_chunk, bank - start), dim, generator=gen)
        feats[start:start + bank_chunk] = F.normalize(rows, dim=1).to(dtype)
    labels = torch.randint(0, classes, (bank, ), generator=gen)
    query = torch.randn(queries, dim, generator=gen)
    feats, labels, query = feats.to(device), labels.to(device), query.to(
        device)
    if cuda:
        sync(device)
        reset_peak_memory(device)
        base = torch.cuda.memory_allocated(device)
    times = round_robin({
        'knn':
        lambda: knn_classify(feats, labels, query, classes, ks,
                             chunk_size=chunk, bank_chunk_size=bank_chunk,
                             bank_dtype=dtype, normalized=True)
    }, repeats, device=device)['knn']
    per_10k = spread([t * 10_000 / queries for t in times])
    out = dict(s_per_10k_queries=per_10k['median'], min=per_10k['min'],
               max=per_10k['max'])
    if cuda:
        # the inputs were allocated before the reset: add them back
        out['peak_mb'] = peak_memory_mb(device) + (
            feats.nbytes + labels.nbytes + query.nbytes - base) / 2**20
    return out


def cpu_peak_mb(args: argparse.Namespace) -> float:
    """Peak RSS of a fresh process running one classification with the
    options ``args``, above its level after the imports and one warm-up
    classification on a bank of ``max(ks)`` rows.

    The warm-up pages in the code the first classification runs (about
    10 MiB here): resident, so counted by VmHWM, but the same size for any
    bank.
    """
    options = dict(vars(args), repeats=1, no_memory=True, out=None)
    warm = dict(options, bank=max(args.ks), queries=min(args.queries, 8),
                bank_chunk=max(args.ks))
    return subprocess_peak_mb(
        'import argparse\nimport mmbcssl.benchmarks.knn as kb\n'
        f'kb.measure(argparse.Namespace(**{warm!r}))',
        f'kb.measure(argparse.Namespace(**{options!r}))', 'the k-NN')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--bank', type=int, default=100_000)
    parser.add_argument('--dim', type=int, default=768)
    parser.add_argument('--queries', type=int, default=10_000)
    parser.add_argument('--classes', type=int, default=1000)
    parser.add_argument('--ks', type=int, nargs='+', default=KNNProtocol.ks)
    parser.add_argument('--bank-dtype', choices=sorted(BANK_DTYPES),
                        default=KNNProtocol.bank_dtype,
                        help='storage type of the bank')
    parser.add_argument('--chunk', type=int, default=1024)
    parser.add_argument('--bank-chunk', type=int, default=65536)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--device', default='cpu',
                        help='cpu or cuda[:i] (CUDA: synchronised timing, '
                        'peak allocated memory)')
    parser.add_argument('--no-memory', action='store_true')
    parser.add_argument('--out', help='write the result as JSON')
    return parser


def measure(args: argparse.Namespace) -> dict:
    """The options ``args``, the timing, the memory bound and the peak
    memory: on CUDA from this process, on CPU (unless ``--no-memory``) from
    a fresh process."""
    half = args.bank_dtype == 'float16'
    result = dict(vars(args), threads=torch.get_num_threads())
    result.update(
        run(args.bank, args.dim, args.queries, args.classes, args.ks, half,
            args.chunk, args.bank_chunk, args.repeats, args.device))
    result['bound_mb'] = memory_bound_mb(args.bank, args.dim, args.queries,
                                         args.classes, args.ks, half,
                                         args.chunk, args.bank_chunk)
    if not args.no_memory and 'peak_mb' not in result:
        result['peak_mb'] = cpu_peak_mb(args)
    return result


def report(args: argparse.Namespace) -> None:
    r = measure(args)
    print(f'k-NN, bank {args.bank} x {args.dim} '
          f'({args.bank_dtype}), '
          f'{args.queries} queries, {args.classes} classes, k '
          f'{args.ks}, {args.device} ({r["threads"]} threads):')
    print(f'  {r["s_per_10k_queries"]:.2f} s per 10k queries '
          f'[{r["min"]:.2f}, {r["max"]:.2f}]')
    peak = r.get('peak_mb')
    print(f'  peak memory {"-" if peak is None else f"{peak:.0f}"} MiB '
          f'(bound by construction {r["bound_mb"]:.0f} MiB)')
    if args.out:
        write_json(args.out, r)


def main(argv: Optional[List[str]] = None) -> int:
    return run_main(build_parser(), report, argv)
