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


# AlexNet's top-1 error per corruption and severity 1-5, as the BC-SSL
# authors' DINO fork lists them (Shiweiliuiiiiiii/dino,
# timm/utils/imagenet_c.py, imagenetc_alexnet_error_rates_list).
FORK_ALEXNET_ERRORS = dict(
    gaussian_noise=(0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    shot_noise=(0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    impulse_noise=(0.78374, 0.89808, 0.9487, 0.9872, 0.99548),
    defocus_blur=(0.656239999999999, 0.73202, 0.85036, 0.91364, 0.94714),
    glass_blur=(0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    motion_blur=(0.5843, 0.70048, 0.82108, 0.8975, 0.92638),
    zoom_blur=(0.70008, 0.769919999999999, 0.80784, 0.84198, 0.87198),
    snow=(0.71726, 0.88392, 0.86468, 0.9187, 0.94952),
    frost=(0.6139, 0.797339999999999, 0.8879, 0.89942, 0.9343),
    fog=(0.67474, 0.7605, 0.84378, 0.8726, 0.945),
    brightness=(0.4514, 0.48502, 0.54048, 0.62166, 0.724399999999999),
    contrast=(0.64548, 0.7615, 0.88874, 0.9776, 0.9927),
    elastic_transform=(0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    pixelate=(0.52218, 0.5462, 0.737279999999999, 0.87092, 0.91262),
    jpeg_compression=(0.510019999999999, 0.54718, 0.57294, 0.654579999999999,
                      0.74778),
)


def test_alexnet_errors_are_the_means_of_the_forks_table():
    assert list(FORK_ALEXNET_ERRORS) == list(BENCHMARK_CORRUPTIONS)
    for name, errors in FORK_ALEXNET_ERRORS.items():
        assert ALEXNET_MEAN_ERROR[name] == pytest.approx(
            sum(errors) / 5, abs=1e-9), name


def test_the_alexnet_errors_cite_where_they_come_from():
    """Hendrycks & Dietterich (ICLR 2019) and the authors' fork hold these
    numbers; hendrycks/robustness ImageNet-C/test.py has no such table."""
    from mmbcssl.evaluation import robustness
    doc = robustness.__doc__
    assert 'ImageNet-C/test.py' not in doc
    assert 'Hendrycks & Dietterich' in doc and 'ICLR 2019' in doc
    assert 'Shiweiliuiiiiiii/dino' in doc
    assert 'timm/utils/imagenet_c.py' in doc
