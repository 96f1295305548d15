"""Intervals and paired comparisons from per-image outcomes, checked
against closed forms and scipy on synthetic outcomes whose answer is
known."""
import numpy as np
import pytest
from scipy import stats

from mmbcssl.evaluation import statistics as st
from mmbcssl.evaluation.outcomes import Outcomes
from mmbcssl.evaluation.robustness import (ALEXNET_MEAN_ERROR,
                                           BENCHMARK_CORRUPTIONS, SEVERITIES,
                                           corruption_errors)
from mmbcssl.evaluation.statistics import (Bootstrap, clopper_pearson,
                                           compute, mcnemar_p_value, paired,
                                           register_statistic)

PASSES = {f'{c}/{s}': f'{c}_{s}' for c in BENCHMARK_CORRUPTIONS
          for s in SEVERITIES}


def _outcomes(arrays, metrics, prefix='val'):
    n = len(next(iter(arrays.values())))
    # a 'correct' file holds booleans only; strata (integers) need 'counts'
    kind = 'correct' if all(a.dtype == bool for a in arrays.values()) \
        else 'counts'
    return Outcomes([f'{prefix}/img_{i}.JPEG' for i in range(n)], arrays,
                    kind, dict(metrics=metrics))


def _accuracy(correct, scale=100., **extra):
    arrays = dict(top1=np.asarray(correct, bool), **extra)
    return _outcomes(arrays, {'top1': dict(statistic='accuracy',
                                           arrays=['top1'], scale=scale)})


def _bernoulli(p, n, seed):
    return np.random.default_rng(seed).random(n) < p


def _imagenet_c(arrays, clean=None):
    metrics = {which: dict(statistic='imagenet_c', which=which,
                           passes=PASSES) for which in ('mCE', 'mean_error')}
    if clean is not None:
        arrays = dict(arrays, clean=clean)
        metrics['relative_mCE'] = dict(statistic='imagenet_c',
                                       which='relative_mCE', passes=PASSES,
                                       clean='clean')
    return _outcomes(arrays, metrics)


@pytest.fixture
def registry(monkeypatch):
    """Registrations made by a test vanish after it."""
    monkeypatch.setattr(st, '_STATISTICS', dict(st._STATISTICS))
    monkeypatch.setattr(st, '_BATCHED', dict(st._BATCHED))


def test_compute_reads_the_metric_entry_and_refuses_unknown_keys(registry):
    seen = {}

    @register_statistic('test_mean')
    def test_mean(outcomes, idx, arrays, offset=0.):
        seen.update(arrays=arrays, offset=offset)
        return float(np.mean(outcomes.arrays[arrays[0]][
            slice(None) if idx is None else idx])) + offset

    out = _outcomes({'x': np.array([1., 2., 3., 6.])},
                    {'m': dict(statistic='test_mean', arrays=['x'],
                               offset=10.)})
    assert compute(out, 'm') == 13.
    assert compute(out, 'm', np.array([3, 3, 0, 0])) == 13.5
    assert seen == dict(arrays=['x'], offset=10.)
    out.meta['metrics']['m']['scale'] = 100.
    with pytest.raises(ValueError, match=r"takes \['arrays', 'offset'\]"):
        compute(out, 'm')
    out.meta['metrics']['m'] = dict(statistic='nowhere')
    with pytest.raises(KeyError, match="no statistic 'nowhere'.*accuracy"):
        compute(out, 'm')
    with pytest.raises(KeyError, match="no entry for metric 'n'"):
        compute(out, 'n')


def test_accuracy_reproduces_its_number():
    correct = _bernoulli(.37, 999, 0)
    out = _accuracy(correct)
    assert compute(out, 'top1') == 100 * correct.sum() / 999
    assert compute(out, 'top1', np.array([0, 0, 1])) == pytest.approx(
        100 * (2 * correct[0] + correct[1]) / 3)


@pytest.mark.parametrize('n', [1, 7, 100, 2500])
def test_clopper_pearson_is_scipys_exact_interval(n):
    for k in sorted({0, 1, n // 3, n // 2, n - 1, n}):
        for level in (.95, .9):
            lo, hi = clopper_pearson(k, n, level)
            ref = stats.binomtest(k, n).proportion_ci(
                confidence_level=level, method='exact')
            # scipy finds the ends with brentq (xtol 2e-12); ours are the
            # closed-form beta quantiles
            assert lo == pytest.approx(ref.low, abs=1e-11)
            assert hi == pytest.approx(ref.high, abs=1e-11)
            # the definition: each tail holds alpha/2 at the other end
            tail = (1 - level) / 2
            if k:
                assert stats.binom.sf(k - 1, n, lo) == pytest.approx(tail)
            if k < n:
                assert stats.binom.cdf(k, n, hi) == pytest.approx(tail)


def test_a_single_accuracy_gets_the_exact_interval():
    correct = _bernoulli(.8, 400, 1)
    interval = Bootstrap().interval(_accuracy(correct), 'top1')
    k = int(correct.sum())
    ref = stats.binomtest(k, 400).proportion_ci(method='exact')
    assert interval.method == 'exact (Clopper-Pearson)'
    assert interval.resamples is None and interval.level == .95
    assert interval.value == 100 * k / 400
    assert interval.lo == pytest.approx(100 * ref.low, abs=1e-9)
    assert interval.hi == pytest.approx(100 * ref.high, abs=1e-9)


def test_mcnemar_is_the_exact_binomial_test_of_discordant_pairs():
    for b in range(0, 31, 3):
        for c in range(0, 31, 2):
            if b + c:
                assert mcnemar_p_value(b, c) == stats.binomtest(
                    b, b + c, 0.5).pvalue
    # by hand: 10 discordant pairs split 1 / 9;
    # P(X <= 1) + P(X >= 9) = (1 + 10 + 10 + 1) / 2**10
    assert mcnemar_p_value(1, 9) == 22 / 1024
    assert mcnemar_p_value(9, 1) == 22 / 1024
    assert mcnemar_p_value(0, 5) == 2 / 32
    assert mcnemar_p_value(4, 4) == 1. and mcnemar_p_value(0, 0) == 1.


def test_paired_accuracy_uses_mcnemar_on_the_discordant_pairs():
    n = 200
    a = np.zeros(n, bool)
    a[:100] = True
    b = a.copy()
    b[0] = False  # a right, b wrong: 1 pair
    b[100:109] = True  # a wrong, b right: 9 pairs
    result = paired(_accuracy(a), _accuracy(b), 'top1', Bootstrap())
    assert result.p_value == 22 / 1024
    assert result.diff == pytest.approx(100 * (100 - 108) / n)
    assert 'exact McNemar' in result.method


def test_bootstrap_matches_the_normal_interval_for_large_n():
    n, p = 20000, .3
    correct = _bernoulli(p, n, 2)
    interval = Bootstrap(resamples=2000).bootstrap_interval(
        _accuracy(correct, scale=1.), 'top1')
    phat = correct.mean()
    se = np.sqrt(phat * (1 - phat) / n)
    assert interval.value == phat
    # Monte-Carlo error of a 2.5% quantile of 2000 resamples: ~0.06 se
    assert interval.lo == pytest.approx(phat - 1.96 * se, abs=.25 * se)
    assert interval.hi == pytest.approx(phat + 1.96 * se, abs=.25 * se)
    assert interval.method == 'percentile bootstrap over images'
    assert (interval.resamples, interval.seed) == (2000, 0)


def test_bootstrap_agrees_with_scipys_percentile_bootstrap():
    n = 3000
    correct = _bernoulli(.65, n, 3)
    ours = Bootstrap(resamples=2000).bootstrap_interval(
        _accuracy(correct, scale=1.), 'top1')
    ref = stats.bootstrap((correct.astype(float), ), np.mean,
                          n_resamples=2000, method='percentile',
                          rng=np.random.default_rng(0)).confidence_interval
    se = correct.std() / np.sqrt(n)
    # two independent Monte-Carlo estimates of the same quantiles
    assert ours.lo == pytest.approx(ref.low, abs=.3 * se)
    assert ours.hi == pytest.approx(ref.high, abs=.3 * se)


def test_the_seed_fixes_the_resamples():
    out = _accuracy(_bernoulli(.5, 500, 4))
    first = Bootstrap(seed=7).bootstrap_interval(out, 'top1')
    assert Bootstrap(seed=7).bootstrap_interval(out, 'top1') == first
    assert Bootstrap(seed=8).bootstrap_interval(out, 'top1') != first
    # a resample does not depend on which others are drawn with it
    full = Bootstrap(seed=7, resamples=200).resample_indices(500)
    np.testing.assert_array_equal(
        Bootstrap(seed=7, resamples=200).resample_indices(500, None, 60, 131),
        full[60:131])


def test_the_batched_path_equals_one_call_per_resample(registry):
    rng = np.random.default_rng(5)
    n = 300
    arrays = {a: rng.random(n) < rng.uniform(.2, .8) for a in PASSES.values()}
    out = _imagenet_c(arrays, clean=rng.random(n) < .7)
    out.arrays['top1'] = out.arrays['clean']
    out.meta['metrics']['top1'] = dict(statistic='accuracy',
                                       arrays=['top1'], scale=100.)
    boot = Bootstrap(resamples=150)
    fast = {k: boot.replicates(out, k) for k in out.meta['metrics']}
    # the same statistics without their batched forms
    register_statistic('accuracy')(st.accuracy)
    register_statistic('imagenet_c')(st.imagenet_c)
    for key, values in fast.items():
        np.testing.assert_allclose(values, boot.replicates(out, key),
                                   rtol=1e-13, err_msg=key)


def test_imagenet_c_value_is_corruption_errors_of_the_passes():
    rng = np.random.default_rng(6)
    n = 500
    arrays = {a: rng.random(n) < rng.uniform(.1, .9) for a in PASSES.values()}
    clean = rng.random(n) < .75
    out = _imagenet_c(arrays, clean=clean)
    errors = {}
    for key, name in PASSES.items():
        c, s = key.split('/')
        errors.setdefault(c, {})[int(s)] = 1 - arrays[name].mean()
    ref = corruption_errors(errors, 1 - clean.mean())
    for which in ('mCE', 'mean_error', 'relative_mCE'):
        assert compute(out, which) == pytest.approx(ref[which], rel=1e-12)
    # a fixed clean error instead of the clean pass
    out.meta['metrics']['relative_mCE'] = dict(
        statistic='imagenet_c', which='relative_mCE', passes=PASSES,
        clean_error=.3)
    assert compute(out, 'relative_mCE') == pytest.approx(
        corruption_errors(errors, .3)['relative_mCE'], rel=1e-12)
    del out.meta['metrics']['relative_mCE']['clean_error']
    with pytest.raises(ValueError, match='needs the clean pass'):
        compute(out, 'relative_mCE')


def test_mce_resamples_images_across_all_passes_at_once():
    n = 2000
    boot = Bootstrap()
    one = _bernoulli(.6, n, 7)
    single = boot.bootstrap_interval(_accuracy(one), 'top1')
    width = single.hi - single.lo
    # 75 copies of one pass: perfectly correlated passes
    same = boot.interval(_imagenet_c({a: one for a in PASSES.values()}),
                         'mean_error')
    assert same.hi - same.lo == pytest.approx(width, rel=1e-9)
    mce = boot.interval(_imagenet_c({a: one for a in PASSES.values()}),
                        'mCE')
    # mCE of identical passes is error * mean(1 / AlexNet error)
    factor = np.mean([1 / ALEXNET_MEAN_ERROR[c]
                      for c in BENCHMARK_CORRUPTIONS])
    assert mce.hi - mce.lo == pytest.approx(width * factor, rel=1e-9)
    # independent passes: the mean over 75 is ~sqrt(75) times narrower
    rng = np.random.default_rng(8)
    free = boot.interval(
        _imagenet_c({a: rng.random(n) < .6 for a in PASSES.values()}),
        'mean_error')
    assert 0.05 * width < free.hi - free.lo < 0.2 * width


def test_stratified_resamples_keep_each_stratums_size(registry):
    strata = np.repeat([2, 0, 1], [5, 40, 155])
    np.random.default_rng(9).shuffle(strata)
    sizes = np.bincount(strata)
    boot = Bootstrap(resamples=100)
    idx = boot.resample_indices(len(strata), strata)
    for rows in idx:
        np.testing.assert_array_equal(np.bincount(strata[rows]), sizes)
    # without strata the sizes vary: the check above can fail
    assert any(not np.array_equal(np.bincount(strata[rows], minlength=3),
                                  sizes)
               for rows in boot.resample_indices(len(strata)))

    seen = []

    @register_statistic('test_set_mean')
    def test_set_mean(outcomes, idx, arrays, strata):
        rows = np.arange(len(outcomes.images)) if idx is None else idx
        groups = outcomes.arrays[strata][rows]
        seen.append(np.bincount(groups, minlength=3))
        correct = outcomes.arrays[arrays[0]][rows]
        return float(np.mean([correct[groups == g].mean()
                              for g in range(3)]))

    out = _outcomes(dict(top1=_bernoulli(.5, len(strata), 10),
                         set=strata),
                    {'mean': dict(statistic='test_set_mean',
                                  arrays=['top1'], strata='set')})
    interval = boot.interval(out, 'mean')
    assert "within strata of 'set'" in interval.method
    assert len(seen) == 101  # the value, then one call per resample
    for counts in seen:
        np.testing.assert_array_equal(counts, sizes)
    # a stratified accuracy is bootstrapped, not Clopper-Pearson
    acc = _outcomes(dict(top1=_bernoulli(.5, len(strata), 11), set=strata),
                    {'top1': dict(statistic='accuracy', arrays=['top1'],
                                  strata='set')})
    assert 'bootstrap' in boot.interval(acc, 'top1').method


def test_pairing_refuses_runs_on_other_images():
    a = _accuracy(_bernoulli(.5, 50, 12))
    b = Outcomes([f'other/img_{i}.JPEG' for i in range(50)], a.arrays,
                 meta=a.meta)
    with pytest.raises(ValueError) as e:
        paired(a, b, 'top1', Bootstrap())
    message = str(e.value)
    assert '\n' not in message
    assert a.images_sha256 in message and b.images_sha256 in message


def test_paired_bootstrap_reads_both_runs_at_the_same_resample():
    n = 5000
    a = _bernoulli(.7, n, 13)
    b = a.copy()
    flip = np.random.default_rng(14).choice(n, 60, replace=False)
    b[flip[:45]] = True  # b better by at most 45 images, 15 worse
    b[flip[45:]] = False
    boot = Bootstrap()
    result = paired(_accuracy(b), _accuracy(a), 'top1', boot)
    assert result.diff == pytest.approx(100 * (b.mean() - a.mean()))
    assert result.lo < result.diff < result.hi
    # unpaired, the two intervals' widths would add up
    single = boot.bootstrap_interval(_accuracy(a), 'top1')
    assert result.hi - result.lo < 0.25 * (single.hi - single.lo)
    d = int((b & ~a).sum()), int((a & ~b).sum())
    assert result.p_value == stats.binomtest(d[0], sum(d), .5).pvalue
    assert result.significant == (result.lo > 0)
    assert result.to_dict()['verdict'] == result.verdict

    same = paired(_accuracy(a), _accuracy(a), 'top1', boot)
    assert (same.diff, same.lo, same.hi, same.p_value) == (0, 0, 0, 1)
    assert not same.significant and same.verdict == 'not significant'


def test_paired_bootstrap_p_value_of_other_statistics():
    n = 1000
    rng = np.random.default_rng(15)
    base = {a: rng.random(n) < .55 for a in PASSES.values()}
    better = {a: v | (rng.random(n) < .03) for a, v in base.items()}
    a, b = _imagenet_c(better), _imagenet_c(base)
    boot = Bootstrap(resamples=300)
    result = paired(a, b, 'mCE', boot)
    diffs = np.subtract(*boot._replicates([a, b], 'mCE'))
    below, above = (diffs <= 0).sum(), (diffs >= 0).sum()
    assert result.p_value == min(1, 2 * (1 + min(below, above)) / 301)
    assert result.diff == pytest.approx(compute(a, 'mCE') - compute(b, 'mCE'))
    assert result.significant and result.hi < 0  # fewer errors
    assert 'bootstrap p-value' in result.method
    # a difference within the noise: its interval holds 0
    noise = {a: v ^ (rng.random(n) < .01) for a, v in base.items()}
    close = paired(_imagenet_c(noise), b, 'mean_error', boot)
    assert close.lo <= 0 <= close.hi
    assert not close.significant and close.verdict == 'not significant'


def test_coverage_of_the_95_percent_intervals():
    """On 200 data sets of 200 Bernoulli(0.3) images, the bootstrap
    interval and Clopper-Pearson's cover 0.3 in about 95% of them (here
    189 and 190; 200 data sets put about 3 sets of chance either side)."""
    p, n = .3, 200
    boot = Bootstrap(resamples=400)
    covered = dict(bootstrap=0, exact=0)
    for seed in range(200):
        out = _accuracy(_bernoulli(p, n, 100 + seed), scale=1.)
        i = boot.bootstrap_interval(out, 'top1')
        covered['bootstrap'] += i.lo <= p <= i.hi
        i = boot.interval(out, 'top1')
        covered['exact'] += i.lo <= p <= i.hi
    assert 180 <= covered['bootstrap'] <= 198, covered
    assert 180 <= covered['exact'] <= 198, covered


@pytest.mark.parametrize('kwargs', [dict(resamples=1), dict(seed=-1),
                                    dict(level=1.), dict(resamples=10.5)])
def test_the_protocol_refuses_bad_settings(kwargs):
    with pytest.raises(ValueError):
        Bootstrap(**kwargs)
    assert Bootstrap().to_dict() == dict(resamples=1000, seed=0, level=.95)


def test_a_statistic_registered_beside_its_metric_is_found_by_name(
        monkeypatch):
    """A report that reads a segmentation result has not imported the
    module that registers 'miou': the lookup imports it."""
    import sys

    from mmbcssl.evaluation import statistics
    monkeypatch.setattr(statistics, '_STATISTICS', {
        k: v for k, v in statistics._STATISTICS.items() if k != 'miou'})
    monkeypatch.delitem(sys.modules,
                        'mmbcssl.evaluation.segmentation_outcomes',
                        raising=False)
    assert statistics.statistic('miou').__name__ == 'miou'
    with pytest.raises(KeyError, match="no statistic 'mIoU'"):
        statistics.statistic('mIoU')
