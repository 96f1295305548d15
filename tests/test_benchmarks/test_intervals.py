"""tools/analysis_tools/benchmark_intervals.py: the synthetic outcomes
reproduce their ImageNet-C numbers, and the tool times every case."""
import json

import numpy as np
import pytest

from mmbcssl.benchmarks.intervals import main, synthetic_outcomes
from mmbcssl.evaluation.robustness import corruption_errors
from mmbcssl.evaluation.statistics import compute


def test_synthetic_outcomes_hold_75_passes_and_a_clean_pass():
    out = synthetic_outcomes(300)
    assert len(out.arrays) == 76 and len(out.images) == 300
    errors = {}
    for key, name in out.meta['metrics']['mCE']['passes'].items():
        c, s = key.split('/')
        errors.setdefault(c, {})[int(s)] = 1 - np.mean(out.arrays[name])
    ref = corruption_errors(errors, 1 - np.mean(out.arrays['clean']))
    assert compute(out, 'mCE') == pytest.approx(ref['mCE'])
    assert compute(out, 'relative_mCE') == pytest.approx(ref['relative_mCE'])


def test_the_tool_times_every_interval(tmp_path):
    out = tmp_path / 'intervals.json'
    assert main(['--images', '500', '--resamples', '70', '--repeats', '1',
                 '--per-resample', '3', '--out', str(out)]) == 0
    result = json.loads(out.read_text())
    assert result['images'] == 500 and result['resamples'] == 70
    assert set(result['seconds']) == {
        'mCE', 'relative mCE', 'accuracy, bootstrap',
        'accuracy, Clopper-Pearson', 'paired accuracy', 'paired mCE',
        'mCE, one call per resample'}
    assert all(s['median'] > 0 for s in result['seconds'].values())
