"""Linear-transfer protocol: the lambda search, the metrics against hand
computations, the fit on separable data, the hold-out and the summary."""
import math

import numpy as np
import pytest

from mmbcssl.evaluation.statistics import statistic
from mmbcssl.evaluation.transfer import (holdout_split, score, search_l2,
                                         summarise, transfer_one,
                                         transfer_outcomes)


def _grid_best(evaluate, steps_per_decade=8):
    """Exhaustive reference: every lambda of the final grid (97 values)."""
    n = 12 * steps_per_decade + 1
    grid = [-6 + i / steps_per_decade for i in range(n)]
    return 10.0**max(grid, key=lambda c: (evaluate(10.0**c), c))


@pytest.mark.parametrize('peak', [1.375, -2.875, 0.5, -6.0, 6.0, 3.125])
def test_search_finds_the_known_best_lambda(peak):
    """A unimodal validation curve peaked at a grid point: the binary search
    finds it with at most 7 + 2 x 4 fits, as the exhaustive grid does."""
    calls = []

    def curve_at(lam):
        return -(math.log10(lam) - peak)**2

    def evaluate(lam):
        calls.append(lam)
        return curve_at(lam)

    lam, curve = search_l2(evaluate)
    assert math.log10(lam) == pytest.approx(peak)
    assert lam == pytest.approx(_grid_best(curve_at))
    assert len(calls) == len(set(calls)) == len(curve) <= 15
    # the coarse grid first: 1e-6, 1e-4, ..., 1e6
    assert [round(math.log10(c), 6) for c in calls[:7]] == list(
        range(-6, 7, 2))


def test_search_prefers_the_larger_lambda_on_ties():
    lam, curve = search_l2(lambda lam: 1.0)
    assert lam == pytest.approx(1e6)


def test_metrics_match_hand_computations():
    labels = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 2, 0, 0])
    probs = np.eye(3)[pred]
    assert score('accuracy', labels, probs) == pytest.approx(100 * 5 / 8)
    # recalls: class 0 1/2, class 1 2/2, class 2 2/4
    assert score('mean_per_class', labels, probs) == pytest.approx(
        100 * (0.5 + 1 + 0.5) / 3)


def test_11_point_map_by_hand():
    # one class, ranking positive, negative, positive: (recall, precision)
    # = (0.5, 1), (0.5, 0.5), (1, 2/3). Max precision at recall >= t is 1
    # for t = 0, 0.1, ..., 0.5 and 2/3 for t = 0.6, ..., 1.
    labels = np.array([0, 1, 0])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    ap0 = (6 * 1 + 5 * 2 / 3) / 11
    # class 1: one positive ranked second of three by its column:
    # (0, 0), (1, 1/2), (1, 1/3) -> 1/2 at every threshold
    ap1 = 0.5
    assert score('map_11point', labels, probs) == pytest.approx(
        100 * (ap0 + ap1) / 2, abs=1e-4)


def test_roc_auc_is_the_fraction_of_correctly_ordered_pairs():
    labels = np.array([1, 0, 1, 0, 1])
    p1 = np.array([0.9, 0.8, 0.4, 0.3, 0.7])
    probs = np.stack([1 - p1, p1], axis=1)
    pairs = [(a, b) for a in p1[labels == 1] for b in p1[labels == 0]]
    expected = 100 * np.mean([a > b for a, b in pairs])
    assert score('roc_auc', labels, probs) == pytest.approx(expected)


def test_unknown_metric():
    with pytest.raises(ValueError, match='metric must be one of accuracy'):
        score('top5', np.zeros(2, int), np.ones((2, 2)))


def test_transfer_one_learns_separable_classes():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 4

    def draw(n):
        y = np.repeat(np.arange(4), n)
        return centres[y] + rng.normal(size=(len(y), 16)), y

    res = transfer_one(draw(20), draw(10), draw(10), 4, 'accuracy')
    assert res['score'] > 95
    assert res['converged']
    assert 1e-6 <= res['lam'] <= 1e6
    # lambda lies on the 8-steps-per-decade grid
    assert res['log10_lam'] * 8 == pytest.approx(round(res['log10_lam'] * 8))


def test_holdout_is_stratified():
    labels = np.repeat(np.arange(5), 10)
    tr, va = holdout_split(labels, 0.2)
    assert len(va) == 10 and len(tr) == 40 and not set(tr) & set(va)
    assert np.bincount(labels[va]).tolist() == [2] * 5
    with pytest.raises(ValueError, match='at least 2 training images'):
        holdout_split(np.array([0, 0, 1]), 0.5)


def test_summary_average_and_wins():
    results = {
        'a': {'s1': {'score': 80.}, 's2': {'score': 50.}, 's3': {'score': 7.}},
        'b': {'s1': {'score': 70.}, 's2': {'score': 50.}, 's3': {'score': 9.}},
    }
    out = summarise(results, ['a', 'b'])
    assert out['average'] == pytest.approx({'a': 137 / 3, 'b': 129 / 3})
    assert out['versus'] == {'b': dict(wins=1, ties=1, losses=1)}


def _test_set(metric, labels, probs):
    return dict(images=[f'img{i}.png' for i in range(len(labels))],
                labels=np.asarray(labels), probs=np.asarray(probs),
                metric=metric, score=score(metric, np.asarray(labels),
                                           np.asarray(probs)))


def test_transfer_outcomes_give_each_score_and_the_mean_back():
    """Every metric's set in one outcomes file: 'transfer_mean' on all
    rows is the mean of the sets' scores; on a resample within each set
    it is the mean of the scores of each set's resampled rows."""
    rng = np.random.default_rng(0)

    def probs(n, c):
        p = rng.random((n, c))
        return p / p.sum(1, keepdims=True)

    tests = {
        m: _test_set(m, rng.integers(0, c, n), probs(n, c))
        for m, n, c in (('accuracy', 30, 4), ('mean_per_class', 20, 3),
                        ('map_11point', 25, 5), ('roc_auc', 40, 3))
    }
    outcomes = transfer_outcomes(tests)
    assert outcomes.kind == 'scores'
    assert outcomes.images[30] == 'mean_per_class/img0.png'
    assert np.diff(outcomes.arrays['probs.offsets']).tolist() == (
        [0] * 50 + [5] * 25 + [3] * 40)
    mean = statistic('transfer_mean')
    expected = float(np.mean([t['score'] for t in tests.values()]))
    assert mean(outcomes, None, strata='set') == expected
    # a stratified resample: the same as scoring each set's resample
    idx, parts, start = [], [], 0
    for t in tests.values():
        n = len(t['labels'])
        pick = rng.integers(0, n, n)
        idx.append(start + pick)
        parts.append(score(t['metric'], t['labels'][pick],
                           t['probs'][pick].astype(
                               outcomes.arrays['probs.values'].dtype
                           ).astype(np.float64)))
        start += n
    assert mean(outcomes, np.concatenate(idx), strata='set') == \
        pytest.approx(np.mean(parts), rel=1e-12)


def test_transfer_probabilities_are_stored_as_small_as_exactness_allows():
    """float16 when it gives the score back; float32 when float16 would
    tie two images a ROC-AUC ranks apart (0.5 and 0.5001 round to the
    same float16)."""
    easy = _test_set('roc_auc', [0, 1, 0, 1],
                     [[.9, .1], [.2, .8], [.7, .3], [.4, .6]])
    assert transfer_outcomes(dict(s=easy)).arrays[
        'probs.values'].dtype == np.float16
    close = _test_set('roc_auc', [0, 1], [[.5, .5], [.4999, .5001]])
    assert close['score'] == 100.0
    outcomes = transfer_outcomes(dict(s=easy, t=close))
    assert outcomes.arrays['probs.values'].dtype == np.float32
    assert statistic('transfer_mean')(outcomes, None, strata='set') == 100.0
