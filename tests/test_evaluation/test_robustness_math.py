"""A/R logit restriction and the ImageNet-C numbers, by hand."""
import pytest
import torch

from mmbcssl.evaluation.robustness import (ALEXNET_CLEAN_ERROR,
                                           ALEXNET_MEAN_ERROR,
                                           BENCHMARK_CORRUPTIONS,
                                           corruption_errors, restrict_logits)


def test_restriction_changes_predictions_as_the_formula_says():
    # 5-way model, subset = classes 1 and 3 (columns in full-model order).
    logits = torch.tensor([
        [9.0, 1.0, 0.0, 2.0, 0.0],  # full argmax 0; within {1, 3}: 3 -> 1
        [0.0, 5.0, 0.0, 4.0, 7.0],  # full argmax 4; within {1, 3}: 1 -> 0
        [0.0, 1.0, 0.0, 1.5, 0.0],  # already in the subset: 3 -> 1
    ])
    sub = restrict_logits(logits, [1, 3])
    assert sub.tolist() == [[1.0, 2.0], [5.0, 4.0], [1.0, 1.5]]
    assert sub.argmax(1).tolist() == [1, 0, 1]
    assert logits.argmax(1).tolist() == [0, 4, 3]


def test_restriction_rejects_bad_indices():
    with pytest.raises(ValueError):
        restrict_logits(torch.zeros(2, 5), [1, 5])
    with pytest.raises(ValueError):
        restrict_logits(torch.zeros(2, 5), [])


def _table(base=0.5, step=0.05):
    # err(c, s) = base + step * s + 0.01 * index(c)
    return {
        c: {s: base + step * s + 0.01 * i for s in range(1, 6)}
        for i, c in enumerate(BENCHMARK_CORRUPTIONS)
    }


def test_mce_relative_mce_and_mean_error_by_hand():
    errors = _table()
    errors['spatter'] = {s: 0.99 for s in range(1, 6)}  # extra: not in mCE
    clean = 0.25
    out = corruption_errors(errors, clean_error=clean)
    ces, rels, flat = [], [], []
    for i, c in enumerate(BENCHMARK_CORRUPTIONS):
        errs = [0.5 + 0.05 * s + 0.01 * i for s in range(1, 6)]
        flat += errs
        ce = sum(errs) / (5 * ALEXNET_MEAN_ERROR[c])
        rel = (sum(errs) - 5 * clean) / (
            5 * ALEXNET_MEAN_ERROR[c] - 5 * ALEXNET_CLEAN_ERROR)
        assert out[f'CE/{c}'] == pytest.approx(100 * ce)
        assert out[f'relative_CE/{c}'] == pytest.approx(100 * rel)
        ces.append(ce)
        rels.append(rel)
    assert out['mCE'] == pytest.approx(100 * sum(ces) / 15)
    assert out['relative_mCE'] == pytest.approx(100 * sum(rels) / 15)
    assert out['mean_error'] == pytest.approx(100 * sum(flat) / 75)
    assert out['error/spatter'] == pytest.approx(99.0)
    assert out['error/severity3'] == pytest.approx(
        100 * (0.65 + 0.01 * sum(range(15)) / 15))


def test_alexnet_itself_scores_100():
    errors = {c: {s: ALEXNET_MEAN_ERROR[c] for s in range(1, 6)}
              for c in BENCHMARK_CORRUPTIONS}
    out = corruption_errors(errors, clean_error=ALEXNET_CLEAN_ERROR)
    assert out['mCE'] == pytest.approx(100.0)
    assert out['relative_mCE'] == pytest.approx(100.0)


def test_missing_results_are_listed():
    errors = _table()
    del errors['fog']
    del errors['snow'][4]
    with pytest.raises(ValueError) as info:
        corruption_errors(errors)
    msg = str(info.value)
    assert 'snow/4' in msg and 'fog/1' in msg and 'fog/5' in msg
