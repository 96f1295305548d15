"""Every measured cell of the report carries its interval, computed from
the per-image outcomes kept with its result; outcomes that are not the
result's own give none, and say why; --compare pairs runs made on the same
images and says when it cannot."""
import csv
import json

import numpy as np
import pytest
from scipy.stats import binomtest

from mmbcssl.cli import report as report_cli
from mmbcssl.evaluation.outcomes import Outcomes, write_outcomes
from mmbcssl.suite.report import load_run

CONFIG = 'tests/data/configs/tiny_classifier.py'
IMAGES = [f'val/c{i % 10}/{i}.png' for i in range(120)]


def _correct(k, n=120, seed=0):
    """n booleans, k of them True, in a seeded order."""
    out = np.zeros(n, bool)
    out[np.random.default_rng(seed).permutation(n)[:k]] = True
    return out


def _work_dir(root, sha, k20, k10=None, images=IMAGES, recorded=None,
              kernel=9):
    """A suite work dir with one k-NN result and its outcomes, as the
    suite writes them (``recorded``: the top-1 the result claims)."""
    results = root / 'results'
    results.mkdir(parents=True)
    (root / 'suite.json').write_text(json.dumps(dict(
        config=CONFIG, checkpoint=f'/runs/{sha[0]}.pth',
        checkpoint_sha256=sha, pretraining=dict(weights='a run'))))
    k10 = k20 if k10 is None else k10
    outcomes = Outcomes(images, {'k10': k10, 'k20': k20}, meta=dict(
        metrics={f'knn/k{k}_top1': dict(statistic='accuracy',
                                        arrays=[f'k{k}'], scale=100.)
                 for k in (10, 20)}))
    record = write_outcomes(str(results / 'knn.json'), outcomes)
    value = 100. * k20.mean() if recorded is None else recorded
    (results / 'knn.json').write_text(json.dumps(dict(
        status='ok', name='knn', outcomes=record,
        metrics={'knn/k10_top1': 100. * k10.mean(),
                 'knn/k20_top1': value},
        fingerprint=dict(protocol_id='p', protocol=dict(ks=[10, 20]),
                         checkpoint=dict(sha256=sha, weights='teacher'),
                         model=dict(backbone=f'BCSSL(kernel_size={kernel})')),
        request=dict(type='KNN', name='knn', config=CONFIG,
                     checkpoint_sha256=sha))))
    return str(root)


def _report(tmp_path, work_dirs, *flags):
    out = tmp_path / 'report'
    assert report_cli.main([*work_dirs, '--out', str(out), '--overwrite',
                            '--no-published', *flags]) == 0
    return out, (out / 'report.md').read_text()


def _exact(k, n=120):
    ci = binomtest(k, n).proportion_ci(0.95, method='exact')
    return 100 * ci.low, 100 * ci.high


def test_each_cell_shows_its_exact_interval_in_every_format(tmp_path):
    work = _work_dir(tmp_path / 'a', 'a' * 64, _correct(30))
    out, text = _report(tmp_path, [work])
    lo, hi = _exact(30)
    assert f'25.00 [{lo:.2f}, {hi:.2f}]' in text
    assert 'exact Clopper-Pearson' in text and '1000 resamples' in text
    rows = list(csv.reader(open(out / 'k_nn_and_linear_probe.csv')))
    header, row = rows[0], rows[1]
    assert row[header.index('k-NN top-1')] == '25.00'
    assert float(row[header.index('k-NN top-1 lo')]) == pytest.approx(lo)
    assert float(row[header.index('k-NN top-1 hi')]) == pytest.approx(hi)
    assert f'25.00 [{lo:.2f}, {hi:.2f}]' in (out / 'tables.tex').read_text()
    _, plain = _report(tmp_path, [work], '--no-intervals')
    assert '| 25.00 |' in plain and '[' not in plain.split('## ')[1]


def test_outcomes_that_do_not_give_the_number_get_no_interval(tmp_path):
    # the result claims 42.0 %, its outcomes hold 30 of 120 right
    work = _work_dir(tmp_path / 'a', 'a' * 64, _correct(30), recorded=42.)
    row = load_run(work)
    assert 'knn_top1' not in row.evidence and 'knn_top1_k10' in row.evidence
    _, text = _report(tmp_path, [work])
    assert '| 42.00 |' in text
    assert ('/ knn: its outcomes give knn/k20_top1 = 25, not the 42 it '
            'records') in text


def test_changed_outcomes_bytes_give_no_interval(tmp_path):
    work = _work_dir(tmp_path / 'a', 'a' * 64, _correct(30))
    other = _work_dir(tmp_path / 'b', 'b' * 64, _correct(31))
    (tmp_path / 'a' / 'results' / 'knn.outcomes.npz').write_bytes(
        (tmp_path / 'b' / 'results' / 'knn.outcomes.npz').read_bytes())
    row = load_run(work)
    assert not row.evidence
    ((name, why), ) = row.no_interval
    assert name == 'knn' and 'SHA-256 differs' in why
    assert load_run(other).evidence


def test_compare_gives_mcnemar_and_the_verdicts(tmp_path):
    random = _correct(12, seed=1)
    good = random.copy()
    good[np.flatnonzero(~random)[:50]] = True  # 50 more right, none lost
    close = random.copy()
    close[np.flatnonzero(~random)[:2]] = True
    dirs = [_work_dir(tmp_path / n, s * 64, k20)
            for n, s, k20 in (('r', 'a', random), ('g', 'b', good),
                              ('c', 'c', close))]
    _, text = _report(tmp_path, dirs, '--compare')
    section = text.split('## Paired comparisons')[1].split('\n## ')[0]
    p = binomtest(0, 50, 0.5).pvalue
    assert '+41.67 [' in section and f'p = {p:.3g} (' in section
    assert 'significant' in section
    # two more right of 120: not told apart
    assert 'tiny_classifier @ aaaaaaaa and tiny_classifier @ cccccccc ' \
        'cannot be told apart' in section
    assert 'bbbbbbbb cannot be told apart' not in section


def test_runs_on_other_images_are_not_paired(tmp_path):
    a = _work_dir(tmp_path / 'a', 'a' * 64, _correct(30))
    b = _work_dir(tmp_path / 'b', 'b' * 64, _correct(30),
                  images=[i.replace('.png', '.jpg') for i in IMAGES])
    _, text = _report(tmp_path, [a, b], '--compare')
    assert 'not paired: evaluated on different images' in text
    assert 'cannot be told apart' not in text


def test_bad_bootstrap_settings_are_one_line(tmp_path, capsys):
    work = _work_dir(tmp_path / 'a', 'a' * 64, _correct(30))
    assert report_cli.main([work, '--out', str(tmp_path / 'o'),
                            '--resamples', '0']) == 2
    assert '--resamples must be a positive integer' in \
        capsys.readouterr().err


def test_the_kernel_panel_needs_two_sizes_and_shows_the_intervals(
        tmp_path, monkeypatch):
    import matplotlib.axes
    drawn = []
    errorbar = matplotlib.axes.Axes.errorbar

    def spy(ax, x, y, **kwargs):
        drawn.append((ax.get_title(), list(x), list(y), kwargs['yerr']))
        return errorbar(ax, x, y, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, 'errorbar', spy)
    one = _work_dir(tmp_path / 'a', 'a' * 64, _correct(30), kernel=9)
    out, _ = _report(tmp_path, [one])
    assert not (out / 'accuracy_vs_kernel.png').exists() and not drawn
    two = _work_dir(tmp_path / 'b', 'b' * 64, _correct(60), kernel=3)
    out, _ = _report(tmp_path, [one, two])
    assert (out / 'accuracy_vs_kernel.png').exists()
    ((title, x, y, yerr), ) = [d for d in drawn if d[0] == '']
    assert x == [3, 9] and y == [50., 25.]
    (lo3, hi3), (lo9, hi9) = _exact(60), _exact(30)
    np.testing.assert_allclose(yerr, [[50 - lo3, 25 - lo9],
                                      [hi3 - 50, hi9 - 25]])


def test_every_imagenet_c_cell_gets_its_interval():
    from mmbcssl.evaluation.robustness import (BENCHMARK_CORRUPTIONS,
                                               SEVERITIES, corruption_errors)
    from mmbcssl.evaluation.statistics import Bootstrap
    from mmbcssl.suite.confidence import Evidence, imagenet_c_intervals
    from mmbcssl.suite.report import imagenet_c_table
    rng = np.random.default_rng(0)
    n = 40
    passes = [f'{c}/{s}' for c in BENCHMARK_CORRUPTIONS for s in SEVERITIES]
    arrays = {p: rng.random(n) < 0.5 for p in passes}
    entry = dict(statistic='imagenet_c', passes=passes, clean=None)
    outcomes = Outcomes([f'n0/{i}.JPEG' for i in range(n)], arrays, meta=dict(
        metrics={'imagenet-c/mCE': dict(entry, which='mCE'),
                 'imagenet-c/relative_mCE': dict(
                     entry, which='relative_mCE', clean_error=0.2)}))
    errors = {}
    for p in passes:
        c, s = p.split('/')
        errors.setdefault(c, {})[int(s)] = 1 - arrays[p].mean()
    metrics = {f'imagenet-c/{k}': v
               for k, v in corruption_errors(errors, 0.2).items()}
    got = imagenet_c_intervals(Evidence(outcomes, 'imagenet-c/mCE', 1.),
                               list(metrics), Bootstrap(200))
    assert set(got) == set(metrics)
    wrong = int(n - arrays['fog/3'].sum())
    ci = binomtest(wrong, n).proportion_ci(0.95, method='exact')
    fog3 = got['imagenet-c/error/fog/3']
    assert (fog3.lo, fog3.hi) == pytest.approx((100 * ci.low, 100 * ci.high))
    for key in ('imagenet-c/CE/fog', 'imagenet-c/error/severity2',
                'imagenet-c/mean_error', 'imagenet-c/mCE',
                'imagenet-c/relative_CE/fog', 'imagenet-c/relative_mCE'):
        assert got[key].value == pytest.approx(metrics[key])
        assert got[key].lo < metrics[key] < got[key].hi
        assert got[key].resamples == 200
    table = imagenet_c_table(metrics, got)
    fog = next(line for line in table if line.startswith('| fog |'))
    assert fog.count('[') == 8  # 5 severities, mean, CE, relative CE
    assert f'[{fog3.lo:.2f}, {fog3.hi:.2f}]' in fog
