"""tools/analysis_tools/benchmark_knn.py: timing output, and the measured
peak memory follows the chunk sizes and stays under the stated bound."""
import json

from mmbcssl.benchmarks.knn import (build_parser, main, measure,
                                    memory_bound_mb)

ARGS = ['--bank', '40000', '--dim', '128', '--queries', '2000',
        '--classes', '100', '--chunk', '1024', '--repeats', '1']


def test_peak_memory_follows_the_chunking(tmp_path):
    out = tmp_path / 'r.json'
    # each measurement runs in its own process; the two run side by side
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as pool:
        tool = pool.submit(main, ARGS + ['--bank-chunk', '4096', '--out',
                                         str(out)])
        big = pool.submit(measure, build_parser().parse_args(
            ARGS + ['--bank-chunk', '40000'])).result()
        assert tool.result() == 0
    small = json.loads(out.read_text())
    assert small['bank'] == 40000
    assert small['s_per_10k_queries'] > 0
    # the similarity chunk is 1024 x 4096 vs 1024 x 40000 floats
    assert big['peak_mb'] > small['peak_mb'] + 100
    for r in (small, big):
        # the bound by construction holds, give or take page rounding
        # (measured: 45 of 53 and 221 of 351 MiB)
        assert r['peak_mb'] < 1.1 * r['bound_mb'] + 16, r


def test_bound_formula():
    # the ImageNet case of the README: 1.28M x 768 in float16 is 1.83 GiB
    mb = memory_bound_mb(1_281_167, 768, 10_000, 1000, (10, 20, 100, 200),
                         True, 1024, 65536)
    bank = 1_281_167 * 768 * 2 / 2**20
    assert bank < mb < bank + 1024
